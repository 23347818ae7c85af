"""Generation and likelihood with a score model (Song et al. 2021b, "Score-based generative
modeling through stochastic differential equations", ICLR 2021, Sec. 4 and App. D).

Every sampler is a plain function ``sampler(score, sde, shape, ..., generator=)``:
the score is any callable ``score(x, t)``, for example a network from
:mod:`scorefusion.nets` or a :class:`~scorefusion.scores.FusedScore` (the
ScoreFusion sampler of Liu et al. 2025, Sec. 4, runs these with the fused score
:math:`\\sum_i \\lambda_i s_i`), and all randomness comes from ``generator``.

Networks are evaluated in their own precision and on their own device: the
samplers cast the state to the dtype and device of the network's weights for
each call and cast the result back (the ODE solvers keep their state in
float64). Random numbers are drawn on the generator's device and then moved, so
one seed gives the same numbers whichever device the network runs on.
"""

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_batch, check_generator, check_positive_int, check_sde, check_shape
from .divergence import EXACT_DIVERGENCE_MAX_DIM, PROBE_KINDS, draw_probes
from .divergence import divergence as field_divergence
from .sde import VPTypeSDE, time_grid

__all__ = ["bits_per_dim", "euler_maruyama", "langevin_step", "log_likelihood", "predictor_corrector",
           "probability_flow"]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _bcast(v, x):
    """Per-sample values of shape (n,) reshaped to broadcast against x."""
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


def _weights_dtype_device(score):
    """dtype and device of the first floating parameter of a module score, looking into ``.aux``
    (the auxiliaries of a FusedScore); (None, None) for plain callables."""
    todo = [score]
    while todo:
        obj = todo.pop(0)
        if isinstance(obj, nn.Module):
            for p in obj.parameters():
                if p.is_floating_point():
                    return p.dtype, p.device
        aux = getattr(obj, "aux", None)
        if isinstance(aux, (list, tuple)):
            todo.extend(aux)
    return None, None


def _score_fn(score):
    """Wrap ``score`` so that it is evaluated in its weights' dtype/device, answers in x's, and has x's shape."""
    if not callable(score):
        raise TypeError(f"score must be a callable score(x, t), got {type(score).__name__}")
    dtype, device = _weights_dtype_device(score)

    def call(x, t):
        if dtype is None:
            out = score(x, t)
        else:
            out = score(x.to(dtype=dtype, device=device), t.to(dtype=dtype, device=device))
        if not torch.is_tensor(out) or out.shape != x.shape:  # no sync: shapes live on the host
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"score must return a tensor shaped like x {tuple(x.shape)}, got {got}")
        return out if dtype is None else out.to(dtype=x.dtype, device=x.device)

    return call


def _check_finite_state(x, t):
    """One finiteness check of the sampler's state per step (one host sync), naming the step's time."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"the sampler's state became NaN or infinite in the step from t={t:.6g}: "
                         "the score returned NaN/inf values (or values too large for the dtype)")


def _check_finite_drift(values, t):
    """Stop an ODE solve whose right-hand side is not finite (scipy would otherwise shrink its step forever)."""
    if not np.isfinite(values).all():
        raise ValueError(f"the score returned NaN or infinite values at t={t:.6g}: the probability-flow ODE "
                         "cannot be integrated")


def _randn(shape, generator, dtype, device):
    """Standard normals drawn on the generator's device, then moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, dtype=dtype, device=gen_device).to(device)


def _start(score, sde, shape, x_T, generator, dtype, device):
    """Starting points x_T: given, or drawn from the prior; plus the device to run on."""
    check_sde(sde)
    check_generator(generator)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if device is None:
        device = x_T.device if torch.is_tensor(x_T) else (_weights_dtype_device(score)[1] or torch.device("cpu"))
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch.device or its name, got {device!r}") from None
    if x_T is not None:
        if not torch.is_tensor(x_T) or not x_T.is_floating_point():
            raise TypeError("x_T must be a floating tensor of shape (n, ...)")
        if x_T.ndim < 2 or x_T.shape[0] == 0:
            raise ValueError(f"x_T must have shape (n, ...) with n >= 1, got {tuple(x_T.shape)}")
        if shape is not None and tuple(shape) != tuple(x_T.shape):
            raise ValueError(f"shape {tuple(shape)} disagrees with x_T.shape {tuple(x_T.shape)}")
        if not torch.isfinite(x_T).all():
            raise ValueError("x_T contains NaN or infinite values")
        return x_T.to(dtype=dtype, device=device), device
    if shape is None:
        raise ValueError("give either shape=(n, ...) or x_T")
    shape = check_shape(shape)
    gen_device = generator.device if generator is not None else device
    x = sde.prior_sample(shape, generator=generator, dtype=dtype, device=gen_device)
    return x.to(device), device


