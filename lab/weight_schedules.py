r"""Fusion weights that see proportions: four fits of :math:`\lambda` against the bound and the sampler (issue 14).

The reverse SDE driven by :math:`s_\lambda = \sum_i \lambda_i(t) s_i` from the prior :math:`\pi`
outputs :math:`q` with (Song, Durkan, Murray and Ermon, 2021, Thm. 1)

.. math::

    \mathrm{KL}(p_\varepsilon \,\|\, q_\varepsilon) \le \mathrm{KL}(p_T \,\|\, \pi)
    + \tfrac12 \int_\varepsilon^T g(t)^2\, \mathbb E_{p_t}\|s_\lambda - \nabla\log p_t\|^2 dt .

Four fits of :math:`\lambda` from target samples are compared on the bound and on what the
sampler outputs: (a) ISM at :math:`t = 10^{-4}`, (b) the paper's DSM at :math:`t \in [10^{-7}, 10^{-4}]`,
(c) one :math:`\lambda` for all times with the likelihood weighting :math:`g^2`, (d) :math:`\lambda(t)` on
8 bins. By construction (on the quadratics they minimise) the bound is ordered d <= c <= a, b.
With Gaussian auxiliaries the sampler's output is an exact Gaussian (:mod:`lab.gaussian_flows`);
on the paper's 1-D preset it is sampled (Euler-Maruyama), with the target's own exact score
through the same sampler as the floor. Chapter 04 and the claims ``likelihood_bound_gaussians``
and ``likelihood_bound_preset`` call these functions.
"""

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from scorefusion import (
    AnalyticScore,
    FusedScore,
    Gaussian,
    VPTypeSDE,
    WeightSchedule,
    bound_data_term,
    fit_weight_schedule,
    fit_weights,
    kl_barycenter,
    kl_gaussian,
    sampling,
    tv_distance,
    tv_histogram,
)
from scorefusion.data import paper_1d

from . import gaussian_flows as gf

FITS = ("a", "b", "c", "d")
"""The four fits, in the order of the issue."""

FIT_NAMES = {"a": "ISM at t = 1e-4", "b": "DSM, paper's t-range", "c": "all-time, likelihood",
             "d": "lam(t), 8 bins"}
"""What each fit is (``fit_weights`` defaults for a and b; ``weighting="likelihood"`` for c;
``fit_weight_schedule(bins=8)`` for d, the same weighting, bins equal in log t over (1e-3, T])."""

EPS = 1e-3
"""End time of the samplers, and lower end of the all-time fits' and the bound's time range."""

RAW_BOX = (-25.0, 25.0)
"""Raw-coordinate interval of the 1-D preset's quadratures and histograms (the densities vanish outside)."""

GAUSSIAN_SIZES = {"fast": {"n_fit": 2048, "n_bound": 5000}, "full": {"n_fit": 8192, "n_bound": 20000}}
"""Target samples of the fits and of the library's bound estimate, Gaussian problems (chapter 04 and its claim)."""

PRESET_SIZES = {"fast": {"n_fit": 2048, "n_bound": 5000, "n_samples": 4000, "n_steps": 200, "n_nodes": 32},
                "full": {"n_fit": 8192, "n_bound": 20000, "n_samples": 20000, "n_steps": 500, "n_nodes": 32}}
"""Target samples of the fits and of the bound, samples per model, Euler-Maruyama steps and time nodes of the
bound, 1-D preset (chapter 04 and its claim)."""


