"""The KL barycenter is the normalised product prod_i p_i^lam_i, and the KL identity holds."""

import math

import torch

from lab.gaussians import random_gaussians
from scorefusion import GeometricMixture, kl_barycenter, kl_gaussian
from scorefusion.barycenter import _gaussian_product, grid, integrate_on_grid, support_box
from scorefusion.data import paper_1d

from . import Claim, Result


def run(fast=True):
    gen = torch.Generator().manual_seed(1)
    lam = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    dists = random_gaussians(3, 4, gen)
    bary = kl_barycenter(dists, lam)
    x = 2 * torch.randn(500, 4, generator=gen, dtype=torch.float64)
    gap = bary.log_prob(x) - sum(w * d.log_prob(x) for w, d in zip(lam.tolist(), dists))
    constancy = gap.std().item()
    # sum_i lam_i KL(q || p_i) = KL(q || p_lam) - log Z_lam for an arbitrary Gaussian q
    q = random_gaussians(1, 4, gen)[0]
    _, _, log_z = _gaussian_product(lam, torch.stack([d.mean for d in dists]), torch.stack([d.cov for d in dists]))
    lhs = sum(w * kl_gaussian(q, d) for w, d in zip(lam.tolist(), dists))
    identity = abs((lhs - (kl_gaussian(q, bary) - log_z)).item())
    # the exact geometric mixture of the paper's 1-D mixtures integrates to one
    geo = GeometricMixture(paper_1d().aux, [0.4, 0.6])
    axes, points = grid(*support_box(geo.dists), 40001)
    mass_error = abs(integrate_on_grid(torch.exp(geo.log_prob(points)), axes) - 1.0)
    measured = max(constancy, identity, mass_error)
    details = {"std_of_log_ratio": constancy, "kl_identity_residual": identity, "mass_error_1d": mass_error,
               "log_Z": float(log_z), "Z<=1": math.exp(float(log_z)) <= 1.0}
    return Result(measured, 1e-9, measured < 1e-9 and details["Z<=1"], details)


CLAIM = Claim(
    id="barycenter_is_normalized_product",
    statement="log p_lam - sum lam_i log p_i is constant in x, sum lam_i KL(q||p_i) = KL(q||p_lam) - log Z_lam "
              "with Z_lam <= 1, and the geometric mixture integrates to 1 (all residuals <= 1e-9).",
    reference="ScoreFusion Sec. 3, Eq. for p_lam",
    chapter="01_kl_barycenters_of_gaussians",
    run=run,
)
