"""Helpers shared by the claim modules."""

import torch

from scorefusion import Gaussian


def random_spd(dim, generator, low=0.5, high=2.0):
    """Random SPD matrix with eigenvalues uniform in [low, high] (float64)."""
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    evals = low + (high - low) * torch.rand(dim, generator=generator, dtype=torch.float64)
    return (q * evals) @ q.T


def random_gaussians(k, dim, generator, mean_scale=1.0):
    """K random Gaussians with covariance eigenvalues in [0.5, 2]."""
    return [Gaussian(mean_scale * torch.randn(dim, generator=generator, dtype=torch.float64),
                     random_spd(dim, generator)) for _ in range(k)]
