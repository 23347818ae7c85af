"""noised(sde, t) is the exact forward marginal, and AnalyticScore is its exact score."""


import torch

from scorefusion import VESDE, VPSDE, AnalyticScore, GaussianMixture
from scorefusion.losses import perturb

from . import Claim, Result


def run(fast=True):
    gen = torch.Generator().manual_seed(2)
    mix = GaussianMixture([0.3, 0.7], [[-2.0, 1.0], [3.0, 0.5]],
                          [[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 2.0]]])
    n = 50_000 if fast else 400_000
    worst_z, worst_score, details = 0.0, 0.0, {}
    for sde in (VESDE(25.0), VPSDE()):
        for t in (0.05, 0.5, 1.0):
            x0 = mix.sample(n, generator=gen)
            xt, _, _ = perturb(x0, sde, torch.full((n,), t, dtype=torch.float64), gen)
            exact = mix.noised(sde, t)
            mean = (exact.weights[:, None] * exact.means).sum(0)
            second = (exact.weights[:, None, None] * (exact.covs + exact.means[:, :, None] * exact.means[:, None, :])).sum(0)
            cov = second - torch.outer(mean, mean)
            # standardised errors of the Monte-Carlo mean and variances
            z_mean = ((xt.mean(0) - mean) / torch.sqrt(torch.diagonal(cov) / n)).abs().max().item()
            var_se = torch.sqrt(((xt - mean) ** 2).var(0) / n)
            z_var = ((torch.var(xt, 0) - torch.diagonal(cov)) / var_se).abs().max().item()
            x = xt[:200].clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(exact.log_prob(x).sum(), x)
            score_err = (AnalyticScore(mix, sde)(xt[:200], t) - grad).abs().max().item()
            details[f"{type(sde).__name__} t={t}"] = {"z_mean": z_mean, "z_var": z_var, "score_error": score_err}
            worst_z = max(worst_z, z_mean, z_var)
            worst_score = max(worst_score, score_err)
    details["max_score_error"] = worst_score
    return Result(worst_z, 5.0, worst_z < 5.0 and worst_score < 1e-10, details)


CLAIM = Claim(
    id="noised_marginal_exact",
    statement="Monte Carlo of scale_t x0 + std_t z matches noised(sde, t) in mean and variance "
              "(max standardised error < 5, VE and VP, three times) and AnalyticScore equals autograd of "
              "the noised log-density (error < 1e-10).",
    reference="Song et al. 2021b (SDEs), transition kernels; ScoreFusion Sec. 2",
    chapter="03_fusion_by_score_matching",
    run=run,
)
