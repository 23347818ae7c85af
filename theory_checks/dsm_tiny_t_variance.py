"""At tiny t the DSM linear term is noise of size sqrt(E|s_i|^2) / std_t; ISM has no such term."""

import math

import numpy as np
import torch

from lab.paper_1d import dsm_linear_term_spread
from scorefusion import VESDE, AnalyticScore
from scorefusion.barycenter import grid, integrate_on_grid
from scorefusion.data import paper_1d

from . import Claim, Result


def _population_moments(score, target, t):
    r""":math:`\mathbb E_q |s(x, t)|^2` and the kurtosis :math:`3\,\mathbb E_q s^4 / (\mathbb E_q s^2)^2` of
    :math:`W = s(x, t)\, z` (1-D, Simpson's rule on a wide grid)."""
    axes, x = grid([-30.0], [30.0], 12001)
    density = target.log_prob(x).exp()
    s = score(x, torch.full((x.shape[0],), t, dtype=torch.float64))[:, 0]
    m2 = integrate_on_grid(density * s**2, axes)
    m4 = integrate_on_grid(density * s**4, axes)
    return m2, 3 * m4 / m2**2


def run(fast=True):
    preset, sde = paper_1d(), VESDE(25.0)
    aux = [AnalyticScore(d, sde) for d in preset.aux]
    gen = torch.Generator().manual_seed(11)
    n = 2048 if fast else 16384
    x0 = preset.target.sample(n, generator=gen)
    times = [1e-7, 1e-6, 1e-5, 1e-4]
    stds, _, spread, leading = dsm_linear_term_spread(aux, x0, sde, times, gen)
    # gate 1: the spread (rescaled by std_t) is the population sqrt(E|s_i|^2), within its sampling error:
    # the sample std of W = s z over n draws has relative standard error sqrt((kurtosis(W) - 1) / (4 n))
    z_scores = np.zeros_like(spread)
    population = np.zeros_like(spread)
    for k, t in enumerate(times):
        for i, score in enumerate(aux):
            m2, kurtosis = _population_moments(score, preset.target, t)
            population[k, i] = math.sqrt(m2)
            rel_se = math.sqrt((kurtosis - 1) / (4 * n))
            z_scores[k, i] = (spread[k, i] * stds[k] / population[k, i] - 1) / rel_se
    worst_z = float(np.abs(z_scores).max())
    # gate 2: the spread grows like 1 / std_t (log-log slope -1)
    slope = float(np.polyfit(np.log(stds), np.log(spread[:, 0]), 1)[0])
    # gate 3: on the same draws the spread is that of the leading Taylor term s_i(x0) . z / std_t
    taylor = float(np.abs(spread / leading - 1.0).max())
    gates = {"population_z (tol 4)": worst_z, "|loglog_slope + 1| (tol 0.05)": abs(slope + 1),
             "taylor_rel_error (tol 0.02)": taylor}
    details = {"gates": gates, "std_t": stds.tolist(), "spread_times_std": (spread * stds[:, None]).tolist(),
               "population_sqrt_E_s2": population.tolist(), "loglog_slope": slope}
    passed = worst_z < 4.0 and abs(slope + 1) < 0.05 and taylor < 0.02
    return Result(worst_z, 4.0, passed, details)


CLAIM = Claim(
    id="dsm_tiny_t_variance",
    statement="On the paper's 1-D preset, for t in [1e-7, 1e-4], the per-sample DSM linear coefficient rescaled by "
              "std_t^2 has a standard deviation of sqrt(E|s_i|^2) / std_t, E|s_i|^2 by quadrature under the target "
              "(measured: the largest error in units of the sample std's standard error, tolerance 4); it grows "
              "like 1 / std_t (log-log slope -1 +- 0.05) and is that of the leading Taylor term s_i(x0) . z / std_t "
              "on the same draws (relative error < 0.02): DSM's estimate of lam is noise-dominated at the paper's "
              "tiny times.",
    reference="ScoreFusion Sec. 4 (DSM objective); Vincent (2011)",
    chapter="03_fusion_by_score_matching",
    run=run,
)