def four_fits(aux, x, sde, seed, bins=8):
    r"""The four weight fits of :data:`FITS` on target samples ``x``.

    Parameters
    ----------
    aux : sequence of K scores
    x : Tensor of shape (n, d)
    sde : SDE
    seed : int
        Fit ``j`` (0-3) draws its noise from ``torch.Generator().manual_seed(seed + j)``.
    bins : int, default 8

    Returns
    -------
    dict
        ``"a"``, ``"b"``, ``"c"``: Tensor of shape (K,); ``"d"``: WeightSchedule.
    """
    def gen(j):
        return torch.Generator().manual_seed(seed + j)

    return {"a": fit_weights(aux, x, sde, generator=gen(0)).lam,
            "b": fit_weights(aux, x, sde, method="dsm", generator=gen(1)).lam,
            "c": fit_weights(aux, x, sde, weighting="likelihood", t_range=(EPS, sde.T), generator=gen(2)).lam,
            "d": fit_weight_schedule(aux, x, sde, bins=bins, t_range=(EPS, sde.T), generator=gen(3))}


def describe(lam):
    """A short text of constant weights or of a schedule's first weight per bin."""
    if isinstance(lam, WeightSchedule):
        return "lam_1(t): " + " ".join(f"{v:.2f}" for v in lam.lam[:, 0].tolist())
    return "lam = (" + ", ".join(f"{v:.3f}" for v in lam.tolist()) + ")"


def prior(sde, dim):
    r"""The samplers' prior :math:`\pi` as a Gaussian: :math:`\mathcal N(0, I)` for VP-type SDEs, else
    :math:`\mathcal N(0, \mathrm{std}_T^2 I)` (the VE prior)."""
    var = 1.0 if isinstance(sde, VPTypeSDE) else float(sde.marginal(torch.tensor(sde.T, dtype=torch.float64))[1]) ** 2
    return Gaussian(torch.zeros(dim, dtype=torch.float64), var * torch.eye(dim, dtype=torch.float64))


def prior_term(target, sde):
    r""":math:`\mathrm{KL}(p_T \| \pi)`, the first term of the bound: closed form for a Gaussian target,
    trapezoidal quadrature on 40001 points for a 1-D mixture."""
    p_T, pi = target.noised(sde, sde.T), prior(sde, target.dim)
    if isinstance(target, Gaussian):
        return float(kl_gaussian(p_T, pi))
    if target.dim != 1:
        raise ValueError(f"target must be a Gaussian or a 1-D mixture, got dimension {target.dim}")
    half = 12.0 * float(pi.cov[0, 0]) ** 0.5 + float(p_T.means.abs().max())
    xs = torch.linspace(-half, half, 40001, dtype=torch.float64)[:, None]
    log_p = p_T.log_prob(xs)
    return float(torch.trapezoid(log_p.exp() * (log_p - pi.log_prob(xs)), xs[:, 0]))


def as_schedule(lam, edges):
    """Constant weights as a schedule on ``edges`` (the same weights in every bin); a schedule unchanged."""
    if isinstance(lam, WeightSchedule):
        return lam
    return WeightSchedule(edges, lam.expand(len(edges) - 1, -1))


def data_term(aux, lam, target, sde, n, seed, n_nodes=32, edges=None, dtype=torch.float64):
    r"""The bound's data term, exactly (``bound_data_term`` with the target's own score), on ``n`` fresh target
    samples drawn with ``seed`` and cast to ``dtype`` (float32 for score networks).

    .. math:: \tfrac12 \int_\varepsilon^T g(t)^2\, \mathbb E_{p_t}\|s_\lambda - \nabla\log p_t\|^2 dt

    With ``edges`` constant weights are passed as a schedule on them, so that every fit is
    integrated on the same time nodes with the same draws (common random numbers: the
    differences between fits are not blurred by independent Monte-Carlo noise).
    """
    x = target.sample(n, generator=torch.Generator().manual_seed(seed)).to(dtype)
    return bound_data_term(aux, lam if edges is None else as_schedule(lam, edges), x, sde, t_range=(EPS, sde.T),
                           target_score=AnalyticScore(target, sde), n_nodes=n_nodes,
                           generator=torch.Generator().manual_seed(seed + 1))


