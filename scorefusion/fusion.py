r"""Learning the fusion weights :math:`\lambda` (ScoreFusion, Sec. 3-4).

The fused score :math:`s_\lambda = \sum_i \lambda_i s_i` is linear in
:math:`\lambda`, so every score-matching objective of it is a quadratic form

.. math:: L(\lambda) = \lambda^\top G \lambda - 2 b^\top \lambda + c,

and its minimiser on the simplex can be computed exactly from one pass over
the data. Three methods are offered by :func:`fit_weights`:

``"ism"`` (default)
    implicit (Hyvarinen) score matching at one small time ``t``:
    :math:`G_{ij} = \mathbb E[s_i \cdot s_j]`, :math:`b_i = -\mathbb E[\nabla\cdot s_i]`, :math:`c = 0`.
    It has no Monte-Carlo noise term, so its estimate of :math:`\lambda`
    varies far less across seeds than DSM's (see ``benchmarks/fit_weights.py``).
``"dsm"``
    the paper's denoising objective on fixed draws of ``(t, z)``, solved exactly.
``"sgd"``
    the official code's recipe (softmax logits, SGD with momentum), kept for comparison.

The first two also fit over **all times** (``weighting=``): the time-weighted
objective :math:`\int w(t)\, \mathbb E\|s_\lambda - \nabla\log p_t\|^2 dt`, with the
likelihood weighting :math:`w = g^2` the data term of the bound of Song, Durkan,
Murray and Ermon (2021, Thm. 1) on the KL between the target and the fused reverse
SDE's output (:func:`bound_data_term` evaluates it for any weights);
:func:`fit_weight_schedule` minimises it bin by bin, a time-dependent
:math:`\lambda(t)` that :class:`scorefusion.FusedScore` accepts. Every fit ends in
:func:`minimize_quadratic_on_simplex` (support enumeration up to 8 models, an
active-set method above), which returns a KKT certificate.
"""

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar
from tqdm.auto import tqdm

from ._checks import (
    check_batch,
    check_fits,
    check_generator,
    check_positive_int,
    check_sde,
    check_time,
    check_time_range,
)
from .barycenter import GeometricMixture
from .divergence import EXACT_DIVERGENCE_MAX_DIM, divergence, draw_probes
from .losses import batch_times, perturb, sample_times
from .schedule import WeightSchedule
from .scores import FusedScore

PAPER_T_RANGE = (1e-7, 1e-4)
"""``t ~ Uniform(h [eps, 1])`` with ``h = 1e-4``, ``eps = 1e-3``, as in the official code."""

SGD_BATCH_SIZE = 256
"""``fit_weights(method="sgd")`` takes batches of ``min(n, SGD_BATCH_SIZE)`` by default, the official 1-D recipe
(``notebooks/1D_experiments.ipynb``, cell 4: ``train_batch`` is ``TRAIN_SIZE if TRAIN_SIZE < 256 else 256``)."""

ISM_TIME = 1e-4
"""Default time at which implicit score matching evaluates the fused score."""

ENUMERATION_MAX_MODELS = 8
"""Up to this many models :func:`minimize_quadratic_on_simplex` enumerates the supports (at most 255 small
solves), above it runs the active-set method; on problems with one minimiser both give the same numbers, and
on flat ones (many minimisers) the enumeration keeps the weights the library returned before the active set."""

@dataclass
class FitResult:
    """Outcome of :func:`fit_weights`.

    Attributes
    ----------
    lam : Tensor of shape (K,)
        Fitted weights on the simplex.
    loss : float
        Objective at ``lam`` (the quadratic for exact methods; the last epoch's
        mean DSM loss for ``"sgd"``).
    seconds : float
        Wall-clock time of the fit.
    history : list of float
        Mean loss per epoch (``"sgd"``); ``[loss]`` for exact methods.
    method : str
    quadratic : (G, b, c) or None
        The quadratic the exact methods minimised.
    kkt_residual : float or None
        Scaled KKT residual of the simplex-constrained minimiser (exact methods).
    val_history : list of float
        Validation loss after every epoch (``"sgd"`` with ``x_val``).
    weighting : str, callable or None
        The time weighting of an all-time fit (``None`` for the one-time fits and ``"sgd"``).
    """

    lam: torch.Tensor
    loss: float
    seconds: float
    history: list = field(default_factory=list)
    method: str = "ism"
    quadratic: tuple | None = None
    kkt_residual: float | None = None
    val_history: list = field(default_factory=list)
    weighting: object = None


def _as_fused(aux):
    if isinstance(aux, FusedScore):
        return aux
    aux = list(aux)
    if len(aux) == 0:
        raise ValueError("aux must contain at least one score")
    return FusedScore(aux, torch.full((len(aux),), 1.0 / len(aux), dtype=torch.float64))


def _check_inputs(aux, x0, sde, generator):
    """The checks of every fit: ``aux`` as a FusedScore, ``x0`` a batch each auxiliary accepts, ``sde``, ``generator``."""
    fused = _as_fused(aux)
    x0 = check_batch(x0)
    check_sde(sde)
    for i, score in enumerate(fused.aux):
        check_fits(score, x0, sde, "x0", f"aux[{i}]")
    check_generator(generator)
    return fused, x0


def _check_finite_quadratic(G, b, where):
    """Name the auxiliaries whose scores (or divergences) were NaN or infinite; G, b on the host."""
    bad = [i for i in range(b.shape[0]) if not (torch.isfinite(G[i, i]) and torch.isfinite(b[i]))]
    if not bad and not torch.isfinite(G).all():  # finite diagonals, overflowing cross terms
        bad = list(range(b.shape[0]))
    if bad:
        names = ", ".join(f"aux[{i}]" for i in bad)
        raise ValueError(f"{names} returned NaN or infinite values {where}; the fit needs finite scores")


