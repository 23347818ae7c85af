"""At tiny t the DSM linear term is noise of size sqrt(E|s_i|^2) / std_t; ISM has no such term."""

import numpy as np
import torch

from lab.paper_1d import dsm_linear_term_spread
from scorefusion import VESDE, AnalyticScore, ism_quadratic
from scorefusion.data import paper_1d

from . import Claim, Result


def run(fast=True):
    preset, sde = paper_1d(), VESDE(25.0)
    aux = [AnalyticScore(d, sde) for d in preset.aux]
    gen = torch.Generator().manual_seed(11)
    x0 = preset.target.sample(2048 if fast else 16384, generator=gen)
    times = [1e-7, 1e-6, 1e-5, 1e-4]
    stds, _, spread, leading = dsm_linear_term_spread(aux, x0, sde, times, gen)
    G, _, _ = ism_quadratic(aux, x0, sde, t=1e-7)
    predicted = np.sqrt(np.diag(G.numpy()))  # sqrt E|s_i|^2 at t -> 0
    worst = float(np.abs(spread / leading - 1.0).max())  # the Taylor expansion, on the same draws
    sampling = float(np.abs(spread * stds[:, None] / predicted - 1.0).max())  # vs the population value
    slope = float(np.polyfit(np.log(stds), np.log(spread[:, 0]), 1)[0])
    details = {"std_t": stds.tolist(), "spread_times_std": (spread * stds[:, None]).tolist(),
               "predicted_sqrt_E_s2": predicted.tolist(), "rel_error_vs_population": sampling,
               "loglog_slope": slope}
    passed = worst < 0.02 and sampling < 0.25 and abs(slope + 1) < 0.05
    return Result(worst, 0.02, passed, details)


CLAIM = Claim(
    id="dsm_tiny_t_variance",
    statement="On the paper's 1-D preset, the per-sample DSM linear coefficient rescaled by std_t^2 has standard "
              "deviation equal to that of its leading term s_i(x0) . z / std_t on the same draws (relative error "
              "< 0.02; measured), about sqrt(E|s_i|^2) / std_t (within 25%, the sampling error of a heavy-tailed "
              "second moment) for t in [1e-7, 1e-4], with log-log slope -1 +- 0.05, so DSM's estimate of lam is noise-dominated at the paper's tiny times.",
    reference="ScoreFusion Sec. 4 (DSM objective); Vincent (2011)",
    chapter="03_fusion_by_score_matching",
    run=run,
)
