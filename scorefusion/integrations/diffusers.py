r"""ScoreFusion for Hugging Face ``diffusers`` pipelines.

The paper's largest experiment (Liu et al., 2025, Sec. 5, Stable Diffusion)
samples the KL barycenter of two checkpoints by mixing their noise
predictions with weights :math:`\lambda` at every step of an ordinary
sampler. This module gives practitioners that, and lets the library learn
:math:`\lambda` for such models:

:class:`FusedUNet`
    wraps K UNets that share a scheduler and a latent space and returns
    :math:`\sum_i \lambda_i \epsilon_i` with the call signature and output
    type of one UNet, so ``pipe.unet = FusedUNet([pipe.unet, other.unet], lam)``
    turns any pipeline (DDPM, DDIM, Stable Diffusion, SDXL; any scheduler,
    classifier-free guidance, fp16/bf16, CUDA) into a barycenter sampler.
:class:`DDPMScheduleSDE` and :class:`DiffusersScore`
    turn a scheduler's discrete noise schedule into a continuous-time
    VP SDE and a UNet into a library score ``score(x, t)``, so that
    :func:`scorefusion.fusion.fit_weights` fits :math:`\lambda` for diffusers
    models exactly as for the library's own networks.
:func:`to_epsilon`, :func:`from_epsilon`, :func:`epsilon_to_score`, :func:`score_to_epsilon`
    conversions between the epsilon / v / sample / score parametrisations.

Why mixing noise predictions samples the barycenter
----------------------------------------------------
With :math:`x_t = \alpha_t x_0 + \sigma_t \epsilon`, Tweedie's formula gives
:math:`\nabla_x \log p_t(x) = -\mathbb E[\epsilon \mid x_t = x] / \sigma_t`, so a
noise predictor is a score in disguise, :math:`s = -\epsilon / \sigma_t`, and

.. math:: \sum_i \lambda_i s_i(x, t) = -\frac{1}{\sigma_t}\sum_i \lambda_i \epsilon_i(x, t),

the fused score of ScoreFusion (Sec. 3), whose :math:`t \to 0` limit is the
score of :math:`p_\lambda \propto \prod_i p_i^{\lambda_i}`. The v- and
sample-parametrisations are affine in the network output with coefficients
that depend on :math:`(x, t)` only, and an affine map :math:`A(o) = c\,o + d\,x`
commutes with convex combinations (:math:`\sum_i \lambda_i A(o_i) =
A(\sum_i \lambda_i o_i)` when :math:`\sum_i \lambda_i = 1`); so fusing the raw
outputs of models that share a parametrisation is the same as fusing their
scores. Classifier-free guidance :math:`\epsilon_u + w(\epsilon_c - \epsilon_u)`
is affine with weights summing to one as well, so guiding the fused model equals
fusing the guided models.

``import scorefusion`` does not import this module; it needs the extra
``pip install scorefusion[diffusers]`` (and ``transformers`` for text-to-image
pipelines).
"""

import inspect
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .._checks import as_float_tensor, check_simplex, check_time
from ..sde import VPTypeSDE

try:
    from diffusers import UNet2DConditionModel, UNet2DModel
    from diffusers.models.unets.unet_2d import UNet2DOutput
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "scorefusion.integrations.diffusers needs the optional dependency 'diffusers': "
        "pip install scorefusion[diffusers]"
    ) from err

__all__ = [
    "PREDICTION_TYPES",
    "DDPMScheduleSDE",
    "DiffusersScore",
    "FusedUNet",
    "encode_images",
    "epsilon_to_score",
    "from_epsilon",
    "score_to_epsilon",
    "to_epsilon",
]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
"""The parametrisations of diffusers' DDPM-family schedulers (``scheduler.config.prediction_type``)."""

_OUTPUT_TYPES = ((UNet2DConditionModel, UNet2DConditionOutput), (UNet2DModel, UNet2DOutput))

# Methods that configure a UNet (called by pipelines, e.g. enable_attention_slicing); applied to every UNet.
_BROADCAST = frozenset({
    "set_attention_slice", "set_attn_processor", "set_default_attn_processor", "enable_freeu", "disable_freeu",
    "fuse_qkv_projections", "unfuse_qkv_projections", "set_use_memory_efficient_attention_xformers",
    "enable_xformers_memory_efficient_attention", "disable_xformers_memory_efficient_attention",
})