def _batches(n, batch_size):
    size = n if batch_size is None else check_positive_int(batch_size, "batch_size")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def dsm_quadratic(aux, x0, sde, t=None, t_range=PAPER_T_RANGE, n_draws=1, generator=None,
                  batch_size=None, progress=False):
    r"""The DSM loss of the fused score as an exact quadratic in :math:`\lambda`.

    With :math:`u_i = \mathrm{std}_t\, s_i(x_t, t)` on fixed draws
    :math:`x_t = \mathrm{scale}_t x_0 + \mathrm{std}_t z`,

    .. math::

        \mathbb E\Big\|\sum_i \lambda_i u_i + z\Big\|^2
        = \lambda^\top G \lambda - 2 b^\top \lambda + c, \quad
        G_{ij} = \mathbb E[u_i \cdot u_j],\ b_i = -\mathbb E[u_i \cdot z],\
        c = \mathbb E\|z\|^2 .

    So ``dsm_loss(FusedScore(aux, lam), ...)`` on the same draws equals the quadratic.

    Parameters
    ----------
    aux : sequence of K scores or a FusedScore
    x0 : Tensor of shape (n, *event_shape)
        Target samples.
    sde : VESDE or VPSDE
    t : Tensor of shape (n * n_draws,), optional
        Times; default uniform on ``t_range``.
    t_range : (float, float), default ``(1e-7, 1e-4)``
        The paper's range ``h [eps, 1]``.
    n_draws : int, default 1
        Noise draws per target sample.
    generator : torch.Generator, optional
    batch_size : int, optional
        Points per evaluation of the auxiliaries (default: all at once).
    progress : bool, default False

    Returns
    -------
    G : Tensor of shape (K, K)
    b : Tensor of shape (K,)
    c : Tensor, scalar
    """
    fused, x0 = _check_inputs(aux, x0, sde, generator)
    check_positive_int(n_draws, "n_draws")
    data = x0.repeat_interleave(n_draws, dim=0) if n_draws > 1 else x0
    n = data.shape[0]
    t = batch_times(t, n, sde, t_range, generator, x0)
    xt, z, std = perturb(data, sde, t, generator)
    k = len(fused.aux)
    G = torch.zeros(k, k, dtype=torch.float64, device=x0.device)  # accumulated on the data's device,
    b = torch.zeros(k, dtype=torch.float64, device=x0.device)     # moved to the host once
    c = torch.zeros((), dtype=torch.float64, device=x0.device)
    with torch.no_grad():
        for sl in tqdm(_batches(n, batch_size), disable=not progress, desc="dsm quadratic"):
            u = (std[sl] * fused.components(xt[sl], t[sl])).reshape(k, sl.stop - sl.start, -1).double()
            zf = z[sl].reshape(sl.stop - sl.start, -1).double()
            G += torch.einsum("ind,jnd->ij", u, u)
            b -= torch.einsum("ind,nd->i", u, zf)
            c += zf.pow(2).sum()
    G, b = G.cpu() / n, b.cpu() / n
    _check_finite_quadratic(G, b, "on the noised data x_t")
    return G, b, c.cpu() / n


def _scores_and_divergences(fused, x, t, n_probes, generator):
    """Every auxiliary score at (x, t), flattened, shape (K, n, D), and its divergence, shape (K, n)."""
    if all(hasattr(s, "score_and_divergence") for s in fused.aux):
        pairs = [s.score_and_divergence(x, t) for s in fused.aux]
        return (torch.stack([p[0] for p in pairs]).reshape(len(pairs), x.shape[0], -1),
                torch.stack([p[1] for p in pairs]))
    scores, divs = [], []
    for i, score in enumerate(fused.aux):
        probes = None if n_probes is None else draw_probes(x.shape, n_probes, generator, dtype=x.dtype,
                                                           device=x.device)
        out, div = divergence(lambda z, score=score: score(z, t), x, probes, name=f"aux[{i}]")
        scores.append(out.reshape(x.shape[0], -1))
        divs.append(div)
    return torch.stack(scores), torch.stack(divs)


def _resolve_probes(n_probes, x0):
    """``n_probes`` of :func:`ism_quadratic`: "auto" is exact up to ``EXACT_DIVERGENCE_MAX_DIM``, else 4 probes."""
    if n_probes == "auto":
        return None if x0[0].numel() <= EXACT_DIVERGENCE_MAX_DIM else 4
    if n_probes is not None:
        check_positive_int(n_probes, "n_probes")
    return n_probes


def _node_sums(fused, x, t, n_probes, generator, batch_size, progress=False, target_score=None):
    r"""At one time ``t``: :math:`G_{ij} = \mathbb E[s_i \cdot s_j]` and :math:`b_i = -\mathbb E[\nabla\cdot s_i]`
    (or, with ``target_score`` :math:`s_*`, :math:`b_i = \mathbb E[s_i \cdot s_*]` and :math:`f = \mathbb E\|s_*\|^2`),
    averaged over the points ``x``, in float64 on the host."""
    n = x.shape[0]
    tt = torch.full((n,), float(t), dtype=x.dtype, device=x.device)
    k = len(fused.aux)
    G = torch.zeros(k, k, dtype=torch.float64, device=x.device)
    b = torch.zeros(k, dtype=torch.float64, device=x.device)
    f = torch.zeros((), dtype=torch.float64, device=x.device)
    for sl in tqdm(_batches(n, batch_size), disable=not progress, desc="ism quadratic"):
        if target_score is None:
            s, div = _scores_and_divergences(fused, x[sl], tt[sl], n_probes, generator)
            s = s.double()
            G += torch.einsum("ind,jnd->ij", s, s)
            b -= div.double().sum(1)
        else:
            with torch.no_grad():
                s = fused.components(x[sl], tt[sl]).reshape(k, sl.stop - sl.start, -1).double()
                star = target_score(x[sl], tt[sl]).reshape(sl.stop - sl.start, -1).double()
            G += torch.einsum("ind,jnd->ij", s, s)
            b += torch.einsum("ind,nd->i", s, star)
            f += star.pow(2).sum()
    return G.cpu() / n, b.cpu() / n, f.cpu() / n


def ism_quadratic(aux, x0, sde, t=ISM_TIME, n_probes="auto", generator=None, batch_size=None, progress=False):
    r"""Implicit score matching of the fused score at time ``t``, as a quadratic in :math:`\lambda`.

    Hyvarinen's identity turns :math:`\mathbb E\|s_\lambda - \nabla\log q\|^2`
    into a functional of :math:`s_\lambda` alone (up to a constant):

    .. math::

        \mathbb E_{x \sim q}\left[\|s_\lambda(x, t)\|^2 + 2\,\nabla\cdot s_\lambda(x, t)\right]
        = \lambda^\top G \lambda - 2 b^\top\lambda, \quad
        G_{ij} = \mathbb E[s_i \cdot s_j],\ b_i = -\mathbb E[\nabla \cdot s_i],

    estimated on the target samples. Divergences are exact when the scores
    provide ``score_and_divergence(x, t)`` (closed-form scores, one pass) or, by autograd
    (:func:`scorefusion.divergence.divergence`), when the dimension is at most
    ``EXACT_DIVERGENCE_MAX_DIM`` (16); above, Hutchinson's estimator with ``n_probes``
    Rademacher probes per point (default 4).

    Parameters
    ----------
    aux : sequence of K scores or a FusedScore
    x0 : Tensor of shape (n, *event_shape)
    sde : VESDE or VPSDE
    t : float, default 1e-4
        Small time at which the fused score is matched; as ``t -> 0`` the
        minimiser approaches the KL-barycenter weights.
    n_probes : int, None or "auto"
        Hutchinson probes per point; ``None`` forces the exact divergence.
    generator : torch.Generator, optional
    batch_size : int, optional
    progress : bool, default False

    Returns
    -------
    G : Tensor of shape (K, K)
    b : Tensor of shape (K,)
    c : Tensor, scalar (zero)
    """
    fused, x0 = _check_inputs(aux, x0, sde, generator)
    if torch.is_tensor(t) and t.numel() != 1:
        raise ValueError(f"t must be one time (a number), got a tensor of shape {tuple(t.shape)}")
    check_time(t, sde.T)
    n_probes = _resolve_probes(n_probes, x0)
    G, b, _ = _node_sums(fused, x0, t, n_probes, generator, batch_size, progress)
    _check_finite_quadratic(G, b, f"(scores or divergences) on x0 at t={float(t):g}")
    return G, b, torch.zeros((), dtype=torch.float64)


