r"""Experiment runners shared by the book's notebooks and the theory checks.

The notebooks and the claim modules call the same functions, so a number in
the text and the number a check asserts come from one piece of code.

* :func:`dimension_free_tv`: the dimension-free TV experiment (Liu et al.,
  2025, Sec. 4): ScoreFusion's fitted barycenter against baselines that learn
  the target alone, over dimensions and sample sizes.
* :func:`gaussian_tv`: total variation between two Gaussians by Monte Carlo in
  a canonical frame where each density costs O(d) per point.
* :func:`gaussian_baseline`: the Gaussian maximum-likelihood fit, with
  Ledoit-Wolf shrinkage when there are no more samples than dimensions.
"""

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from tqdm.auto import tqdm

from ._checks import check_positive_int, check_simplex
from .barycenter import kl_barycenter
from .distributions import Gaussian
from .fusion import fit_weights
from .scores import AnalyticScore
from .sde import VESDE


def random_spd(dim, generator, low=0.5, high=2.0):
    r"""Random symmetric positive definite matrix with eigenvalues uniform in ``[low, high]``.

    .. math:: S = Q \operatorname{diag}(e) Q^\top,\quad Q \text{ Haar-orthogonal},\ e_j \sim U[\mathrm{low}, \mathrm{high}]

    Parameters
    ----------
    dim : int
    generator : torch.Generator
    low, high : float, default 0.5 and 2.0

    Returns
    -------
    Tensor of shape (dim, dim), float64
    """
    check_positive_int(dim, "dim")
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low!r}, high={high!r}")
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # Haar measure
    evals = low + (high - low) * torch.rand(dim, generator=generator, dtype=torch.float64)
    cov = (q * evals) @ q.T
    return 0.5 * (cov + cov.T)


def random_gaussians(k, dim, generator, mean_scale=1.0, low=0.5, high=2.0):
    r"""``k`` random Gaussians :math:`\mathcal N(m_i, S_i)`, :math:`m_i \sim \mathcal N(0, c^2 I)`, spectra in ``[low, high]``.

    Parameters
    ----------
    k, dim : int
    generator : torch.Generator
    mean_scale : float, default 1.0
        The standard deviation ``c`` of every mean coordinate.
    low, high : float
        Range of the covariance eigenvalues.

    Returns
    -------
    list of Gaussian (float64)
    """
    check_positive_int(k, "k")
    return [Gaussian(mean_scale * torch.randn(dim, generator=generator, dtype=torch.float64),
                     random_spd(dim, generator, low, high)) for _ in range(k)]


def gaussian_tv(p, q, n_samples=200_000, generator=None):
    r"""Total variation between two Gaussians by Monte Carlo in a canonical frame.

    TV is invariant under invertible affine maps. Whitening by ``p`` and
    rotating by the eigenvectors of the whitened covariance of ``q`` gives

    .. math::

        \mathrm{TV}(p, q) = \mathrm{TV}\big(\mathcal N(0, I),\ \mathcal N(\mu, \operatorname{diag}(s))\big),
        \quad \mu = V^\top W (m_q - m_p),\ W S_q W^\top = V \operatorname{diag}(s) V^\top,\
        W = S_p^{-1/2},

    after which both log-densities cost O(d) per point. The estimator is the
    one of :func:`scorefusion.metrics.tv_distance`,
    :math:`\mathbb E_{x\sim (p+q)/2}\,|\tanh(\tfrac12(\log p - \log q))|`,
    half the draws from each distribution; its integrand lies in [0, 1].

    Parameters
    ----------
    p, q : Gaussian of one dimension d
    n_samples : int, default 200000
    generator : torch.Generator, optional

    Returns
    -------
    (float, float)
        The estimate and its standard error.
    """
    for name, dist in (("p", p), ("q", q)):
        if not isinstance(dist, Gaussian):
            raise TypeError(f"{name} must be a Gaussian, got {type(dist).__name__}")
    if p.dim != q.dim:
        raise ValueError(f"p and q must have the same dimension, got {p.dim} and {q.dim}")
    check_positive_int(n_samples, "n_samples")
    evals, evecs = p._evals[0].double(), p._evecs[0].double()  # eigendecomposition stored by Gaussian
    w = evecs.T / evals.sqrt()[:, None]  # S_p^{-1/2} up to a rotation, which TV ignores
    cov_q = w @ q.cov.double() @ w.T
    s, v = torch.linalg.eigh(0.5 * (cov_q + cov_q.T))
    mu = v.T @ (w @ (q.mean.double() - p.mean.double()))
    half = n_samples // 2
    z = torch.randn(n_samples, p.dim, generator=generator, dtype=torch.float64)
    x = torch.cat([z[:half], mu + s.sqrt() * z[half:]])
    log_p = -0.5 * (x**2).sum(1)
    log_q = -0.5 * (((x - mu) ** 2) / s).sum(1) - 0.5 * torch.log(s).sum()
    ratio = torch.tanh(0.5 * (log_p - log_q)).abs()
    return float(ratio.mean()), float(ratio.std() / math.sqrt(n_samples))