def bound(aux, lam, target, sde, n, seed, n_nodes=32, edges=None):
    r"""The whole bound, :math:`\mathrm{KL}(p_T\|\pi)` plus :func:`data_term` (same arguments)."""
    return prior_term(target, sde) + data_term(aux, lam, target, sde, n, seed, n_nodes, edges)


def gaussian_bound(sde, dists, lam, target, nodes_per_panel=16):
    r"""The bound for Gaussian auxiliaries and target, without sampling: the data term in closed form in :math:`x`.

    With affine scores :math:`s_\lambda = -A_t x + c_t` (:func:`lab.gaussian_flows.fused_affine`) and
    :math:`\nabla\log p_t = -A^*_t x + c^*_t`, :math:`p_t = \mathcal N(\mu_t, \Sigma_t)`,

    .. math:: \mathbb E_{p_t}\|s_\lambda - \nabla\log p_t\|^2 = \operatorname{tr}(D\Sigma_t D^\top)
              + \|D\mu_t - \delta\|^2, \quad D = A_t - A^*_t,\ \delta = c_t - c^*_t,

    integrated over :math:`[\varepsilon, T]` by Gauss-Legendre in :math:`\log t`, ``nodes_per_panel``
    nodes on each of 8 panels equal in :math:`\log t`, further cut at a schedule's edges.
    """
    cuts = {float(e) for e in torch.logspace(math.log10(EPS), math.log10(sde.T), 9, dtype=torch.float64)[1:-1]}
    if isinstance(lam, WeightSchedule):
        cuts |= {float(e) for e in lam.edges[1:-1] if EPS < float(e) < sde.T}
    logs = np.log([EPS, *sorted(cuts), sde.T])
    x, w = np.polynomial.legendre.leggauss(nodes_per_panel)
    total = 0.0
    for lo, hi in pairwise(logs):
        for xi, wi in zip(x, w):
            t = math.exp(0.5 * (lo + hi) + 0.5 * (hi - lo) * xi)
            weights = (lam(t) if isinstance(lam, WeightSchedule) else lam).numpy()
            (A, c), (A_star, c_star) = gf.fused_affine(sde, dists, weights, t), gf.fused_affine(sde, [target], [1.0], t)
            p_t = target.noised(sde, t)
            D, delta = A - A_star, c - c_star
            gap = np.trace(D @ p_t.cov.numpy() @ D.T) + np.sum((D @ p_t.mean.numpy() - delta) ** 2)
            total += 0.5 * (hi - lo) * wi * t * 0.5 * gf.drift_coefficients(sde, t)[1] * gap
    return prior_term(target, sde) + float(total)


def gaussian_output(sde, dists, lam, kind="sde"):
    r"""The exact output law at :data:`EPS` of the fused reverse SDE (or ODE) of Gaussian auxiliaries from the prior.

    The fused score is affine (:func:`lab.gaussian_flows.fused_affine`); for a schedule the moment
    ODEs are integrated one bin at a time, from :math:`T` down (the weights jump at the edges), by
    DOP853 at ``rtol=1e-8``, ``atol=1e-10`` (the KLs reported are above :math:`10^{-5}`).

    Returns
    -------
    Gaussian
    """
    out = prior(sde, dists[0].dim)
    if isinstance(lam, WeightSchedule):
        cuts = [float(e) for e in lam.edges[1:-1] if EPS < float(e) < sde.T]
        pieces = [sde.T, *reversed(cuts), EPS]
    else:
        pieces = [sde.T, EPS]
    for hi, lo in pairwise(pieces):
        weights = (lam((hi * lo) ** 0.5) if isinstance(lam, WeightSchedule) else lam).numpy()
        out = gf.gaussian_output(sde, lambda t, w=weights: gf.fused_affine(sde, dists, w, t), out, kind, eps=lo,
                                 rtol=1e-8, atol=1e-10, t_start=hi)
    return out


