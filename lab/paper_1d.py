r"""The paper's 1-D experiment (Liu et al., 2025, Sec. 5.1) and the DSM-noise measurement of chapter 03.

Trained auxiliary ``ScoreMLP`` networks fused by ISM, DSM and the official SGD
recipe against a network trained from scratch on the target samples and
against each auxiliary alone, in Wasserstein-1 and TV to the target, in the
official code's geometry (every data set standardised by its own moments) and
in the paper's raw coordinates; the misspecification floor of each geometry by
quadrature and the fused exact scores as sampled; the four fits of :math:`\lambda` of
:mod:`lab.weight_schedules` with the trained networks, against the likelihood bound's data term and the
oracle (:func:`four_fits_networks`). Chapter 03 and the claims ``dsm_tiny_t_variance`` and
``official_geometry_low_data`` call the same functions.
"""

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.stats import wasserstein_distance
from tqdm.auto import tqdm

from scorefusion import VESDE, AnalyticScore, FusedScore, GeometricMixture, fit_weights, sampling
from scorefusion.cache import cached_model
from scorefusion.data import paper_1d
from scorefusion.losses import perturb
from scorefusion.metrics import tv_distance, tv_histogram, w1_distance
from scorefusion.nets import ScoreMLP
from scorefusion.seeding import seed_for
from scorefusion.train import train_score_model

from . import weight_schedules as ws
from .official import OFFICIAL_LAM_1D


def dsm_linear_term_spread(aux, x0, sde, times, generator=None):
    r"""Spread of the per-sample DSM linear coefficient, rescaled to the ISM scale, at several times.

    On one draw :math:`x_t = x_0 + \mathrm{std}_t z` the DSM quadratic's
    linear coefficient is :math:`b_i = -u_i \cdot z` with
    :math:`u_i = \mathrm{std}_t\, s_i(x_t, t)`. A Taylor expansion in
    :math:`\mathrm{std}_t` gives

    .. math::

        \frac{b_i}{\mathrm{std}_t^2} = -\frac{s_i(x_0, t) \cdot z}{\mathrm{std}_t}
            - z^\top \nabla s_i(x_0, t)\, z + O(\mathrm{std}_t),

    whose mean is the ISM coefficient :math:`-\nabla\cdot s_i` while its
    standard deviation is that of the leading term, about
    :math:`\sqrt{\mathbb E\|s_i\|^2} / \mathrm{std}_t`: the noise of DSM at
    tiny times (Vincent, 2011; Liu et al., 2025, Sec. 4).

    Parameters
    ----------
    aux : sequence of K scores
    x0 : Tensor of shape (n, d)
    sde : VESDE or VPSDE
    times : sequence of T floats in (0, sde.T]
    generator : torch.Generator, optional

    Returns
    -------
    stds : ndarray of shape (T,)
        The marginal standard deviations std_t.
    mean : ndarray of shape (T, K)
        Mean over samples of :math:`b_i / \mathrm{std}_t^2`.
    spread : ndarray of shape (T, K)
        Standard deviation over samples of :math:`b_i / \mathrm{std}_t^2`.
    leading : ndarray of shape (T, K)
        Standard deviation over the same draws of the leading term
        :math:`s_i(x_0, t) \cdot z / \mathrm{std}_t` alone.
    """
    n = x0.shape[0]
    stds, means, spreads, leads = [], [], [], []
    with torch.no_grad():
        for t in times:
            tt = torch.full((n,), float(t), dtype=x0.dtype)
            xt, z, std = perturb(x0, sde, tt, generator)
            std_t = float(std.reshape(-1)[0])
            b = torch.stack([-(std * s(xt, tt) * z).flatten(1).sum(1) for s in aux]) / std_t**2  # (K, n)
            lead = torch.stack([(s(x0, tt) * z).flatten(1).sum(1) for s in aux]) / std_t
            stds.append(std_t)
            means.append(b.mean(1).numpy())
            spreads.append(b.std(1).numpy())
            leads.append(lead.std(1).numpy())
    return np.array(stds), np.array(means), np.array(spreads), np.array(leads)


GEOMETRIES = ("standardized", "raw")
"""The official code's geometry (every data set standardised by its own sample moments) and the paper's raw one."""