# Config entries that define the latent space and the call signature; fused UNets must agree on them.
_SHARED_KEYS = (
    "sample_size", "in_channels", "out_channels", "class_embed_type", "num_class_embeds",
    "cross_attention_dim", "encoder_hid_dim", "encoder_hid_dim_type", "addition_embed_type",
    "addition_time_embed_dim", "projection_class_embeddings_input_dim", "time_cond_proj_dim",
)


def _check_prediction_type(prediction_type, name="prediction_type"):
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"{name} must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    return prediction_type


def _check_conversion(value, name, x, prediction_type):
    """The checks of :func:`to_epsilon` and :func:`from_epsilon`: a known parametrisation, ``value`` shaped like ``x``."""
    _check_prediction_type(prediction_type)
    if value.shape != x.shape:
        raise ValueError(f"{name} and x must have one shape, got {tuple(value.shape)} and {tuple(x.shape)}")


def _per_sample(value, x):
    """Broadcast a scalar or a per-sample tensor of shape (n,) against x of shape (n, ...)."""
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if value.ndim == 0:
        return value
    if value.shape != (x.shape[0],):
        raise ValueError(f"scale/std must be scalars or have shape ({x.shape[0]},), got {tuple(value.shape)}")
    return value.reshape((-1,) + (1,) * (x.ndim - 1))


# ---------------------------------------------------------------------------------------------
# Parametrisations
# ---------------------------------------------------------------------------------------------

def epsilon_to_score(eps, std):
    r"""Score from a noise prediction (Tweedie's formula).

    .. math:: s(x, t) = \nabla_x \log p_t(x) = -\frac{\hat\epsilon(x, t)}{\sigma_t}

    Parameters
    ----------
    eps : Tensor of shape (n, *event_shape)
    std : float or Tensor of shape (n,)
        :math:`\sigma_t`, the marginal standard deviation.

    Returns
    -------
    Tensor of shape (n, *event_shape)

    Notes
    -----
    The identity behind the fused score of ScoreFusion (Sec. 3) for noise predictors.
    """
    return -eps / _per_sample(std, eps)


def score_to_epsilon(score, std):
    r"""Noise prediction from a score: :math:`\hat\epsilon = -\sigma_t\, s(x, t)`.

    .. math:: \hat\epsilon(x, t) = -\sigma_t\, s(x, t)

    Parameters
    ----------
    score : Tensor of shape (n, *event_shape)
    std : float or Tensor of shape (n,)

    Returns
    -------
    Tensor of shape (n, *event_shape)
    """
    return -score * _per_sample(std, score)


def to_epsilon(output, x, scale, std, prediction_type):
    r"""Convert a network output of any diffusers parametrisation to a noise prediction.

    With :math:`x = \alpha x_0 + \sigma \epsilon` (``scale`` :math:`=\alpha`, ``std`` :math:`=\sigma`):

    .. math::

        \text{epsilon:}\ \hat\epsilon = o, \qquad
        \text{v\_prediction } (v = \alpha\epsilon - \sigma x_0):\
            \hat\epsilon = \frac{\alpha o + \sigma x}{\alpha^2 + \sigma^2}, \qquad
        \text{sample } (o = \hat x_0):\ \hat\epsilon = \frac{x - \alpha o}{\sigma}.

    For the VP schedules of diffusers :math:`\alpha^2 + \sigma^2 = 1`.

    Parameters
    ----------
    output : Tensor of shape (n, *event_shape)
        The network's output.
    x : Tensor of shape (n, *event_shape)
        The noisy input :math:`x_t`.
    scale, std : float or Tensor of shape (n,)
        :math:`\alpha_t = \sqrt{\bar\alpha}` and :math:`\sigma_t = \sqrt{1 - \bar\alpha}`.
    prediction_type : {"epsilon", "v_prediction", "sample"}

    Returns
    -------
    Tensor of shape (n, *event_shape)
    """
    _check_conversion(output, "output", x, prediction_type)
    a, s = _per_sample(scale, x), _per_sample(std, x)
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return (a * output + s * x) / (a * a + s * s)
    return (x - a * output) / s


