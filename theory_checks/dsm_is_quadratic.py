"""The DSM loss of the fused score is exactly lam^T G lam - 2 b^T lam + c on the same draws."""

import torch

from scorefusion import VESDE, AnalyticScore, FusedScore, dsm_loss, dsm_quadratic
from scorefusion.data import paper_1d
from scorefusion.losses import sample_times

from . import Claim, Result


def run(fast=True):
    preset, sde = paper_1d(), VESDE(25.0)
    aux = [AnalyticScore(d, sde) for d in preset.aux] + [AnalyticScore(preset.target, sde)]
    x0 = preset.target.sample(512, generator=torch.Generator().manual_seed(3))
    worst = 0.0
    lam_gen = torch.Generator().manual_seed(6)
    for t_range in ((1e-7, 1e-4), (1e-3, 1.0)):
        t = sample_times(512, sde, t_range, torch.Generator().manual_seed(4))
        G, b, c = dsm_quadratic(aux, x0, sde, t=t, generator=torch.Generator().manual_seed(5))
        for seed in range(5 if fast else 50):
            # uniform on the simplex (Dirichlet(1, 1, 1)): normalised standard exponentials
            e = -torch.log(torch.rand(3, generator=lam_gen, dtype=torch.float64))
            lam = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) if seed == 0 else e / e.sum()
            loss = dsm_loss(FusedScore(aux, lam), x0, sde, t=t, generator=torch.Generator().manual_seed(5))
            quad = lam @ G @ lam - 2 * b @ lam + c
            worst = max(worst, abs((loss - quad) / loss).item())
    return Result(worst, 1e-10, worst < 1e-10, {"max_relative_difference": worst})


CLAIM = Claim(
    id="dsm_is_quadratic",
    statement="dsm_loss(FusedScore(aux, lam)) equals lam^T G lam - 2 b^T lam + c from dsm_quadratic on the "
              "same draws (relative difference < 1e-10) for a vertex and random lam on the simplex (seeded).",
    reference="ScoreFusion Sec. 4 (linear fused score)",
    chapter="03_fusion_by_score_matching",
    run=run,
)