WEIGHTINGS = ("likelihood", "std2")
"""Named time weightings :math:`w(t)` of the all-time fits (:func:`time_weighting`)."""

ALL_TIME_EPS = 1e-3
"""Lower end of the all-time fits' default ``t_range = (ALL_TIME_EPS, sde.T)``: the samplers' default end
time ``eps``, so that the likelihood-weighted fit minimises the bound on what they output."""

TIME_NODES = 32
"""Gauss-Legendre nodes in :math:`\\log t` per time bin of the all-time ISM fit and of :func:`bound_data_term`."""

SCHEDULE_NODES = 8
"""Gauss-Legendre nodes in :math:`\\log t` per bin of :func:`fit_weight_schedule` (64 for its 8 default bins)."""

IMPORTANCE_CELLS = 1024
"""Cells, equal in :math:`\\log t`, of the piecewise-constant density from which the all-time DSM draws its times."""


def time_weighting(sde, weighting, t):
    r"""The weight :math:`w(t)` of the all-time score-matching objective.

    .. math::

        \mathcal J(\lambda) = \int_{t_0}^{t_1} w(t)\, \mathbb E_{x \sim p_t}
            \big\|s_\lambda(x, t) - \nabla \log p_t(x)\big\|^2 dt, \qquad
        w(t) = \begin{cases} g(t)^2 & \text{"likelihood"} \\ \mathrm{std}_t^2 & \text{"std2"} \end{cases}

    With ``"likelihood"``, :math:`\tfrac12 \mathcal J` over :math:`[\varepsilon, T]` is the
    data term of the bound of Song, Durkan, Murray and Ermon (2021, "Maximum likelihood
    training of score-based diffusion models", Thm. 1) on the KL divergence between the
    target and the reverse SDE's output at :math:`\varepsilon`. ``"std2"`` is the weighting
    of Song et al. (2021b, Sec. 3.3) that the uniform-time DSM loss of :func:`dsm_quadratic` has.

    Parameters
    ----------
    sde : SDE
    weighting : {"likelihood", "std2"} or callable
        A callable maps times (float64 tensor of shape (m,)) to non-negative finite weights of shape (m,).
    t : Tensor of shape (m,), float64, in (0, T]

    Returns
    -------
    Tensor of shape (m,), float64
    """
    _check_weighting(weighting)
    if weighting == "likelihood":
        _, g = sde.sde(torch.zeros(t.shape[0], 1, dtype=torch.float64, device=t.device), t)
        return (g**2).to(torch.float64)
    if weighting == "std2":
        return sde.marginal(t)[1].to(torch.float64) ** 2
    w = weighting(t)
    if not torch.is_tensor(w) or w.shape != t.shape:
        got = tuple(w.shape) if torch.is_tensor(w) else type(w).__name__
        raise ValueError(f"weighting(t) must return a tensor of shape {tuple(t.shape)}, got {got}")
    if not bool((torch.isfinite(w) & (w >= 0)).all()):
        raise ValueError("weighting(t) must return finite non-negative weights")
    return w.to(torch.float64)


def _check_weighting(weighting):
    if isinstance(weighting, str):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS} or a callable t -> w(t), got {weighting!r}")
    elif not callable(weighting):
        raise TypeError(f"weighting must be one of {WEIGHTINGS} or a callable t -> w(t), got "
                        f"{type(weighting).__name__}")
    return weighting


def _time_range(t_range, sde, name="t_range"):
    """``t_range`` as two floats with ``0 < t0 < t1 <= T``; ``None`` gives ``(ALL_TIME_EPS, T)``."""
    if t_range is None:
        return ALL_TIME_EPS, sde.T
    return check_time_range(t_range, sde.T, name)


def _log_gauss_legendre(edges, n_nodes):
    r"""Composite Gauss-Legendre rule in :math:`v = \log t` on every bin :math:`[e_k, e_{k+1}]`.

    :math:`\int_{e_k}^{e_{k+1}} f(t)\,dt = \int f(e^v) e^v dv \approx \sum_m \omega_m f(t_m)`:
    returns the nodes (M,), the weights (M,) and each node's bin (M,), M = B ``n_nodes``.
    """
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    logs = np.log(np.asarray(edges, dtype=np.float64))
    half = 0.5 * (logs[1:] - logs[:-1])[:, None]
    v = 0.5 * (logs[1:] + logs[:-1])[:, None] + half * x[None, :]
    t = np.exp(v)
    bins = np.repeat(np.arange(len(edges) - 1), n_nodes)
    return torch.from_numpy(t.ravel()), torch.from_numpy((half * w[None, :] * t).ravel()), bins


def _importance_times(sde, weighting, t0, t1, n, generator):
    r"""``n`` stratified draws from the density :math:`q \propto w(t)/\mathrm{std}_t^2` on ``[t0, t1]``, and
    the importance weights :math:`w(t)/(\mathrm{std}_t^2 q(t))`.

    :math:`q` is piecewise constant on ``IMPORTANCE_CELLS`` cells equal in :math:`\log t` (its value
    at each cell's geometric centre), and the weights use the exact :math:`w/\mathrm{std}^2` at each
    draw, so the estimate of :math:`\int_{t_0}^{t_1} w(t)\, \mathbb E\|\cdot\|^2/\mathrm{std}_t^2\, dt`
    is unbiased. Draw ``j`` sits at :math:`(\pi_j + U_j)/n` in ``q``'s CDF (stratified), :math:`\pi` a
    random permutation, so that the order of the data does not matter.
    """
    grid = torch.logspace(math.log10(t0), math.log10(t1), IMPORTANCE_CELLS + 1, dtype=torch.float64)
    grid[0], grid[-1] = t0, t1
    width = grid[1:] - grid[:-1]

    def ratio(t):  # w(t) / std_t^2
        return time_weighting(sde, weighting, t) / sde.marginal(t)[1].to(torch.float64) ** 2

    mass = ratio(torch.sqrt(grid[1:] * grid[:-1])) * width
    if not float(mass.sum()) > 0:
        raise ValueError(f"weighting is zero on all of t_range=({t0:g}, {t1:g})")
    cdf = torch.cumsum(mass / mass.sum(), 0)
    device = generator.device if generator is not None else None  # drawn where the generator lives
    u = (torch.randperm(n, generator=generator, device=device).to(torch.float64)
         + torch.rand(n, generator=generator, dtype=torch.float64, device=device)).cpu() / n
    cell = torch.searchsorted(cdf, u).clamp(max=IMPORTANCE_CELLS - 1)
    prob = mass[cell] / mass.sum()
    below = cdf[cell] - prob
    t = grid[cell] + ((u - below) / prob).clamp(0.0, 1.0) * width[cell]
    return t, ratio(t) * width[cell] / prob