def from_epsilon(eps, x, scale, std, prediction_type):
    r"""Convert a noise prediction to the parametrisation ``prediction_type`` (inverse of :func:`to_epsilon`).

    .. math::

        \hat x_0 = \frac{x - \sigma \hat\epsilon}{\alpha}, \qquad
        \hat v = \alpha \hat\epsilon - \sigma \hat x_0
               = \frac{(\alpha^2 + \sigma^2)\hat\epsilon - \sigma x}{\alpha} .

    Parameters
    ----------
    eps : Tensor of shape (n, *event_shape)
    x : Tensor of shape (n, *event_shape)
    scale, std : float or Tensor of shape (n,)
    prediction_type : {"epsilon", "v_prediction", "sample"}

    Returns
    -------
    Tensor of shape (n, *event_shape)
    """
    _check_conversion(eps, "eps", x, prediction_type)
    if prediction_type == "epsilon":
        return eps
    a, s = _per_sample(scale, x), _per_sample(std, x)
    if prediction_type == "sample":
        return (x - s * eps) / a
    return ((a * a + s * s) * eps - s * x) / a  # = a eps - s x0, without forming x0


# ---------------------------------------------------------------------------------------------
# The discrete schedule as a continuous-time SDE
# ---------------------------------------------------------------------------------------------

