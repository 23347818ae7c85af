"""Small data sets that several test files share."""

import math

import torch

import scorefusion as sf


def ring(n, seed, k=4, radius=2.0, var=0.05):
    """A ring of ``k`` Gaussians and ``n`` float32 samples from it (generator seeded with ``seed``)."""
    angles = torch.arange(k) * 2 * math.pi / k
    means = radius * torch.stack([angles.cos(), angles.sin()], 1).double()
    mix = sf.GaussianMixture(torch.full((k,), 1.0 / k).double(), means,
                             var * torch.eye(2).double().expand(k, 2, 2))
    return mix, mix.sample(n, generator=torch.Generator().manual_seed(seed)).float()