def _time_quadratics(fused, x0, sde, method, weighting, edges, n_nodes, n_draws, n_probes, generator,
                     batch_size, progress):
    r"""The all-time objective of every bin :math:`(e_k, e_{k+1}]` as a quadratic ``(G_k, b_k, c_k)`` in :math:`\lambda`.

    ``"ism"``: the composite Gauss-Legendre rule of ``n_nodes`` nodes in :math:`\log t` per bin;
    at every node one draw :math:`x_t = \mathrm{scale}_t x_0 + \mathrm{std}_t z` per target sample
    (Hyvarinen's form needs samples of :math:`p_t`, but no DSM target :math:`z/\mathrm{std}_t`), then
    :math:`G = \sum_m \omega_m w(t_m) \mathbb E[s_i s_j]`, :math:`b = -\sum_m \omega_m w(t_m)\mathbb E[\nabla\cdot s_i]`,
    :math:`c = 0`. ``"dsm"``: ``n_draws`` draws of :math:`(t, z)` per sample and bin, :math:`t` from
    :func:`_importance_times`. Returns tensors of shapes (B, K, K), (B, K), (B,).
    """
    k, n_bins = len(fused.aux), len(edges) - 1
    G = torch.zeros(n_bins, k, k, dtype=torch.float64)
    b = torch.zeros(n_bins, k, dtype=torch.float64)
    c = torch.zeros(n_bins, dtype=torch.float64)
    if method == "ism":
        t_nodes, omega, bins = _log_gauss_legendre(edges, n_nodes)
        omega = omega * time_weighting(sde, weighting, t_nodes)
        for m in tqdm(range(t_nodes.shape[0]), disable=not progress, desc="ism quadratic, time nodes"):
            t = torch.full((x0.shape[0],), float(t_nodes[m]), dtype=x0.dtype, device=x0.device)
            xt, _, _ = perturb(x0, sde, t, generator)
            G_m, b_m, _ = _node_sums(fused, xt, t_nodes[m], n_probes, generator, batch_size)
            _check_finite_quadratic(G_m, b_m, f"(scores or divergences) on x_t at t={float(t_nodes[m]):g}")
            G[bins[m]] += omega[m] * G_m
            b[bins[m]] += omega[m] * b_m
        return G, b, c
    data = x0.repeat_interleave(n_draws, dim=0) if n_draws > 1 else x0
    n = data.shape[0]
    for j in tqdm(range(n_bins), disable=not progress, desc="dsm quadratic, time bins"):
        t, weight = _importance_times(sde, weighting, float(edges[j]), float(edges[j + 1]), n, generator)
        xt, z, std = perturb(data, sde, t.to(dtype=x0.dtype, device=x0.device), generator)
        weight = weight.to(x0.device)
        for sl in _batches(n, batch_size):
            with torch.no_grad():
                u = (std[sl] * fused.components(xt[sl], t[sl].to(xt))).reshape(k, sl.stop - sl.start, -1).double()
            zf = z[sl].reshape(sl.stop - sl.start, -1).double()
            G[j] += torch.einsum("n,ind,jnd->ij", weight[sl], u, u).cpu()
            b[j] -= torch.einsum("n,ind,nd->i", weight[sl], u, zf).cpu()
            c[j] += (weight[sl] * zf.pow(2).sum(1)).sum().cpu()
        _check_finite_quadratic(G[j] / n, b[j] / n, "on the noised data x_t")
    return G / n, b / n, c / n


def _kkt_solve(G, b, support):
    """Solve the KKT system of the face ``support``; returns the solution, the matrix and the right side."""
    size = support.size
    kkt = np.zeros((size + 1, size + 1))
    kkt[:size, :size] = 2 * G[np.ix_(support, support)]
    kkt[:size, size] = -1.0
    kkt[size, :size] = 1.0
    rhs = np.append(2 * b[support], 1.0)
    try:
        sol = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:  # singular G_SS (e.g. two identical models)
        sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    return sol, kkt, rhs


def _certificate(G, b, support, lam, mu, scale):
    """Scaled KKT residual of ``lam`` (zero off ``support``) with multiplier ``mu``, and the gradient."""
    grad = 2 * (G @ lam - b)
    off = np.setdiff1d(np.arange(b.shape[0]), support)
    residual = max(np.abs(grad[support] - mu).max(), max(0.0, (mu - grad[off]).max(initial=0.0))) / scale
    return residual, grad, off


def _enumerate_supports(G, b, scale):
    """Every support from the full one down, in lexicographic order; the first KKT point (K <= ENUMERATION_MAX_MODELS)."""
    k = b.shape[0]
    for size in range(k, 0, -1):
        for support in itertools.combinations(range(k), size):
            support = np.array(support)
            sol, _, _ = _kkt_solve(G, b, support)
            lam = np.zeros(k)
            lam[support] = sol[:size]
            if (lam < -1e-12 * scale).any():
                continue
            lam = np.clip(lam, 0.0, None)
            lam /= lam.sum()
            residual, _, _ = _certificate(G, b, support, lam, sol[size], scale)
            if residual <= 1e-9:
                return lam, float(residual)
    raise RuntimeError("no KKT point found; is G positive semi-definite?")


def _face_minimiser(G, b, support, scale):
    r"""Minimiser of the quadratic on the affine hull of a face of the simplex, or a descent ray along which it is unbounded.

    Returns ``(lam, mu, None)`` with the face's minimiser (zeros off ``support``) and the
    multiplier of :math:`\mathbf 1^\top\lambda = 1`, or ``(None, None, d)`` when the face's
    problem is unbounded below: :math:`d` (zero off ``support``, :math:`\mathbf 1^\top d = 0`,
    :math:`G d = 0`) lowers the objective linearly.
    """
    size, k = support.size, b.shape[0]
    sol, kkt, rhs = _kkt_solve(G, b, support)
    if np.abs(kkt @ sol - rhs).max() > 1e-9 * scale:  # numerically singular: a minimum-norm solution, or none
        u, s, vt = np.linalg.svd(kkt)
        rank = int((s > s[0] * (size + 1) * np.finfo(np.float64).eps).sum())
        sol = vt[:rank].T @ ((u[:, :rank].T @ rhs) / s[:rank])
        if np.abs(kkt @ sol - rhs).max() > 1e-9 * scale:  # inconsistent: unbounded along the null space of G_SS
            null = vt[rank:, :size]  # the KKT matrix's null vectors are (d, 0) with G_SS d = 0, 1^T d = 0
            ray = np.zeros(k)
            ray[support] = null.T @ (null @ b[support])  # slope -2 b.d = -2 |projection of b|^2 < 0
            return None, None, ray
    lam = np.zeros(k)
    lam[support] = sol[:size]
    return lam, sol[size], None