class DDPMScheduleSDE(VPTypeSDE):
    r"""A diffusers scheduler's discrete noise schedule as a continuous-time VP SDE.

    A DDPM-family scheduler trained on :math:`N` timesteps noises data as
    :math:`x_n = \sqrt{\bar\alpha_n}\, x_0 + \sqrt{1 - \bar\alpha_n}\, \epsilon`,
    :math:`n = 0, \dots, N-1` (``scheduler.alphas_cumprod``). Place timestep
    :math:`n` at continuous time

    .. math:: t_n = \frac{n + 1}{N} \in (0, 1], \qquad \bar\alpha(0) = 1,

    and interpolate :math:`\log\bar\alpha` linearly in :math:`t` between the
    nodes. Then the VP SDE

    .. math::

        dx = -\tfrac12 \beta(t)\, x\, dt + \sqrt{\beta(t)}\, dw, \qquad
        \beta(t) = -\frac{d}{dt}\log\bar\alpha(t) = -N \log(1 - \beta_n)
        \ \text{ on } (t_{n-1}, t_n],

    has the marginals :math:`x_t \mid x_0 \sim \mathcal N(\sqrt{\bar\alpha(t)}\,
    x_0, (1 - \bar\alpha(t)) I)` (integrate the linear SDE), which equal the
    discrete ones at every node; :math:`\beta(t) \approx N\beta_n`, the
    correspondence of Song et al. (2021b, App. B). A network is queried at
    continuous time :math:`t` with the timestep :math:`\tau = N t - 1` (``timestep(t)``),
    which is :math:`n` at the nodes; UNet time embeddings accept non-integer
    :math:`\tau`. Scores are only defined for :math:`t \ge 1/N` (``t_min``): below,
    the network would see a negative timestep it was never trained on.

    Parameters
    ----------
    schedule : diffusers scheduler with ``alphas_cumprod``, or Tensor of shape (N,)
        DDPM, DDIM, PNDM, Euler, DPM-Solver, ... schedulers all carry
        ``alphas_cumprod``; flow-matching schedulers do not and are rejected.
    T : float, default 1.0
        Terminal time (fixed by the mapping; accepted for symmetry with
        :class:`scorefusion.sde.VPSDE` and must equal 1).

    Notes
    -----
    Implements the forward process of the Stable Diffusion experiment (Sec. 5)
    in the continuous-time form the library's fitting uses (Sec. 3-4).
    """

    def __init__(self, schedule, T=1.0):
        if T != 1.0:
            raise ValueError(f"T must be 1.0 (timestep n sits at t = (n + 1) / N), got {T!r}")
        if torch.is_tensor(schedule) or isinstance(schedule, Sequence):
            acp = as_float_tensor(schedule, "schedule", dtype=torch.float64)
        elif hasattr(schedule, "alphas_cumprod"):
            acp = as_float_tensor(schedule.alphas_cumprod, "schedule.alphas_cumprod", dtype=torch.float64)
        else:
            raise TypeError(
                "schedule must be a DDPM-family diffusers scheduler (with alphas_cumprod) or a tensor of "
                f"alphas_cumprod, got {type(schedule).__name__}; flow-matching schedulers are not supported"
            )
        acp = acp.detach().cpu()
        if acp.ndim != 1 or acp.numel() < 2:
            raise ValueError(f"alphas_cumprod must be a 1-D tensor with at least 2 entries, got shape {tuple(acp.shape)}")
        if (acp <= 0).any() or (acp > 1).any():
            raise ValueError(
                "alphas_cumprod must lie in (0, 1]; a zero-terminal-SNR schedule (alphas_cumprod[-1] = 0) "
                "has no finite-drift VP SDE at t = 1 and is not supported"
            )
        if (acp[1:] > acp[:-1]).any():
            raise ValueError("alphas_cumprod must be non-increasing (non-negative betas)")
        super().__init__(1.0)
        self.alphas_cumprod = acp
        self.num_train_timesteps = acp.numel()
        self._log_acp = torch.cat([torch.zeros(1, dtype=torch.float64), acp.log()])  # nodes t = 0, 1/N, ..., 1

    def __repr__(self):
        return f"DDPMScheduleSDE(num_train_timesteps={self.num_train_timesteps})"

    @property
    def t_min(self):
        """Smallest time at which a network can be queried: ``1 / N`` (timestep 0)."""
        return 1.0 / self.num_train_timesteps

    def _time64(self, t):
        """``t`` as a float64 tensor, checked to lie in [0, 1]."""
        t = torch.as_tensor(t, dtype=torch.float64)
        check_time(t, self.T, allow_zero=True)
        return t

    def _nodes(self, t):
        r"""For every time: :math:`\log\bar\alpha` at the nodes ``j`` and ``j + 1`` around it, and its position
        ``f = N t - j`` between them."""
        t = self._time64(t)
        n = self.num_train_timesteps
        j = t * n
        j0 = torch.floor(j).clamp(0, n - 1)
        log_acp = self._log_acp.to(t.device)
        return log_acp[j0.long()], log_acp[j0.long() + 1], j - j0

    def log_alpha_bar(self, t):
        r"""Interpolated :math:`\log\bar\alpha(t)`, float64, shaped like ``t``.

        .. math:: \log\bar\alpha(t) = (1-f)\log\bar\alpha_{j} + f\log\bar\alpha_{j+1},\quad j = \lfloor N t\rfloor,\ f = N t - j

        (node ``j`` is time ``j / N``; node 0 is :math:`\bar\alpha = 1`).

        Parameters
        ----------
        t : float or Tensor of shape (n,)

        Returns
        -------
        Tensor shaped like ``t``
        """
        lo, hi, frac = self._nodes(t)
        return lo + frac * (hi - lo)

    def marginal(self, t):
        r"""Scale :math:`\sqrt{\bar\alpha(t)}` and std :math:`\sqrt{1 - \bar\alpha(t)}` of ``x_t | x_0``.

        .. math:: \mathrm{scale}(t) = \sqrt{\bar\alpha(t)}, \qquad \mathrm{std}(t) = \sqrt{1 - \bar\alpha(t)}

        At :math:`t = (n+1)/N` they equal ``sqrt(alphas_cumprod[n])`` and
        ``sqrt(1 - alphas_cumprod[n])``, the coefficients of ``scheduler.add_noise``.

        Parameters
        ----------
        t : float or Tensor of shape (n,)

        Returns
        -------
        scale, std : Tensor, shaped like ``t`` (dtype of ``t`` when a floating tensor, else the default)
        """
        dtype = t.dtype if torch.is_tensor(t) and t.is_floating_point() else torch.get_default_dtype()
        log_acp = self.log_alpha_bar(t)
        return torch.exp(0.5 * log_acp).to(dtype), torch.sqrt(-torch.expm1(log_acp)).to(dtype)

    def beta(self, t):
        r"""Piecewise-constant :math:`\beta(t) = -N \log(\bar\alpha_{j+1}/\bar\alpha_j)`, float64, shaped like ``t``.

        .. math:: \beta(t) = -\frac{d}{dt}\log\bar\alpha(t)

        Parameters
        ----------
        t : float or Tensor of shape (n,)

        Returns
        -------
        Tensor shaped like ``t``
        """
        lo, hi, _ = self._nodes(t)
        return -self.num_train_timesteps * (hi - lo)

    def timestep(self, t):
        r"""The (continuous) network timestep of time ``t``: :math:`\tau = N t - 1`, float64.

        .. math:: \tau(t) = N t - 1

        Parameters
        ----------
        t : float or Tensor of shape (n,)

        Returns
        -------
        Tensor shaped like ``t``
        """
        return self._time64(t) * self.num_train_timesteps - 1.0

    def time(self, timestep):
        r"""Continuous time of a network timestep: :math:`t = (\tau + 1) / N`, float64.

        .. math:: t(\tau) = (\tau + 1) / N

        Parameters
        ----------
        timestep : int, float or Tensor of shape (n,)

        Returns
        -------
        Tensor shaped like ``timestep``
        """
        timestep = torch.as_tensor(timestep, dtype=torch.float64)
        last = self.num_train_timesteps - 1
        if not bool(((timestep >= -1) & (timestep <= last)).all()):
            raise ValueError(f"timestep must lie in [-1, {last}] (time in [0, 1]), got values in "
                             f"[{float(timestep.min())}, {float(timestep.max())}]")
        return (timestep + 1.0) / self.num_train_timesteps