def sample_gaussian(dist, n, generator=None):
    r"""Draw ``n`` points of a Gaussian as :math:`m + (z \odot e^{1/2}) U^\top`, :math:`S = U \operatorname{diag}(e) U^\top`.

    Same law as ``Gaussian.sample``, in O(n d^2) time and O(n d) memory
    (the mixture sampler gathers one d x d eigenbasis per point, which is
    O(n d^2) memory: 2 GB at n = 1024, d = 512).

    Parameters
    ----------
    dist : Gaussian
    n : int
    generator : torch.Generator, optional

    Returns
    -------
    Tensor of shape (n, d)
    """
    if not isinstance(dist, Gaussian):
        raise TypeError(f"dist must be a Gaussian, got {type(dist).__name__}")
    check_positive_int(n, "n")
    z = torch.randn(n, dist.dim, generator=generator, dtype=dist.dtype)
    return dist.mean + (z * dist._evals[0].sqrt()) @ dist._evecs[0].T


def gaussian_baseline(x):
    r"""Gaussian fitted to samples alone: maximum likelihood, or Ledoit-Wolf when ``n <= d``.

    .. math::

        \hat m = \bar x, \qquad
        \hat S = \begin{cases} \frac1n \sum_j (x_j - \bar x)(x_j - \bar x)^\top & n > d \\
        (1 - \rho) \hat S_{\mathrm{MLE}} + \rho \frac{\operatorname{tr}\hat S_{\mathrm{MLE}}}{d} I & n \le d \end{cases}

    with the shrinkage :math:`\rho` of Ledoit and Wolf (2004)
    (``sklearn.covariance.LedoitWolf``), because the sample covariance is
    singular when ``n <= d``.

    Parameters
    ----------
    x : Tensor of shape (n, d), n >= 2

    Returns
    -------
    Gaussian (float64)
    """
    if not torch.is_tensor(x) or x.ndim != 2:
        raise ValueError(f"x must be a tensor of shape (n, d), got {getattr(x, 'shape', type(x))}")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"x must hold at least 2 samples, got {n}")
    data = x.double().numpy()
    if n <= d:
        est = LedoitWolf().fit(data)
        cov, mean = est.covariance_, est.location_
    else:
        mean = data.mean(0)
        cov = np.cov(data, rowvar=False, bias=True).reshape(d, d)
    cov = 0.5 * (cov + cov.T)
    return Gaussian(torch.as_tensor(mean), torch.as_tensor(cov))