def _check_eps(eps, sde):
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < sde.T):
        raise ValueError(f"eps must be a number in (0, T={sde.T}), got {eps!r}")


# ----------------------------------------------------------------------------------------------
# stochastic samplers
# ----------------------------------------------------------------------------------------------


def _reverse_setup(score, sde, shape, x_T, n_steps, eps, generator, dtype, device):
    """The start of the reverse-time samplers: the score function, ``x_T``, its device and the time grid."""
    check_positive_int(n_steps, "n_steps")
    score_fn = _score_fn(score)
    x, device = _start(score, sde, shape, x_T, generator, dtype, device)
    _check_eps(eps, sde)
    return score_fn, x, device, time_grid(sde, n_steps, eps)


def _reverse_step(score_fn, sde, x, t, dt, generator):
    r"""One Euler-Maruyama step of the reverse SDE from t to t - dt; returns (x, mean).

    :math:`\bar x = x - [f(x, t) - g(t)^2 s(x, t)]\,\Delta t` and
    :math:`x' = \bar x + g(t) \sqrt{\Delta t}\, z`, :math:`z \sim N(0, I)`.
    """
    drift, g = sde.sde(x, t)
    g = _bcast(g, x)
    mean = x - (drift - g**2 * score_fn(x, t)) * dt
    return mean + g * math.sqrt(dt) * _randn(x.shape, generator, x.dtype, x.device), mean


def langevin_step(x, score, step_size, noise):
    r"""One step of unadjusted Langevin dynamics toward the density whose score at ``x`` is ``score``.

    .. math:: x' = x + \epsilon\, s(x) + \sqrt{2\epsilon}\, z, \qquad z \sim \mathcal N(0, I)

    (Roberts and Tweedie, 1996). The corrector of :func:`predictor_corrector` takes it with
    :math:`s = s(\cdot, t_k)`; :func:`scorefusion.related.gcd.langevin` with :math:`s = -\nabla E`.

    Parameters
    ----------
    x : Tensor of shape (n, ...)
    score : Tensor shaped like ``x``
        :math:`s(x)`.
    step_size : float or Tensor broadcastable to ``x``
        :math:`\epsilon > 0`.
    noise : Tensor shaped like ``x``
        The standard normal draw :math:`z`.

    Returns
    -------
    Tensor shaped like ``x``
    """
    root = torch.sqrt(2 * step_size) if torch.is_tensor(step_size) else math.sqrt(2 * step_size)
    return x + step_size * score + root * noise


def euler_maruyama(score, sde, shape=None, n_steps=500, eps=1e-3, generator=None, x_T=None, progress=False,
                   device=None, dtype=torch.float32):
    r"""Sample by the Euler-Maruyama discretisation of the reverse-time SDE.

    The reverse-time SDE (Song et al. 2021b, Eq. 6; Anderson 1982)

    .. math:: dx = \left[f(x, t) - g(t)^2 \nabla_x \log p_t(x)\right] dt + g(t)\, d\bar w,

    run backwards from :math:`t_0 = T` to :math:`t_N = \varepsilon` on a uniform
    grid, :math:`\Delta t = (T - \varepsilon)/N`, with the score ``s`` in place
    of :math:`\nabla \log p_t`:

    .. math::

        \bar x_{k+1} = x_k - \left[f(x_k, t_k) - g(t_k)^2 s(x_k, t_k)\right]\Delta t, \qquad
        x_{k+1} = \bar x_{k+1} + g(t_k)\sqrt{\Delta t}\, z_k, \quad z_k \sim \mathcal N(0, I).

    Returns the last mean :math:`\bar x_N` (no noise on the last step), as in
    Song's code and the ScoreFusion code.

    Parameters
    ----------
    score : callable ``score(x, t)``
        ``x`` of shape (n, ...), ``t`` of shape (n,); a network is evaluated in
        its own dtype and device.
    sde : VESDE or VPSDE
    shape : tuple (n, ...), optional
        Output shape; the start is drawn from ``sde.prior_sample``. Or give ``x_T``.
    n_steps : int, default 500
        N, the number of steps.
    eps : float, default 1e-3
        Final time in (0, T) (the reverse SDE is stiff at 0).
    generator : torch.Generator, optional
        All random draws (prior and the :math:`z_k`).
    x_T : Tensor of shape (n, ...), optional
        Starting points instead of prior draws.
    progress : bool, default False
        tqdm bar over the steps.
    device : torch.device, optional
        Default: ``x_T``'s device, else the network's, else CPU.
    dtype : torch.dtype, default float32
        Precision of the sampler's state.

    Returns
    -------
    Tensor of shape (n, ...)
        Samples, approximately from :math:`p_\varepsilon \approx p_0`.
    """
    score_fn, x, device, times = _reverse_setup(score, sde, shape, x_T, n_steps, eps, generator, dtype, device)
    mean = x
    with torch.no_grad():
        for k in tqdm(range(n_steps), disable=not progress, desc="Euler-Maruyama"):
            t = torch.full((x.shape[0],), float(times[k]), dtype=x.dtype, device=device)
            x, mean = _reverse_step(score_fn, sde, x, t, float(times[k] - times[k + 1]), generator)
            _check_finite_state(x, float(times[k]))
    return mean