# ---------------------------------------------------------------------------------------------
# A UNet as a library score
# ---------------------------------------------------------------------------------------------

def _expand_batch(value, n, name):
    """Repeat tensors with batch size 1 to batch n (recursively in dicts); pass other values through."""
    if torch.is_tensor(value):
        if value.ndim >= 1 and value.shape[0] == 1 and n != 1:
            return value.expand((n,) + tuple(value.shape[1:]))
        if value.ndim >= 1 and value.shape[0] != n:
            raise ValueError(f"{name} must have batch size 1 or {n}, got shape {tuple(value.shape)}")
        return value
    if isinstance(value, Mapping):
        return {k: _expand_batch(v, n, f"{name}[{k!r}]") for k, v in value.items()}
    return value


def _dtype_device(module, x):
    dtype = getattr(module, "dtype", None)
    device = getattr(module, "device", None)
    if (dtype is None or device is None) and isinstance(module, nn.Module):
        first = next(iter(module.parameters()), None)
        if first is not None:
            dtype, device = dtype or first.dtype, device or first.device
    return dtype or x.dtype, device or x.device


class DiffusersScore:
    r"""A diffusers UNet as a library score ``score(x, t)`` in continuous time.

    .. math::

        s(x, t) = -\frac{\hat\epsilon(x, \tau(t))}{\sigma_t}, \qquad \tau(t) = N t - 1,

    where :math:`\hat\epsilon` is the network output converted to a noise
    prediction by :func:`to_epsilon` and :math:`\sigma_t` comes from
    :class:`DDPMScheduleSDE`. With ``sde = score.sde`` the library's
    :func:`scorefusion.fusion.fit_weights` (Sec. 3-4) learns :math:`\lambda`
    for diffusers models; use times ``t >= sde.t_min`` (e.g.
    ``method="dsm", t_range=(sde.t_min, 10 * sde.t_min)`` or ``method="ism",
    t=sde.t_min``), because the paper's default range lies below the first
    trained timestep.

    Not an ``nn.Module`` on purpose: :class:`scorefusion.scores.FusedScore`
    then evaluates the K UNets one after another rather than stacking them with
    ``torch.func``. Gradients flow to ``x`` (implicit score matching needs them).

    Parameters
    ----------
    unet : UNet2DModel, UNet2DConditionModel, FusedUNet, or any module with their call signature
    schedule : diffusers scheduler or DDPMScheduleSDE
        The noise schedule the UNet was trained with.
    prediction_type : {"epsilon", "v_prediction", "sample"}, optional
        Default: ``schedule.config.prediction_type`` for a scheduler, else "epsilon".
    condition : dict, optional
        Extra keyword arguments of the UNet, e.g. ``{"encoder_hidden_states": emb}``
        with ``emb`` of shape (1, L, D) or (n, L, D); tensors with batch size 1
        (also inside nested dicts such as ``added_cond_kwargs``) are expanded to the batch.
    """

    def __init__(self, unet, schedule, prediction_type=None, condition=None):
        if not callable(unet):
            raise TypeError(f"unet must be a callable UNet, got {type(unet).__name__}")
        self.unet = unet
        self.sde = schedule if isinstance(schedule, DDPMScheduleSDE) else DDPMScheduleSDE(schedule)
        if prediction_type is None:
            config = getattr(schedule, "config", None)
            prediction_type = config.get("prediction_type", "epsilon") if isinstance(config, Mapping) else "epsilon"
        self.prediction_type = _check_prediction_type(prediction_type)
        if condition is not None and not isinstance(condition, Mapping):
            raise TypeError(f"condition must be a dict of UNet keyword arguments, got {type(condition).__name__}")
        self.condition = dict(condition or {})

    def __repr__(self):
        return f"DiffusersScore({type(self.unet).__name__}, {self.sde!r}, prediction_type={self.prediction_type!r})"

    def __call__(self, x, t):
        r"""Score of the UNet at ``(x, t)``.

        .. math:: s(x, t) = -\hat\epsilon(x, N t - 1) / \sigma_t

        Parameters
        ----------
        x : Tensor of shape (n, C, H, W)
        t : float or Tensor of shape (n,), in ``[1/N, 1]``

        Returns
        -------
        Tensor of shape (n, C, H, W), dtype and device of ``x``
        """
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError("x must be a floating tensor of shape (n, C, H, W)")
        n = x.shape[0]
        check_time(t, self.sde.T, allow_zero=True)
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        if t.ndim == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f"t must be a scalar or have shape ({n},), got {tuple(t.shape)}")
        if (t < self.sde.t_min * (1 - 1e-6)).any() or (t > self.sde.T).any():
            raise ValueError(
                f"t must lie in [1/N, 1] = [{self.sde.t_min:g}, 1] for a model trained on N = "
                f"{self.sde.num_train_timesteps} timesteps (t = (n + 1) / N is timestep n), got values in "
                f"[{float(t.min()):g}, {float(t.max()):g}]; below 1/N the network would see a negative "
                "timestep. For fit_weights pass t_range=(sde.t_min, 10 * sde.t_min) or t=sde.t_min."
            )
        scale, std = self.sde.marginal(t)
        dtype, device = _dtype_device(self.unet, x)
        tau = self.sde.timestep(t).to(device=device, dtype=torch.float32)
        kwargs = _expand_batch(self.condition, n, "condition")
        out = self.unet(x.to(device=device, dtype=dtype), tau, return_dict=False, **kwargs)[0]
        out = out.to(device=x.device, dtype=x.dtype)
        scale, std = scale.to(x), std.to(x)
        return epsilon_to_score(to_epsilon(out, x, scale, std, self.prediction_type), std)


