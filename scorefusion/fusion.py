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
"""

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar
from tqdm.auto import tqdm

from ._checks import check_batch, check_generator, check_positive_int, check_sde, check_time
from .barycenter import GeometricMixture
from .divergence import EXACT_DIVERGENCE_MAX_DIM, divergence, draw_probes
from .losses import perturb, sample_times
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
    """

    lam: torch.Tensor
    loss: float
    seconds: float
    history: list = field(default_factory=list)
    method: str = "ism"
    quadratic: tuple | None = None
    kkt_residual: float | None = None
    val_history: list = field(default_factory=list)


def _as_fused(aux):
    if isinstance(aux, FusedScore):
        return aux
    aux = list(aux)
    if len(aux) == 0:
        raise ValueError("aux must contain at least one score")
    return FusedScore(aux, torch.full((len(aux),), 1.0 / len(aux), dtype=torch.float64))


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
    fused = _as_fused(aux)
    x0 = check_batch(x0)
    check_sde(sde)
    check_generator(generator)
    check_positive_int(n_draws, "n_draws")
    data = x0.repeat_interleave(n_draws, dim=0) if n_draws > 1 else x0
    n = data.shape[0]
    if t is None:
        t = sample_times(n, sde, t_range, generator, dtype=x0.dtype, device=x0.device)
    else:
        check_time(t, sde.T)
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        if t.shape != (n,):
            raise ValueError(f"t must have shape ({n},), got {tuple(t.shape)}")
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
    fused = _as_fused(aux)
    x0 = check_batch(x0)
    check_sde(sde)
    check_generator(generator)
    if torch.is_tensor(t) and t.numel() != 1:
        raise ValueError(f"t must be one time (a number), got a tensor of shape {tuple(t.shape)}")
    check_time(t, sde.T)
    dim = x0[0].numel()
    if n_probes == "auto":
        n_probes = None if dim <= EXACT_DIVERGENCE_MAX_DIM else 4
    elif n_probes is not None:
        check_positive_int(n_probes, "n_probes")
    n = x0.shape[0]
    tt = torch.full((n,), float(t), dtype=x0.dtype, device=x0.device)
    k = len(fused.aux)
    G = torch.zeros(k, k, dtype=torch.float64, device=x0.device)
    b = torch.zeros(k, dtype=torch.float64, device=x0.device)
    for sl in tqdm(_batches(n, batch_size), disable=not progress, desc="ism quadratic"):
        s, div = _scores_and_divergences(fused, x0[sl], tt[sl], n_probes, generator)
        s = s.double()
        G += torch.einsum("ind,jnd->ij", s, s)
        b -= div.double().sum(1)
    G, b = G.cpu() / n, b.cpu() / n
    _check_finite_quadratic(G, b, f"(scores or divergences) on x0 at t={float(t):g}")
    return G, b, torch.zeros((), dtype=torch.float64)


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
    if G.shape != (k, k):
        raise ValueError(f"G must have shape ({k}, {k}), got {G.shape}")
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


def fit_weights(aux, x0, sde, method="ism", t=None, t_range=PAPER_T_RANGE, n_probes="auto", n_draws=1,
                generator=None, batch_size=None, epochs=100, lr=0.1, momentum=0.9, x_val=None, progress=False):
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

    Parameters
    ----------
    aux : sequence of K scores, or a FusedScore
        The frozen auxiliary score models ``s_i(x, t)``.
    x0 : Tensor of shape (n, *event_shape)
        Target samples.
    sde : VESDE or VPSDE
    method : {"ism", "dsm", "sgd"}
    t : float, optional
        Time of ``"ism"`` (default 1e-4); for ``"dsm"`` a tensor of per-draw times.
    t_range : (float, float), default (1e-7, 1e-4)
        Time range of ``"dsm"`` and ``"sgd"``.
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

    Returns
    -------
    FitResult
    """
    if method not in ("ism", "dsm", "sgd"):
        raise ValueError(f"method must be 'ism', 'dsm' or 'sgd', got {method!r}")
    fused = _as_fused(aux)
    x0 = check_batch(x0)
    check_sde(sde)
    check_generator(generator)
    start = time.perf_counter()
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
    lam, residual = minimize_quadratic_on_simplex(G, b)
    lam = torch.as_tensor(lam)
    loss = float(lam @ G @ lam - 2 * b @ lam + c)
    return FitResult(lam, loss, time.perf_counter() - start, [loss], method, (G, b, c), residual)


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
