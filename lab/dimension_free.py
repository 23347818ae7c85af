r"""The dimension-free TV experiment of chapter 05 (Liu et al., 2025, Sec. 4).

ScoreFusion's fitted barycenter against baselines that learn the target alone,
over dimensions and sample sizes; the notebook and the claims
``dimension_free_tv`` and ``baseline_tv_grows_with_d`` call the same functions.
"""

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from scorefusion import VESDE, AnalyticScore, fit_weights, kl_barycenter, kl_gaussian, sampling
from scorefusion._checks import check_positive_int, check_simplex
from scorefusion.distributions import sample_gaussian
from scorefusion.metrics import gaussian_tv

from .gaussians import gaussian_baseline, random_gaussians
from .paper_1d import Paper1DConfig, train_mlp_score_net


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


_BASELINE_STREAM = 2**40  # offset of the seeds of the baseline's TV draws, away from every sample seed


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


METHODS = ("scorefusion", "gaussian")


def dimension_free_tv(dims, ns, seeds, lam_star=(0.5, 0.3, 0.2), mean_scale=1.0, n_mc=100_000, ism_t=1e-4,
                      sde=None, base_seed=0, progress=False, methods=METHODS):
    r"""TV between the target and ScoreFusion's fitted barycenter, and a baseline, over ``d`` and ``n``.

    For each dimension ``d``: ``K = len(lam_star)`` random auxiliary Gaussians
    (means :math:`\mathcal N(0, c^2 I)`, covariance eigenvalues in [0.5, 2]),
    the target :math:`p_{\lambda^*}` = their KL barycenter at ``lam_star``.
    For each ``n`` and seed: ``n`` target samples;

    * ``"scorefusion"``: :math:`\hat\lambda` by implicit score matching of the
      fused exact auxiliary scores at time ``ism_t``
      (:func:`scorefusion.fit_weights`), model :math:`p_{\hat\lambda}`
      (:func:`scorefusion.kl_barycenter`);
    * ``"gaussian"``: :func:`gaussian_baseline` (sample mean, Ledoit-Wolf covariance);

    (those of them named in ``methods``) and :math:`\mathrm{TV}(p_{\lambda^*}, \cdot)` by :func:`gaussian_tv`.

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
    methods : sequence of str, default ``METHODS``
        A non-empty subset of ``("scorefusion", "gaussian")``. Each record
        is the same whichever others are computed: the baseline's TV draws
        from a generator of its own.

    Returns
    -------
    list of TVRecord
    """
    check_positive_int(seeds, "seeds")
    methods = tuple(methods) if not isinstance(methods, str) else (methods,)
    if not methods or any(m not in METHODS for m in methods):
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {methods!r}")
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
                if "scorefusion" in methods:
                    fit = fit_weights(scores, x0, sde, method="ism", t=ism_t)
                    fused = kl_barycenter(aux, fit.lam)
                    tv, se = gaussian_tv(target, fused, n_mc, g)
                    records.append(TVRecord(d, n, seed, "scorefusion", tv, se, tuple(fit.lam.tolist())))
                if "gaussian" in methods:
                    g_base = torch.Generator().manual_seed(_sample_seed(base_seed, d, n, seed) + _BASELINE_STREAM)
                    tv, se = gaussian_tv(target, gaussian_baseline(x0), n_mc, g_base)
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


def scaled_kl(records, lam_star=(0.5, 0.3, 0.2), mean_scale=1.0, base_seed=0):
    r""":math:`2n\,\mathrm{KL}(p_{\lambda^*} \| p_{\hat\lambda})` of ScoreFusion's fits, mean and standard error per (d, n).

    For an efficient estimator of the :math:`K - 1` free weights (maximum likelihood),

    .. math:: 2n\,\mathrm{KL}(p_{\lambda^*} \| p_{\hat\lambda}) \to \chi^2_{K-1}, \qquad
              \mathbb E \to K - 1,

    whatever the dimension; for ISM's fit the limit is :math:`\operatorname{tr}(I\Sigma) \ge K - 1`
    (:math:`I` the Fisher information, :math:`\Sigma/n` the fit's covariance), which this measures.

    Parameters
    ----------
    records : list of TVRecord
        Those of ``"scorefusion"`` are used; ``lam_star``, ``mean_scale`` and
        ``base_seed`` must be those of the :func:`dimension_free_tv` call that made them.
    lam_star, mean_scale, base_seed
        As in :func:`dimension_free_tv`.

    Returns
    -------
    dict mapping (d, n) to (mean, stderr)
    """
    rs = [r for r in records if r.method == "scorefusion"]
    if not rs:
        raise ValueError("no records for method 'scorefusion'")
    setups, groups = {}, {}
    for r in rs:
        if r.dim not in setups:
            setups[r.dim] = dimension_free_setup(r.dim, lam_star, mean_scale, base_seed)
        aux, target = setups[r.dim]
        fitted = kl_barycenter(aux, torch.tensor(r.lam, dtype=torch.float64))
        groups.setdefault((r.dim, r.n), []).append(2 * r.n * float(kl_gaussian(target, fitted)))
    out = {}
    for key, values in sorted(groups.items()):
        values = np.array(values)
        se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
        out[key] = (float(values.mean()), float(se))
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


def dimension_slope(records, method):
    r"""Slope of :math:`\log \mathrm{TV}` in :math:`\log d`, pooled over ``n`` and seeds, and its standard error.

    Least squares over every record of ``method``, with one intercept per
    ``n`` (the level of each sample size) and one slope :math:`b` shared by all:

    .. math:: \log \mathrm{TV}_{d, n, s} = a_n + b \log d + e_{d, n, s}

    :math:`b = 0` is a TV that does not depend on :math:`d`; the standard error
    is the usual one of ordinary least squares.

    Parameters
    ----------
    records : list of TVRecord
        At least two dimensions, and more records than ``n`` values plus one.
    method : str

    Returns
    -------
    (float, float)
        The slope and its standard error.
    """
    rs = [r for r in records if r.method == method]
    if not rs:
        raise ValueError(f"no records for method {method!r}")
    ns = sorted({r.n for r in rs})
    if len({r.dim for r in rs}) < 2 or len(rs) <= len(ns) + 1:
        raise ValueError("records must span at least two dimensions and hold more records than n values plus one")
    if any(r.tv <= 0 for r in rs):
        raise ValueError("every TV must be positive to take its log")
    design = np.array([[float(r.n == n) for n in ns] + [math.log(r.dim)] for r in rs])
    y = np.log([r.tv for r in rs])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    var = resid @ resid / (len(y) - design.shape[1]) * np.linalg.inv(design.T @ design)[-1, -1]
    return float(coef[-1]), float(math.sqrt(var))


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
