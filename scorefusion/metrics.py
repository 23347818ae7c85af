"""Distances between distributions: total variation, Wasserstein-1, KL."""

import math

import numpy as np
import ot
import torch
from scipy.stats import wasserstein_distance

from ._checks import as_float_tensor, check_positive_int
from .barycenter import GeometricMixture, grid, integrate_on_grid, support_box
from .distributions import Gaussian, GaussianMixture


def _check_n_samples(n_samples, with_stderr):
    """``n_samples`` a positive int, at least 2 when a standard error is asked for."""
    check_positive_int(n_samples, "n_samples")
    if with_stderr and n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 for a standard error, got {n_samples}")
    return n_samples


MIN_GRID = 101
"""Fewest grid points per axis :func:`tv_distance` accepts (at 51 points, two unit Gaussians 3 apart are off by 0.02)."""

GRID_MASS_TOL = 1e-3
"""Largest error of the grid's mass of p or q that :func:`tv_distance` accepts before calling the grid too coarse."""


def _check_distribution(dist, name):
    if not isinstance(dist, (GaussianMixture, GeometricMixture)):
        raise TypeError(f"{name} must be a Gaussian, GaussianMixture or GeometricMixture, got {type(dist).__name__}")
    return dist


def _check_pair(p, q):
    """``p`` and ``q`` distributions with known densities, of one dimension."""
    _check_distribution(p, "p")
    _check_distribution(q, "q")
    _check_same_dim(p, q)


def _check_same_dim(p, q):
    if p.dim != q.dim:
        raise ValueError(f"p and q must have the same dimension, got {p.dim} and {q.dim}")


def _mean_and_stderr(values):
    """The Monte-Carlo estimate ``mean(values)`` and its standard error ``std(values) / sqrt(n)``, as floats."""
    return float(values.mean()), float(values.std() / math.sqrt(values.shape[0]))


def _box(dist):
    return support_box(dist.dists if isinstance(dist, GeometricMixture) else [dist])


def tv_distance(p, q, n_grid=None, n_samples=100_000, generator=None, return_stderr=False):
    r"""Total variation distance between two distributions with known densities.

    .. math:: \mathrm{TV}(p, q) = \tfrac12 \int |p(x) - q(x)|\,dx
              = \mathbb E_{x \sim m}\!\left[\frac{|p(x) - q(x)|}{p(x) + q(x)}\right],
              \quad m = \tfrac12(p + q).

    In 1-2 dimensions the integral is computed by Simpson's rule on a grid
    covering both; above, by Monte Carlo with the second form (half the draws
    from each distribution), whose integrand lies in [0, 1].

    The grid must resolve both densities: when it integrates ``p`` or ``q``
    to a mass off 1 by more than ``GRID_MASS_TOL`` (1e-3), a component much
    narrower than the box (12 standard deviations of the widest) falls
    between grid points, and a ValueError asks for a larger ``n_grid``.

    Parameters
    ----------
    p, q : Gaussian, GaussianMixture or GeometricMixture of one dimension d
    n_grid : int, optional
        Grid points per axis, at least ``MIN_GRID`` (101); default 20001 in
        1-D, 801 in 2-D.
    n_samples : int, default 100000
        Monte-Carlo draws above 2 dimensions, at least 2.
    generator : torch.Generator, optional
    return_stderr : bool, default False
        Also return the standard error (0 for quadrature).

    Returns
    -------
    float, or (float, float) with ``return_stderr``
    """
    _check_pair(p, q)
    if p.dim <= 2:
        n_grid = check_positive_int((20001 if p.dim == 1 else 801) if n_grid is None else n_grid, "n_grid")
        if n_grid < MIN_GRID:
            raise ValueError(f"n_grid must be at least {MIN_GRID} points per axis, got {n_grid}")
        (lo_p, hi_p), (lo_q, hi_q) = _box(p), _box(q)
        axes, points = grid(torch.minimum(lo_p, lo_q), torch.maximum(hi_p, hi_q), n_grid)
        dens_p, dens_q = torch.exp(p.log_prob(points).double()), torch.exp(q.log_prob(points).double())
        for name, dens in (("p", dens_p), ("q", dens_q)):
            mass = integrate_on_grid(dens, axes)
            if abs(mass - 1.0) > GRID_MASS_TOL:
                raise ValueError(f"n_grid={n_grid} is too coarse: the grid integrates {name} to {mass:.6g}, "
                                 f"not 1 within {GRID_MASS_TOL}; use a larger n_grid")
        value, stderr = 0.5 * integrate_on_grid((dens_p - dens_q).abs(), axes), 0.0
    else:
        _check_n_samples(n_samples, True)
        half = n_samples // 2
        x = torch.cat([p.sample(half, generator=generator), q.sample(n_samples - half, generator=generator)])
        lp, lq = p.log_prob(x).double(), q.log_prob(x).double()
        value, stderr = _mean_and_stderr(torch.tanh(0.5 * (lp - lq)).abs())  # |p - q| / (p + q), stably
    return (value, stderr) if return_stderr else value