def predictor_corrector(score, sde, shape=None, n_steps=500, snr=0.16, n_corrector=1, eps=1e-3,
                        generator=None, x_T=None, progress=False, device=None, dtype=torch.float32):
    r"""Predictor-corrector sampling: Langevin corrector, Euler-Maruyama predictor.

    Song et al. 2021b, Sec. 4.2 and Algorithms 4-5 (PC sampling for VE and VP
    SDEs). At each time :math:`t_k` of the grid of :func:`euler_maruyama`, the
    corrector runs ``n_corrector`` steps of Langevin MCMC targeting :math:`p_{t_k}`,

    .. math::

        x \leftarrow x + \epsilon\, s(x, t_k) + \sqrt{2\epsilon}\, z, \qquad
        \epsilon = 2\alpha \left(r\,\frac{\overline{\|z\|}}{\overline{\|s(x, t_k)\|}}\right)^2,

    with signal-to-noise ratio :math:`r` = ``snr`` and norms averaged over the
    batch (as in Song's code); :math:`\alpha = 1` for the VE SDE and
    :math:`\alpha = 1 - \beta(t_k)\Delta t` (DDPM's :math:`\alpha_i`) for the VP
    SDE. Then the predictor takes one Euler-Maruyama step of the reverse SDE to
    :math:`t_{k+1}`. This is the order of Song's reference code (corrector, then
    predictor), so the returned value is the mean of the last predictor step.

    Parameters
    ----------
    score, sde, shape, n_steps, eps, generator, x_T, progress, device, dtype
        As in :func:`euler_maruyama`.
    snr : float, default 0.16
        r > 0.
    n_corrector : int, default 1
        Langevin steps per time step (0 gives :func:`euler_maruyama`).

    Returns
    -------
    Tensor of shape (n, ...)
    """
    if not (isinstance(snr, (int, float)) and not isinstance(snr, bool) and snr > 0 and math.isfinite(snr)):
        raise ValueError(f"snr must be a positive number, got {snr!r}")
    if isinstance(n_corrector, bool) or not isinstance(n_corrector, int) or n_corrector < 0:
        raise ValueError(f"n_corrector must be a non-negative int, got {n_corrector!r}")
    score_fn, x, device, times = _reverse_setup(score, sde, shape, x_T, n_steps, eps, generator, dtype, device)
    mean = x
    with torch.no_grad():
        for k in tqdm(range(n_steps), disable=not progress, desc="predictor-corrector"):
            t = torch.full((x.shape[0],), float(times[k]), dtype=x.dtype, device=device)
            dt = float(times[k] - times[k + 1])
            # corrector: Langevin MCMC at time t_k (Algorithm 4/5, inner loop)
            # DDPM's alpha_i = 1 - beta(t) dt for SDEs of the VP type (VPTypeSDE), 1 otherwise
            alpha = 1.0 - float(sde.beta(times[k])) * dt if isinstance(sde, VPTypeSDE) else 1.0
            for _ in range(n_corrector):
                grad = score_fn(x, t)
                z = _randn(x.shape, generator, x.dtype, device)
                ratio = z.flatten(1).norm(dim=1).mean() / grad.flatten(1).norm(dim=1).mean().clamp_min(1e-30)
                step = 2 * alpha * (snr * ratio) ** 2
                x = langevin_step(x, grad, step, z)
            # predictor: one Euler-Maruyama step of the reverse SDE, t_k -> t_{k+1}
            x, mean = _reverse_step(score_fn, sde, x, t, dt, generator)
            _check_finite_state(x, float(times[k]))
    return mean


