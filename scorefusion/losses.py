"""Training objectives for score models."""

import torch

from ._checks import check_batch, check_time

DEFAULT_T_MIN = 1e-5


def sample_times(n, sde, t_range=None, generator=None, dtype=torch.float64, device=None):
    """Times drawn uniformly from ``t_range = (t_min, t_max)``, default ``(1e-5, sde.T)``."""
    t_min, t_max = t_range if t_range is not None else (DEFAULT_T_MIN, sde.T)
    if not 0 < t_min < t_max <= sde.T:
        raise ValueError(f"t_range must satisfy 0 < t_min < t_max <= T={sde.T}, got {t_range!r}")
    u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    return t_min + (t_max - t_min) * u


def perturb(x0, sde, t, generator=None):
    r"""Noise clean data through the forward kernel: ``x_t = scale_t x_0 + std_t z``.

    Returns
    -------
    x_t, z, std : tensors; ``z`` shaped like ``x0``, ``std`` broadcastable to it.
    """
    scale, std = sde.marginal(t)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    scale = scale.to(x0).reshape(shape)
    std = std.to(x0).reshape(shape)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return scale * x0 + std * z, z, std


def dsm_loss(score, x0, sde, t=None, generator=None, t_range=None):
    r"""Denoising score matching loss with the weighting ``std_t^2`` of Song et al.

    .. math::

        \mathcal L(s) = \mathbb E_{t, x_0, z}\left\| \mathrm{std}_t\,
            s(\mathrm{scale}_t x_0 + \mathrm{std}_t z,\ t) + z \right\|^2,
        \qquad z \sim \mathcal N(0, I),

    summed over coordinates and averaged over the batch (ScoreFusion, Eq. 6,
    with the weighting of the official code).

    Parameters
    ----------
    score : callable ``score(x, t)``
    x0 : Tensor of shape (n, *event_shape)
        Clean data.
    sde : VESDE or VPSDE
    t : Tensor of shape (n,), optional
        Times; default uniform on ``t_range``.
    generator : torch.Generator, optional
    t_range : (float, float), optional
        Default ``(1e-5, sde.T)``.

    Returns
    -------
    Tensor, scalar
    """
    check_batch(x0)
    if t is None:
        t = sample_times(x0.shape[0], sde, t_range, generator, dtype=x0.dtype, device=x0.device)
    else:
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        if t.shape != (x0.shape[0],):
            raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        check_time(t, sde.T)
    xt, z, std = perturb(x0, sde, t, generator)
    residual = std * score(xt, t) + z
    return residual.pow(2).flatten(1).sum(1).mean()