def gaussian_tv(p, q, n_samples=200_000, generator=None):
    r"""Total variation between two Gaussians by Monte Carlo in a canonical frame, in any dimension.

    TV is invariant under invertible affine maps. Whitening by ``p`` and
    rotating by the eigenvectors of the whitened covariance of ``q`` gives

    .. math::

        \mathrm{TV}(p, q) = \mathrm{TV}\big(\mathcal N(0, I),\ \mathcal N(\mu, \operatorname{diag}(s))\big),
        \quad \mu = V^\top W (m_q - m_p),\ W S_q W^\top = V \operatorname{diag}(s) V^\top,\
        W = S_p^{-1/2},

    after which both log-densities cost O(d) per point. The estimator is the
    one of :func:`tv_distance`,
    :math:`\mathbb E_{x\sim (p+q)/2}\,|\tanh(\tfrac12(\log p - \log q))|`,
    half the draws from each distribution; its integrand lies in [0, 1].

    Parameters
    ----------
    p, q : Gaussian of one dimension d
    n_samples : int, default 200000
        At least 2 (the standard error needs two draws).
    generator : torch.Generator, optional

    Returns
    -------
    (float, float)
        The estimate and its standard error.
    """
    for name, dist in (("p", p), ("q", q)):
        if not isinstance(dist, Gaussian):
            raise TypeError(f"{name} must be a Gaussian, got {type(dist).__name__}")
    _check_same_dim(p, q)
    _check_n_samples(n_samples, True)
    evals, evecs = (v.double() for v in p.cov_eigh)
    w = evecs.T / evals.sqrt()[:, None]  # S_p^{-1/2} up to a rotation, which TV ignores
    cov_q = w @ q.cov.double() @ w.T
    s, v = torch.linalg.eigh(0.5 * (cov_q + cov_q.T))
    mu = v.T @ (w @ (q.mean.double() - p.mean.double()))
    half = n_samples // 2
    z = torch.randn(n_samples, p.dim, generator=generator, dtype=torch.float64)
    x = torch.cat([z[:half], mu + s.sqrt() * z[half:]])
    log_p = -0.5 * (x**2).sum(1)
    log_q = -0.5 * (((x - mu) ** 2) / s).sum(1) - 0.5 * torch.log(s).sum()
    return _mean_and_stderr(torch.tanh(0.5 * (log_p - log_q)).abs())


