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
        check_positive_int(d, "dims")
        gen = torch.Generator().manual_seed(base_seed * 100_003 + d)
        aux = random_gaussians(len(lam_star), d, gen, mean_scale)
        target = kl_barycenter(aux, lam_star)
        scores = [AnalyticScore(a, sde) for a in aux]
        for n in ns:
            check_positive_int(n, "ns")
            for seed in range(seeds):
                g = torch.Generator().manual_seed(base_seed * 100_003 + 7919 * d + 104_729 * n + seed)
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
