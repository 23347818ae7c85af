"""Generation and likelihood with a score model (Song et al. 2021, "Score-based generative
modeling through stochastic differential equations", Sec. 4 and App. D).

Every sampler is a plain function ``sampler(score, sde, shape, ..., generator=)``:
the score is any callable ``score(x, t)``, for example a
:class:`~scorefusion.scores.FusedScore`, and all randomness comes from ``generator``.
"""

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp
from tqdm.auto import tqdm

from ._checks import check_positive_int
from .sde import time_grid


def _bcast(v, x):
    """Per-sample values of shape (n,) reshaped to broadcast against x."""
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


def _start(sde, shape, x_T, generator, dtype, device):
    if x_T is not None:
        return x_T.to(dtype=dtype, device=device) if device is not None else x_T.to(dtype)
    if shape is None:
        raise ValueError("give either shape or x_T")
    return sde.prior_sample(tuple(shape), generator=generator, dtype=dtype, device=device)


def euler_maruyama(score, sde, shape=None, n_steps=500, eps=1e-3, generator=None, x_T=None, progress=False,
                   device=None, dtype=torch.float32):
    r"""Sample by the Euler-Maruyama discretisation of the reverse-time SDE.

    .. math::

        x_{k+1} = x_k - \left[f(x_k, t_k) - g(t_k)^2 s(x_k, t_k)\right]\Delta t
                  + g(t_k)\sqrt{\Delta t}\, z_k, \qquad t_0 = T > \dots > t_N = \varepsilon,

    the reverse SDE :math:`dx = [f - g^2 \nabla\log p_t]\,dt + g\, d\bar w`
    (Song et al. 2021, Eq. 6). The last step returns its mean (no added noise).

    Parameters
    ----------
    score : callable ``score(x, t)``
    sde : VESDE or VPSDE
    shape : tuple, optional
        Output shape (n, ...); or give ``x_T``.
    n_steps : int, default 500
    eps : float, default 1e-3
        Final time (the SDE is stiff at 0).
    generator : torch.Generator, optional
    x_T : Tensor, optional
        Starting points instead of prior draws.
    progress : bool, default False
    device, dtype : where and in which precision to sample.

    Returns
    -------
    Tensor of shape ``shape``
    """
    check_positive_int(n_steps, "n_steps")
    x = _start(sde, shape, x_T, generator, dtype, device)
    times = time_grid(sde, n_steps, eps)
    mean = x
    with torch.no_grad():
        for k in tqdm(range(n_steps), disable=not progress, desc="Euler-Maruyama"):
            t = torch.full((x.shape[0],), float(times[k]), dtype=x.dtype, device=x.device)
            dt = float(times[k] - times[k + 1])
            drift, g = sde.sde(x, t)
            g = _bcast(g, x)
            mean = x - (drift - g**2 * score(x, t)) * dt
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = mean + g * math.sqrt(dt) * noise
    return mean


def predictor_corrector(score, sde, shape=None, n_steps=500, snr=0.16, n_corrector=1, eps=1e-3,
                        generator=None, x_T=None, progress=False, device=None, dtype=torch.float32):
    r"""Predictor-corrector sampling: Euler-Maruyama predictor, Langevin corrector.

    Each step first runs ``n_corrector`` Langevin steps at the current time,

    .. math:: x \leftarrow x + \epsilon\, s(x, t) + \sqrt{2\epsilon}\, z, \qquad
              \epsilon = 2 \left(r \frac{\overline{\|z\|}}{\overline{\|s(x,t)\|}}\right)^2 \alpha_t,

    with signal-to-noise ratio ``r = snr``, norms averaged over the batch, and :math:`\alpha_t = \mathrm{scale}_t^2`
    (1 for the VE SDE), then one reverse-SDE Euler-Maruyama step (Song et al.
    2021, Algorithms 2-3). Returns the mean of the last predictor step.

    Parameters
    ----------
    score, sde, shape, n_steps, eps, generator, x_T, progress, device, dtype
        As in :func:`euler_maruyama`.
    snr : float, default 0.16
    n_corrector : int, default 1

    Returns
    -------
    Tensor of shape ``shape``
    """
    check_positive_int(n_steps, "n_steps")
    if not snr > 0:
        raise ValueError(f"snr must be positive, got {snr!r}")
    x = _start(sde, shape, x_T, generator, dtype, device)
    times = time_grid(sde, n_steps, eps)
    mean = x
    with torch.no_grad():
        for k in tqdm(range(n_steps), disable=not progress, desc="predictor-corrector"):
            t = torch.full((x.shape[0],), float(times[k]), dtype=x.dtype, device=x.device)
            alpha = _bcast(sde.marginal(t)[0].to(x.dtype) ** 2, x)
            for _ in range(n_corrector):
                grad = score(x, t)
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                ratio = z.flatten(1).norm(dim=1).mean() / grad.flatten(1).norm(dim=1).mean().clamp_min(1e-12)
                step = 2 * (snr * ratio) ** 2 * alpha
                x = x + step * grad + torch.sqrt(2 * step) * z
            dt = float(times[k] - times[k + 1])
            drift, g = sde.sde(x, t)
            g = _bcast(g, x)
            mean = x - (drift - g**2 * score(x, t)) * dt
            x = mean + g * math.sqrt(dt) * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return mean


