r"""ScoreFusion on handwritten digits: the paper's image experiment, shared by notebooks and tests.

Liu et al. (2025), Sec. 5.2 fuse four diffusion models of EMNIST digits 7 and 9,
trained on 7:9 proportions 0.1/0.9, 0.3/0.7, 0.7/0.3, 0.9/0.1, into a model of
a 0.6/0.4 target from few target images, and compare negative log-likelihoods
(bits/dim) with a model trained from scratch on the target images and with an
auxiliary model fine-tuned on them. Here the images are scikit-learn's bundled
digits (:func:`scorefusion.data.digits`), so everything runs offline.

One configuration function, :func:`scale_config`, picks every size from the
device: the CPU setting (8x8 images, four auxiliaries) is the paper's
experiment shrunk to two cores; with CUDA the same code runs larger images,
more auxiliaries and larger batches. Trained networks are cached by
:func:`scorefusion.cache.cached_model` under a hash of everything that
determines their weights.
"""

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from scorefusion import VESDE, FusedScore, fit_weights, sampling
from scorefusion._checks import check_positive_int
from scorefusion.cache import cached_model
from scorefusion.data import DIGITS_AUX_WEIGHTS, DIGITS_TARGET_WEIGHTS, digits
from scorefusion.losses import dsm_loss
from scorefusion.nets import ScoreUNet
from scorefusion.train import resolve_device, train_score_model

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
    scratch_steps, finetune_steps : int
        Optimiser steps of the two baselines.
    base : int
        Width of the U-Net (channels of its first level).
    batch_size : int
        Training batch (capped by the data size).
    lr, finetune_lr : float
        Adam learning rates.
    test_size : int
        Held-out target test images scored in bits/dim (at most 100).
    n_generated : int
        Images sampled per model for the 7:9 proportion.
    sample_steps : int
        Euler-Maruyama steps.
    fit_t : float
        Time of implicit score matching (``fit_weights(method="ism")``).
    fit_t_range : (float, float)
        Time range of the DSM and SGD fits. The paper's ``(1e-7, 1e-4)``
        noises EMNIST's 256 grey levels by about their spacing; these digits
        have 17 levels (spacing 1/16), so the default range is chosen where the
        noise, :math:`\mathrm{std}_t \in [0.03, 0.1]`, is about one grey level.
    sgd_epochs : int
        Epochs of the official SGD recipe (100 in the paper).
    ode_rtol : float
        Tolerance of the probability-flow ODE of the likelihoods (on these
        digits 1e-3 and 1e-4 give bits/dim within 0.002 of each other, at half
        the cost).
    seed : int
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
    n_generated: int = 100
    sample_steps: int = 100
    fit_t: float = 3e-3
    fit_t_range: tuple = (1e-3, 1e-2)
    sgd_epochs: int = 100
    ode_rtol: float = 1e-3
    seed: int = 0

    @property
    def k(self):
        """Number of auxiliary models."""
        return len(self.aux_weights)


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


def scale_config(device=None, fast=False):
    r"""The experiment's sizes for a device: the one switch between a laptop run and a GPU run.

    ============  ===========  ==========  ===========
    setting        CPU fast     CPU full    CUDA full
    ============  ===========  ==========  ===========
    image size     8            8           16
    auxiliaries    4            4           8
    aux steps      200          1200        8000
    batch          64           128         512
    U-Net width    16           16          64
    ============  ===========  ==========  ===========

    (CUDA fast mode keeps the CUDA shapes with CPU-fast step counts, to check
    a GPU quickly.) The table of the paper's Sec. 5.2 is the full setting.

    .. math:: \text{config} = f(\text{device}, \text{fast})

    Parameters
    ----------
    device : str or torch.device, optional
        Default: ``"cuda"`` when available, else ``"cpu"``.
    fast : bool, default False
        The small setting used by tests (``SCOREFUSION_FAST=1``).

    Returns
    -------
    ImageFusionConfig
    """

    device = resolve_device("auto" if device is None else device).type
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        config = ImageFusionConfig(device=device, image_size=16, aux_weights=spread_weights(8),
                                   aux_train_size=8192, aux_steps=8000, scratch_steps=3000,
                                   finetune_steps=1000, base=64, batch_size=512, lr=1e-3,
                                   test_size=100, n_generated=1000, sample_steps=500, ode_rtol=1e-4)
    else:
        config = ImageFusionConfig()
    if fast:
        config = dataclasses.replace(config, aux_train_size=512, aux_steps=200, target_ns=(16, 64),
                                     scratch_steps=120, finetune_steps=50,
                                     batch_size=64 if device == "cpu" else config.batch_size,
                                     test_size=16, n_generated=32, sample_steps=40, sgd_epochs=10,
                                     ode_rtol=1e-3)
    return config


