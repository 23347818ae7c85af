r"""KL barycenters: :math:`p_\lambda = \arg\min_q \sum_i \lambda_i \mathrm{KL}(q \| p_i)`.

Since :math:`\sum_i \lambda_i \mathrm{KL}(q\|p_i) = \mathrm{KL}(q\|p_\lambda) - \log Z_\lambda`,
the barycenter is the normalised geometric mixture

.. math:: p_\lambda(x) = \frac{1}{Z_\lambda} \prod_i p_i(x)^{\lambda_i}

(Liu et al., 2025, Sec. 3). :func:`kl_barycenter` gives it in closed form for
Gaussians (exact) and Gaussian mixtures (separated-components limit);
:class:`GeometricMixture` is the exact product with a numerical normaliser.
"""

import itertools
import math

import numpy as np
import torch
from scipy.integrate import simpson

from ._checks import check_points, check_positive_int, check_simplex
from .distributions import Gaussian, GaussianMixture


def _check_dists(dists, lam):
    dists = list(dists)
    if len(dists) == 0:
        raise ValueError("dists must contain at least one distribution")
    for i, d in enumerate(dists):
        if not isinstance(d, GaussianMixture):
            raise TypeError(f"dists[{i}] must be a Gaussian or GaussianMixture, got {type(d).__name__}")
    dims = {d.dim for d in dists}
    if len(dims) != 1:
        raise ValueError(f"all dists must have the same dimension, got {sorted(dims)}")
    lam = check_simplex(lam, len(dists))
    return dists, lam


def _gaussian_product(lam, means, covs):
    r"""Normalised product of powered Gaussians and the log of its mass.

    .. math::

        \prod_i \mathcal N(x; m_i, S_i)^{\lambda_i} = C\, \mathcal N(x; m, P^{-1}),\quad
        P = \sum_i \lambda_i S_i^{-1},\ m = P^{-1} \sum_i \lambda_i S_i^{-1} m_i,

        \log C = -\tfrac12 \sum_i \lambda_i \log|S_i| - \tfrac12 \log|P|
                 + \tfrac12 m^\top P m - \tfrac12 \sum_i \lambda_i m_i^\top S_i^{-1} m_i
        \quad (\textstyle\sum_i \lambda_i = 1).

    ``means`` (K, d) and ``covs`` (K, d, d) are one component per model.
    """
    precisions = torch.linalg.inv(covs)
    lam = lam.to(means.dtype)
    P = torch.einsum("k,kij->ij", lam, precisions)
    eta = torch.einsum("k,kij,kj->i", lam, precisions, means)
    cov = torch.linalg.inv(P)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ eta
    log_c = (
        -0.5 * (lam * torch.logdet(covs)).sum()
        - 0.5 * torch.logdet(P)
        + 0.5 * mean @ P @ mean
        - 0.5 * (lam * torch.einsum("ki,kij,kj->k", means, precisions, means)).sum()
    )
    return mean, cov, log_c