def encode_images(vae, images, generator=None, sample=True):
    r"""Target images to the latents a latent-diffusion UNet is trained on.

    .. math:: z = c\,(\mathcal E(x) - b), \qquad c = \texttt{scaling\_factor},\ b = \texttt{shift\_factor}

    Parameters
    ----------
    vae : diffusers AutoencoderKL (or any VAE whose ``encode`` returns ``latent_dist``)
    images : Tensor of shape (n, 3, H, W)
        Pixel values in [-1, 1] (``pipe.image_processor.preprocess`` gives that).
    generator : torch.Generator, optional
        For ``sample=True``.
    sample : bool, default True
        Draw from the encoder's posterior (as in training); else take its mode.

    Returns
    -------
    Tensor of shape (n, C, H / f, W / f), in ``images``' dtype

    Notes
    -----
    The fitting data of the Stable Diffusion experiment (Sec. 5) live in this latent space.
    """
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ValueError("images must be a tensor of shape (n, 3, H, W)")
    if images.min() < -1 - 1e-6 or images.max() > 1 + 1e-6:
        raise ValueError("images must hold pixel values in [-1, 1]")
    dtype = getattr(vae, "dtype", images.dtype)
    device = getattr(vae, "device", images.device)
    with torch.no_grad():
        dist = vae.encode(images.to(device=device, dtype=dtype)).latent_dist
        latents = dist.sample(generator=generator) if sample else dist.mode()
    shift = vae.config.get("shift_factor", None) or 0.0
    return ((latents - shift) * vae.config.get("scaling_factor", 1.0)).to(images.dtype)


# ---------------------------------------------------------------------------------------------
# K UNets as one
# ---------------------------------------------------------------------------------------------

def _config_value(unet, key):
    value = unet.config.get(key, None)
    return tuple(value) if isinstance(value, list) else value