# ----------------------------------------------------------------------------------------------
# probability-flow ODE
# ----------------------------------------------------------------------------------------------


def _flow_drift(score_fn, sde, x, t):
    r"""Probability-flow drift :math:`\tilde f(x, t) = f(x, t) - \tfrac12 g(t)^2 s(x, t)`."""
    drift, g = sde.sde(x, t)
    return drift - 0.5 * _bcast(g, x) ** 2 * score_fn(x, t)


def _check_solver(rtol, atol, method):
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf):
            raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    if not isinstance(method, str):
        raise TypeError(f"method must be the name of a scipy solve_ivp method, got {type(method).__name__}")


def probability_flow(score, sde, shape=None, x_T=None, eps=1e-3, rtol=1e-5, atol=1e-5, method="RK45",
                     generator=None, return_nfe=False, device=None):
    r"""Sample by integrating the probability-flow ODE from T down to ``eps``.

    .. math:: \frac{dx}{dt} = f(x, t) - \tfrac12 g(t)^2\, s(x, t), \qquad x(T) = x_T \sim p_T,

    Song et al. 2021b, Eq. 13 (Sec. 4.3): with the true score its solutions
    have the marginals :math:`p_t` of the forward SDE, so :math:`x(\varepsilon)
    \sim p_\varepsilon`. The whole batch is one flattened float64 state for
    :func:`scipy.integrate.solve_ivp` (adaptive steps, shared by the batch).

    Parameters
    ----------
    score : callable ``score(x, t)``
    sde : VESDE or VPSDE
    shape : tuple (n, ...), optional
        Output shape; the start is drawn from ``sde.prior_sample``. Or give ``x_T``.
    x_T : Tensor of shape (n, ...), optional
        Starting points.
    eps : float, default 1e-3
        Final time in (0, T).
    rtol, atol : float, default 1e-5
        Solver tolerances.
    method : str, default "RK45"
        Any ``solve_ivp`` method.
    generator : torch.Generator, optional
        Draws the prior samples (the ODE itself is deterministic).
    return_nfe : bool, default False
        Also return the number of function evaluations (each one is one
        score call on the whole batch).
    device : torch.device, optional
        Where the score is evaluated; default ``x_T``'s device, else the network's, else CPU.

    Returns
    -------
    x : Tensor of shape (n, ...), float64
        :math:`x(\varepsilon)`.
    nfe : int
        Only with ``return_nfe=True``: the tuple ``(x, nfe)`` is returned.
    """
    score_fn = _score_fn(score)
    x, device = _start(score, sde, shape, x_T, generator, torch.float64, device)
    _check_eps(eps, sde)
    _check_solver(rtol, atol, method)
    shape = x.shape

    def rhs(t, y):
        xt = torch.from_numpy(y).reshape(shape).to(device)
        tt = torch.full((shape[0],), t, dtype=torch.float64, device=device)
        with torch.no_grad():
            values = _flow_drift(score_fn, sde, xt, tt).reshape(-1).cpu().double().numpy()
        _check_finite_drift(values, t)
        return values

    sol = solve_ivp(rhs, (sde.T, eps), x.reshape(-1).cpu().numpy(), rtol=rtol, atol=atol, method=method)
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE failed: {sol.message}")
    out = torch.from_numpy(sol.y[:, -1].copy()).reshape(shape).to(device)
    return (out, int(sol.nfev)) if return_nfe else out