def kl_barycenter(dists, lam, max_components=10_000):
    r"""Closed-form KL barycenter of Gaussians or Gaussian mixtures.

    Gaussians (exact):

    .. math:: p_\lambda = \mathcal N\Big(P^{-1}\sum_i \lambda_i S_i^{-1} m_i,\ P^{-1}\Big),
              \quad P = \sum_i \lambda_i S_i^{-1}.

    Mixtures :math:`p_i = \sum_k w_{ik} \mathcal N(m_{ik}, S_{ik})`: when the
    components of each :math:`p_i` are well separated, at every x one term of
    each sum dominates, so :math:`p_i^{\lambda_i} \approx \sum_k w_{ik}^{\lambda_i}
    \mathcal N_{ik}^{\lambda_i}` and

    .. math::

        p_\lambda \approx \sum_{(k_1..k_K)} \pi_{k_1..k_K}\,
            \mathcal N(m_{k_1..k_K}, P_{k_1..k_K}^{-1}), \quad
        \pi \propto \prod_i w_{ik_i}^{\lambda_i} \; C_{k_1..k_K},

    a mixture over component tuples, each the precision-weighted product with
    mass :math:`C` (see ``_gaussian_product``). Tuples of far-apart components
    get vanishing weight. For integer powers the expansion is exact; models
    with :math:`\lambda_i = 0` drop out.

    Parameters
    ----------
    dists : sequence of K Gaussian or GaussianMixture of one dimension d
    lam : array of shape (K,) on the simplex
    max_components : int, default 10000
        Largest number of component tuples :math:`\prod_i K_i` to expand;
        above it a ValueError names the count. The expansion costs about
        0.7 ms per tuple (12 two-component mixtures, 4096 tuples: 3 s), and
        the count doubles with every further two-component mixture.

    Returns
    -------
    Gaussian if every input is a Gaussian, else GaussianMixture with
    :math:`\prod_i K_i` components (over models with positive weight).

    References
    ----------
    Liu, Ye, Blanchet, Si (2025), ScoreFusion, Sec. 3 and App. A.
    """
    dists, lam = _check_dists(dists, lam)
    check_positive_int(max_components, "max_components")
    keep = [i for i in range(len(dists)) if lam[i] > 0]
    dists = [dists[i] for i in keep]
    n_tuples = math.prod(d.n_components for d in dists)
    if n_tuples > max_components:
        raise ValueError(f"the barycenter of these mixtures has {n_tuples} component tuples "
                         f"(the product of the component counts of the {len(dists)} models with positive lam), "
                         f"above max_components={max_components}; raise max_components to expand them all")
    lam = lam[keep] / lam[keep].sum()
    dtype = dists[0].dtype
    if all(type(d) is Gaussian for d in dists):
        mean, cov, _ = _gaussian_product(lam, torch.stack([d.mean for d in dists]).to(dtype),
                                         torch.stack([d.cov for d in dists]).to(dtype))
        return Gaussian(mean, cov)
    log_weights, means, covs = [], [], []
    for combo in itertools.product(*[range(d.n_components) for d in dists]):
        comp_means = torch.stack([d.means[k].to(dtype) for d, k in zip(dists, combo)])
        comp_covs = torch.stack([d.covs[k].to(dtype) for d, k in zip(dists, combo)])
        mean, cov, log_c = _gaussian_product(lam, comp_means, comp_covs)
        log_w = sum(float(lam[i]) * torch.log(d.weights[k]) for i, (d, k) in enumerate(zip(dists, combo)))
        log_weights.append(log_w + log_c)
        means.append(mean)
        covs.append(cov)
    weights = torch.softmax(torch.stack(log_weights).to(dtype), 0)
    return GaussianMixture(weights, torch.stack(means), torch.stack(covs))


def support_box(dists, width=12.0):
    """Axis-aligned box holding every component of ``dists`` within ``width`` standard deviations."""
    lows, highs = [], []
    for d in dists:
        sd = torch.sqrt(torch.diagonal(d.covs, dim1=-2, dim2=-1))
        lows.append((d.means - width * sd).amin(0))
        highs.append((d.means + width * sd).amax(0))
    return torch.stack(lows).amin(0).double(), torch.stack(highs).amax(0).double()