class FusedUNet(nn.Module):
    r"""K diffusers UNets that share a scheduler and a latent space, fused into one.

    .. math:: \hat\epsilon_\lambda(x, \tau, c) = \sum_{i=1}^K \lambda_i\, \hat\epsilon_i(x, \tau, c)

    The barycenter sampler of the Stable Diffusion experiment (Liu et al.,
    2025, Sec. 5): dropped into a pipeline (``pipe.unet = FusedUNet(...)``),
    every denoising step uses the fused prediction, i.e. the fused score
    :math:`\sum_i \lambda_i s_i` (see the module docstring for why any shared
    parametrisation and classifier-free guidance commute with the fusion).

    It is called like one UNet (all positional and keyword arguments reach
    every UNet) and returns the same output type (``UNet2DOutput`` or
    ``UNet2DConditionOutput``; a tuple with ``return_dict=False``). It exposes
    what pipelines read from a UNet (``config``, ``dtype``, ``device``,
    ``in_channels``, ``sample_size``, and read-only attributes such as
    ``add_embedding`` from the first UNet) and applies the configuring methods
    pipelines call (``set_attention_slice``, ``set_attn_processor``,
    ``set_default_attn_processor``, ``enable_freeu``/``disable_freeu``,
    ``fuse_qkv_projections``/``unfuse_qkv_projections``, xformers switches) to
    every UNet, when the UNets have them; other methods are not forwarded. Models with weight zero are not evaluated, so a one-hot
    ``lam`` reproduces a single model bit for bit. The sum is accumulated in
    at least float32 and cast back to the UNets' dtype (fp16/bf16 work).
    Load LoRAs into each UNet before fusing; ``save_pretrained`` of a pipeline
    holding a FusedUNet is not supported.

    Parameters
    ----------
    unets : sequence of K UNet2DModel or K UNet2DConditionModel
        One class, one dtype, one device, and equal ``sample_size``,
        ``in_channels``, ``out_channels`` and conditioning dimensions.
    lam : array of shape (K,) on the simplex
    prediction_type : str or sequence of K str, optional
        The parametrisation of each model (from each checkpoint's
        ``scheduler/scheduler_config.json``); they must agree, because the
        pipeline's one scheduler interprets the fused output.

    Raises
    ------
    TypeError
        If a model is not a UNet2DModel / UNet2DConditionModel or the classes differ.
    ValueError
        If the models disagree in sample size, channels, conditioning, dtype,
        device or prediction type, or ``lam`` is not on the simplex.
    """

    def __init__(self, unets, lam, prediction_type=None):
        super().__init__()
        unets = list(unets)
        if len(unets) == 0:
            raise ValueError("unets must contain at least one UNet")
        for i, unet in enumerate(unets):
            if not isinstance(unet, (UNet2DModel, UNet2DConditionModel)):
                raise TypeError(f"unets[{i}] must be a UNet2DModel or UNet2DConditionModel, got {type(unet).__name__}")
        kinds = {UNet2DConditionModel if isinstance(u, UNet2DConditionModel) else UNet2DModel for u in unets}
        if len(kinds) > 1:
            raise TypeError("unets mix UNet2DModel and UNet2DConditionModel; they must share one call signature")
        first = unets[0]
        for key in _SHARED_KEYS:
            ref = _config_value(first, key)
            for i, unet in enumerate(unets[1:], start=1):
                if _config_value(unet, key) != ref:
                    raise ValueError(
                        f"unets disagree in {key}: unets[0] has {ref!r}, unets[{i}] has {_config_value(unet, key)!r}; "
                        "fused UNets must share a latent space (sample size, channels) and conditioning"
                    )
        for attr in ("dtype", "device"):
            values = [getattr(u, attr) for u in unets]
            if any(v != values[0] for v in values):
                raise ValueError(f"unets must share one {attr}, got {values}; move them with .to() first")
        if prediction_type is not None:
            types = [prediction_type] * len(unets) if isinstance(prediction_type, str) else list(prediction_type)
            if len(types) != len(unets):
                raise ValueError(f"prediction_type must be a str or one per UNet ({len(unets)}), got {len(types)}")
            for i, p in enumerate(types):
                _check_prediction_type(p, f"prediction_type[{i}]")
            if len(set(types)) > 1:
                raise ValueError(
                    f"unets disagree in prediction type {types}; the pipeline's single scheduler would misread "
                    "some of them (convert with to_epsilon/from_epsilon or use models of one parametrisation)"
                )
            prediction_type = types[0]
        self.prediction_type = prediction_type
        self.unets = nn.ModuleList(unets)
        self._output_type = next(out for cls, out in _OUTPUT_TYPES if isinstance(first, cls))
        self.set_lam(lam)

    def set_lam(self, lam):
        r"""Replace the weights (e.g. to sweep :math:`\lambda` without rebuilding).

        .. math:: \lambda \in \Delta_K = \{\lambda_i \ge 0,\ \textstyle\sum_i \lambda_i = 1\}

        Parameters
        ----------
        lam : array of shape (K,) on the simplex
        """
        lam = check_simplex(lam, len(self.unets))
        # Plain floats, not a buffer: pipe.to(torch.float16) must not round the weights.
        self._lam = tuple(float(v) for v in lam)

    @property
    def lam(self):
        """The weights, a float64 tensor of shape (K,)."""
        return torch.tensor(self._lam, dtype=torch.float64)

    @property
    def config(self):
        """The first UNet's config (the UNets agree on every entry pipelines rely on)."""
        return self.unets[0].config

    @property
    def dtype(self):
        """Parameter dtype of the UNets."""
        return self.unets[0].dtype

    @property
    def device(self):
        """Device of the UNets."""
        return self.unets[0].device

    @property
    def in_channels(self):
        return self.config.in_channels

    @property
    def out_channels(self):
        return self.config.out_channels

    @property
    def sample_size(self):
        return self.config.sample_size

    def extra_repr(self):
        return f"K={len(self.unets)}, lam={[round(v, 6) for v in self._lam]}, unet={type(self.unets[0]).__name__}"

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            pass
        unets = self.__dict__.get("_modules", {}).get("unets")
        if unets is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            value = getattr(unets[0], name)
        except AttributeError:
            raise AttributeError(
                f"'FusedUNet' object has no attribute {name!r} (nor has its first UNet, a "
                f"{type(unets[0]).__name__})"
            ) from None
        if inspect.ismethod(value):
            if name in _BROADCAST and all(hasattr(u, name) for u in unets):
                def broadcast(*args, **kwargs):
                    for unet in unets:
                        getattr(unet, name)(*args, **kwargs)

                broadcast.__doc__ = f"Call ``{name}`` on every fused UNet."
                return broadcast
            raise AttributeError(
                f"FusedUNet does not forward the method {name!r} (it would act on one UNet only); "
                "call it on each of .unets"
            )
        return value

    def components(self, sample, timestep, *args, **kwargs):
        r"""Every UNet's output at the same input, stacked (all K models, whatever their weight).

        .. math:: \big(\hat\epsilon_1(x, \tau, c), \dots, \hat\epsilon_K(x, \tau, c)\big)

        Parameters
        ----------
        sample : Tensor of shape (n, C, H, W)
        timestep : int, float or Tensor of shape () or (n,)
        *args, **kwargs
            Further UNet arguments (``encoder_hidden_states``, ``added_cond_kwargs``, ...).

        Returns
        -------
        Tensor of shape (K, n, C, H, W)
        """
        kwargs["return_dict"] = False
        return torch.stack([unet(sample, timestep, *args, **kwargs)[0] for unet in self.unets])

    def forward(self, sample, timestep, *args, return_dict=True, **kwargs):
        r"""Fused prediction, called exactly like one UNet.

        .. math:: \hat\epsilon_\lambda = \sum_{i:\ \lambda_i > 0} \lambda_i\, \hat\epsilon_i(x, \tau, c)

        Parameters
        ----------
        sample : Tensor of shape (n, C, H, W)
            Noisy input (batch doubled under classifier-free guidance).
        timestep : int, float or Tensor of shape () or (n,)
        *args, **kwargs
            Every other UNet argument, passed unchanged to each UNet.
        return_dict : bool, default True

        Returns
        -------
        UNet2DOutput or UNet2DConditionOutput (``.sample`` of shape (n, C, H, W)), or a 1-tuple
        """
        total = None
        out_dtype = None
        for weight, unet in zip(self._lam, self.unets):
            if weight == 0.0:
                continue
            out = unet(sample, timestep, *args, return_dict=False, **kwargs)[0]
            out_dtype = out.dtype
            term = out.to(torch.promote_types(out.dtype, torch.float32)) * weight
            total = term if total is None else total + term
        fused = total.to(out_dtype)
        if not return_dict:
            return (fused,)
        return self._output_type(sample=fused)
