r"""Random Gaussian test problems and the Gaussian fitted to samples alone.

Shared by chapters 01 and 05, their claims and the tests: one ``random_spd``
for the whole project.
"""

import torch
from sklearn.covariance import LedoitWolf

from scorefusion import Gaussian
from scorefusion._checks import check_positive_int


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


def gaussian_baseline(x):
    r"""Gaussian fitted to samples alone: sample mean and Ledoit-Wolf covariance, at every ``n``.

    .. math::

        \hat m = \bar x, \qquad
        \hat S = (1 - \rho)\, \hat S_{\mathrm{MLE}} + \rho\, \frac{\operatorname{tr}\hat S_{\mathrm{MLE}}}{d} I,
        \qquad \hat S_{\mathrm{MLE}} = \frac1n \sum_j (x_j - \bar x)(x_j - \bar x)^\top,

    with the shrinkage :math:`\rho \in [0, 1]` of Ledoit and Wolf (2004)
    (``sklearn.covariance.LedoitWolf``). One estimator for every ``n``: the
    sample covariance is singular when ``n <= d`` and badly conditioned just
    above, and :math:`\rho \to 0` as ``n`` grows, so the estimate tends to the
    maximum-likelihood one.

    Parameters
    ----------
    x : Tensor of shape (n, d), n >= 2

    Returns
    -------
    Gaussian (float64)
    """
    if not torch.is_tensor(x) or x.ndim != 2:
        raise ValueError(f"x must be a tensor of shape (n, d), got {getattr(x, 'shape', type(x))}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"x must hold at least 2 samples, got {n}")
    est = LedoitWolf().fit(x.double().numpy())
    cov = 0.5 * (est.covariance_ + est.covariance_.T)
    return Gaussian(torch.as_tensor(est.location_), torch.as_tensor(cov))