def grid(lows, highs, n_points):
    """Tensor-product grid: the axes and the points, shape (n_points**d, d)."""
    axes = [torch.linspace(float(lo), float(hi), n_points, dtype=torch.float64) for lo, hi in zip(lows, highs)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return axes, torch.stack([m.reshape(-1) for m in mesh], 1)


def integrate_on_grid(values, axes):
    """Simpson's rule of values on a tensor-product grid (1-D or 2-D)."""
    vals = np.asarray(values, dtype=np.float64).reshape([len(a) for a in axes])
    for axis in reversed(axes):
        vals = simpson(vals, x=axis.numpy(), axis=-1)
    return float(vals)


def sample_grid_cells(points, mass, step, n, generator=None):
    r"""Draw ``n`` points from a density tabulated at the nodes of a uniform grid.

    A node :math:`g` with probability proportional to its tabulated mass, then a uniform point of
    the cell centred on it:

    .. math:: P(g) = \frac{q(g)}{\sum_{g'} q(g')}, \qquad x = g + \Delta \odot (u - \tfrac12),
              \quad u \sim U[0, 1]^d

    Parameters
    ----------
    points : Tensor of shape (G, d)
        The nodes, e.g. from :func:`grid`.
    mass : Tensor of shape (G,)
        Non-negative, not necessarily normalised.
    step : float or Tensor of shape (d,)
        The grid spacing :math:`\Delta` along each axis.
    n : int
    generator : torch.Generator, optional

    Returns
    -------
    Tensor of shape (n, d), float64
    """
    check_positive_int(n, "n")
    idx = torch.multinomial(mass, n, replacement=True, generator=generator)
    jitter = (torch.rand(n, points.shape[1], generator=generator, dtype=torch.float64) - 0.5) * step
    return points[idx] + jitter


class GeometricMixture:
    r"""The exact KL barycenter :math:`p_\lambda = \prod_i p_i^{\lambda_i} / Z_\lambda`.

    .. math::

        \log p_\lambda(x) = \sum_i \lambda_i \log p_i(x) - \log Z_\lambda, \qquad
        \nabla \log p_\lambda = \sum_i \lambda_i \nabla \log p_i .

    The normaliser :math:`Z_\lambda` is computed once, lazily: by Simpson's
    rule on a grid in 1-2 dimensions, and above by importance sampling with the
    closed-form :func:`kl_barycenter` as proposal,
    :math:`Z = \mathbb E_{q}[\prod_i p_i^{\lambda_i}/q]`, whose standard error
    is reported by :meth:`log_normalizer`.

    Parameters
    ----------
    dists : sequence of K Gaussian or GaussianMixture
    lam : array of shape (K,) on the simplex
    n_grid : int, optional
        Grid points per axis (default 20001 in 1-D, 801 in 2-D).
    n_importance : int, default 200000
        Proposal draws for the normaliser above 2 dimensions.
    generator : torch.Generator, optional
        Randomness of the importance-sampling normaliser.
    """

    def __init__(self, dists, lam, n_grid=None, n_importance=200_000, generator=None):
        self.dists, self.lam = _check_dists(dists, lam)
        self.dim = self.dists[0].dim
        self.dtype = self.dists[0].dtype
        self.n_grid = check_positive_int((20001 if self.dim == 1 else 801) if n_grid is None else n_grid, "n_grid")
        self.n_importance = check_positive_int(n_importance, "n_importance")
        self.generator = generator
        self._log_z = None

    def __repr__(self):
        return f"GeometricMixture(K={len(self.dists)}, dim={self.dim}, lam={self.lam.tolist()})"

    def unnormalized_log_prob(self, x):
        r""":math:`\sum_i \lambda_i \log p_i(x)`; shape (n,)."""
        x = check_points(x, self.dim)
        return sum(float(w) * d.log_prob(x) for w, d in zip(self.lam, self.dists) if w > 0)

    def _grid(self):
        lows, highs = support_box(self.dists)
        return grid(lows, highs, self.n_grid)

    def log_normalizer(self):
        r""":math:`\log Z_\lambda` and its standard error (0 for quadrature; delta method for IS)."""
        if self._log_z is None:
            if self.dim <= 2:
                axes, points = self._grid()
                density = torch.exp(self.unnormalized_log_prob(points))
                self._log_z = (math.log(integrate_on_grid(density, axes)), 0.0)
            else:
                proposal = kl_barycenter(self.dists, self.lam)
                x = proposal.sample(self.n_importance, generator=self.generator)
                log_w = self.unnormalized_log_prob(x) - proposal.log_prob(x)
                log_z = torch.logsumexp(log_w, 0) - math.log(self.n_importance)
                w = torch.exp(log_w - log_z)
                stderr = float(w.std() / math.sqrt(self.n_importance))
                self._log_z = (float(log_z), stderr)
        return self._log_z

    def log_prob(self, x):
        r"""Normalised log-density :math:`\log p_\lambda(x)`; shape (n,)."""
        return self.unnormalized_log_prob(x) - self.log_normalizer()[0]

    def score(self, x):
        r"""Score :math:`\sum_i \lambda_i \nabla \log p_i(x)` (exact; needs no normaliser)."""
        x = check_points(x, self.dim)
        return sum(float(w) * d.score(x) for w, d in zip(self.lam, self.dists) if w > 0)

    def sample(self, n, generator=None):
        r"""Draw ``n`` points.

        1-D: inverse CDF of the density on the quadrature grid (linear
        interpolation). 2-D: a grid cell with probability proportional to its
        mass, then a uniform point in the cell. Above: sampling-importance-
        resampling from the closed-form proposal (``20 n`` proposals), which
        is approximate and exact as the proposal approaches :math:`p_\lambda`.

        Returns
        -------
        Tensor of shape (n, d)
        """
        check_positive_int(n, "n")
        if self.dim == 1:
            axes, points = self._grid()
            density = torch.exp(self.log_prob(points)).numpy()
            xs = axes[0].numpy()
            cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(xs))])
            cdf /= cdf[-1]
            u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
            return torch.from_numpy(np.interp(u, cdf, xs))[:, None].to(self.dtype)
        if self.dim == 2:
            axes, points = self._grid()
            step = torch.tensor([float(a[1] - a[0]) for a in axes], dtype=torch.float64)
            mass = torch.exp(self.log_prob(points))
            return sample_grid_cells(points, mass, step, n, generator=generator).to(self.dtype)
        proposal = kl_barycenter(self.dists, self.lam)
        x = proposal.sample(20 * n, generator=generator)
        log_w = self.unnormalized_log_prob(x) - proposal.log_prob(x)
        idx = torch.multinomial(torch.softmax(log_w, 0), n, replacement=True, generator=generator)
        return x[idx]
