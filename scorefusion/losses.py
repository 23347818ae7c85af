"""Training objectives for score models."""

import torch

from ._checks import check_batch, check_generator, check_sde, check_time, check_time_range

DEFAULT_T_MIN = 1e-5


def sample_times(n, sde, t_range=None, generator=None, dtype=torch.float64, device=None):
    """Times drawn uniformly from ``t_range = (t_min, t_max)``, default ``(1e-5, sde.T)``."""
    check_sde(sde)
    check_generator(generator)
    t_range = (DEFAULT_T_MIN, sde.T) if t_range is None else t_range
    t_min, t_max = check_time_range(t_range, sde.T, ends=("t_min", "t_max"))
    u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    return t_min + (t_max - t_min) * u


def batch_times(t, n, sde, t_range, generator, like):
    r"""One time per point of a batch of ``n``: ``t`` checked, or drawn by :func:`sample_times` when None.

    .. math:: t_j \sim \mathcal U(t_{\min}, t_{\max}),\ j = 1, \dots, n \quad \text{(when ``t`` is None)}

    Parameters
    ----------
    t : Tensor of shape (n,), or None
        Times in (0, T].
    n : int
    sde : SDE
    t_range, generator : as in :func:`sample_times` (used when ``t`` is None)
    like : Tensor
        The times take its dtype and device.

    Returns
    -------
    Tensor of shape (n,)
    """
    if t is None:
        return sample_times(n, sde, t_range, generator, dtype=like.dtype, device=like.device)
    check_time(t, sde.T)
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.shape != (n,):
        raise ValueError(f"t must have shape ({n},), got {tuple(t.shape)}")
    return t


def perturb(x0, sde, t, generator=None, noise=None):
    r"""Noise clean data through the forward kernel: ``x_t = scale_t x_0 + std_t z``.

    ``noise`` is ``z`` when given (shaped like ``x0``); otherwise ``z ~ N(0, I)`` is drawn from ``generator``.

    Returns
    -------
    x_t, z, std : tensors; ``z`` shaped like ``x0``, ``std`` broadcastable to it.
    """
    check_sde(sde)
    scale, std = sde.marginal(t)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    scale = scale.to(x0).reshape(shape)
    std = std.to(x0).reshape(shape)
    if noise is None:
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif not torch.is_tensor(noise) or noise.shape != x0.shape:
        raise ValueError(f"noise must be a tensor shaped like x0 {tuple(x0.shape)}, got "
                         f"{tuple(noise.shape) if torch.is_tensor(noise) else type(noise).__name__}")
    else:
        z = noise.to(x0)
    return scale * x0 + std * z, z, std


def dsm_loss(score, x0, sde, t=None, generator=None, t_range=None, noise=None):
    r"""Denoising score matching loss with the weighting ``std_t^2`` of Song et al. 2021b.

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
    noise : Tensor shaped like ``x0``, optional
        The Gaussian ``z``; default drawn from ``generator`` (after ``t``).

    Returns
    -------
    Tensor, scalar
    """
    if not callable(score):
        raise TypeError(f"score must be a callable score(x, t), got {type(score).__name__}")
    check_batch(x0)
    check_sde(sde)
    check_generator(generator)
    t = batch_times(t, x0.shape[0], sde, t_range, generator, x0)
    xt, z, std = perturb(x0, sde, t, generator, noise)
    out = score(xt, t)
    if not torch.is_tensor(out) or out.shape != xt.shape:  # a (n,) output would broadcast to (n, n)
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"score must return a tensor shaped like x {tuple(xt.shape)}, got {got}")
    residual = std * out + z
    return residual.pow(2).flatten(1).sum(1).mean()