def gaussian_cases():
    r"""Three Gaussian problems: the 1-D pair :math:`\mathcal N(-1, 1)`, :math:`\mathcal N(2, 4)` and the 2-D
    non-commuting pair of chapter 04 with the barycenter at :math:`\lambda^* = (1/2, 1/2)` as target, and three
    1-D auxiliaries with a target outside their barycenter family.

    Returns
    -------
    dict
        name -> (list of Gaussian auxiliaries, Gaussian target)
    """
    lam = [0.5, 0.5]
    pair = [Gaussian([-1.0], [[1.0]]), Gaussian([2.0], [[4.0]])]
    plane = [Gaussian([-1.0, 0.0], [[3.0, 0.0], [0.0, 0.2]]), Gaussian([1.0, 1.0], [[0.3, 0.2], [0.2, 2.5]])]
    three = [Gaussian([-2.0], [[0.5]]), Gaussian([0.0], [[3.0]]), Gaussian([2.5], [[1.0]])]
    return {"1-D pair, target p_lam*": (pair, kl_barycenter(pair, lam)),
            "2-D pair, target p_lam*": (plane, kl_barycenter(plane, lam)),
            "1-D, K = 3, target N(0.3, 1.5)": (three, Gaussian([0.3], [[1.5]]))}


@dataclass
class GaussianRow:
    """One fit on one Gaussian problem: its weights, its bound and the exact errors of the samplers' outputs.

    Attributes
    ----------
    case, fit : str
    lam : Tensor or WeightSchedule
    bound : float
        :math:`\\mathrm{KL}(p_T\\|\\pi)` + the data term, exactly (:func:`gaussian_bound`).
    bound_mc : float or None
        The same by the library's ``bound_data_term`` on target samples (with ``n_bound``).
    kl_sde, tv_sde : float
        KL and TV from the target (noised to :data:`EPS`) to the reverse SDE's exact output.
    kl_ode : float or None
        The same KL for the probability-flow ODE (no such bound holds for it); with ``with_ode`` only.
    """

    case: str
    fit: str
    lam: object
    bound: float
    bound_mc: float | None
    kl_sde: float
    tv_sde: float
    kl_ode: float | None


_RUNS = {}
"""Tables already computed in this process, keyed by the SDE's repr and the arguments: chapter 04 computes them
in its section 8 and its claims table reruns the same calls (every number is seeded, so a rerun would repeat it)."""


def _memoised(key, compute):
    if key not in _RUNS:
        _RUNS[key] = compute()
    return _RUNS[key]


def gaussian_rows(sde, n_fit, n_bound=None, seed=0, cases=None, n_nodes=32, with_ode=False):
    """The four fits on every problem of :func:`gaussian_cases` (or ``cases``), fitted on ``n_fit`` samples;
    the exact bound, and with ``n_bound`` the library's estimate on that many fresh samples (``n_nodes`` time
    nodes); the ODE's KL too ``with_ode``. Memoised per process for the default ``cases``.

    Returns
    -------
    list of GaussianRow
    """
    if cases is None:
        return _memoised(("gaussian", repr(sde), n_fit, n_bound, seed, n_nodes, with_ode),
                         lambda: gaussian_rows(sde, n_fit, n_bound, seed, gaussian_cases(), n_nodes, with_ode))
    rows = []
    for k, (case, (dists, target)) in enumerate(cases.items()):
        aux = [AnalyticScore(d, sde) for d in dists]
        x = target.sample(n_fit, generator=torch.Generator().manual_seed(seed + 100 * k))
        goal = target.noised(sde, EPS)
        fits = four_fits(aux, x, sde, seed + 100 * k + 10)
        for fit, lam in fits.items():
            out = gaussian_output(sde, dists, lam, "sde")
            kl_ode = float(kl_gaussian(goal, gaussian_output(sde, dists, lam, "ode"))) if with_ode else None
            mc = None if n_bound is None else bound(aux, lam, target, sde, n_bound, seed + 100 * k + 20, n_nodes,
                                                    fits["d"].edges)
            rows.append(GaussianRow(case, fit, lam, gaussian_bound(sde, dists, lam, target), mc,
                                    float(kl_gaussian(goal, out)), tv_distance(goal, out), kl_ode))
    return rows