def minimize_quadratic_on_simplex(G, b):
    r"""Exact minimiser of :math:`\lambda^\top G \lambda - 2 b^\top \lambda` on the simplex, with its KKT certificate.

    The problem is a convex QP (``G`` is a Gram matrix). On a face of the simplex, the
    support ``S`` (:math:`\lambda_j = 0` off it), the minimiser solves the equality-constrained
    KKT system

    .. math::

        \begin{pmatrix} 2 G_{SS} & -\mathbf 1 \\ \mathbf 1^\top & 0 \end{pmatrix}
        \begin{pmatrix} \lambda_S \\ \mu \end{pmatrix}
        = \begin{pmatrix} 2 b_S \\ 1 \end{pmatrix},

    and a solution with :math:`\lambda_S \ge 0` whose multipliers
    :math:`\nu_j = 2(G\lambda - b)_j - \mu` are :math:`\ge 0` off ``S`` satisfies the KKT
    conditions, hence (the problem being convex) is a global minimiser. For up to
    ``ENUMERATION_MAX_MODELS`` (8) models every support is tried, from the full one down;
    above, the support is found by the primal active-set method (Nocedal and Wright, *Numerical Optimization*,
    2nd ed., Algorithm 16.3): start from the uniform weights on the full support; when the
    face's minimiser leaves the simplex, step towards it until the first weight reaches 0
    and drop that model from the support (for a singular :math:`G_{SS}` on which the face's
    problem is unbounded, step along the descent ray instead); when it is feasible but a
    multiplier :math:`\nu_j` is negative, add the most negative ``j`` back. Each step
    solves one KKT system of size :math:`|S| + 1`, so K = 64 models take a few
    milliseconds (``benchmarks/fit_weights.py``), where enumerating the :math:`2^K`
    supports would not end. Both return the weights of the final support's KKT system,
    so they give the same numbers whenever the minimiser is unique (tested on random
    problems, and against SciPy's SLSQP up to K = 64).

    Parameters
    ----------
    G : array of shape (K, K), symmetric positive semi-definite
    b : array of shape (K,)

    Returns
    -------
    lam : ndarray of shape (K,)
    kkt_residual : float
        Largest violation of stationarity, dual feasibility, primal
        feasibility and complementarity, divided by ``1 + max|G| + max|b|``;
        at most ``1e-9`` (otherwise a ``RuntimeError`` is raised).
    """
    G = np.asarray(G, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if b.ndim != 1 or b.shape[0] == 0:
        raise ValueError(f"b must have shape (K,) with K >= 1, got {b.shape}")
    k = b.shape[0]
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"G must be a square (K, K) matrix, got shape {G.shape}")
    if G.shape != (k, k):
        raise ValueError(f"b must have one entry per row of G ({G.shape[0]}), got shape {b.shape}")
    if not (np.isfinite(G).all() and np.isfinite(b).all()):
        raise ValueError("G and b must be finite (NaN or infinite entries: were the scores finite?)")
    G = 0.5 * (G + G.T)
    scale = 1.0 + np.abs(G).max() + np.abs(b).max()
    if k <= ENUMERATION_MAX_MODELS:
        return _enumerate_supports(G, b, scale)
    support, lam = np.arange(k), np.full(k, 1.0 / k)
    for _ in range(10 * (k + 1)):  # each step drops or adds one model; far fewer are needed
        target, mu, ray = _face_minimiser(G, b, support, scale)
        if ray is None and not (target < -1e-12 * scale).any():
            lam = np.clip(target, 0.0, None)
            lam /= lam.sum()
            residual, grad, off = _certificate(G, b, support, lam, mu, scale)
            if residual <= 1e-9:
                return lam, float(residual)
            nu = grad[off] - mu
            if nu.size == 0 or nu.min() >= 0:
                break  # stationarity fails on the support itself: G is not positive semi-definite
            support = np.sort(np.append(support, off[np.argmin(nu)]))
            continue
        # the face's minimiser leaves the simplex (or it has none): move until the first weight reaches 0
        step = target - lam if ray is None else ray
        shrinking = support[step[support] < 0]
        ratios = lam[shrinking] / -step[shrinking]
        blocking = shrinking[np.argmin(ratios)]
        lam = lam + (min(1.0, ratios.min()) if ray is None else ratios.min()) * step
        lam[blocking] = 0.0
        support = support[support != blocking]
    raise RuntimeError("no KKT point found; is G positive semi-definite?")


