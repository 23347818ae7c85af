"""Forward noising processes (SDEs) in the vocabulary of Song et al. (2021b).

Each SDE ``dx = f(x, t) dt + g(t) dw`` on ``t in [0, T]`` has a Gaussian
transition kernel ``x_t | x_0 ~ N(scale(t) x_0, std(t)^2 I)``. :class:`SDE` is
the interface every forward process of the project implements (the samplers,
losses and fits accept any of them); :class:`VPTypeSDE` is the variance-preserving
family, which derives the drift, the diffusion and the prior from a noise rate
``beta(t)``.
"""

import abc
import math

import torch

from ._checks import check_positive_int, check_sde, check_shape, check_time


def _positive_number(value, name, above=0.0):
    """A finite real number > ``above``, as a float; else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > above):
        raise ValueError(f"{name} must be a finite number > {above:g}, got {value!r}")
    return float(value)


class SDE(abc.ABC):
    r"""A forward noising process with a Gaussian transition kernel (Song et al. 2021b, Sec. 3).

    .. math::

        dx = f(x, t)\, dt + g(t)\, dw, \quad t \in [0, T], \qquad
        x_t \mid x_0 \sim \mathcal N\!\left(\mathrm{scale}(t)\, x_0,\ \mathrm{std}(t)^2 I\right).

    Subclasses implement :meth:`marginal`, :meth:`sde`, :meth:`prior_sample`
    and :meth:`prior_log_prob`; the samplers, losses and weight fits of the
    library accept any subclass (they check ``isinstance(sde, SDE)``).

    Parameters
    ----------
    T : float, default 1.0
        Terminal time, a finite positive number.
    """

    def __init__(self, T=1.0):
        self.T = _positive_number(T, "T")

    def _time(self, t):
        """``t`` as a tensor (the default dtype for numbers), checked to lie in [0, T].

        The range is checked on the host only: for a tensor on an accelerator the
        check would synchronise every call of a sampler or training step.
        """
        if not (torch.is_tensor(t) and t.device.type != "cpu"):
            check_time(t, self.T, allow_zero=True)
        return torch.as_tensor(t, dtype=None if torch.is_tensor(t) else torch.get_default_dtype())

    @abc.abstractmethod
    def marginal(self, t):
        r"""Scale and standard deviation of ``x_t | x_0``.

        .. math:: x_t \mid x_0 \sim \mathcal N(\mathrm{scale}(t)\, x_0, \mathrm{std}(t)^2 I)

        Parameters
        ----------
        t : float or Tensor of shape (n,), in [0, T]

        Returns
        -------
        scale, std : Tensor, shaped like ``t``
        """

    @abc.abstractmethod
    def sde(self, x, t):
        r"""Drift and diffusion coefficient of the forward SDE.

        .. math:: dx = f(x, t)\, dt + g(t)\, dw

        Parameters
        ----------
        x : Tensor of shape (n, ...)
        t : float or Tensor of shape (n,)

        Returns
        -------
        drift : Tensor like ``x``
        diffusion : Tensor shaped like ``t``
        """

    @abc.abstractmethod
    def prior_sample(self, shape, generator=None, dtype=None, device=None):
        r"""Draw from the prior :math:`\pi \approx p_T` the reverse-time samplers start from.

        Parameters
        ----------
        shape : tuple of int
        generator : torch.Generator, optional
        dtype, device : optional

        Returns
        -------
        Tensor of shape ``shape``
        """

    @abc.abstractmethod
    def prior_log_prob(self, z):
        r"""Log-density :math:`\log \pi(z)` of the prior, per sample.

        Parameters
        ----------
        z : Tensor of shape (n, ...)

        Returns
        -------
        Tensor of shape (n,)
        """


class VPTypeSDE(SDE):
    r"""Variance-preserving SDEs, defined by a noise rate :math:`\beta(t) \ge 0`.

    .. math::

        dx = -\tfrac12 \beta(t)\, x\, dt + \sqrt{\beta(t)}\, dw, \qquad
        x_t \mid x_0 \sim \mathcal N\!\left(\alpha_t x_0, (1 - \alpha_t^2) I\right), \quad
        \alpha_t = \exp\!\left(-\tfrac12 \int_0^t \beta(s)\, ds\right),

    with the prior :math:`\mathcal N(0, I)`, the limit of the marginal as
    :math:`\alpha_T \to 0`. Subclasses implement :meth:`beta` and :meth:`marginal`;
    the drift, diffusion and prior are derived here. The predictor-corrector
    sampler uses DDPM's :math:`\alpha_i = 1 - \beta(t)\Delta t` for these SDEs.
    """

    @abc.abstractmethod
    def beta(self, t):
        r"""Noise rate :math:`\beta(t)`, shaped like ``t``.

        Parameters
        ----------
        t : float or Tensor of shape (n,)

        Returns
        -------
        Tensor shaped like ``t``
        """

    def sde(self, x, t):
        r"""Drift ``-beta(t) x / 2`` and diffusion ``sqrt(beta(t))``.

        .. math:: f(x, t) = -\tfrac12\beta(t)\,x, \qquad g(t) = \sqrt{\beta(t)}

        Parameters
        ----------
        x : Tensor of shape (n, ...)
        t : float or Tensor of shape (n,)

        Returns
        -------
        drift : Tensor like ``x``
        diffusion : Tensor shaped like ``t`` (dtype of ``x``)
        """
        beta = self.beta(torch.as_tensor(t, dtype=x.dtype, device=x.device)).to(dtype=x.dtype, device=x.device)
        drift = -0.5 * beta.reshape(beta.shape + (1,) * (x.ndim - beta.ndim)) * x
        return drift, torch.sqrt(beta)

    def prior_log_prob(self, z):
        r"""Log-density of the prior :math:`\mathcal N(0, I)` at ``z`` of shape (n, ...).

        .. math:: \log \pi(z) = -\tfrac D2 \log(2\pi) - \tfrac12 \|z\|^2
        """
        return _gaussian_log_prob(z, 1.0)

    def prior_sample(self, shape, generator=None, dtype=None, device=None):
        r"""Draw from the prior :math:`\mathcal N(0, I)`."""
        shape = check_shape(shape, min_len=1)
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)


class VESDE(SDE):
    r"""Variance-exploding SDE of Song's score-SDE tutorial, as in the ScoreFusion code.

    .. math::

        dx = \sigma^t \, dw, \qquad
        x_t \mid x_0 \sim \mathcal N\!\left(x_0,\ \frac{\sigma^{2t} - 1}{2 \ln \sigma} I\right).

    Parameters
    ----------
    sigma : float, default 25.0
        Base of the diffusion coefficient ``g(t) = sigma**t``; a finite number > 1.
    T : float, default 1.0
        Terminal time, a finite positive number.
    """

    def __init__(self, sigma=25.0, T=1.0):
        self.sigma = _positive_number(sigma, "sigma", above=1.0)
        super().__init__(T)

    def __repr__(self):
        return f"VESDE(sigma={self.sigma}, T={self.T})"

    def marginal(self, t):
        r"""Scale and standard deviation of ``x_t | x_0``.

        .. math:: \mathrm{scale}(t) = 1, \qquad
                  \mathrm{std}(t) = \sqrt{(\sigma^{2t} - 1) / (2 \ln \sigma)}

        Parameters
        ----------
        t : float or Tensor of shape (n,), in [0, T]

        Returns
        -------
        scale, std : Tensor, same shape as ``t``
        """
        t = self._time(t)
        log_sigma = math.log(self.sigma)
        std = torch.sqrt(torch.expm1(2.0 * t * log_sigma) / (2.0 * log_sigma))
        return torch.ones_like(t), std

    def sde(self, x, t):
        r"""Drift and diffusion coefficient: ``f(x, t) = 0``, ``g(t) = sigma**t``.

        .. math:: f(x, t) = 0, \qquad g(t) = \sigma^t

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
        shape = check_shape(shape, min_len=1)
        _, std = self.marginal(torch.tensor(self.T, dtype=dtype or torch.get_default_dtype()))
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return z * std.to(z)


