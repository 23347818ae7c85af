r"""Chapter 08's experiment helpers: VAEs trained per data regime and seed, and target U-Nets
trained on generated or real images under one budget.

The library part (the VAE, its ELBO, the data sources, the gaps) is
``scorefusion.related.synthetic_data``; this module only fixes how the chapter keys its cache
entries and derives its seeds (``scorefusion.seed_for``), so that every regime of one training
seed starts from the same initial weights and sees the same random numbers.
"""

import numpy as np
import torch

from scorefusion import seed_for, train
from scorefusion.cache import cached_model
from scorefusion.related import synthetic_data as sd

from . import digits as imf

__all__ = ["mixture_counts", "train_images_model", "trained_vae"]


def mixture_counts(lam, m):
    r"""Images per auxiliary for ``m`` draws of the mixture :math:`\sum_i \lambda_i p_i`, by largest remainders.

    .. math:: c_i = \lfloor m \lambda_i \rfloor + [\,i \text{ among the } m - \textstyle\sum_j \lfloor m\lambda_j\rfloor
              \text{ largest remainders } m\lambda_i - \lfloor m\lambda_i \rfloor\,]

    Parameters
    ----------
    lam : array_like of shape (K,), non-negative, summing to 1
    m : int, at least 1

    Returns
    -------
    numpy int array of shape (K,) summing to ``m``
    """
    lam = np.asarray(lam, dtype=float)
    if lam.ndim != 1 or lam.size == 0 or not np.isfinite(lam).all() or (lam < 0).any() or abs(lam.sum() - 1) > 1e-6:
        raise ValueError(f"lam must be a non-empty vector of non-negative weights summing to 1, got {lam}")
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be a positive integer, got {m!r}")
    raw = lam * m
    counts = np.floor(raw).astype(int)
    counts[np.argsort(counts - raw, kind="stable")[: m - counts.sum()]] += 1
    return counts


def trained_vae(regime, source, seed, *, steps, batch, n_train, key=None, lr=1e-3):
    r"""A ``sd.VAE`` trained (or loaded from the cache) on one data regime for ``steps`` Adam steps.

    .. math:: \max_{\theta,\phi}\ \mathbb E_{x\sim \mathcal S_e}\big[\mathrm{ELBO}_{\theta,\phi}(x)\big],
              \quad e = 1, \dots, \lfloor \text{steps} \cdot \text{batch} / n_\text{train} \rfloor

    The initial weights and the training generator come from ``seed_for`` keys that hold the
    training seed but not the regime: for one seed, every regime starts from the same weights.

    Parameters
    ----------
    regime : str
        Name of the data regime (part of the cache key).
    source : tensor (n, 64) or callable (epoch, generator) -> tensor
        As ``sd.train_vae``'s ``source``.
    seed : int
        Training seed.
    steps, batch, n_train : int
        Adam steps, batch size and images per epoch (epochs = steps * batch // n_train).
    key : dict, optional
        What else determines the data (e.g. the generated pool's own key).
    lr : float, default 1e-3

    Returns
    -------
    sd.VAE in eval mode
    """
    for value, name in ((steps, "steps"), (batch, "batch"), (n_train, "n_train")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    epochs = max(1, steps * batch // n_train)
    config = dict(kind="dmaapx-vae", regime=regime, steps=steps, batch=batch, lr=lr, n_train=n_train, seed=seed,
                  seeds="seed_for", **(key or {}))

    def fit(vae):
        return sd.train_vae(vae, source, epochs=epochs, batch_size=batch, lr=lr, progress=False,
                            generator=torch.Generator().manual_seed(seed_for("dmaapx-vae-train", seed))).model

    def build():
        return sd.VAE(generator=torch.Generator().manual_seed(seed_for("dmaapx-vae-init", seed)))

    return cached_model("dmaapx-vae", config, build, fit)


def train_images_model(role, images, config, sde, steps, seed, key):
    r"""A chapter 06 U-Net trained (or loaded) by denoising score matching on ``images`` for ``steps`` Adam steps.

    .. math:: \theta = \arg\min_\theta \frac1m \sum_{j=1}^m \mathbb E_{t, z}\,
              \|\mathrm{std}_t\, s_\theta(x_j + \mathrm{std}_t z, t) + z\|^2

    One recipe for every role (generated images, the target images alone): same architecture,
    steps, batch size, learning rate and EMA, and, for one ``seed``, the same initial weights and
    the same training generator, so that the roles differ only in their data.

    Parameters
    ----------
    role : str
        Part of the cache key ("generated", "scratch").
    images : Tensor (m, 1, h, w) or callable () -> Tensor
        The training images, or a function that makes them (called only on a cache miss).
    config : lab.digits.ImageFusionConfig
    sde : VESDE
    steps : int
    seed : int
        Training seed.
    key : dict
        What determines ``images`` (part of the cache key).

    Returns
    -------
    network in eval mode, parameters frozen
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    cache_key = dict(kind="dmaapx-target", role=role, steps=steps, base=config.base, batch=config.batch_size,
                     lr=config.lr, sde=repr(sde), seed=seed, seeds="seed_for", **key)

    def fit(model):
        data = images() if callable(images) else images
        return train.train_score_model(model, data, sde, steps=steps, batch_size=min(config.batch_size, data.shape[0]),
                                       lr=config.lr, ema=0.99, device=config.device, progress=False,
                                       generator=torch.Generator().manual_seed(seed_for("dmaapx-target-train", seed))
                                       ).model

    model = cached_model(f"dmaapx-{role}", cache_key,
                         lambda: imf.build_unet(config, sde, seed_for("dmaapx-target-init", seed)), fit).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