def tv_histogram(x, q, bins=200, bounds=None):
    r"""Total variation between 1-D samples and a density, on a histogram with one more cell for the outside.

    .. math:: \widehat{\mathrm{TV}} = \tfrac12 \sum_j \left|\frac{N_j}{N} - \int_{B_j} q\right|
              + \tfrac12 \left|\frac{N_\mathrm{out}}{N} - \int_{\mathrm{out}} q\right|

    where the bins :math:`B_j` split the range and "out" is everything outside
    it, so that mass of ``x`` or of ``q`` beyond the range counts too.

    Parameters
    ----------
    x : Tensor of shape (N, 1)
    q : Gaussian, GaussianMixture or GeometricMixture in one dimension
    bins : int, default 200
    bounds : (float, float), optional
        Histogram range, lower < upper; default the range of ``x`` padded by 5%.

    Returns
    -------
    float
        Biased upwards by the histogram's sampling noise, about
        ``sqrt(bins / (2 pi N))`` for smooth densities.
    """
    x = as_float_tensor(x, "x", dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != 1 or x.shape[0] == 0:
        raise ValueError(f"tv_histogram is one-dimensional: x must have shape (N, 1), N >= 1, got {tuple(x.shape)}")
    _check_distribution(q, "q")
    if q.dim != 1:
        raise ValueError(f"tv_histogram is one-dimensional: q must have dimension 1, got {q.dim}")
    check_positive_int(bins, "bins")
    if bounds is None:
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            raise ValueError(f"x has a single value ({lo}); give bounds for the histogram")
        pad = 0.05 * (hi - lo)
    else:
        try:
            lo, hi = (float(v) for v in bounds)
        except (TypeError, ValueError):
            raise TypeError(f"bounds must be a pair of numbers (lower, upper), got {bounds!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"bounds must be finite with lower < upper, got {bounds!r}")
        pad = 0.0
    edges = np.linspace(lo - pad, hi + pad, bins + 1)
    counts, _ = np.histogram(x[:, 0].numpy(), bins=edges)
    fine = torch.linspace(edges[0], edges[-1], 20 * bins + 1, dtype=torch.float64)
    dens = torch.exp(q.log_prob(fine[:, None]).double()).numpy()
    cell = np.add.reduceat(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine.numpy()), np.arange(0, 20 * bins, 20))
    outside_x = 1.0 - counts.sum() / x.shape[0]
    outside_q = max(0.0, 1.0 - cell.sum())
    return 0.5 * float(np.abs(counts / x.shape[0] - cell).sum() + abs(outside_x - outside_q))


def w1_distance(x, y):
    r"""Wasserstein-1 distance between two empirical distributions.

    .. math:: W_1(\hat\mu, \hat\nu) = \min_{\pi \in \Pi(\hat\mu, \hat\nu)} \sum_{ij} \pi_{ij} \|x_i - y_j\|

    Exact: the sorted-quantile formula in 1-D (``scipy.stats.wasserstein_distance``)
    and the transport linear program above (``ot.emd2`` of POT, uniform weights).

    Parameters
    ----------
    x : Tensor of shape (n, d)
    y : Tensor of shape (m, d)

    Returns
    -------
    float
    """
    x = as_float_tensor(x, "x", dtype=torch.float64)
    y = as_float_tensor(y, "y", dtype=torch.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have shapes (n, d) and (m, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError("x and y must be non-empty")
    if x.shape[1] == 1:
        return float(wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy()))
    cost = ot.dist(x.numpy(), y.numpy(), metric="euclidean")
    return float(ot.emd2(ot.unif(x.shape[0]), ot.unif(y.shape[0]), cost, numItermax=1_000_000))


def kl_mc(p, q, n_samples=100_000, generator=None, return_stderr=False):
    r"""Monte-Carlo estimate of :math:`\mathrm{KL}(p\|q) = \mathbb E_p[\log p - \log q]`.

    Parameters
    ----------
    p, q : Gaussian, GaussianMixture or GeometricMixture of one dimension
    n_samples : int, default 100000
        At least 2 with ``return_stderr``.
    generator : torch.Generator, optional
    return_stderr : bool, default False

    Returns
    -------
    float, or (float, float) with ``return_stderr``
    """
    _check_pair(p, q)
    _check_n_samples(n_samples, return_stderr)
    x = p.sample(n_samples, generator=generator)
    diff = (p.log_prob(x) - q.log_prob(x)).double()
    return _mean_and_stderr(diff) if return_stderr else float(diff.mean())