MODELS = ("ism", "dsm", "sgd", "official", "scratch", "aux1", "aux2", "exact", "exact_fit", "barycenter")
"""The models of a :class:`Paper1DRow`: the fused networks at the weights of each fit (``ism``, ``dsm``,
``sgd``) and at the official weights (``official``, standardised geometry only), the network trained from
scratch, each auxiliary network alone, the exact auxiliary scores fused at the networks' ISM weights
(``exact``) and at the weights ISM fits with the exact scores themselves (``exact_fit``), both sampled the
same way, and the exact barycenter at the networks' ISM weights (``barycenter``, by quadrature, no
sampling)."""

RAW_BOX = (-25.0, 25.0)
"""Raw-coordinate interval on which the quadrature distances are computed (the densities vanish outside)."""


@dataclass
class Paper1DConfig:
    """Sizes of the paper's 1-D experiment (ScoreFusion, Sec. 5.1), for :func:`paper_1d_networks`.

    Attributes
    ----------
    target_ns : tuple of int
        Target sample sizes.
    aux_n : int
        Training samples per auxiliary (16384 in the paper).
    aux_steps, scratch_steps : int
        Optimiser steps of the auxiliary and from-scratch trainings.
    batch_size : int
        Largest training batch (``min(batch_size, n)`` is used, as the official ``min(n, 256)``).
    lr : float
    ema : float
        Decay of the weights' exponential moving average (lower it for short runs).
    hidden, depth : int
        ``ScoreMLP`` width and depth.
    n_samples : int
        Samples drawn from every model for W1 and TV.
    sample_steps : int
        Euler-Maruyama steps.
    n_test : int
        Fresh target samples W1 is measured against.
    seed : int
    sgd_epochs : int
        Epochs of the SGD recipe (100 in the official code).
    tv_bins : int
        Histogram cells of the sample TV on ``[-20, 20]`` (raw coordinates).
    """

    target_ns: tuple = (32, 64, 128, 256, 512, 1024)
    aux_n: int = 16384
    aux_steps: int = 6000
    scratch_steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    ema: float = 0.999
    hidden: int = 128
    depth: int = 3
    n_samples: int = 8192
    sample_steps: int = 500
    n_test: int = 8192
    seed: int = 0
    sgd_epochs: int = 100
    tv_bins: int = 80


def chapter_config(fast):
    """The configuration chapter 03 and the claim ``official_geometry_low_data`` share (so they share weights).

    Parameters
    ----------
    fast : bool
        ``SCOREFUSION_FAST`` sizes: two target sizes, short trainings, few samples.

    Returns
    -------
    Paper1DConfig
    """
    if fast:
        return Paper1DConfig(target_ns=(32, 1024), aux_n=4096, aux_steps=600, scratch_steps=400, hidden=64,
                             ema=0.99, n_samples=1000, sample_steps=200, n_test=4000, sgd_epochs=20)
    return Paper1DConfig(n_samples=4096, sample_steps=500)


def train_mlp_score_net(data, dim, sde, config, steps, name, seed, progress=False):
    r"""A ``ScoreMLP`` fitted to data in ``dim`` dimensions by denoising score matching, cached on disk.

    .. math:: \theta = \arg\min_\theta \mathbb E\,\|\mathrm{std}_t\, s_\theta(x_0 + \mathrm{std}_t z, t) + z\|^2

    The cache key (:func:`scorefusion.cache.cached_model`) holds every number
    that determines the weights (the data's size and seed, the network, the
    optimiser and the number of steps), so fast- and full-size runs never share
    weights and a rerun loads instead of training.

    Parameters
    ----------
    data : callable () -> Tensor of shape (n, dim)
        Makes the training data deterministically (only called on a cache miss).
    dim : int
    sde : VESDE
    config : Paper1DConfig
        Network and optimiser settings (``hidden``, ``depth``, ``batch_size``, ``lr``).
    steps : int
        Optimiser steps.
    name : str
        Cache file prefix.
    seed : int
        Seeds the data description in the key and the training randomness.
    progress : bool

    Returns
    -------
    nets.ScoreMLP in eval mode
    """
    key = {"sde": repr(sde), "dim": dim, "hidden": config.hidden, "depth": config.depth, "steps": steps,
           "batch_size": config.batch_size, "lr": config.lr, "ema": config.ema, "seed": seed, "name": name,
           "version": 2}  # 2: exactly `steps` optimiser steps; 1 rounded up to whole epochs

    def build():
        torch.manual_seed(seed)  # the initial weights
        return ScoreMLP(sde, dim, hidden=config.hidden, depth=config.depth)

    def fit(model):
        x = data()
        res = train_score_model(model, x.float(), sde, steps=steps,
                                batch_size=min(config.batch_size, x.shape[0]), lr=config.lr, ema=config.ema, device="cpu",
                                progress=progress, generator=torch.Generator().manual_seed(seed))
        return res.model

    return cached_model(name, key, build, fit)