def _flow_drift(score, sde, x, t):
    r"""Probability-flow drift :math:`f(x, t) - \tfrac12 g(t)^2 s(x, t)`."""
    drift, g = sde.sde(x, t)
    return drift - 0.5 * _bcast(g, x) ** 2 * score(x, t)


def probability_flow(score, sde, shape=None, x_T=None, eps=1e-3, rtol=1e-5, atol=1e-5, method="RK45",
                     generator=None, return_nfe=False):
    r"""Sample by integrating the probability-flow ODE from T down to ``eps``.

    .. math:: \frac{dx}{dt} = f(x, t) - \tfrac12 g(t)^2\, s(x, t)

    (Song et al. 2021, Eq. 13), whose marginals equal those of the forward SDE
    when ``s`` is the true score. The whole batch is one flattened state for
    :func:`scipy.integrate.solve_ivp` (float64, adaptive steps).

    Parameters
    ----------
    score : callable ``score(x, t)``
    sde : VESDE or VPSDE
    shape : tuple, optional
        Output shape (n, ...); or give ``x_T``.
    x_T : Tensor, optional
        Starting points.
    eps : float, default 1e-3
    rtol, atol : float, default 1e-5
    method : str, default "RK45"
    generator : torch.Generator, optional
        Draws the prior samples.
    return_nfe : bool, default False
        Also return the number of score evaluations.

    Returns
    -------
    Tensor of shape ``shape`` (float64), or (Tensor, int) with ``return_nfe``
    """
    x = _start(sde, shape, x_T, generator, torch.float64, None)
    shape = x.shape
    device = x.device

    def rhs(t, y):
        xt = torch.from_numpy(y).reshape(shape).to(device)
        tt = torch.full((shape[0],), t, dtype=torch.float64, device=device)
        with torch.no_grad():
            return _flow_drift(score, sde, xt, tt).reshape(-1).cpu().double().numpy()

    sol = solve_ivp(rhs, (sde.T, eps), x.reshape(-1).cpu().numpy(), rtol=rtol, atol=atol, method=method)
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE failed: {sol.message}")
    out = torch.from_numpy(sol.y[:, -1]).reshape(shape).to(device)
    return (out, int(sol.nfev)) if return_nfe else out