def log_likelihood(score, x0, sde, eps=1e-5, divergence="auto", n_probes=1, generator=None, rtol=1e-5,
                   atol=1e-5, method="RK45", probe="rademacher", probes=None):
    r"""Log-density of data under the probability-flow model, by the instantaneous change of variables.

    Song et al. 2021b, Sec. 4.3 and App. D.2 (Eq. 39; Chen et al. 2018): along
    the probability-flow ODE :math:`\dot x = \tilde f(x, t) = f(x, t) - \tfrac12 g(t)^2 s(x, t)`
    started at :math:`x(\varepsilon) = x_0`,

    .. math::

        \log p_\varepsilon(x_0) = \log p_T^{\mathrm{prior}}(x(T))
            + \int_\varepsilon^T \nabla_x\cdot \tilde f(x(t), t)\, dt,

    integrated forward in time with :func:`scipy.integrate.solve_ivp` (one
    float64 state for the batch and the running integrals). The prior term
    is ``sde.prior_log_prob``. This is the log-density of the model
    :math:`x_0 = \Phi_{T\to\varepsilon}(x_T)`, :math:`x_T \sim` prior, at time
    :math:`\varepsilon`; it equals :math:`\log p_\varepsilon` exactly when ``s``
    is the true score and the prior is :math:`p_T`.

    Divergence (:func:`scorefusion.divergence.divergence`): exact by autograd
    (one backward pass per coordinate) when ``divergence="exact"``, or ``"auto"``
    and the dimension D is at most ``EXACT_DIVERGENCE_MAX_DIM`` (16);
    otherwise the Hutchinson-Skilling estimator
    :math:`\nabla\cdot\tilde f \approx \frac1P\sum_{p} v_p^\top (\partial\tilde f/\partial x)\, v_p`
    with P = ``n_probes`` probes (Rademacher or Gaussian) drawn once and fixed
    for the whole solve, which keeps the ODE smooth and the estimate unbiased.

    Parameters
    ----------
    score : callable ``score(x, t)``
        Must be differentiable in ``x`` (autograd).
    x0 : Tensor of shape (n, ...)
        Data points (cast to float64).
    sde : VESDE or VPSDE
    eps : float, default 1e-5
        Start time of the ODE, in (0, T).
    divergence : {"auto", "exact", "hutchinson"}, default "auto"
    n_probes : int, default 1
    generator : torch.Generator, optional
        Draws the Hutchinson probes.
    rtol, atol : float, default 1e-5
    method : str, default "RK45"
    probe : {"rademacher", "gaussian"}, default "rademacher"
    probes : list of Tensors shaped like ``x0``, optional
        Hutchinson probes to use instead of drawing ``n_probes`` of kind
        ``probe`` from ``generator`` (e.g. the same probes for several models
        stacked in one batch, so that their log-densities are paired); not with
        the exact divergence.

    Returns
    -------
    Tensor of shape (n,), float64
        :math:`\log p(x_0)` in nats per sample (not per dimension).
    """
    check_batch(x0)
    check_sde(sde)
    check_generator(generator)
    _check_eps(eps, sde)
    _check_solver(rtol, atol, method)
    if divergence not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"divergence must be 'auto', 'exact' or 'hutchinson', got {divergence!r}")
    if probe not in PROBE_KINDS:
        raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {probe!r}")
    check_positive_int(n_probes, "n_probes")
    score_fn = _score_fn(score)
    x0 = x0.double()
    shape, n, device = x0.shape, x0.shape[0], x0.device
    exact = divergence == "exact" or (divergence == "auto" and x0[0].numel() <= EXACT_DIVERGENCE_MAX_DIM)
    if probes is not None:
        if exact:
            raise ValueError("probes are for Hutchinson's estimator; the divergence here is exact "
                             "(divergence='exact', or 'auto' with at most EXACT_DIVERGENCE_MAX_DIM coordinates)")
        if (not isinstance(probes, (list, tuple)) or len(probes) == 0
                or not all(torch.is_tensor(v) and v.shape == shape for v in probes)):
            raise ValueError(f"probes must be a non-empty list of tensors of x0's shape {tuple(shape)}")
        probes = [v.to(dtype=torch.float64, device=device) for v in probes]
    elif not exact:
        probes = draw_probes(shape, n_probes, generator, kind=probe, device=device)

    def rhs(t, y):
        xt = torch.from_numpy(y[:-n]).reshape(shape).to(device)
        tt = torch.full((n,), t, dtype=torch.float64, device=device)
        drift, div = field_divergence(lambda z: _flow_drift(score_fn, sde, z, tt), xt, probes, name="score")
        values = np.concatenate([drift.reshape(-1).cpu().numpy(), div.cpu().numpy()])
        _check_finite_drift(values, t)
        return values

    y0 = np.concatenate([x0.reshape(-1).cpu().numpy(), np.zeros(n)])
    sol = solve_ivp(rhs, (eps, sde.T), y0, rtol=rtol, atol=atol, method=method)
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE failed: {sol.message}")
    x_T = torch.from_numpy(sol.y[:-n, -1].copy()).reshape(shape)
    delta = torch.from_numpy(sol.y[-n:, -1].copy())
    return (sde.prior_log_prob(x_T) + delta).to(device)


