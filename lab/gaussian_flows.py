r"""The fused samplers of Gaussian auxiliaries in closed form (chapter 04 and its claims).

With Gaussian auxiliaries and an SDE of linear drift :math:`f(x, t) = -k_t x`, every noised
auxiliary score is affine, so the fused score :math:`s_\lambda = \sum_i \lambda_i s_i` is
:math:`-A_t x + c_t`; the probability-flow ODE and the reverse SDE driven by it are linear and map a
Gaussian start to a Gaussian output. Chapter 04 and the claim ``fused_ode_gap_unequal_cov`` both
compute that output with these functions (small ODEs solved by ``scipy.integrate.solve_ivp``).
"""

import numpy as np
import torch
from scipy.integrate import solve_ivp

from scorefusion import Gaussian, kl_barycenter


def drift_coefficients(sde, t):
    r"""The SDE's :math:`k_t` and :math:`g_t^2`, for a drift :math:`f(x, t) = -k_t x`.

    .. math:: dx = -k_t\, x\, dt + g_t\, dw

    (VP: :math:`k_t = \beta_t / 2`, :math:`g_t^2 = \beta_t`; VE: :math:`k_t = 0`), read from
    ``sde.sde`` at :math:`x = 1`.

    Returns
    -------
    (float, float)
    """
    drift, g = sde.sde(torch.ones(1, 1, dtype=torch.float64), torch.tensor([t], dtype=torch.float64))
    return -float(drift[0, 0]), float(g[0]) ** 2


def fused_affine(sde, dists, lam, t):
    r"""The fused score of noised Gaussians as :math:`s_\lambda(x, t) = -A_t x + c_t`.

    .. math::

        A_t = \sum_i \lambda_i \big(a_t^2 S_i + \mathrm{std}_t^2 I\big)^{-1}, \qquad
        c_t = \sum_i \lambda_i \big(a_t^2 S_i + \mathrm{std}_t^2 I\big)^{-1} a_t m_i

    with :math:`(a_t, \mathrm{std}_t)` = ``sde.marginal(t)``.

    Parameters
    ----------
    sde : SDE with linear drift
    dists : sequence of K Gaussian of one dimension d
    lam : sequence of K weights
    t : float

    Returns
    -------
    A : ndarray of shape (d, d)
    c : ndarray of shape (d,)
    """
    a, std = (float(v) for v in sde.marginal(torch.tensor(t, dtype=torch.float64)))
    dim = dists[0].dim
    A, c = np.zeros((dim, dim)), np.zeros(dim)
    for weight, p in zip(np.asarray(lam, dtype=np.float64), dists):
        prec = np.linalg.inv(a**2 * p.cov.numpy() + std**2 * np.eye(dim))
        A, c = A + weight * prec, c + weight * prec @ (a * p.mean.numpy())
    return A, c


def true_affine(sde, dists, lam, t):
    r"""The score of the noised barycenter :math:`(p_\lambda)_t` as :math:`-A_t x + c_t`.

    .. math:: \nabla \log (p_\lambda)_t(x) = -\big(a_t^2 P_\lambda^{-1} + \mathrm{std}_t^2 I\big)^{-1}
              (x - a_t m_\lambda)

    Returns
    -------
    A : ndarray of shape (d, d)
    c : ndarray of shape (d,)
    """
    return fused_affine(sde, [kl_barycenter(dists, lam)], [1.0], t)


def _solve_backward(sde, rhs, y0, eps, rtol, atol, t_start=None):
    sol = solve_ivp(rhs, (sde.T if t_start is None else t_start, eps), y0, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y[:, -1]


def flow_map(sde, affine, dim, eps=1e-3, rtol=1e-10, atol=1e-12):
    r"""The affine flow map :math:`x_\varepsilon = \Phi x_T + \varphi` of the probability-flow ODE.

    For the score :math:`-A_t x + c_t` the ODE is :math:`\dot x = F_t x - \tfrac12 g_t^2 c_t` with
    :math:`F_t = -k_t I + \tfrac12 g_t^2 A_t`, integrated from :math:`T` down to :math:`\varepsilon`:

    .. math::

        \dot\Phi = F_t \Phi,\ \Phi(T) = I, \qquad
        \dot\varphi = F_t \varphi - \tfrac12 g_t^2 c_t,\ \varphi(T) = 0 .

    Parameters
    ----------
    sde : SDE with linear drift
    affine : callable t -> (A_t, c_t)
        e.g. ``functools.partial(fused_affine, sde, dists, lam)``.
    dim : int
    eps : float, default 1e-3
        The end time.
    rtol, atol : float
        ``solve_ivp`` (DOP853) tolerances.

    Returns
    -------
    Phi : ndarray of shape (dim, dim)
    phi : ndarray of shape (dim,)
    """
    eye = np.eye(dim)

    def rhs(t, y):
        A, c = affine(t)
        k, g2 = drift_coefficients(sde, t)
        F = -k * eye + 0.5 * g2 * A
        return np.concatenate([(F @ y[: dim * dim].reshape(dim, dim)).ravel(), F @ y[dim * dim:] - 0.5 * g2 * c])

    y = _solve_backward(sde, rhs, np.concatenate([eye.ravel(), np.zeros(dim)]), eps, rtol, atol)
    return y[: dim * dim].reshape(dim, dim), y[dim * dim:]


def gaussian_output(sde, affine, start, kind="ode", eps=1e-3, rtol=1e-10, atol=1e-12, t_start=None):
    r"""Output law at :math:`\varepsilon` of the fused probability-flow ODE or reverse SDE from a Gaussian start.

    Backward in time the mean and covariance obey, with :math:`w = \tfrac12` (ODE) or :math:`1` (SDE),
    :math:`B_t = -k_t I + w\, g_t^2 A_t`,

    .. math::

        \dot\mu = B_t \mu - w\, g_t^2 c_t, \qquad
        \dot\Sigma = B_t \Sigma + \Sigma B_t^\top - [\text{SDE}]\, g_t^2 I .

    Parameters
    ----------
    sde : SDE with linear drift
    affine : callable t -> (A_t, c_t)
    start : Gaussian
        The law of :math:`x_T` (of :math:`x_{t_\mathrm{start}}` with ``t_start``).
    kind : {"ode", "sde"}
    eps, rtol, atol : float
    t_start : float, optional
        Start time, default :math:`T`: a score that jumps in time (a weight schedule) is
        integrated one smooth piece at a time by chaining calls.

    Returns
    -------
    Gaussian (float64)
    """
    if kind not in ("ode", "sde"):
        raise ValueError(f"kind must be 'ode' or 'sde', got {kind!r}")
    dim, eye = start.dim, np.eye(start.dim)
    w = 0.5 if kind == "ode" else 1.0

    def rhs(t, y):
        A, c = affine(t)
        k, g2 = drift_coefficients(sde, t)
        F = -k * eye + w * g2 * A
        cov = y[dim:].reshape(dim, dim)
        dcov = F @ cov + cov @ F.T - (g2 * eye if kind == "sde" else 0.0)
        return np.concatenate([F @ y[:dim] - w * g2 * c, dcov.ravel()])

    y0 = np.concatenate([start.mean.numpy(), start.cov.numpy().ravel()])
    y = _solve_backward(sde, rhs, y0, eps, rtol, atol, t_start)
    cov = y[dim:].reshape(dim, dim)
    return Gaussian(torch.from_numpy(y[:dim].copy()), torch.from_numpy(0.5 * (cov + cov.T)))