def dimension_free_setup(dim, lam_star=(0.5, 0.3, 0.2), mean_scale=1.0, base_seed=0):
    r"""The auxiliaries and target of :func:`dimension_free_tv` in one dimension ``dim``.

    .. math:: p_i = \mathcal N(m_i, S_i), \qquad q = p_{\lambda^*} = \text{KL barycenter at } \lambda^*

    Returns
    -------
    aux : list of K Gaussian
    target : Gaussian
    """
    check_positive_int(dim, "dim")
    lam_star = torch.as_tensor(lam_star, dtype=torch.float64)
    gen = torch.Generator().manual_seed(base_seed * 100_003 + dim)
    aux = random_gaussians(len(lam_star), dim, gen, mean_scale)
    return aux, kl_barycenter(aux, lam_star)


def _sample_seed(base_seed, dim, n, seed):
    return base_seed * 100_003 + 7919 * dim + 104_729 * n + seed


@dataclass
class TVRecord:
    """One cell of the dimension-free experiment: TV of one estimate of the target."""

    dim: int
    n: int
    seed: int
    method: str
    tv: float
    stderr: float
    lam: tuple | None = None


def dimension_free_tv(dims, ns, seeds, lam_star=(0.5, 0.3, 0.2), mean_scale=1.0, n_mc=100_000, ism_t=1e-4,
                      sde=None, base_seed=0, progress=False):
    r"""TV between the target and ScoreFusion's fitted barycenter, and a baseline, over ``d`` and ``n``.

    For each dimension ``d``: ``K = len(lam_star)`` random auxiliary Gaussians
    (means :math:`\mathcal N(0, c^2 I)`, covariance eigenvalues in [0.5, 2]),
    the target :math:`p_{\lambda^*}` = their KL barycenter at ``lam_star``.
    For each ``n`` and seed: ``n`` target samples;

    * ``"scorefusion"``: :math:`\hat\lambda` by implicit score matching of the
      fused exact auxiliary scores at time ``ism_t``
      (:func:`scorefusion.fit_weights`), model :math:`p_{\hat\lambda}`
      (:func:`scorefusion.kl_barycenter`);
    * ``"gaussian"``: :func:`gaussian_baseline` (MLE, Ledoit-Wolf if ``n <= d``);

    and :math:`\mathrm{TV}(p_{\lambda^*}, \cdot)` by :func:`gaussian_tv`.

    .. math:: \mathrm{TV}(p_{\lambda^*}, p_{\hat\lambda}) = O_P(n^{-1/2}) \text{ with no } d \text{ in the constant}

    (Liu et al., 2025, Sec. 4: the dimension-free sample complexity).

    Parameters
    ----------
    dims, ns : sequences of int
    seeds : int
        Repetitions per (d, n).
    lam_star : sequence of K floats on the simplex
    mean_scale : float, default 1.0
    n_mc : int, default 100000
        Monte-Carlo draws per TV.
    ism_t : float, default 1e-4
    sde : VESDE or VPSDE, optional
        Default ``VESDE(25.0)``.
    base_seed : int, default 0
    progress : bool, default False

    Returns
    -------
    list of TVRecord
    """
    check_positive_int(seeds, "seeds")
    lam_star = check_simplex(torch.as_tensor(lam_star, dtype=torch.float64), len(lam_star), "lam_star")
    sde = sde or VESDE(25.0)
    records = []
    cells = [(d, n) for d in dims for n in ns]
    bar = tqdm(total=len(cells) * seeds, disable=not progress, desc="dimension-free TV")
    for d in dims:
        aux, target = dimension_free_setup(d, lam_star, mean_scale, base_seed)
        scores = [AnalyticScore(a, sde) for a in aux]
        for n in ns:
            check_positive_int(n, "ns")
            for seed in range(seeds):
                g = torch.Generator().manual_seed(_sample_seed(base_seed, d, n, seed))
                x0 = sample_gaussian(target, n, generator=g)
                fit = fit_weights(scores, x0, sde, method="ism", t=ism_t)
                fused = kl_barycenter(aux, fit.lam)
                tv, se = gaussian_tv(target, fused, n_mc, g)
                records.append(TVRecord(d, n, seed, "scorefusion", tv, se, tuple(fit.lam.tolist())))
                tv, se = gaussian_tv(target, gaussian_baseline(x0), n_mc, g)
                records.append(TVRecord(d, n, seed, "gaussian", tv, se))
                bar.update(1)
    bar.close()
    return records


