"""Distances between distributions: total variation, Wasserstein-1, KL."""

import math

import numpy as np
import ot
import torch
from scipy.stats import wasserstein_distance

from ._checks import as_float_tensor, check_positive_int
from .barycenter import GeometricMixture, grid, integrate_on_grid, support_box
from .distributions import Gaussian


def _check_n_samples(n_samples, with_stderr):
    """``n_samples`` a positive int, at least 2 when a standard error is asked for."""
    check_positive_int(n_samples, "n_samples")
    if with_stderr and n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 for a standard error, got {n_samples}")
    return n_samples


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

    Parameters
    ----------
    p, q : Gaussian, GaussianMixture or GeometricMixture of one dimension d
    n_grid : int, optional
        Grid points per axis (default 20001 in 1-D, 801 in 2-D).
    n_samples : int, default 100000
        Monte-Carlo draws above 2 dimensions.
    generator : torch.Generator, optional
    return_stderr : bool, default False
        Also return the standard error (0 for quadrature).

    Returns
    -------
    float, or (float, float) with ``return_stderr``
    """
    if p.dim != q.dim:
        raise ValueError(f"p and q must have the same dimension, got {p.dim} and {q.dim}")
    if p.dim <= 2:
        n_grid = check_positive_int(n_grid or (20001 if p.dim == 1 else 801), "n_grid")
        (lo_p, hi_p), (lo_q, hi_q) = _box(p), _box(q)
        axes, points = grid(torch.minimum(lo_p, lo_q), torch.maximum(hi_p, hi_q), n_grid)
        diff = (torch.exp(p.log_prob(points).double()) - torch.exp(q.log_prob(points).double())).abs()
        value, stderr = 0.5 * integrate_on_grid(diff, axes), 0.0
    else:
        check_positive_int(n_samples, "n_samples")
        half = n_samples // 2
        x = torch.cat([p.sample(half, generator=generator), q.sample(n_samples - half, generator=generator)])
        lp, lq = p.log_prob(x).double(), q.log_prob(x).double()
        ratio = torch.tanh(0.5 * (lp - lq)).abs()  # |p - q| / (p + q), computed stably
        value, stderr = float(ratio.mean()), float(ratio.std() / math.sqrt(n_samples))
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
    if p.dim != q.dim:
        raise ValueError(f"p and q must have the same dimension, got {p.dim} and {q.dim}")
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
    ratio = torch.tanh(0.5 * (log_p - log_q)).abs()
    return float(ratio.mean()), float(ratio.std() / math.sqrt(n_samples))


def tv_histogram(x, q, bins=200, bounds=None):
    r"""Total variation between 1-D samples and a density, on a histogram.

    .. math:: \widehat{\mathrm{TV}} = \tfrac12 \sum_j \left|\frac{N_j}{N} - \int_{B_j} q\right|

    Parameters
    ----------
    x : Tensor of shape (N, 1)
    q : distribution with ``log_prob`` in one dimension
    bins : int, default 200
    bounds : (float, float), optional
        Histogram range; default the range of ``x`` padded by 5%.

    Returns
    -------
    float
        Biased upwards by the histogram's sampling noise, about
        ``sqrt(bins / (2 pi N))`` for smooth densities.
    """
    x = as_float_tensor(x, "x", dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != 1 or q.dim != 1:
        raise ValueError(f"tv_histogram is one-dimensional: x must have shape (N, 1), got {tuple(x.shape)}")
    check_positive_int(bins, "bins")
    lo, hi = bounds or (float(x.min()), float(x.max()))
    pad = 0.05 * (hi - lo) if bounds is None else 0.0
    edges = np.linspace(lo - pad, hi + pad, bins + 1)
    counts, _ = np.histogram(x[:, 0].numpy(), bins=edges)
    fine = torch.linspace(edges[0], edges[-1], 20 * bins + 1, dtype=torch.float64)
    dens = torch.exp(q.log_prob(fine[:, None]).double()).numpy()
    cell = np.add.reduceat(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine.numpy()), np.arange(0, 20 * bins, 20))
    return 0.5 * float(np.abs(counts / x.shape[0] - cell).sum() + max(0.0, 1.0 - cell.sum()))


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
    p : distribution with ``sample`` and ``log_prob``
    q : distribution with ``log_prob``
    n_samples : int, default 100000
    generator : torch.Generator, optional
    return_stderr : bool, default False

    Returns
    -------
    float, or (float, float) with ``return_stderr``
    """
    check_positive_int(n_samples, "n_samples")
    x = p.sample(n_samples, generator=generator)
    diff = (p.log_prob(x) - q.log_prob(x)).double()
    value, stderr = float(diff.mean()), float(diff.std() / math.sqrt(n_samples))
    return (value, stderr) if return_stderr else value