def _divergence(fn, x, probes):
    """Divergence of fn at x: exact (probes None, one backward pass per coordinate) or Hutchinson."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = fn(x)
        if probes is None:
            flat = out.reshape(x.shape[0], -1)
            div = torch.zeros(x.shape[0], dtype=out.dtype, device=out.device)
            for j in range(flat.shape[1]):
                (grad,) = torch.autograd.grad(flat[:, j].sum(), x, retain_graph=True)
                div += grad.reshape(x.shape[0], -1)[:, j]
        else:
            div = torch.zeros(x.shape[0], dtype=out.dtype, device=out.device)
            for v in probes:
                (grad,) = torch.autograd.grad((out * v).sum(), x, retain_graph=True)
                div += (grad * v).reshape(x.shape[0], -1).sum(1)
            div = div / len(probes)
    return out.detach(), div.detach()


def log_likelihood(score, x0, sde, eps=1e-5, divergence="auto", n_probes=1, generator=None, rtol=1e-5,
                   atol=1e-5, method="RK45"):
    r"""Log-likelihood of data under the model defined by the probability-flow ODE.

    The instantaneous change of variables (Song et al. 2021, Eq. 39; Chen et
    al. 2018) integrated from ``eps`` to T:

    .. math::

        \log p_\varepsilon(x_\varepsilon) = \log p_T(x_T)
            + \int_\varepsilon^T \nabla\cdot \tilde f(x_t, t)\, dt, \qquad
        \tilde f = f - \tfrac12 g^2 s.

    The divergence is exact (autograd, one backward pass per coordinate) when
    ``divergence="exact"``, or ``"auto"`` and the dimension is at most 16;
    otherwise Hutchinson's estimator :math:`\mathbb E[v^\top \nabla\tilde f\, v]`
    with ``n_probes`` Rademacher probes drawn once per solve (unbiased for the
    log-likelihood).

    Parameters
    ----------
    score : callable ``score(x, t)``
    x0 : Tensor of shape (n, ...)
        Data points.
    sde : VESDE or VPSDE (with ``prior_log_prob``)
    eps : float, default 1e-5
    divergence : {"auto", "exact", "hutchinson"}
    n_probes : int, default 1
    generator : torch.Generator, optional
        Draws the Hutchinson probes.
    rtol, atol : float, default 1e-5
    method : str, default "RK45"

    Returns
    -------
    Tensor of shape (n,): log-density in nats (float64).
    """
    if not torch.is_tensor(x0) or not x0.is_floating_point() or x0.ndim < 2 or x0.shape[0] == 0:
        raise ValueError("x0 must be a non-empty floating tensor of shape (n, ...)")
    if not torch.isfinite(x0).all():
        raise ValueError("x0 contains NaN or infinite values")
    if divergence not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"divergence must be 'auto', 'exact' or 'hutchinson', got {divergence!r}")
    check_positive_int(n_probes, "n_probes")
    x0 = x0.double()
    shape, n, device = x0.shape, x0.shape[0], x0.device
    exact = divergence == "exact" or (divergence == "auto" and x0[0].numel() <= 16)
    probes = None if exact else [
        (torch.randint(0, 2, shape, generator=generator).double() * 2 - 1).to(device) for _ in range(n_probes)]

    def rhs(t, y):
        xt = torch.from_numpy(y[:-n]).reshape(shape).to(device)
        tt = torch.full((n,), t, dtype=torch.float64, device=device)
        drift, div = _divergence(lambda z: _flow_drift(score, sde, z, tt), xt, probes)
        return np.concatenate([drift.reshape(-1).cpu().numpy(), div.cpu().numpy()])

    y0 = np.concatenate([x0.reshape(-1).cpu().numpy(), np.zeros(n)])
    sol = solve_ivp(rhs, (eps, sde.T), y0, rtol=rtol, atol=atol, method=method)
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE failed: {sol.message}")
    x_T = torch.from_numpy(sol.y[:-n, -1]).reshape(shape)
    delta = torch.from_numpy(sol.y[-n:, -1])
    return sde.prior_log_prob(x_T) + delta


def bits_per_dim(score, x0, sde, n_levels=None, data_range=(0.0, 1.0), generator=None, **kwargs):
    r"""Negative log-likelihood in bits per dimension.

    Continuous data (``n_levels=None``): :math:`-\log_2 p(x) / D`. Discrete
    data on ``n_levels`` equally spaced values spanning ``data_range`` (bin
    width :math:`w`): uniform dequantization :math:`\tilde x = x + w(u - \tfrac12)`,
    :math:`u \sim U[0,1)^D`, and the variational bound of the discrete
    likelihood

    .. math:: \mathrm{bpd} = -\frac{\log p(\tilde x) + D \log w}{D \log 2},

    as in Song et al. (2021, App. D.2) for 8-bit images (``n_levels=256``).
    Lower is better; values depend on the data's scaling and are comparable
    only for one preprocessing.

    Parameters
    ----------
    score : callable ``score(x, t)``
    x0 : Tensor of shape (n, ...)
    sde : VESDE or VPSDE
    n_levels : int, optional
    data_range : (float, float), default (0, 1)
    generator : torch.Generator, optional
        Dequantization noise and Hutchinson probes.
    **kwargs
        Passed to :func:`log_likelihood`.

    Returns
    -------
    Tensor of shape (n,)
    """
    dim = x0[0].numel()
    offset = 0.0
    if n_levels is not None:
        check_positive_int(n_levels, "n_levels")
        if n_levels < 2:
            raise ValueError(f"n_levels must be at least 2, got {n_levels}")
        width = (data_range[1] - data_range[0]) / (n_levels - 1)
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float64).to(x0.device)
        x0 = x0.double() + width * (u - 0.5)
        offset = dim * math.log(width)
    logp = log_likelihood(score, x0, sde, generator=generator, **kwargs)
    return -(logp + offset) / (dim * math.log(2))