def sample_1d(score, sde, n, n_steps, seed):
    r"""Samples of a 1-D score model by the Euler-Maruyama reverse SDE (``sampling.euler_maruyama``).

    .. math:: x_{k+1} = x_k + g(t_k)^2 s(x_k, t_k)\,\Delta t + g(t_k)\sqrt{\Delta t}\, z_k

    Returns
    -------
    Tensor of shape (n, 1), float64
    """
    with torch.no_grad():
        x = sampling.euler_maruyama(score, sde, (n, 1), n_steps=n_steps,
                                    generator=torch.Generator().manual_seed(seed))
    return x.detach().double()


def standardize_samples(x):
    r"""Samples standardised by their own mean and standard deviation, as the official ``make_mixture_data``.

    .. math:: x' = (x - \bar x)/\hat\sigma, \qquad \hat\sigma^2 = \tfrac{1}{n - 1}\textstyle\sum_j (x_j - \bar x)^2

    (``torch.std``, unbiased, as ``data.std()`` in ``src/datasets.py``, lines 27-29).

    Parameters
    ----------
    x : Tensor of shape (n, 1), n >= 2

    Returns
    -------
    (Tensor of shape (n, 1), float, float)
        ``x'``, the mean and the standard deviation; ``loc + scale * x'`` gives ``x`` back.
    """
    if not torch.is_tensor(x) or x.ndim != 2 or x.shape[1] != 1 or x.shape[0] < 2:
        raise ValueError(f"x must be a tensor of shape (n, 1) with n >= 2, got {getattr(x, 'shape', type(x))}")
    loc, scale = float(x.mean()), float(x.std())
    if not scale > 0:
        raise ValueError("x must not be constant: its standard deviation is 0")
    return (x - loc) / scale, loc, scale


def _check_geometry(geometry):
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
    return paper_1d(standardize=geometry == "standardized")


def density_distances(dist, preset):
    r"""W1 (raw units) and TV between the preset's target and a density of the same coordinates, by quadrature.

    .. math:: W_1 = \mathrm{scale}\int |F_q(x) - F_p(x)|\,dx, \qquad \mathrm{TV} = \tfrac12\int|q - p|\,dx

    on a grid of 20001 points covering :data:`RAW_BOX` (``scipy.stats.wasserstein_distance``
    with the densities as weights; ``tv_distance``). TV does not change under the affine map back to raw
    coordinates; W1 is multiplied by its scale.

    Parameters
    ----------
    dist : GaussianMixture or GeometricMixture in the preset's coordinates
    preset : data.Preset1D

    Returns
    -------
    (float, float)
        W1 in raw units, TV.
    """
    lo, hi = ((v - preset.loc) / preset.scale for v in RAW_BOX)
    xs = torch.linspace(lo, hi, 20001, dtype=torch.float64)[:, None]
    p = preset.target.log_prob(xs).exp().numpy()
    q = dist.log_prob(xs).exp().numpy()
    w1 = preset.scale * wasserstein_distance(xs[:, 0].numpy(), xs[:, 0].numpy(), p, q)
    return float(w1), float(tv_distance(preset.target, dist, n_grid=20001))


@dataclass
class FamilyFloor:
    r"""How close the barycenter family :math:`\{p_\lambda\}` of the exact auxiliaries comes to the target.

    Attributes
    ----------
    geometry : str
    lam1 : ndarray of shape (m,)
        The grid of :math:`\lambda_1` (with :math:`\lambda_2 = 1 - \lambda_1`).
    w1, tv : ndarray of shape (m,)
        W1 (raw units) and TV of :math:`p_\lambda` to the target on the grid.
    w1_min, tv_min : (float, float)
        The minimum over the family and its :math:`\lambda_1`, refined between grid points.
    official : (float, float)
        W1 and TV at the official weights (0.5781, 0.4219).
    """

    geometry: str
    lam1: np.ndarray
    w1: np.ndarray
    tv: np.ndarray
    w1_min: tuple
    tv_min: tuple
    official: tuple


