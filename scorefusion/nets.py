"""Time-conditioned score networks.

Both networks condition on the noise level through Gaussian Fourier features
(Tancik et al. 2020, as in Song's score-SDE tutorial) of
:math:`c_\\mathrm{noise} = \\tfrac14\\log \\mathrm{std}_t` rather than of t: the
log-std spreads the paper's tiny fusion times (t ~ 1e-7..1e-4, std ~ 1e-3..1e-2)
and the large ones over a range of a few units, where t itself would crowd them
at 0. They scale their input by
:math:`c_\\mathrm{in} = 1/\\sqrt{\\mathrm{scale}_t^2 + \\mathrm{std}_t^2}` and divide their
output by :math:`\\mathrm{std}_t`, so that the raw network predicts :math:`-z`
(unit scale at every t) and the module returns a score (Song et al. 2021b,
Sec. 3.3 and the tutorial's output scaling; the input scaling follows the
preconditioning idea of Karras et al. 2022). Neither uses BatchNorm or in-place
operations, so K copies can be stacked with ``torch.func`` and evaluated in one
``vmap`` call (:class:`~scorefusion.scores.FusedScore`, the fused score
:math:`\\sum_i \\lambda_i s_i` of Liu et al. 2025, Sec. 4).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from ._checks import check_positive_int, check_sde, check_time


class FourierFeatures(nn.Module):
    r"""Fixed random Fourier features :math:`[\sin 2\pi W c, \cos 2\pi W c]` of a scalar ``c``.

    Parameters
    ----------
    dim : int
        Output size (even).
    scale : float, default 4.0
        Standard deviation of the frequencies ``W``.
    """

    def __init__(self, dim, scale=4.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"dim must be even, got {dim}")
        self.register_buffer("freqs", torch.randn(dim // 2, generator=torch.Generator().manual_seed(0)) * scale)

    def forward(self, c):
        angles = 2 * math.pi * c[:, None] * self.freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


def noise_conditioning(sde, x, t):
    r"""The conditioning of a score network at times ``t``: :math:`(t, c_\mathrm{in}, c_\mathrm{noise}, \mathrm{std}_t)`.

    .. math::

        c_\mathrm{in}(t) = \frac{1}{\sqrt{\mathrm{scale}_t^2 + \mathrm{std}_t^2}}, \qquad
        c_\mathrm{noise}(t) = \tfrac14 \log \mathrm{std}_t

    (the input scaling of Karras et al. 2022 and the log-std noise level, see
    the module docstring). Checks only shapes, not values, so that it may run
    under ``torch.vmap``; the networks' ``forward`` checks the times.

    Parameters
    ----------
    sde : SDE
        Gives :math:`\mathrm{scale}_t, \mathrm{std}_t` through ``sde.marginal``.
    x : Tensor of shape (n, ...)
        The batch; gives n, the dtype and the device.
    t : float or Tensor of shape (n,)

    Returns
    -------
    t, c_in, c_noise, std : Tensors of shape (n,) in x's dtype
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    scale, std = sde.marginal(t)
    scale, std = scale.to(x.dtype), std.to(x.dtype)
    return t, torch.rsqrt(scale**2 + std**2), torch.log(std) / 4, std


def _check_input(x, t, sde, event_shape):
    """Check a network's input: floating x of shape (n, *event_shape) with n >= 1, and t in (0, T].

    The values of t are checked when t is a number or a CPU tensor; a tensor on
    an accelerator is checked for its type only, since reading its values would
    make every call wait for the device (the samplers and losses make and check
    their times; a t <= 0 gives a non-finite score, which they detect).
    """
    shape = ", ".join(str(v) for v in event_shape)
    if not torch.is_tensor(x):
        raise TypeError(f"x must be a torch tensor of shape (n, {shape}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating tensor, got {x.dtype}")
    if x.ndim != 1 + len(event_shape) or tuple(x.shape[1:]) != tuple(event_shape) or x.shape[0] == 0:
        raise ValueError(f"x must have shape (n, {shape}) with n >= 1, got {tuple(x.shape)}")
    if torch.is_tensor(t) and t.device.type != "cpu":
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must hold real times, got dtype {t.dtype}")
    else:
        # T as the times' precision holds it: float32(T) may exceed T, and a grid ending at T reaches it
        T = float(torch.tensor(sde.T, dtype=t.dtype)) if torch.is_tensor(t) and t.is_floating_point() else sde.T
        check_time(t, max(T, sde.T))