def _check_real(value, name, low, high=math.inf, low_open=False):
    """A finite real number in [low, high) ((low, high) with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value < high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g})"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return value


def _sgd_batch_loss(fused, logits, batch, sde, t_range, generator):
    """Mean DSM loss of the fused score with weights softmax(logits) on one batch, fresh (t, z)."""
    k = len(fused.aux)
    t = sample_times(batch.shape[0], sde, t_range, generator, dtype=batch.dtype, device=batch.device)
    xt, z, std = perturb(batch, sde, t, generator)
    with torch.no_grad():
        u = (std * fused.components(xt, t)).reshape(k, batch.shape[0], -1).double()
    residual = torch.einsum("i,ind->nd", torch.softmax(logits, 0), u) + z.reshape(batch.shape[0], -1).double()
    return residual.pow(2).sum(1).mean()


def _fit_sgd(fused, x0, sde, t_range, epochs, batch_size, lr, momentum, generator, progress, x_val=None):
    k = len(fused.aux)
    # the official FusionNet starts from logits = torch.randn(K) (src/model_1D.py, line 146); seeded here
    logits = torch.randn(k, generator=generator, dtype=torch.float64, device=x0.device).requires_grad_(True)
    opt = torch.optim.SGD([logits], lr=lr, momentum=momentum)
    n = x0.shape[0]
    history, val_history = [], []
    best_val, best_logits = math.inf, logits.detach().clone()
    for _ in tqdm(range(epochs), disable=not progress, desc="sgd epochs"):
        order = torch.randperm(n, generator=generator)
        total = torch.zeros((), dtype=torch.float64, device=x0.device)  # one host sync per epoch
        for start in range(0, n, batch_size):
            batch = x0[order[start:start + batch_size]]
            loss = _sgd_batch_loss(fused, logits, batch, sde, t_range, generator)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * batch.shape[0]
        history.append(float(total) / n)
        if not math.isfinite(history[-1]):
            raise ValueError(f"the DSM loss became NaN or infinite in epoch {len(history)}: a score in aux "
                             f"returned NaN or infinite values, or lr={lr!r} is too large")
        if x_val is not None:  # the official check: DSM over all times (loss_fn), best epoch kept
            with torch.no_grad():
                val_history.append(float(_sgd_batch_loss(fused, logits, x_val, sde, None, generator)))
            if val_history[-1] < best_val:
                best_val, best_logits = val_history[-1], logits.detach().clone()
    final = best_logits if x_val is not None else logits.detach()
    return torch.softmax(final, 0).cpu(), history, val_history


def fit_weights(aux, x0, sde, method="ism", t=None, t_range=None, n_probes="auto", n_draws=1,
                generator=None, batch_size=None, epochs=100, lr=0.1, momentum=0.9, x_val=None, progress=False,
                weighting=None, n_nodes=TIME_NODES):
    r"""Learn the fusion weights :math:`\lambda` from target samples.

    .. math::

        \hat\lambda = \arg\min_{\lambda \in \Delta_K}
            \lambda^\top G \lambda - 2 b^\top \lambda + c

    with ``(G, b, c)`` from :func:`ism_quadratic` (``method="ism"``) or
    :func:`dsm_quadratic` (``"dsm"``), minimised exactly by
    :func:`minimize_quadratic_on_simplex`; or by the official code's SGD on
    softmax logits of the DSM loss (``"sgd"``: logits drawn from
    ``torch.randn`` with ``generator``, lr 0.1, momentum 0.9, 100 epochs,
    batches of ``min(n, 256)``, fresh ``(t, z)`` per batch; with ``x_val``,
    after every epoch the DSM loss over all times :math:`t \sim U[10^{-5}, T]`
    on ``x_val`` and the weights of the epoch with the lowest one are
    returned, as the official 1-D notebook's ``fusion_train`` keeps its
    best-validation checkpoint). ISM is the default: on the paper's 1-D preset
    with closed-form auxiliaries (n = 1024, 20 seeds) its estimate of
    :math:`\lambda` varies over an order of magnitude less than DSM's at the
    paper's tiny times, where the DSM target :math:`z` dominates the loss, and
    it needs no noise draws (numbers: ``benchmarks/fit_weights.py``).

    **All-time fits** (``weighting`` given, ``"ism"`` or ``"dsm"``): the quadratic is the
    time-weighted objective of :func:`time_weighting` over ``t_range`` (default
    ``(ALL_TIME_EPS, T) = (1e-3, T)``), still minimised exactly on the simplex:

    .. math::

        \hat\lambda = \arg\min_{\lambda \in \Delta_K} \int_{t_0}^{t_1} w(t)\,
            \mathbb E_{p_t}\big\|s_\lambda(x, t) - \nabla\log p_t(x)\big\|^2 dt .

    With ``weighting="likelihood"`` (:math:`w = g^2`) this minimises the bound of Song, Durkan,
    Murray and Ermon (2021, Thm. 1) on the KL divergence between the target and the reverse
    SDE's output with the fused score (:func:`bound_data_term` evaluates it). ``"ism"``
    estimates the :math:`t`-integral with ``n_nodes`` (default 32) Gauss-Legendre nodes in
    :math:`\log t` over ``t_range``, each evaluated on every target sample noised once,
    :math:`x_t = \mathrm{scale}_t x_0 + \mathrm{std}_t z` (ISM at :math:`t > 0` needs samples of
    :math:`p_t`, but has no DSM target :math:`z/\mathrm{std}_t`); its cost is ``n_nodes`` passes of
    the one-time ISM fit. ``"dsm"`` draws one :math:`(t, z)` per sample and draw (one pass),
    :math:`t` stratified from the density :math:`\propto w(t)/\mathrm{std}_t^2` with the exact
    importance weights (``"std2"`` is then the uniform-time DSM of the official code's
    training loss, :math:`t \sim U[t_0, t_1]`).

    Parameters
    ----------
    aux : sequence of K scores, or a FusedScore
        The frozen auxiliary score models ``s_i(x, t)``.
    x0 : Tensor of shape (n, *event_shape)
        Target samples.
    sde : VESDE or VPSDE
    method : {"ism", "dsm", "sgd"}
    t : float, optional
        Time of ``"ism"`` (default 1e-4); for ``"dsm"`` a tensor of per-draw times. Not with ``weighting``.
    t_range : (float, float), optional
        Time range of ``"dsm"`` and ``"sgd"`` (default the paper's ``(1e-7, 1e-4)``) and of the
        all-time fits (default ``(1e-3, T)``); ``0 < t0 < t1 <= T``.
    n_probes : int, None or "auto"
        Hutchinson probes of ``"ism"`` (see :func:`ism_quadratic`).
    n_draws : int, default 1
        Noise draws per sample of ``"dsm"``.
    generator : torch.Generator, optional
    batch_size : int, optional
        Evaluation batch (exact methods; default all) or SGD batch (default ``min(n, 256)``).
    epochs, lr, momentum : SGD settings (``"sgd"`` only).
    x_val : Tensor of shape (m, *event_shape), optional
        Validation samples of ``"sgd"`` (the official code draws ``n/4`` fresh
        target samples); without them the last epoch's weights are returned.
    progress : bool, default False
        Show a tqdm bar.
    weighting : {"likelihood", "std2"}, callable or None
        Fit over all of ``t_range`` with this time weighting (:func:`time_weighting`); ``None``:
        the one-time ISM or the paper's DSM.
    n_nodes : int, default 32
        Gauss-Legendre nodes in :math:`\log t` of the all-time ``"ism"``.

    Returns
    -------
    FitResult
    """
    if method not in ("ism", "dsm", "sgd"):
        raise ValueError(f"method must be 'ism', 'dsm' or 'sgd', got {method!r}")
    fused, x0 = _check_inputs(aux, x0, sde, generator)
    start = time.perf_counter()
    if weighting is not None:
        _check_weighting(weighting)
        if method == "sgd":
            raise ValueError("weighting applies to the exact fits, method='ism' or 'dsm', not 'sgd'")
        if t is not None:
            raise ValueError("t is the time of the one-time fits; with weighting the fit runs over t_range")
        t0, t1 = _time_range(t_range, sde)
        check_positive_int(n_nodes, "n_nodes")
        check_positive_int(n_draws, "n_draws")
        G, b, c = (q[0] for q in _time_quadratics(fused, x0, sde, method, weighting, [t0, t1], n_nodes, n_draws,
                                                  _resolve_probes(n_probes, x0), generator, batch_size, progress))
        return _exact_fit(G, b, c, method, start, weighting)
    if t_range is None:
        t_range = PAPER_T_RANGE
    if method == "sgd":
        check_positive_int(epochs, "epochs")
        batch_size = min(x0.shape[0], SGD_BATCH_SIZE) if batch_size is None else check_positive_int(batch_size,
                                                                                                   "batch_size")
        if x_val is not None:
            x_val = check_batch(x_val, "x_val")
            if x_val.shape[1:] != x0.shape[1:]:
                raise ValueError(f"x_val must have the event shape of x0 {tuple(x0.shape[1:])}, "
                                 f"got {tuple(x_val.shape[1:])}")
        _check_real(lr, "lr", low=0.0, low_open=True)
        _check_real(momentum, "momentum", low=0.0, high=1.0)
        lam, history, val_history = _fit_sgd(fused, x0, sde, t_range, epochs, batch_size, lr, momentum, generator,
                                             progress, x_val)
        loss = min(val_history) if val_history else history[-1]
        return FitResult(lam, loss, time.perf_counter() - start, history, "sgd", val_history=val_history)
    if method == "ism":
        G, b, c = ism_quadratic(fused, x0, sde, ISM_TIME if t is None else t, n_probes, generator,
                                batch_size, progress)
    else:
        G, b, c = dsm_quadratic(fused, x0, sde, t, t_range, n_draws, generator, batch_size, progress)
    return _exact_fit(G, b, c, method, start)


def _exact_fit(G, b, c, method, start, weighting=None):
    """Minimise the quadratic on the simplex: the FitResult of an exact method."""
    lam, residual = minimize_quadratic_on_simplex(G, b)
    lam = torch.as_tensor(lam)
    loss = float(lam @ G @ lam - 2 * b @ lam + c)
    return FitResult(lam, loss, time.perf_counter() - start, [loss], method, (G, b, c), residual,
                     weighting=weighting)


def _schedule_edges(bins, t_range, sde):
    """Bin edges: ``bins`` equal bins in log t over ``t_range``, or the given edges (in (0, T], increasing)."""
    if isinstance(bins, bool):
        raise TypeError(f"bins must be a number of bins or a sequence of edges, got {bins!r}")
    if isinstance(bins, int):
        check_positive_int(bins, "bins")
        t0, t1 = _time_range(t_range, sde)
        edges = np.geomspace(t0, t1, bins + 1)
        edges[0], edges[-1] = t0, t1
        return edges
    if t_range is not None:
        raise ValueError("give t_range with a number of bins, or the bin edges alone (bins=[e_0, ..., e_B])")
    try:
        edges = np.asarray(bins, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"bins must be a number of bins or a sequence of edges, got {bins!r}") from None
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"bins must hold at least two edges e_0 < e_1, got shape {edges.shape}")
    if not (np.isfinite(edges).all() and edges[0] > 0 and edges[-1] <= sde.T):
        raise ValueError(f"bins must lie in (0, T={sde.T}], got edges from {edges.min()!r} to {edges.max()!r}")
    gaps = np.diff(edges)
    if not (gaps > 0).all():
        empty = int(np.argmax(gaps <= 0))
        raise ValueError(f"bins must be strictly increasing edges: bin {empty} ({edges[empty]:g}, "
                         f"{edges[empty + 1]:g}] is empty")
    return edges


def fit_weight_schedule(aux, x0, sde, bins=8, method="ism", weighting="likelihood", t_range=None,
                        n_nodes=SCHEDULE_NODES, n_draws=1, n_probes="auto", generator=None, batch_size=None,
                        progress=False):
    r"""Time-dependent fusion weights :math:`\lambda(t)`, piecewise constant on B time bins, each fitted exactly.

    The all-time objective separates over time, so with weights free in every bin
    :math:`(e_k, e_{k+1}]` it is minimised bin by bin:

    .. math::

        \lambda^{(k)} = \arg\min_{\lambda \in \Delta_K} \int_{e_k}^{e_{k+1}} w(t)\,
            \mathbb E_{p_t}\big\|s_\lambda(x, t) - \nabla\log p_t(x)\big\|^2 dt ,

    one simplex QP per bin. With ``weighting="likelihood"`` the schedule minimises the
    bound of Song, Durkan, Murray and Ermon (2021, Thm. 1) on the reverse SDE's KL over
    all piecewise-constant schedules on these bins, so its bound is at most that of any
    constant :math:`\lambda` (on the same quadratics); as the bins shrink it tends to the
    pointwise minimiser at every :math:`t`. Each bin's quadratic is estimated as in
    :func:`fit_weights` with ``weighting``: ``"ism"`` by ``n_nodes`` Gauss-Legendre nodes
    in :math:`\log t` per bin (each on every sample, noised once), ``"dsm"`` by ``n_draws``
    stratified importance draws of :math:`(t, z)` per sample and bin.

    Parameters
    ----------
    aux : sequence of K scores, or a FusedScore
    x0 : Tensor of shape (n, *event_shape)
        Target samples.
    sde : SDE
    bins : int or sequence of float, default 8
        The number of bins, equal in :math:`\log t` over ``t_range``, or the edges
        :math:`e_0 < \dots < e_B` in :math:`(0, T]` (then without ``t_range``).
    method : {"ism", "dsm"}
    weighting : {"likelihood", "std2"} or callable, default "likelihood"
        See :func:`time_weighting`.
    t_range : (float, float), optional
        Default ``(1e-3, T)``.
    n_nodes : int, default 8
        Gauss-Legendre nodes per bin (``"ism"``).
    n_draws : int, default 1
        Draws per sample and bin (``"dsm"``).
    n_probes, generator, batch_size, progress : as in :func:`fit_weights`.

    Returns
    -------
    WeightSchedule
        ``edges``, ``lam`` (B, K), the per-bin ``kkt_residuals`` and ``losses``; callable
        :math:`t \mapsto \lambda(t)` and accepted by :class:`scorefusion.FusedScore`.
    """
    if method not in ("ism", "dsm"):
        raise ValueError(f"method must be 'ism' or 'dsm', got {method!r}")
    fused, x0 = _check_inputs(aux, x0, sde, generator)
    _check_weighting(weighting)
    check_positive_int(n_nodes, "n_nodes")
    check_positive_int(n_draws, "n_draws")
    edges = _schedule_edges(bins, t_range, sde)
    G, b, c = _time_quadratics(fused, x0, sde, method, weighting, edges, n_nodes, n_draws,
                               _resolve_probes(n_probes, x0), generator, batch_size, progress)
    lams, residuals, losses = [], [], []
    for k in range(len(edges) - 1):
        lam, residual = minimize_quadratic_on_simplex(G[k], b[k])
        lam = torch.as_tensor(lam)
        lams.append(lam)
        residuals.append(residual)
        losses.append(float(lam @ G[k] @ lam - 2 * b[k] @ lam + c[k]))
    return WeightSchedule(torch.from_numpy(edges), torch.stack(lams), torch.tensor(residuals, dtype=torch.float64),
                          torch.tensor(losses, dtype=torch.float64))


def bound_data_term(aux, lam, x0, sde, t_range=None, target_score=None, n_nodes=TIME_NODES, n_probes="auto",
                    generator=None, batch_size=None, progress=False):
    r"""The data term of the likelihood bound on the fused reverse SDE's KL, for constant weights or a schedule.

    Song, Durkan, Murray and Ermon (2021, "Maximum likelihood training of score-based
    diffusion models", Thm. 1): the reverse SDE driven by :math:`s_\lambda` from the prior
    :math:`\pi` at :math:`T` down to :math:`t_0` outputs :math:`q_{t_0}` with

    .. math::

        \mathrm{KL}(p_{t_0} \,\|\, q_{t_0}) \le \mathrm{KL}(p_T \,\|\, \pi)
        + \underbrace{\tfrac12 \int_{t_0}^{T} g(t)^2\, \mathbb E_{p_t}
            \big\|s_\lambda(x, t) - \nabla \log p_t(x)\big\|^2 dt}_{\text{returned}},
        \qquad s_\lambda = \sum_i \lambda_i(t)\, s_i .

    With ``target_score`` (:math:`\nabla\log p_t` itself, e.g. ``AnalyticScore(target, sde)``)
    the integrand is :math:`\lambda^\top G \lambda - 2\lambda^\top e + f`,
    :math:`e_i = \mathbb E[s_i \cdot \nabla\log p_t]`, :math:`f = \mathbb E\|\nabla\log p_t\|^2`,
    and the value is returned. Without it, Hyvarinen's form
    :math:`\lambda^\top G\lambda + 2\lambda^\top \mathbb E[\nabla\cdot s]` is integrated: the value
    minus the :math:`\lambda`-free :math:`\tfrac12\int g^2\,\mathbb E\|\nabla\log p_t\|^2 dt`
    (so differences between weights are exact, the level is not). The
    :math:`t`-integral is a Gauss-Legendre rule in :math:`\log t` with ``n_nodes`` nodes in all,
    split evenly (rounded up) among panels cut at a ``WeightSchedule``'s edges, on which its
    weights are constant; the expectation is over the target samples noised once per node,
    :math:`x_t = \mathrm{scale}_t x_0 + \mathrm{std}_t z`.

    Parameters
    ----------
    aux : sequence of K scores, or a FusedScore
    lam : array of shape (K,) on the simplex, a WeightSchedule, or a callable t -> (n, K)
    x0 : Tensor of shape (n, *event_shape)
        Target samples.
    sde : SDE
    t_range : (float, float), optional
        :math:`(t_0, t_1)`; default ``(1e-3, T)``, the samplers' default end time to :math:`T`.
    target_score : callable score(x, t), optional
        The target's exact noised score.
    n_nodes : int, default 32
        Gauss-Legendre nodes in all (at least this many).
    n_probes, generator, batch_size, progress : as in :func:`fit_weights`.

    Returns
    -------
    float
    """
    fused = FusedScore(list(aux.aux) if isinstance(aux, FusedScore) else aux, lam)
    x0 = check_batch(x0)
    check_sde(sde)
    check_generator(generator)
    check_positive_int(n_nodes, "n_nodes")
    if target_score is not None and not callable(target_score):
        raise TypeError(f"target_score must be a callable score(x, t), got {type(target_score).__name__}")
    t0, t1 = _time_range(t_range, sde)
    edges = [t0, t1]
    if isinstance(lam, WeightSchedule):
        inner = [float(e) for e in lam.edges[1:-1] if t0 < float(e) < t1]
        edges = [t0, *inner, t1]
    n_probes = _resolve_probes(n_probes, x0)
    t_nodes, omega, _ = _log_gauss_legendre(edges, -(-n_nodes // (len(edges) - 1)))
    omega = omega * time_weighting(sde, "likelihood", t_nodes)
    total = 0.0
    for m in tqdm(range(t_nodes.shape[0]), disable=not progress, desc="bound, time nodes"):
        t = torch.full((x0.shape[0],), float(t_nodes[m]), dtype=x0.dtype, device=x0.device)
        xt, _, _ = perturb(x0, sde, t, generator)
        G, b, f = _node_sums(fused, xt, t_nodes[m], n_probes, generator, batch_size, target_score=target_score)
        _check_finite_quadratic(G, b, f"(scores or divergences) on x_t at t={float(t_nodes[m]):g}")
        w = fused.weights_at(t_nodes[m], 1)[0]
        total += float(omega[m]) * float(w @ G @ w - 2 * b @ w + f)
    return 0.5 * total


def vanilla_kl_fusion(dists, x0, n_grid=None, generator=None):
    r"""Vanilla KL fusion: maximum likelihood of the target samples over the barycenter family.

    .. math::

        \hat\lambda_{\mathrm{MLE}} = \arg\max_{\lambda \in \Delta_K}
            \frac1n \sum_{j=1}^n \sum_i \lambda_i \log p_i(x_j) - \log Z_\lambda

    The normaliser :math:`Z_\lambda` is what makes this hard in general
    (Liu et al., 2025, Sec. 3); here the auxiliaries are closed-form and
    :class:`scorefusion.GeometricMixture` computes it (quadrature in 1-2 d).
    The objective is concave in :math:`\lambda` (``log Z`` is convex), so
    a bounded scalar search (K = 2) or SLSQP on the simplex finds the maximiser.

    Parameters
    ----------
    dists : sequence of K Gaussian or GaussianMixture
    x0 : Tensor of shape (n, d)
    n_grid : int, optional
        Quadrature points per axis of the normaliser.
    generator : torch.Generator, optional
        For the importance-sampling normaliser above 2 dimensions.

    Returns
    -------
    lam : Tensor of shape (K,)
    nll : float
        Mean negative log-likelihood at ``lam``.
    """
    dists = list(dists)
    k = len(dists)
    if k < 2:
        raise ValueError(f"dists must hold at least 2 models, got {k}")
    logs = torch.stack([d.log_prob(x0).double() for d in dists]).mean(1).numpy()  # (K,)

    def nll(lam):
        lam = np.clip(lam, 0.0, None)
        lam = lam / lam.sum()
        log_z, _ = GeometricMixture(dists, torch.as_tensor(lam), n_grid=n_grid, generator=generator).log_normalizer()
        return float(-(lam @ logs) + log_z)

    if k == 2:  # one free weight: bounded scalar search
        res = minimize_scalar(lambda a: nll(np.array([a, 1.0 - a])), bounds=(0.0, 1.0), method="bounded",
                              options={"xatol": 1e-6})
        best = np.array([res.x, 1.0 - res.x])
    else:
        res = minimize(nll, np.full(k, 1.0 / k), method="SLSQP", bounds=[(0.0, 1.0)] * k,
                       constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1.0}],
                       options={"ftol": 1e-12, "maxiter": 200})
        best = res.x
    lam = np.clip(best, 0.0, None)
    lam = lam / lam.sum()
    return torch.as_tensor(lam), nll(lam)