def family_floor(geometry, n_lam=101):
    r"""The misspecification floor of a geometry: distances of every barycenter :math:`p_\lambda` to the target.

    .. math:: \min_{\lambda\in\Delta_2} W_1(p_\lambda, q), \qquad \min_{\lambda\in\Delta_2} \mathrm{TV}(p_\lambda, q)

    with :math:`p_\lambda \propto p_1^{\lambda_1} p_2^{\lambda_2}` normalised by
    quadrature (``GeometricMixture``) and the distances of
    :func:`density_distances`, on a grid of ``n_lam`` values of :math:`\lambda_1`,
    each minimum then refined between the neighbours of the best grid point
    (``scipy.optimize.minimize_scalar``, bounded). No network or sampler
    enters: fusion that fits :math:`\lambda` and samples :math:`p_\lambda`
    exactly cannot come closer (Liu et al., 2025, Sec. 4: the misspecification
    term of the bound).

    Parameters
    ----------
    geometry : {"standardized", "raw"}
    n_lam : int, default 101

    Returns
    -------
    FamilyFloor
    """
    preset = _check_geometry(geometry)
    if isinstance(n_lam, bool) or not isinstance(n_lam, int) or n_lam < 3:
        raise ValueError(f"n_lam must be an int >= 3, got {n_lam!r}")

    def at(lam1):
        lam = torch.tensor([lam1, 1.0 - lam1], dtype=torch.float64)
        return density_distances(GeometricMixture(preset.aux, lam, n_grid=20001), preset)

    grid = np.linspace(0.0, 1.0, n_lam)
    values = np.array([at(float(v)) for v in grid])
    minima = []
    for j in (0, 1):
        i = int(np.argmin(values[:, j]))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, n_lam - 1)]
        best = minimize_scalar(lambda v, j=j: at(float(v))[j], bounds=(lo, hi), method="bounded",
                               options={"xatol": 1e-4})
        minima.append((float(best.fun), float(best.x)) if best.fun < values[i, j] else
                      (float(values[i, j]), float(grid[i])))
    return FamilyFloor(geometry, grid, values[:, 0], values[:, 1], minima[0], minima[1], at(OFFICIAL_LAM_1D[0]))


def sampler_floor(geometry, sde, lam1s, n_samples, n_steps, n_test=8192, tv_bins=80, seed=0):
    r"""The fused exact auxiliary scores, sampled: what ScoreFusion reaches with perfect auxiliaries.

    For each :math:`\lambda` the reverse SDE is driven by
    :math:`\sum_i \lambda_i \nabla\log p_{i,t}` (``AnalyticScore``, exact at every
    :math:`t`), which in general does *not* sample the barycenter
    :math:`p_\lambda` (the fused score at :math:`t > 0` is not the score of the
    noised barycenter, and the VE prior differs from the noised data at
    :math:`T`); the samples are mapped to raw coordinates with the preset's
    moments and compared with the target.

    .. math:: W_1\big(\mathrm{Law}(\text{reverse SDE with } \textstyle\sum_i\lambda_i s_i^{\mathrm{exact}}), q\big)

    Parameters
    ----------
    geometry : {"standardized", "raw"}
    sde : VESDE
    lam1s : sequence of float in [0, 1]
    n_samples, n_steps : int
        Euler-Maruyama samples and steps.
    n_test : int
        Fresh target samples for W1.
    tv_bins : int
    seed : int

    Returns
    -------
    (ndarray of shape (m,), ndarray of shape (m,))
        W1 (raw units) and histogram TV for each :math:`\lambda_1`.
    """
    preset = _check_geometry(geometry)
    raw = paper_1d()
    test = raw.target.sample(n_test, generator=torch.Generator().manual_seed(seed_for("paper1d-test", seed)))
    exact = [AnalyticScore(d, sde) for d in preset.aux]
    w1s, tvs = [], []
    for lam1 in lam1s:
        if not 0.0 <= float(lam1) <= 1.0:
            raise ValueError(f"lam1s must lie in [0, 1], got {lam1!r}")
        fused = FusedScore(exact, torch.tensor([float(lam1), 1.0 - float(lam1)], dtype=torch.float64))
        x = preset.to_raw(sample_1d(fused, sde, n_samples, n_steps, seed_for("paper1d-sampler-floor", seed)))
        w1s.append(w1_distance(x, test))
        tvs.append(tv_histogram(x, raw.target, bins=tv_bins, bounds=(-20.0, 20.0)))
    return np.array(w1s), np.array(tvs)