def summarize_tv(records, method):
    r"""Mean TV over seeds and its standard error, per (d, n), for one method.

    .. math:: \overline{\mathrm{TV}} = \frac1S \sum_s \mathrm{TV}_s, \qquad
              \mathrm{se} = \sqrt{\frac{\widehat{\operatorname{Var}}_s(\mathrm{TV}_s)}{S}
              + \frac{1}{S^2}\sum_s \mathrm{se}_s^2}

    (spread over seeds plus the Monte-Carlo error of each TV).

    Parameters
    ----------
    records : list of TVRecord
    method : str

    Returns
    -------
    dict mapping (d, n) to (mean, stderr)
    """
    groups = {}
    for r in records:
        if r.method == method:
            groups.setdefault((r.dim, r.n), []).append(r)
    if not groups:
        raise ValueError(f"no records for method {method!r}")
    out = {}
    for key, rs in sorted(groups.items()):
        tvs = np.array([r.tv for r in rs])
        mc = np.array([r.stderr for r in rs])
        spread = tvs.var(ddof=1) / len(tvs) if len(tvs) > 1 else 0.0
        out[key] = (float(tvs.mean()), float(np.sqrt(spread + (mc**2).sum() / len(tvs) ** 2)))
    return out


def loglog_slope(ns, values):
    r"""Least-squares slope of :math:`\log v` against :math:`\log n`.

    Parameters
    ----------
    ns, values : sequences of positive floats of one length (at least 2)

    Returns
    -------
    float
    """
    ns, values = np.asarray(ns, dtype=float), np.asarray(values, dtype=float)
    if ns.shape != values.shape or ns.size < 2 or (ns <= 0).any() or (values <= 0).any():
        raise ValueError("ns and values must be positive and of one length >= 2")
    return float(np.polyfit(np.log(ns), np.log(values), 1)[0])


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
    from scipy.optimize import minimize, minimize_scalar

    from .barycenter import GeometricMixture

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
    from .losses import perturb

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
    lr : float
    ema : float
        Decay of the weights' exponential moving average (lower it for short runs).
    hidden, depth : int
        ``ScoreMLP`` width and depth.
    n_samples : int
        Samples drawn from every model for W1.
    sample_steps : int
        Euler-Maruyama steps.
    n_test : int
        Fresh target samples W1 is measured against.
    seed : int
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


