"""The closed-form forward marginal of each SDE is that of a Monte Carlo of the SDE itself."""

import math

import torch

from scorefusion import VESDE, VPSDE

from . import Claim, Result

FRACTIONS = (0.01, 0.1, 0.5, 1.0)  # checkpoints, as fractions of T


def simulate(sde, x0, n_paths, n_steps, generator):
    r"""Euler-Maruyama of the forward SDE :math:`dx = f(x, t)\,dt + g(t)\,dw` from the point mass ``x0`` (1-D).

    .. math:: x_{k+1} = x_k + f(x_k, t_k)\,\Delta t + g(t_k) \sqrt{\Delta t}\, z_k, \qquad
              t_k = (k + \tfrac12)\,\Delta t

    with the coefficients taken at the middle of each step, so that the variance the noise adds,
    :math:`\sum_k g(t_k)^2 \Delta t`, is the midpoint rule for :math:`\int g^2`: its bias is
    :math:`O(\Delta t^2)` instead of the left-point rule's :math:`O(\Delta t)`, which at
    :math:`t = 0.01T` (a few steps) is several standard errors. Uses only ``sde.sde`` (drift and
    diffusion), never ``sde.marginal``.

    Returns
    -------
    dict mapping each fraction of :data:`FRACTIONS` to the paths at that time, shape (n_paths,)
    """
    dt = sde.T / n_steps
    marks = {round(f * n_steps): f for f in FRACTIONS}
    x = torch.full((n_paths, 1), float(x0), dtype=torch.float64)
    out = {}
    for k in range(n_steps):
        t = torch.full((n_paths,), (k + 0.5) * dt, dtype=torch.float64)
        drift, diffusion = sde.sde(x, t)
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        x = x + drift * dt + diffusion.reshape(-1, 1) * math.sqrt(dt) * noise
        if k + 1 in marks:
            out[marks[k + 1]] = x[:, 0].clone()
    return out


def run(fast=True):
    n_paths, n_steps, x0 = (20_000, 500, 2.0) if fast else (100_000, 2_000, 2.0)
    gen = torch.Generator().manual_seed(12)
    worst, details = 0.0, {}
    for sde in (VESDE(25.0), VPSDE()):
        for fraction, xs in simulate(sde, x0, n_paths, n_steps, gen).items():
            t = torch.tensor(fraction * sde.T, dtype=torch.float64)
            scale, std = (float(v) for v in sde.marginal(t))
            # standardised errors: the mean's standard error is std / sqrt(n), the sample std's about std / sqrt(2n)
            z_mean = (float(xs.mean()) - scale * x0) / (std / math.sqrt(n_paths))
            z_std = (float(xs.std()) / std - 1) * math.sqrt(2 * n_paths)
            details[f"{type(sde).__name__} t={fraction:g}T"] = {"scale": scale, "std": std, "z_mean": z_mean,
                                                               "z_std": z_std}
            worst = max(worst, abs(z_mean), abs(z_std))
    return Result(worst, 5.0, worst < 5.0, details)


CLAIM = Claim(
    id="marginal_matches_sde",
    statement="For the VE (sigma = 25) and VP SDEs, an Euler-Maruyama Monte Carlo of the forward SDE from x0 = 2 "
              "(its drift and diffusion only, at each step's midpoint time) has the mean scale(t) x0 and the standard deviation std(t) of "
              "sde.marginal at t = 0.01T, 0.1T, 0.5T and T (largest standardised error < 5; measured).",
    reference="Song et al. 2021b (SDEs), Eqs. 29-33 (transition kernels of the VE and VP SDEs)",
    chapter="03_fusion_by_score_matching",
    run=run,
)