@dataclass
class Paper1DRow:
    """One target size of the 1-D experiment in one geometry.

    Attributes
    ----------
    n : int
    geometry : str
    lam : dict mapping "ism", "dsm", "sgd" (fits with the trained networks) and "official" to (lam_1, lam_2)
    lam_exact : tuple
        ISM's weights with the exact auxiliary scores on the same samples.
    w1, tv : dict mapping each name of :data:`MODELS` (that was run) to W1 (raw units) and TV to the target
    loc, scale : float
        The moments that map this row's samples back to raw coordinates (the n target samples' own mean and
        std in the standardised geometry; 0 and 1 in the raw one).
    """

    n: int
    geometry: str
    lam: dict
    lam_exact: tuple
    w1: dict
    tv: dict
    loc: float
    scale: float


def auxiliary_networks(config, sde, geometry, progress=False):
    r"""The auxiliary ``ScoreMLP`` networks of the 1-D experiment, one per auxiliary mixture of the preset.

    Network :math:`i` is fitted by DSM (:func:`train_mlp_score_net`) to ``config.aux_n`` samples of
    auxiliary :math:`i`, standardised by their own sample moments in the official geometry
    (:func:`standardize_samples`), raw otherwise; the data and the training are seeded by
    ``config.seed`` (the training seed), and the weights are cached.

    Parameters
    ----------
    config : Paper1DConfig
    sde : VESDE
    geometry : {"standardized", "raw"}
    progress : bool

    Returns
    -------
    list of nets.ScoreMLP
    """
    _check_geometry(geometry)
    nets = []
    for i, dist in enumerate(paper_1d().aux):
        seed = seed_for("paper1d-aux", i, config.aux_n, config.seed)

        def data(dist=dist, seed=seed):
            x = dist.sample(config.aux_n, generator=torch.Generator().manual_seed(seed))
            return standardize_samples(x)[0] if geometry == "standardized" else x

        nets.append(train_mlp_score_net(data, 1, sde, config, config.aux_steps,
                                        f"paper1d-{geometry}-aux{i}-n{config.aux_n}", seed, progress))
    return nets