def _epochs(steps, n, batch_size):
    return max(1, math.ceil(steps / math.ceil(n / min(batch_size, n))))


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
    from .cache import cached_model
    from .nets import ScoreMLP
    from .train import train_score_model

    key = {"sde": repr(sde), "dim": dim, "hidden": config.hidden, "depth": config.depth, "steps": steps,
           "batch_size": config.batch_size, "lr": config.lr, "ema": config.ema, "seed": seed, "name": name, "version": 1}

    def build():
        torch.manual_seed(seed)  # the initial weights
        return ScoreMLP(sde, dim, hidden=config.hidden, depth=config.depth)

    def fit(model):
        x = data()
        res = train_score_model(model, x.float(), sde, epochs=_epochs(steps, x.shape[0], config.batch_size),
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
    from . import sampling

    with torch.no_grad():
        x = sampling.euler_maruyama(score, sde, (n, 1), n_steps=n_steps,
                                    generator=torch.Generator().manual_seed(seed))
    return x.detach().double()


@dataclass
class Paper1DRow:
    """One target size of the 1-D experiment: the fitted weights and W1 of each model to the target.

    ``lam`` is fitted with the trained auxiliary networks, ``lam_exact`` with the exact auxiliary scores
    on the same samples.
    """

    n: int
    lam: tuple
    lam_exact: tuple
    w1_fusion: float
    w1_scratch: float
    w1_barycenter: float


def paper_1d_networks(config=None, sde=None, progress=False):
    r"""The paper's 1-D experiment: ScoreFusion of trained auxiliaries vs a network trained from scratch.

    Auxiliary ``ScoreMLP`` networks are trained on ``config.aux_n`` samples of
    each auxiliary mixture of :func:`scorefusion.data.paper_1d`. For each
    target size ``n``: :math:`\hat\lambda` by ISM of the fused networks on the
    ``n`` target samples (exact divergences by autograd in 1-D), samples of
    the fused score :math:`\sum_i \hat\lambda_i s_{\theta_i}` by the reverse
    SDE, samples of a network trained from scratch on the same ``n`` samples,
    and the Wasserstein-1 distance of each to fresh target samples
    (Liu et al., 2025, Sec. 5.1). ``w1_barycenter`` is the W1 of the exact
    barycenter :math:`p_{\hat\lambda}` of the true auxiliaries (no network
    error), for reference.

    .. math:: W_1\Big(\mathrm{Law}\big(\text{reverse SDE with } \textstyle\sum_i \hat\lambda_i s_{\theta_i}\big),\ q\Big)
              \quad\text{vs}\quad W_1\big(\mathrm{Law}(\text{reverse SDE with } s_{\theta_n}),\ q\big)

    Parameters
    ----------
    config : Paper1DConfig, optional
    sde : VESDE, optional
        Default ``VESDE(25.0)``.
    progress : bool

    Returns
    -------
    rows : list of Paper1DRow
    aux_nets : list of nets.ScoreMLP
    samples : dict mapping (name, n) to Tensor of shape (n_samples, 1)
        ``("fusion", n)``, ``("scratch", n)`` and ``("target", 0)``.
    """
    from .barycenter import GeometricMixture
    from .data import paper_1d
    from .metrics import w1_distance
    from .scores import FusedScore

    config = config or Paper1DConfig()
    sde = sde or VESDE(25.0)
    preset = paper_1d()
    aux_nets = []
    for i, dist in enumerate(preset.aux):
        seed = config.seed * 1000 + i
        aux_nets.append(train_mlp_score_net(
            lambda dist=dist, seed=seed: dist.sample(config.aux_n, generator=torch.Generator().manual_seed(seed)),
            1, sde, config, config.aux_steps, f"paper1d-aux{i}-n{config.aux_n}", seed, progress))
    test = preset.target.sample(config.n_test, generator=torch.Generator().manual_seed(config.seed * 1000 + 99))
    samples = {("target", 0): test}
    rows = []
    for n in tqdm(config.target_ns, disable=not progress, desc="target sizes"):
        seed = config.seed * 1000 + 100 + n

        def target_data(n=n, seed=seed):
            return preset.target.sample(n, generator=torch.Generator().manual_seed(seed))

        x = target_data().float()
        fit = fit_weights(aux_nets, x, sde, method="ism")
        lam = tuple(round(float(v), 6) for v in fit.lam)
        exact = fit_weights([AnalyticScore(d, sde) for d in preset.aux], x.double(), sde, method="ism")
        lam_exact = tuple(round(float(v), 6) for v in exact.lam)
        fused = FusedScore(aux_nets, torch.tensor(lam, dtype=torch.float64))
        scratch = train_mlp_score_net(target_data, 1, sde, config, config.scratch_steps, f"paper1d-scratch-n{n}", seed,
                                     progress)
        fused_x = sample_1d(fused, sde, config.n_samples, config.sample_steps, seed)
        scratch_x = sample_1d(scratch, sde, config.n_samples, config.sample_steps, seed)
        bary_x = GeometricMixture(preset.aux, torch.tensor(lam, dtype=torch.float64), n_grid=4001).sample(
            config.n_samples, generator=torch.Generator().manual_seed(seed))
        samples[("fusion", n)] = fused_x
        samples[("scratch", n)] = scratch_x
        rows.append(Paper1DRow(n, lam, lam_exact, w1_distance(fused_x, test), w1_distance(scratch_x, test),
                               w1_distance(bary_x, test)))
    return rows, aux_nets, samples


def diffusion_tv(score, target, sde, n_eval=2000, seed=0, **ode_kwargs):
    r"""TV between a closed-form target and a diffusion model, from the model's ODE likelihood.

    .. math::

        \mathrm{TV}(q, p_\theta) = \int (q - p_\theta)_+ \,dx
            = \mathbb E_{y \sim q}\Big[\big(1 - p_\theta(y) / q(y)\big)_+\Big],

    with :math:`\log p_\theta` from the probability-flow ODE
    (``sampling.log_likelihood``) at ``n_eval`` target draws. The integrand
    lies in [0, 1], so the standard error is honest; the bias is that of the
    ODE's likelihood (its solver tolerance and its time cut-off).

    Parameters
    ----------
    score : score callable (a trained network)
    target : Gaussian or GaussianMixture
    sde : VESDE or VPSDE
    n_eval : int, default 2000
    seed : int
    **ode_kwargs
        Passed to ``sampling.log_likelihood``.

    Returns
    -------
    (float, float)
        The estimate and its standard error.
    """
    from . import sampling

    check_positive_int(n_eval, "n_eval")
    if isinstance(score, torch.nn.Module):  # the ODE runs in float64
        score = copy.deepcopy(score).double()
    g = torch.Generator().manual_seed(seed)
    y = target.sample(n_eval, generator=g)
    log_p = torch.as_tensor(sampling.log_likelihood(score, y.double(), sde, generator=g, **ode_kwargs)).double()
    vals = (1.0 - torch.exp(log_p.reshape(-1) - target.log_prob(y).double())).clamp_min(0.0)
    return float(vals.mean()), float(vals.std() / math.sqrt(n_eval))


def diffusion_baseline_tv(ns, steps, dim=2, lam_star=(0.5, 0.3, 0.2), base_seed=0, seed=0, n_eval=2000,
                          config=None, sde=None, progress=False):
    r"""TV of a diffusion model trained from scratch on the target samples of :func:`dimension_free_tv`.

    For each ``n``, a ``ScoreMLP`` is trained by DSM on the same ``n`` target
    samples that :func:`dimension_free_tv` draws for (``dim``, ``n``, ``seed``),
    cached on disk, and its TV to the target is measured with
    :func:`diffusion_tv` (probability-flow likelihood at ``n_eval`` target draws):

    .. math:: \mathrm{TV}(q, p_\theta) = \mathbb E_{y\sim q}\big[(1 - p_\theta(y)/q(y))_+\big]

    Parameters
    ----------
    ns : sequence of int
    steps : int
        Optimiser steps per network.
    dim : int, default 2
    lam_star, base_seed, seed : as in :func:`dimension_free_tv`
    n_eval : int, default 2000
    config : Paper1DConfig, optional
        Network and optimiser settings.
    sde : VESDE, optional
    progress : bool

    Returns
    -------
    dict mapping n to (tv, stderr)
    """
    config = config or Paper1DConfig()
    sde = sde or VESDE(25.0)
    _, target = dimension_free_setup(dim, lam_star, 1.0, base_seed)
    out = {}
    for n in ns:
        sample_seed = _sample_seed(base_seed, dim, n, seed)

        def data(n=n, sample_seed=sample_seed):
            return sample_gaussian(target, n, generator=torch.Generator().manual_seed(sample_seed))

        net = train_mlp_score_net(data, dim, sde, config, steps, f"dimfree-d{dim}-n{n}", sample_seed, progress)
        out[n] = diffusion_tv(net, target, sde, n_eval=n_eval, seed=sample_seed)
    return out
