"""Forward noising processes (SDEs) in the vocabulary of Song et al. (2021).

Each SDE ``dx = f(x, t) dt + g(t) dw`` on ``t in [0, T]`` has a Gaussian
transition kernel ``x_t | x_0 ~ N(scale(t) x_0, std(t)^2 I)``.
"""

import math

import torch

from ._checks import check_positive_int


class VESDE:
    r"""Variance-exploding SDE of Song's score-SDE tutorial, as in the ScoreFusion code.

    .. math::

        dx = \sigma^t \, dw, \qquad
        x_t \mid x_0 \sim \mathcal N\!\left(x_0,\ \frac{\sigma^{2t} - 1}{2 \ln \sigma} I\right).

    Parameters
    ----------
    sigma : float, default 25.0
        Base of the diffusion coefficient ``g(t) = sigma**t``; must exceed 1.
    T : float, default 1.0
        Terminal time.
    """

    def __init__(self, sigma=25.0, T=1.0):
        if not (isinstance(sigma, (int, float)) and sigma > 1):
            raise ValueError(f"sigma must be a number > 1, got {sigma!r}")
        if not (isinstance(T, (int, float)) and T > 0):
            raise ValueError(f"T must be a positive number, got {T!r}")
        self.sigma = float(sigma)
        self.T = float(T)

    def __repr__(self):
        return f"VESDE(sigma={self.sigma}, T={self.T})"

    def marginal(self, t):
        r"""Scale and standard deviation of ``x_t | x_0``.

        .. math:: \mathrm{scale}(t) = 1, \qquad
                  \mathrm{std}(t) = \sqrt{(\sigma^{2t} - 1) / (2 \ln \sigma)}

        Parameters
        ----------
        t : float or Tensor of shape (n,)

        Returns
        -------
        scale, std : Tensor, same shape as ``t``
        """
        t = torch.as_tensor(t, dtype=torch.get_default_dtype() if not torch.is_tensor(t) else None)
        log_sigma = math.log(self.sigma)
        std = torch.sqrt(torch.expm1(2.0 * t * log_sigma) / (2.0 * log_sigma))
        return torch.ones_like(t), std

    def sde(self, x, t):
        r"""Drift and diffusion coefficient: ``f(x, t) = 0``, ``g(t) = sigma**t``.

        Returns
        -------
        drift : Tensor like ``x``
        diffusion : Tensor like ``t``
        """
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return torch.zeros_like(x), self.sigma ** t

    def prior_log_prob(self, z):
        r"""Log-density of the prior :math:`\mathcal N(0, \mathrm{std}_T^2 I)` at ``z`` of shape (n, ...)."""
        _, std = self.marginal(torch.tensor(self.T, dtype=torch.float64))
        return _gaussian_log_prob(z, float(std))

    def prior_sample(self, shape, generator=None, dtype=None, device=None):
        r"""Draw from the prior ``N(0, std(T)^2 I)`` that approximates ``p_T``."""
        _, std = self.marginal(torch.tensor(self.T, dtype=dtype or torch.get_default_dtype()))
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return z * std.to(z)


class VPSDE:
    r"""Variance-preserving SDE (DDPM in continuous time) with a linear noise schedule.

    .. math::

        dx = -\tfrac12 \beta(t) x\, dt + \sqrt{\beta(t)}\, dw, \quad
        \beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min}),

        x_t \mid x_0 \sim \mathcal N(\alpha_t x_0, (1 - \alpha_t^2) I), \quad
        \alpha_t = \exp\!\left(-\tfrac12 \int_0^t \beta(s) ds\right).

    Parameters
    ----------
    beta_min, beta_max : float, default 0.1 and 20.0
    T : float, default 1.0
    """

    def __init__(self, beta_min=0.1, beta_max=20.0, T=1.0):
        if not (0 < beta_min < beta_max):
            raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min!r}, {beta_max!r}")
        if not (isinstance(T, (int, float)) and T > 0):
            raise ValueError(f"T must be a positive number, got {T!r}")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.T = float(T)

    def __repr__(self):
        return f"VPSDE(beta_min={self.beta_min}, beta_max={self.beta_max}, T={self.T})"

    def _log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def marginal(self, t):
        r"""Scale ``alpha_t`` and standard deviation ``sqrt(1 - alpha_t^2)`` of ``x_t | x_0``."""
        t = torch.as_tensor(t, dtype=torch.get_default_dtype() if not torch.is_tensor(t) else None)
        log_alpha = self._log_alpha(t)
        return torch.exp(log_alpha), torch.sqrt(-torch.expm1(2.0 * log_alpha))

    def beta(self, t):
        r"""Noise rate :math:`\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})`, shaped like ``t``."""
        return self.beta_min + torch.as_tensor(t) * (self.beta_max - self.beta_min)

    def sde(self, x, t):
        r"""Drift ``-beta(t) x / 2`` and diffusion ``sqrt(beta(t))``."""
        beta = self.beta(torch.as_tensor(t, dtype=x.dtype, device=x.device))
        drift = -0.5 * beta.reshape(beta.shape + (1,) * (x.ndim - beta.ndim)) * x
        return drift, torch.sqrt(beta)

    def prior_log_prob(self, z):
        r"""Log-density of the prior :math:`\mathcal N(0, I)` at ``z`` of shape (n, ...)."""
        return _gaussian_log_prob(z, 1.0)

    def prior_sample(self, shape, generator=None, dtype=None, device=None):
        r"""Draw from the prior ``N(0, I)``."""
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)


def _gaussian_log_prob(z, std):
    flat = z.reshape(z.shape[0], -1)
    dim = flat.shape[1]
    return -0.5 * dim * math.log(2 * math.pi * std**2) - flat.pow(2).sum(1) / (2 * std**2)


def time_grid(sde, n_steps, eps=1e-3, dtype=torch.float64):
    """Decreasing times ``T = t_0 > ... > t_N = eps`` for the reverse-time samplers."""
    check_positive_int(n_steps, "n_steps")
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, T={sde.T}), got {eps!r}")
    return torch.linspace(sde.T, eps, n_steps + 1, dtype=dtype)