def paper_1d_networks(config=None, sde=None, geometry="standardized", progress=False):
    r"""The paper's 1-D experiment: ScoreFusion of trained auxiliaries vs a network trained from scratch.

    As the official code runs it (``geometry="standardized"``) or in the
    paper's raw coordinates (``"raw"``). Auxiliary ``ScoreMLP`` networks are
    trained on ``config.aux_n`` samples of each auxiliary mixture of
    :func:`scorefusion.data.paper_1d`, standardised by their own sample mean and
    std in the official geometry (``src/datasets.py``, ``make_mixture_data``).
    For each target size ``n`` the ``n`` target samples (standardised by their
    own moments in the official geometry) give:

    * :math:`\hat\lambda` by ISM, DSM (``t ~ U[1e-7, 1e-4]``, one draw per
      sample) and the official SGD recipe (``fit_weights(method="sgd")`` with
      ``n/4`` fresh validation samples, the best validation epoch kept), each
      with the trained networks, and by ISM with the exact auxiliary scores;
    * samples of the fused networks at each :math:`\hat\lambda` and at the
      official (0.5781, 0.4219), of each auxiliary network alone, of a network
      trained from scratch on the same samples (same trainer, same settings),
      and of the fused *exact* scores at the networks' ISM weights and at the
      weights ISM fits with the exact scores, all by the
      same reverse SDE and mapped back with the target samples' moments
      (as the official notebook's cells 21-26);
    * W1 (raw units) to fresh target samples and histogram TV to the target density.

    .. math:: W_1\Big(\mathrm{Law}\big(\text{reverse SDE with } \textstyle\sum_i \hat\lambda_i s_{\theta_i}\big),\ q\Big)
              \quad\text{vs}\quad W_1\big(\mathrm{Law}(\text{reverse SDE with } s_{\theta_n}),\ q\big)

    Samples of every model share one seed per ``n`` (common random numbers);
    the target samples, validation samples and test set are the same draws in
    both geometries.

    Parameters
    ----------
    config : Paper1DConfig, optional
    sde : VESDE, optional
        Default ``VESDE(25.0)``.
    geometry : {"standardized", "raw"}
    progress : bool

    Returns
    -------
    rows : list of Paper1DRow
    aux_nets : list of nets.ScoreMLP
    samples : dict mapping (model, n) to Tensor of shape (n_samples, 1) in raw coordinates
        The models of :data:`MODELS` but ``barycenter``, and ``("target", 0)`` (the test set).
    """
    config = config or Paper1DConfig()
    sde = sde or VESDE(25.0)
    preset = _check_geometry(geometry)
    standardized = geometry == "standardized"
    raw = paper_1d()

    def prepare(x):
        return standardize_samples(x) if standardized else (x, 0.0, 1.0)

    aux_nets = auxiliary_networks(config, sde, geometry, progress)
    test = raw.target.sample(config.n_test, generator=torch.Generator().manual_seed(seed_for("paper1d-test", config.seed)))
    exact_aux = [AnalyticScore(d, sde) for d in preset.aux]
    samples = {("target", 0): test}
    memo = {}  # samples in the fitting coordinates by (model, weights, seed): equal weights are sampled once

    def draw(kind, scores, lam, seed):
        key = (kind, lam, seed)
        if key not in memo:
            score = scores if lam is None else FusedScore(scores, torch.tensor(lam, dtype=torch.float64))
            memo[key] = sample_1d(score, sde, config.n_samples, config.sample_steps, seed)
        return memo[key]

    fixed_seed = seed_for("paper1d-sample", config.seed)
    rows = []
    for n in tqdm(config.target_ns, disable=not progress, desc=f"target sizes ({geometry})"):
        seed = seed_for("paper1d-target", n, config.seed)
        x_raw = raw.target.sample(n, generator=torch.Generator().manual_seed(seed))
        x, loc, scale = prepare(x_raw)
        x_val = prepare(raw.target.sample(max(n // 4, 2), generator=torch.Generator().manual_seed(
            seed_for("paper1d-validation", n, config.seed))))[0]
        lam = {}
        for method in ("ism", "dsm", "sgd"):
            fit = fit_weights(aux_nets, x.float(), sde, method=method, epochs=config.sgd_epochs,
                              x_val=x_val.float() if method == "sgd" else None,
                              generator=torch.Generator().manual_seed(seed_for("paper1d-fit", method, n, config.seed)))
            lam[method] = tuple(float(v) for v in fit.lam)
        if standardized:
            lam["official"] = tuple(OFFICIAL_LAM_1D)
        exact = fit_weights(exact_aux, x.double(), sde, method="ism")
        lam_exact = tuple(float(v) for v in exact.lam)
        scratch = train_mlp_score_net(lambda x=x: x, 1, sde, config, config.scratch_steps,
                                      f"paper1d-{geometry}-scratch-n{n}", seed, progress)
        sample_seed = seed_for("paper1d-sample", n, config.seed)
        drawn = {m: draw("nets", aux_nets, lam[m], sample_seed) for m in lam if m != "official"}
        if standardized:  # n enters only through the map back: one draw serves every n
            drawn["official"] = draw("nets", aux_nets, lam["official"], fixed_seed)
        drawn["scratch"] = draw(f"scratch-n{n}", scratch, None, sample_seed)
        for i, net in enumerate(aux_nets):
            drawn[f"aux{i + 1}"] = draw(f"aux{i + 1}", net, None, fixed_seed)
        drawn["exact"] = draw("exact", exact_aux, lam["ism"], sample_seed)
        drawn["exact_fit"] = draw("exact", exact_aux, lam_exact, sample_seed)
        w1, tv = {}, {}
        for model, xs in drawn.items():
            xs = loc + scale * xs
            samples[(model, n)] = xs
            w1[model] = w1_distance(xs, test)
            tv[model] = tv_histogram(xs, raw.target, bins=config.tv_bins, bounds=(-20.0, 20.0))
        bary = GeometricMixture(preset.aux, torch.tensor(lam["ism"], dtype=torch.float64), n_grid=20001)
        w1["barycenter"], tv["barycenter"] = density_distances(bary, preset)
        rows.append(Paper1DRow(n, geometry, lam, lam_exact, w1, tv, loc, scale))
    return rows, aux_nets, samples


@functools.cache
def chapter_run(fast, geometry):
    """:func:`paper_1d_networks` at :func:`chapter_config` sizes, once per process and geometry.

    Chapter 03 and the claim ``official_geometry_low_data`` (which the chapter runs) share the result;
    the returned lists and dicts are shared too, so treat them as read-only.
    """
    return paper_1d_networks(chapter_config(fast), VESDE(25.0), geometry)