class ScoreMLP(nn.Module):
    r"""Score network for vectors: an MLP on :math:`(c_\mathrm{in} x, \text{features}(\log \mathrm{std}_t))`.

    .. math:: s_\theta(x, t) = \frac{F_\theta(c_\mathrm{in}(t)\, x,\ \log\mathrm{std}_t)}{\mathrm{std}_t}

    where :math:`F_\\theta` is an MLP (SiLU) on the concatenation of the scaled
    input and the Fourier features of :math:`\\tfrac14 \\log\\mathrm{std}_t`.

    Parameters
    ----------
    sde : SDE
        Gives :math:`\\mathrm{scale}_t, \\mathrm{std}_t` through ``sde.marginal``.
    dim : int
        Data dimension d; inputs have shape (n, d).
    hidden : int, default 128
        Width of the hidden layers.
    depth : int, default 3
        Number of hidden layers.
    embed_dim : int, default 64
        Size of the noise-level features (even).

    Notes
    -----
    ``forward(x, t)``: ``x`` of shape (n, d), ``t`` a float or of shape (n,)
    in (0, T]; returns the score, shape (n, d).
    """

    def __init__(self, sde, dim, hidden=128, depth=3, embed_dim=64):
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth), ("embed_dim", embed_dim)):
            check_positive_int(value, name)
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sine and cosine features), got {embed_dim}")
        self.sde = check_sde(sde)
        self.dim = dim
        self.embed = FourierFeatures(embed_dim)
        layers, width = [], dim + embed_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x, t):
        """Score at ``x`` of shape (n, d) and times ``t`` (a float or shape (n,)) in (0, T]."""
        _check_input(x, t, self.sde, (self.dim,))
        _, c_in, c_noise, std = noise_conditioning(self.sde, x, t)
        h = torch.cat([x * c_in[:, None], self.embed(c_noise)], dim=1)
        return self.net(h) / std[:, None]


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the noise embedding added in between, and a skip."""

    def __init__(self, c_in, c_out, emb_dim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class ScoreUNet(nn.Module):
    r"""A small time-conditioned U-Net for images of shape (n, C, H, W).

    .. math:: s_\theta(x, t) = \frac{U_\theta(c_\mathrm{in}(t)\, x,\ \log\mathrm{std}_t)}{\mathrm{std}_t}

    Each resolution has one residual block on the way down and one on the way
    up (with the skip connection concatenated); GroupNorm rather than
    BatchNorm, so that K copies can be stacked and evaluated together with
    ``torch.func`` (see :class:`~scorefusion.scores.FusedScore`).

    Sizes: 8x8 (digits on CPU, ``base=16``) to 32x32 (``channel_mult=(1, 2, 2)``
    on GPU); the default (``base=32``) has about 0.41 M parameters.

    Parameters
    ----------
    sde : SDE
        Gives :math:`\\mathrm{scale}_t, \\mathrm{std}_t` through ``sde.marginal``.
    channels : int, default 1
    image_size : int, default 8
        H = W; must be divisible by ``2 ** (len(channel_mult) - 1)``.
    base : int, default 32
        Channels at the first resolution.
    channel_mult : tuple of int, default (1, 2)
        Channel multipliers per resolution; use (1, 2, 2) for 32x32.
    groups : int, default 8
        GroupNorm groups (capped by the channel count).

    Notes
    -----
    ``forward(x, t)``: ``x`` of shape (n, C, H, W), ``t`` a float or of shape
    (n,) in (0, T]; returns the score, shape (n, C, H, W).
    """

    def __init__(self, sde, channels=1, image_size=8, base=32, channel_mult=(1, 2), groups=8):
        super().__init__()
        for name, value in (("channels", channels), ("image_size", image_size), ("base", base), ("groups", groups)):
            check_positive_int(value, name)
        if base % 2:
            raise ValueError(f"base must be even (it sizes the sine and cosine noise features), got {base}")
        channel_mult = tuple(channel_mult) if isinstance(channel_mult, (tuple, list)) else channel_mult
        if not isinstance(channel_mult, tuple) or len(channel_mult) == 0:
            raise TypeError(f"channel_mult must be a non-empty tuple of ints, got {channel_mult!r}")
        for m in channel_mult:
            check_positive_int(m, "channel_mult")
        if image_size % (2 ** (len(channel_mult) - 1)):
            raise ValueError(f"image_size {image_size} must be divisible by 2**{len(channel_mult) - 1}")
        widths = [base * m for m in channel_mult]
        normed = [base, *widths] + [c + w for c, w in zip([widths[-1], *widths[::-1]], widths[::-1])]
        for width in normed:  # the channel counts that meet a GroupNorm
            if width % min(groups, width):
                raise ValueError(f"groups={groups} must divide every normalised channel count, got {width} "
                                 f"(from base={base}, channel_mult={channel_mult})")
        self.sde = check_sde(sde)
        self.channels = channels
        self.image_size = image_size
        emb_dim = 4 * base
        self.embed = nn.Sequential(FourierFeatures(base), nn.Linear(base, emb_dim), nn.SiLU(),
                                   nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        self.down = nn.ModuleList()
        c = base
        for w in widths:
            self.down.append(ResBlock(c, w, emb_dim, groups))
            c = w
        self.downsample = nn.ModuleList([nn.Conv2d(w, w, 3, stride=2, padding=1) for w in widths[:-1]])
        self.mid = ResBlock(c, c, emb_dim, groups)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(ResBlock(c + w, w, emb_dim, groups))
            c = w
        self.upsample = nn.ModuleList([nn.Conv2d(w, w, 3, padding=1) for w in list(reversed(widths))[:-1]])
        self.out_norm = nn.GroupNorm(min(groups, c), c)
        self.out = nn.Conv2d(c, channels, 3, padding=1)

    def forward(self, x, t):
        """Score at images ``x`` of shape (n, C, H, W) and times ``t`` (a float or shape (n,)) in (0, T]."""
        _check_input(x, t, self.sde, (self.channels, self.image_size, self.image_size))
        _, c_in, c_noise, std = noise_conditioning(self.sde, x, t)
        emb = self.embed(c_noise)
        h = self.inp(x * c_in[:, None, None, None])
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(F.silu(self.out_norm(h))) / std[:, None, None, None]