def _config_dict(config, **extra):
    keys = ("image_size", "base", "batch_size", "seed")
    out = {k: getattr(config, k) for k in keys}
    out["version"] = 2  # 2: exactly `steps` optimiser steps (train_score_model(steps=)); 1 rounded up to whole epochs
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
        return ScoreUNet(sde, channels=1, image_size=config.image_size, base=config.base)

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
            data = digits(weights=weights, n=config.aux_train_size, size=config.image_size,
                          generator=torch.Generator().manual_seed(seed))
            return _train(model, data.images.to(config.device), sde, config, config.aux_steps, config.lr,
                          seed, progress)

        model = cached_model(f"digits-aux{i}", key, lambda seed=seed: build_unet(config, sde, seed), fit)
        models.append(_freeze(model.to(config.device)))
    return models


def _freeze(model):
    return model.eval().requires_grad_(False)


def target_data(config, n):
    r"""The ``n`` target training images (7:9 = 0.6/0.4), one fixed draw per ``(seed, n)``.

    .. math:: x_{1..n} \sim \text{digits}(0.6, 0.4), \text{ training pool}

    Parameters
    ----------
    config : ImageFusionConfig
    n : int

    Returns
    -------
    Digits
    """
    return digits(weights=DIGITS_TARGET_WEIGHTS, n=n, size=config.image_size,
                  generator=torch.Generator().manual_seed(config.seed * 1000 + 500 + n))


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
    return digits(weights=DIGITS_TARGET_WEIGHTS, n=config.test_size, split="test", size=config.image_size,
                  generator=torch.Generator().manual_seed(config.seed * 1000 + 999))


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


def finetune_best(config, sde, aux, n, progress=False):
    r"""Baseline 2: the auxiliary with the lowest DSM loss on the target images, fine-tuned on them.

    .. math:: i^* = \arg\min_i L_i(x_{1..n}), \qquad
              \theta = \text{Adam steps on } L(x_{1..n}) \text{ from } \theta_{i^*}

    Parameters
    ----------
    config : ImageFusionConfig
    sde : VESDE
    aux : list of auxiliary networks
    n : int
    progress : bool

    Returns
    -------
    (network in eval mode, int index of the auxiliary it started from)
    """
    x = target_data(config, n).images.to(config.device)
    best = int(np.argmin(dsm_per_model(aux, x, sde, seed=config.seed)))
    seed = config.seed * 1000 + 800 + n
    key = _config_dict(config, role="finetune", n=n, steps=config.finetune_steps, lr=config.finetune_lr,
                       sde=repr(sde), start=best, aux_state=_state_key(aux[best]))

    def build():
        return copy.deepcopy(aux[best]).requires_grad_(True).train()

    def fit(model):
        return _train(model, x, sde, config, config.finetune_steps, config.finetune_lr, seed, progress)

    return _freeze(cached_model("digits-finetune", key, build, fit).to(config.device)), best


def _state_key(model):
    """A short fingerprint of a model's weights (so a retrained auxiliary invalidates fine-tunes)."""
    total = sum(float(p.double().abs().sum()) for p in model.state_dict().values())
    return f"{total:.10e}"


def proportion_classifier(image_size=8, seed=0):
    r"""A 7-vs-9 classifier (logistic regression) to measure the 7:9 proportion of generated images.

    Trained on the whole training pool at 0.5/0.5, scored on the whole test pool.

    .. math:: P(7 \mid x) = \sigma(w^\top x + b)

    Parameters
    ----------
    image_size : int, default 8
    seed : int, default 0

    Returns
    -------
    (sklearn.linear_model.LogisticRegression, float test accuracy)
    """
    from sklearn.linear_model import LogisticRegression

    train = digits(weights=(0.5, 0.5), n=238, size=image_size, generator=torch.Generator().manual_seed(seed))
    test = digits(weights=(0.5, 0.5), n=120, split="test", size=image_size,
                  generator=torch.Generator().manual_seed(seed))
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(train.images.flatten(1).numpy(), train.labels.numpy())
    return clf, float(clf.score(test.images.flatten(1).numpy(), test.labels.numpy()))


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