FOUR_FIT_SEEDS = (0, 1)
"""Training seeds of the auxiliary networks in :func:`chapter_four_fits` (seed 0 is section 7's run)."""


@dataclass
class FourFitRow:
    r"""One fit of :math:`\lambda` (or the oracle) with the trained networks of one training seed.

    Attributes
    ----------
    geometry : str
    seed : int
        The training seed of the auxiliary networks (``Paper1DConfig.seed``).
    fit : str
        One of ``lab.weight_schedules.FITS``, ``"exact_c"`` (the exact auxiliary scores at the weights fit (c)
        finds with them) or ``"oracle"`` (the target's exact score, same sampler).
    lam : Tensor, WeightSchedule or None
    w1 : float
        W1 (raw units) of the samples to the fresh target samples of :func:`paper_1d_networks`.
    left, left_se : float
        Share of the samples left of 0 (raw), the target's being 0.6, and its binomial standard error.
    data_term : float
        The likelihood bound's data term of the fused scores against the exact target (0 for the oracle).
    """

    geometry: str
    seed: int
    fit: str
    lam: object
    w1: float
    left: float
    left_se: float
    data_term: float


def four_fits_networks(config, sde, geometry, n, progress=False):
    r"""The four fits of :math:`\lambda` of :mod:`lab.weight_schedules` with the trained auxiliary networks.

    On the ``n`` target samples of :func:`paper_1d_networks` (the same draws, standardised by their own
    moments in the official geometry), :math:`\lambda` is fitted with the networks of
    :func:`auxiliary_networks` by (a) ISM at :math:`t = 10^{-4}`, (b) the paper's DSM, (c) the
    likelihood-weighted ISM over :math:`[10^{-3}, T]`, (d) :math:`\lambda(t)` on 8 bins
    (``lab.weight_schedules.four_fits``); each fused network, and the **oracle** (the target's exact
    score in the preset's coordinates), is sampled by the same Euler-Maruyama run (:func:`sample_1d`, one
    seed for all) and mapped back to raw coordinates; so are the exact auxiliary scores at the weights
    that fit (c) finds with them on the same samples (``"exact_c"``: what (c) reaches without auxiliary
    error). Reported per fit: W1 to the test set, the mass left
    of 0 with its binomial standard error :math:`\sqrt{\hat p(1 - \hat p)/m}`, and the data term of the
    likelihood bound (Song et al., 2021a, Thm. 1) of the fused networks against the exact target of the
    preset (population moments), on ``config.n_test`` fresh samples and common time nodes and draws
    (``lab.weight_schedules.data_term``),

    .. math:: \tfrac12 \int_{10^{-3}}^T g(t)^2\, \mathbb E_{p_t}\big\|\textstyle\sum_i \lambda_i(t)\,
              s_{\theta_i}(x, t) - \nabla\log p_t(x)\big\|^2 dt .

    Parameters
    ----------
    config : Paper1DConfig
        Its ``seed`` is the training seed.
    sde : VESDE
    geometry : {"standardized", "raw"}
    n : int
        Target sample size.
    progress : bool

    Returns
    -------
    rows : list of FourFitRow
        The fits in the order of ``FITS``, then ``"exact_c"`` and the oracle.
    samples : dict mapping each row's fit (and ``"target"``, the test set) to Tensor of shape (m, 1), raw
    """
    preset = _check_geometry(geometry)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    raw = paper_1d()
    nets = auxiliary_networks(config, sde, geometry, progress)
    x = raw.target.sample(n, generator=torch.Generator().manual_seed(seed_for("paper1d-target", n, config.seed)))
    x, loc, scale = standardize_samples(x) if geometry == "standardized" else (x, 0.0, 1.0)
    test = raw.target.sample(config.n_test, generator=torch.Generator().manual_seed(seed_for("paper1d-test", config.seed)))
    fits = ws.four_fits(nets, x.float(), sde, seed_for("paper1d-four-fits", n, config.seed))
    sample_seed = seed_for("paper1d-four-fits-sample", n, config.seed)
    bound_seed = seed_for("paper1d-four-fits-bound", config.seed)
    samples, rows, memo = {"target": test}, [], {}  # memo: equal constant weights (often a and b) run once
    exact = [AnalyticScore(d, sde) for d in preset.aux]
    lam_exact = fit_weights(exact, x, sde, weighting="likelihood", t_range=(ws.EPS, sde.T),
                            generator=torch.Generator().manual_seed(seed_for("paper1d-four-fits-exact", n, config.seed))).lam
    models = [*((fit, nets, lam) for fit, lam in fits.items()), ("exact_c", exact, lam_exact), ("oracle", None, None)]
    for fit, scores, lam in models:
        key = (fit == "exact_c", tuple(lam.tolist())) if torch.is_tensor(lam) else fit
        if key not in memo and lam is None:
            memo[key] = (preset.to_raw(sample_1d(AnalyticScore(preset.target, sde), sde, config.n_samples,
                                                 config.sample_steps, sample_seed)), 0.0)
        elif key not in memo:
            memo[key] = (loc + scale * sample_1d(FusedScore(scores, lam), sde, config.n_samples, config.sample_steps,
                                                 sample_seed),
                         ws.data_term(scores, lam, preset.target, sde, config.n_test, bound_seed,
                                      edges=fits["d"].edges, dtype=torch.float64 if scores is exact else torch.float32))
        xs, value = memo[key]
        left = float((xs < 0).double().mean())
        samples[fit] = xs
        rows.append(FourFitRow(geometry, config.seed, fit, lam, w1_distance(xs, test), left,
                               math.sqrt(left * (1 - left) / xs.shape[0]), float(value)))
    return rows, samples