def bits_per_dim(score, x0, sde, n_levels=None, data_range=(0.0, 1.0), generator=None, **kwargs):
    r"""Negative log-likelihood in bits per dimension, with uniform dequantization for discrete data.

    What is measured, per sample, with D the number of coordinates:

    * Continuous data (``n_levels=None``): the model density at the given points,
      :math:`\mathrm{bpd}(x) = -\log p(x) / (D \ln 2)`, with :math:`\log p`
      from :func:`log_likelihood`.
    * Discrete data (``n_levels=L``): every coordinate takes one of the L
      values :math:`a + k w`, :math:`w = (b - a)/(L - 1)`, on
      ``data_range = (a, b)`` (checked; e.g. 8-bit images scaled to [0, 1]
      have L = 256, w = 1/255). The value :math:`v` owns the bin
      :math:`[v - w/2, v + w/2)`. Uniform dequantization
      :math:`\tilde x = x + w (u - \tfrac12)`, :math:`u \sim U[0, 1)^D` (one
      draw from ``generator``), and Jensen's inequality give the variational
      bound on the discrete probability :math:`P(x) = \int_{\mathrm{bin}(x)} p`,

      .. math::

          -\frac{\log_2 P(x)}{D} \le \mathbb E_u\, \mathrm{bpd}(x), \qquad
          \mathrm{bpd}(x) = -\frac{\log p(\tilde x) + D \ln w}{D \ln 2},

      which is what is returned (one draw of :math:`u`; average over samples).
      This is the uniform-dequantization bpd of Song et al. (2021b, App. D.2) and
      of the ScoreFusion paper's EMNIST table (Sec. 5.2), up to where the bins
      lie: Song et al. rescale the data to :math:`(k + u)/256`, here the data
      keep their scale and the bins are centred on the values.

    Lower is better; values depend on the data's scaling and are comparable only
    for one preprocessing.

    Parameters
    ----------
    score : callable ``score(x, t)``
    x0 : Tensor of shape (n, ...)
    sde : VESDE or VPSDE
    n_levels : int >= 2, optional
        Number of discrete levels; None for continuous data.
    data_range : (float, float), default (0, 1)
        (a, b), the lowest and highest level.
    generator : torch.Generator, optional
        Dequantization noise and Hutchinson probes.
    **kwargs
        Passed to :func:`log_likelihood` (eps, divergence, n_probes, rtol, atol, method, probe).

    Returns
    -------
    Tensor of shape (n,), float64
        Bits per dimension of each sample.
    """
    check_batch(x0)
    check_sde(sde)
    check_generator(generator)
    dim = x0[0].numel()
    offset = 0.0
    try:
        low, high = (float(v) for v in data_range)
    except (TypeError, ValueError):
        raise ValueError(f"data_range must be a pair (low, high), got {data_range!r}") from None
    if not high > low:
        raise ValueError(f"data_range must satisfy low < high, got {data_range!r}")
    if n_levels is not None:
        check_positive_int(n_levels, "n_levels")
        if n_levels < 2:
            raise ValueError(f"n_levels must be at least 2, got {n_levels}")
        width = (high - low) / (n_levels - 1)
        levels = (x0.double() - low) / width
        if (levels < -1e-6).any() or (levels > n_levels - 1 + 1e-6).any():
            raise ValueError(f"x0 has values outside data_range {data_range!r}")
        if (levels - levels.round()).abs().max() > 1e-3:
            raise ValueError(f"x0 is not on the grid of {n_levels} levels spanning {data_range!r}; "
                             "use n_levels=None for continuous data")
        gen_device = generator.device if generator is not None else x0.device
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float64, device=gen_device).to(x0.device)
        x0 = x0.double() + width * (u - 0.5)
        offset = dim * math.log(width)
    logp = log_likelihood(score, x0, sde, generator=generator, **kwargs)
    return -(logp + offset) / (dim * math.log(2))