@dataclass
class PresetRow:
    """One fit (or the oracle) on the 1-D preset in one geometry.

    Attributes
    ----------
    geometry : {"raw", "standardized"}
    fit : str
        One of :data:`FITS` or ``"oracle"`` (the target's exact score through the same sampler).
    lam : Tensor, WeightSchedule or None
    bound : float
        The whole bound (0 for the oracle's data term: only the prior term).
    w1 : float
        W1 between the samples and the target, in raw units (quadrature against the target's density).
    tv : float
        Histogram TV (80 bins on :data:`RAW_BOX`).
    left : float
        Share of the samples left of 0 in raw coordinates (the target's: 0.6).
    """

    geometry: str
    fit: str
    lam: object
    bound: float
    w1: float
    tv: float
    left: float


def preset_rows(sde, geometry, n_fit, n_bound, n_samples, n_steps, seed=0, n_nodes=32):
    r"""The four fits and the oracle on the paper's 1-D preset (raw or standardised), sampled by Euler-Maruyama.

    Every model is sampled from the same prior draws and noise (``generator`` seeded alike), so
    their differences are not blurred by independent sampling noise. Memoised per process.

    Parameters
    ----------
    sde : SDE
    geometry : {"raw", "standardized"}
    n_fit, n_bound, n_samples : int
        Target samples for the fits and for the bound; samples drawn from every model.
    n_steps : int
        Euler-Maruyama steps.
    seed : int
    n_nodes : int, default 32
        Time nodes of the bound.

    Returns
    -------
    list of PresetRow
    """
    if geometry not in ("raw", "standardized"):
        raise ValueError(f"geometry must be 'raw' or 'standardized', got {geometry!r}")
    return _memoised(("preset", repr(sde), geometry, n_fit, n_bound, n_samples, n_steps, seed, n_nodes),
                     lambda: _preset_rows(sde, geometry, n_fit, n_bound, n_samples, n_steps, seed, n_nodes))


def _preset_rows(sde, geometry, n_fit, n_bound, n_samples, n_steps, seed, n_nodes):
    preset = paper_1d(standardize=geometry == "standardized")
    aux = [AnalyticScore(d, sde) for d in preset.aux]
    x = preset.target.sample(n_fit, generator=torch.Generator().manual_seed(seed))
    lo, hi = ((v - preset.loc) / preset.scale for v in RAW_BOX)
    grid = torch.linspace(lo, hi, 20001, dtype=torch.float64)
    density = preset.target.log_prob(grid[:, None]).exp().numpy()
    split = -preset.loc / preset.scale  # 0 in raw coordinates
    models = {**four_fits(aux, x, sde, seed + 10), "oracle": None}
    edges = models["d"].edges  # every fit's bound on the schedule's panels: the same nodes and draws
    rows = []
    for fit, lam in models.items():
        score = AnalyticScore(preset.target, sde) if lam is None else FusedScore(aux, lam)
        samples = sampling.euler_maruyama(score, sde, (n_samples, 1), n_steps=n_steps, eps=EPS, dtype=torch.float64,
                                          generator=torch.Generator().manual_seed(seed + 50))
        value = prior_term(preset.target, sde) if lam is None else bound(aux, lam, preset.target, sde, n_bound,
                                                                          seed + 20, n_nodes, edges)
        w1 = preset.scale * wasserstein_distance(samples[:, 0].numpy(), grid.numpy(), v_weights=density)
        rows.append(PresetRow(geometry, fit, lam, value, float(w1),
                              tv_histogram(samples, preset.target, bins=80, bounds=(lo, hi)),
                              float((samples[:, 0] < split).double().mean())))
    return rows