@functools.cache
def chapter_four_fits(fast, geometry, seed):
    """:func:`four_fits_networks` at :func:`chapter_config` sizes with training seed ``seed``, at the largest
    target size, once per process (treat the result as read-only)."""
    config = dataclasses.replace(chapter_config(fast), seed=seed)
    return four_fits_networks(config, VESDE(25.0), geometry, max(config.target_ns))


def w1_difference(x, y, test, n_boot=200, seed=0):
    r"""The W1 gap of two sample sets to one test set and its standard error, by a paired bootstrap.

    .. math:: d = W_1(y, \text{test}) - W_1(x, \text{test}), \qquad
              \mathrm{se}(d) = \mathrm{sd}_b\big(W_1(y^{*b}, \text{test}^{*b}) - W_1(x^{*b}, \text{test}^{*b})\big)

    where every bootstrap replicate :math:`b` resamples ``x``, ``y`` and ``test`` with replacement (the
    same ``test`` resample for both). It measures the noise of the finite sample sets (the sampler's
    draws and the test set), not that of the training data or of the networks.

    Parameters
    ----------
    x, y : Tensor of shape (m, 1)
    test : Tensor of shape (k, 1)
    n_boot : int, default 200
    seed : int

    Returns
    -------
    (float, float)
        ``d`` (positive when ``x`` is closer to the test set) and its standard error.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
        raise ValueError(f"n_boot must be an int >= 2, got {n_boot!r}")
    a, b, c = (torch.as_tensor(v, dtype=torch.float64).reshape(-1).numpy() for v in (x, y, test))
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        tc = c[rng.integers(0, c.size, c.size)]
        reps.append(wasserstein_distance(b[rng.integers(0, b.size, b.size)], tc)
                    - wasserstein_distance(a[rng.integers(0, a.size, a.size)], tc))
    return float(wasserstein_distance(b, c) - wasserstein_distance(a, c)), float(np.std(reps, ddof=1))


def metric_floor(config, seed=1):
    """W1 and histogram TV of a fresh target sample of ``config.n_samples`` points: the metrics' own noise.

    Returns
    -------
    (float, float)
    """
    raw = paper_1d()
    test = raw.target.sample(config.n_test, generator=torch.Generator().manual_seed(seed_for("paper1d-test", config.seed)))
    x = raw.target.sample(config.n_samples, generator=torch.Generator().manual_seed(seed_for("paper1d-metric", seed)))
    return w1_distance(x, test), tv_histogram(x, raw.target, bins=config.tv_bins, bounds=(-20.0, 20.0))


def crossing_n(rows, fused="ism"):
    """The smallest target size at which the network trained from scratch beats fusion in W1 (None if never).

    Parameters
    ----------
    rows : list of Paper1DRow
    fused : str
        The fused model compared (a key of ``Paper1DRow.w1``).

    Returns
    -------
    int or None
    """
    for row in sorted(rows, key=lambda r: r.n):
        if row.w1["scratch"] < row.w1[fused]:
            return row.n
    return None