class VPSDE(VPTypeSDE):
    r"""Variance-preserving SDE (DDPM in continuous time) with a linear noise schedule.

    .. math::

        dx = -\tfrac12 \beta(t) x\, dt + \sqrt{\beta(t)}\, dw, \quad
        \beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min}),

        x_t \mid x_0 \sim \mathcal N(\alpha_t x_0, (1 - \alpha_t^2) I), \quad
        \alpha_t = \exp\!\left(-\tfrac12 \int_0^t \beta(s) ds\right).

    Parameters
    ----------
    beta_min, beta_max : float, default 0.1 and 20.0
        Finite, with ``0 < beta_min < beta_max``.
    T : float, default 1.0
    """

    def __init__(self, beta_min=0.1, beta_max=20.0, T=1.0):
        self.beta_min = _positive_number(beta_min, "beta_min")
        self.beta_max = _positive_number(beta_max, "beta_max")
        if not self.beta_max > self.beta_min:
            raise ValueError(f"beta_max must exceed beta_min={beta_min!r}, got {beta_max!r}")
        super().__init__(T)

    def __repr__(self):
        return f"VPSDE(beta_min={self.beta_min}, beta_max={self.beta_max}, T={self.T})"

    def _log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def marginal(self, t):
        r"""Scale ``alpha_t`` and standard deviation ``sqrt(1 - alpha_t^2)`` of ``x_t | x_0``.

        .. math:: \log\alpha_t = -\tfrac14 t^2 (\beta_{\max} - \beta_{\min}) - \tfrac12 t \beta_{\min}

        Parameters
        ----------
        t : float or Tensor of shape (n,), in [0, T]

        Returns
        -------
        scale, std : Tensor, same shape as ``t``
        """
        t = self._time(t)
        log_alpha = self._log_alpha(t)
        return torch.exp(log_alpha), torch.sqrt(-torch.expm1(2.0 * log_alpha))

    def beta(self, t):
        r"""Noise rate :math:`\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})`, shaped like ``t``."""
        return self.beta_min + torch.as_tensor(t) * (self.beta_max - self.beta_min)


def _gaussian_log_prob(z, std):
    flat = z.reshape(z.shape[0], -1)
    dim = flat.shape[1]
    return -0.5 * dim * math.log(2 * math.pi * std**2) - flat.pow(2).sum(1) / (2 * std**2)


def time_grid(sde, n_steps, eps=1e-3, dtype=torch.float64):
    """Decreasing times ``T = t_0 > ... > t_N = eps`` for the reverse-time samplers."""
    check_sde(sde)
    check_positive_int(n_steps, "n_steps")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < sde.T):
        raise ValueError(f"eps must lie in (0, T={sde.T}), got {eps!r}")
    return torch.linspace(sde.T, eps, n_steps + 1, dtype=dtype)