@dataclass
class ImageFusionRow:
    """One target size of the bits/dim table.

    Attributes
    ----------
    n : int
    lam : dict mapping method ("ism", "dsm", "sgd") to a tuple of K weights
    bpd : dict mapping model ("scorefusion", "scratch", "finetune") to bits/dim on the test images
    finetune_from : int
        Index of the auxiliary the fine-tuned baseline started from.
    seconds_fit : dict mapping method to seconds spent fitting lam
    """

    n: int
    lam: dict
    bpd: dict
    finetune_from: int
    seconds_fit: dict


N_LEVELS = 17
"""Grey levels of the digits (0..16), spacing 1/16 at ``scale="unit"``."""


def bits_per_dim(score, images, sde, rtol=1e-4, seed=0):
    r"""Negative log-likelihood of the discrete test images in bits/dim, by the probability-flow ODE.

    ``sampling.bits_per_dim`` with ``n_levels = 17`` on ``[0, 1]``: each image
    is dequantized, :math:`\tilde x = x + \delta(u - \tfrac12)`,
    :math:`u \sim U[0, 1)^D`, :math:`\delta = 1/16`, and its log-density comes
    from the instantaneous change of variables along the probability-flow ODE
    (as in the paper's evaluation, Sec. 5.2), giving an upper bound on the bits
    per pixel of the 17-level images (uniform guessing costs
    :math:`\log_2 17 \approx 4.09`):

    .. math:: \mathrm{bpd}(x) = -\frac{\log p_0(\tilde x) + D \ln\delta}{D \ln 2}

    Parameters
    ----------
    score : score callable
    images : Tensor of shape (m, 1, h, w), values on the 17 grey levels (``scale="unit"``)
    sde : VESDE
    rtol : float, default 1e-4
        Relative (and absolute) tolerance of the ODE solver.
    seed : int
        Seeds the dequantization noise and the Hutchinson probes.

    Returns
    -------
    float, the mean over images
    """
    g = torch.Generator(device=images.device).manual_seed(seed)
    bpd = sampling.bits_per_dim(score, images, sde, n_levels=N_LEVELS, data_range=(0.0, 1.0), generator=g,
                                rtol=rtol, atol=rtol)
    return float(bpd.double().mean())


def run_table(config, sde=None, methods=("ism", "dsm", "sgd"), progress=False):
    r"""The bits/dim table: ScoreFusion against both baselines at every target size.

    For each ``n`` in ``config.target_ns``: fit :math:`\lambda` on the ``n``
    target images with every method of :func:`scorefusion.fit_weights`
    (the first is the one sampled and scored), then score the fused model
    :math:`s_\lambda = \sum_i \lambda_i s_i`, the model trained from scratch
    and the fine-tuned auxiliary on the held-out test images.

    .. math:: \hat\lambda = \arg\min_{\lambda\in\Delta_K} \hat L_n(\lambda), \qquad
              \mathrm{bpd}(s_{\hat\lambda}) \text{ vs } \mathrm{bpd}(s_{\text{scratch}}),\
              \mathrm{bpd}(s_{\text{finetune}})

    Parameters
    ----------
    config : ImageFusionConfig
    sde : VESDE, optional (default ``VESDE(25.0)``)
    methods : sequence of {"ism", "dsm", "sgd"}
    progress : bool

    Returns
    -------
    (list of ImageFusionRow, list of auxiliary networks)
    """
    sde = sde or VESDE(25.0)
    aux = train_auxiliaries(config, sde, progress=progress)
    test = target_test(config).images.to(config.device)
    rows = []
    for n in tqdm(config.target_ns, disable=not progress, desc="target sizes"):
        x = target_data(config, n).images.to(config.device)
        lams, seconds = {}, {}
        for method in methods:
            fit = fit_weights(aux, x, sde, method=method, t=config.fit_t if method == "ism" else None,
                              t_range=config.fit_t_range, epochs=config.sgd_epochs,
                              generator=torch.Generator(device=x.device).manual_seed(n))
            lams[method] = tuple(float(v) for v in fit.lam)  # exact: rounded weights leave the simplex
            seconds[method] = fit.seconds
        fused = FusedScore(aux, torch.tensor(lams[methods[0]], dtype=torch.float64)).to(config.device)
        scratch = train_scratch(config, sde, n, progress)
        tuned, best = finetune_best(config, sde, aux, n, progress)
        bpd = {name: bits_per_dim(model, test, sde, rtol=config.ode_rtol, seed=n)
               for name, model in (("scorefusion", fused), ("scratch", scratch), ("finetune", tuned))}
        rows.append(ImageFusionRow(n, lams, bpd, best, seconds))
    return rows, aux


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
