r"""Data-free merging of score models by rooting, against naive averaging, scratch training and ScoreFusion
(chapter 09).

The experiment of GAN Cocktail (Avrahami et al., 2022), translated to domain-conditional score models
(:mod:`scorefusion.related.merging`): K source networks, each trained on one domain, are merged into one
network from their generated samples alone. This module holds what the chapter runs but does not need
to show: the domains, the sizes, the cached training of every network, the equal step budget of the
methods, the evaluation (Wasserstein-1, likelihood TV, bits/dim, a digit classifier) and the summaries
over training seeds. Every seed comes from :func:`scorefusion.seed_for` with descriptive keys.

Budget rule: every merge method gets the same number of optimiser steps (rooting and fine-tuning of
the rooted pipeline counted together) and learns from the same generated set (the rooted copies
fit the domain-``k`` rows of the set the fine-tuning uses); see :func:`step_budget`.
"""

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

import scorefusion as sf
from scorefusion import sampling, seed_for
from scorefusion._checks import check_positive_int
from scorefusion.cache import cached_model
from scorefusion.data import digits
from scorefusion.related import merging as mg

from .dimension_free import diffusion_tv

CACHE_VERSION = 1
"""Part of every cache key of this module (1: seeds from ``seed_for``, equal step budgets)."""

DOMAIN_NAMES = ("ring", "diagonal", "pair")
"""Names of the three 2-D domains of :func:`domains_2d`."""


def _generator(*keys):
    return torch.Generator().manual_seed(seed_for(*keys))


def isotropic_mixture(means, std):
    r"""Equal-weight Gaussian mixture with isotropic components of one standard deviation.

    .. math:: p(x) = \frac1m \sum_{j=1}^m \mathcal N(x;\ \mu_j,\ s^2 I)

    Parameters
    ----------
    means : sequence of m points of shape (d,)
    std : float
        The common standard deviation s > 0.

    Returns
    -------
    scorefusion.GaussianMixture (float64)
    """
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    means = torch.as_tensor(means, dtype=torch.float64)
    if means.ndim != 2:
        raise ValueError(f"means must have shape (m, d), got {tuple(means.shape)}")
    m, d = means.shape
    covs = std**2 * torch.eye(d, dtype=torch.float64).expand(m, d, d).clone()
    return sf.GaussianMixture(torch.full((m,), 1.0 / m, dtype=torch.float64), means, covs)


def domains_2d():
    r"""The three 2-D domains of chapter 09: a ring of six modes, three modes on a diagonal, two on the other.

    .. math:: p_0 = \tfrac16 \textstyle\sum_{j<6} \mathcal N\big(2.5(\cos\tfrac{2\pi j}6, \sin\tfrac{2\pi j}6),\ 0.25^2 I\big),
              \quad p_1 = \tfrac13 \sum \mathcal N(\cdot,\ 0.35^2 I), \quad p_2 = \tfrac12 \sum \mathcal N(\cdot,\ 0.5^2 I)

    Returns
    -------
    list of 3 scorefusion.GaussianMixture, in the order of :data:`DOMAIN_NAMES`
    """
    ring = [[2.5 * math.cos(2 * math.pi * i / 6), 2.5 * math.sin(2 * math.pi * i / 6)] for i in range(6)]
    return [isotropic_mixture(ring, 0.25), isotropic_mixture([[-2.0, -2.0], [0.0, 0.0], [2.0, 2.0]], 0.35),
            isotropic_mixture([[-2.0, 2.0], [2.0, -2.0]], 0.5)]


@dataclass(frozen=True)
class Merge2DConfig:
    r"""Sizes of the 2-D merging experiment; :meth:`fast` is the CI run.

    Attributes
    ----------
    n : int
        Training points of each source, and generated samples per domain (the data-free set).
    source_epochs : int
        DSM epochs of each source over its ``n`` points.
    rooting_epochs : int
        Epochs of each rooted copy over its domain's ``n`` generated samples.
    finetune_epochs : int
        Epochs of the rooted pipeline's fine-tuning over all ``K n`` generated samples; the
        baselines get as many steps as rooting and fine-tuning together (:func:`step_budget`).
    short_budget : (int, int)
        ``(rooting_epochs, finetune_epochs)`` of a second, shorter equal budget at which the
        fine-tuned merges are also trained (W1 only), to see how the ranking depends on the budget.
    batch_size : int
    source_lr, lr : float
        Adam learning rates of the sources and of every later training.
    sampler_steps : int
        Euler-Maruyama steps of every sampler (generated data and evaluation).
    n_eval : int
        Samples per W1 evaluation.
    n_tv : int
        Target points of each likelihood-TV estimate.
    n_fit : int
        Generated samples per domain on which ScoreFusion fits lam.
    hidden, depth, embed_dim : int
        ``ConditionalScoreMLP`` sizes.
    """

    n: int = 4096
    source_epochs: int = 100
    rooting_epochs: int = 30
    finetune_epochs: int = 20
    short_budget: tuple = (6, 4)
    batch_size: int = 256
    source_lr: float = 2e-3
    lr: float = 1e-3
    sampler_steps: int = 300
    n_eval: int = 2000
    n_tv: int = 500
    n_fit: int = 1024
    hidden: int = 128
    depth: int = 3
    embed_dim: int = 32

    @classmethod
    def fast(cls):
        """The reduced run of CI (``SCOREFUSION_FAST=1``): half the data, a third of the steps."""
        return cls(n=2048, source_epochs=60, rooting_epochs=12, finetune_epochs=8, short_budget=(3, 2),
                   sampler_steps=100, n_eval=600, n_tv=200, n_fit=512)

    def shortened(self):
        """The same configuration with the rooting and fine-tuning epochs of ``short_budget``."""
        rooting, finetune = self.short_budget
        return dataclasses.replace(self, rooting_epochs=rooting, finetune_epochs=finetune)


@dataclass(frozen=True)
class StepBudget:
    """Optimiser steps of each merge method (see :func:`step_budget`)."""

    rooting_steps: int
    finetune_steps: int
    baseline_epochs: int
    baseline_steps: int

    @property
    def total(self):
        """Steps of the rooted pipeline, rooting and fine-tuning together (= ``baseline_steps``)."""
        return self.rooting_steps + self.finetune_steps


def _steps_per_epoch(n, batch_size):
    return -(-n // batch_size)


def step_budget(n_per_domain, n_domains, batch_size, rooting_epochs, finetune_epochs, n_rooted=None):
    r"""Equal optimiser-step budgets: the baselines get the rooted pipeline's rooting and fine-tuning steps.

    With :math:`m = \lceil n / B \rceil` steps per epoch over one domain's samples, :math:`K` domains,
    :math:`K_r` rooted copies (default :math:`K - 1`), :math:`R` rooting and :math:`F` fine-tuning epochs,

    .. math:: R K_r m + F K m = E K m \quad\Longleftrightarrow\quad E = F + R K_r / K,

    and the baselines (naive averaging and scratch, fine-tuned on the same ``K n`` samples) train
    :math:`E` epochs. ``n`` must be a multiple of ``batch_size`` (so that epochs over one domain and
    over all domains have exact step counts) and :math:`R K_r / K` an integer.

    Parameters
    ----------
    n_per_domain, n_domains, batch_size, rooting_epochs, finetune_epochs : int
    n_rooted : int, optional
        Rooted copies that train (default ``n_domains - 1``: every domain but the root's).

    Returns
    -------
    StepBudget
    """
    for name, value in (("n_per_domain", n_per_domain), ("n_domains", n_domains), ("batch_size", batch_size),
                        ("rooting_epochs", rooting_epochs), ("finetune_epochs", finetune_epochs)):
        check_positive_int(value, name)
    n_rooted = n_domains - 1 if n_rooted is None else n_rooted
    if n_per_domain % batch_size:
        raise ValueError(f"n_per_domain ({n_per_domain}) must be a multiple of batch_size ({batch_size})")
    if (rooting_epochs * n_rooted) % n_domains:
        raise ValueError(f"rooting_epochs * n_rooted ({rooting_epochs} * {n_rooted}) must be a multiple of "
                         f"n_domains ({n_domains}) for the baselines to get whole epochs")
    per_domain = _steps_per_epoch(n_per_domain, batch_size)
    epochs = finetune_epochs + rooting_epochs * n_rooted // n_domains
    budget = StepBudget(rooting_epochs * n_rooted * per_domain, finetune_epochs * n_domains * per_domain,
                        epochs, epochs * n_domains * per_domain)
    assert budget.total == budget.baseline_steps
    return budget


def _cache_key(experiment, seed, sde, fields, **extra):
    return {"chapter": "09", "version": CACHE_VERSION, "experiment": experiment, "seed": seed, "sde": repr(sde),
            **fields, **extra}


def _fields(config, names):
    return {name: getattr(config, name) for name in names}


_ARCH = ("hidden", "depth", "embed_dim")
_GENERATED = ("n", "sampler_steps", "source_epochs", "source_lr", "batch_size") + _ARCH


def build_network(config, sde, n_domains, init_seed, dim=2):
    r"""A fresh ``ConditionalScoreMLP`` of the configured size with seeded initial weights.

    .. math:: s_\theta(x, t, y) = F_\theta(c_\mathrm{in} x,\ \phi(\log\mathrm{std}_t),\ e_y) / \mathrm{std}_t

    Parameters
    ----------
    config : Merge2DConfig or MergeDigitsConfig
    sde : VPSDE
    n_domains : int
    init_seed : int
    dim : int, default 2

    Returns
    -------
    scorefusion.related.merging.ConditionalScoreMLP
    """
    return mg.ConditionalScoreMLP(sde, dim=dim, n_domains=n_domains, hidden=config.hidden, depth=config.depth,
                                  embed_dim=config.embed_dim, init_seed=init_seed)


def train_sources(domains, config, sde, seed):
    r"""The K source networks of one training seed, each fitted by DSM to ``n`` points of its domain only.

    .. math:: \theta^\mathrm{src}_k = \arg\min_\theta\ \mathbb E_{x_0 \sim p_k}\,\mathbb E_{t,z}
              \|\mathrm{std}_t\, s_\theta(x_t, t, k) + z\|^2

    Initial weights, data and mini-batches have seeds ``seed_for("merge2d", role, seed, k)``; the
    networks are cached (:func:`scorefusion.cache.cached_model`).

    Parameters
    ----------
    domains : list of K scorefusion.GaussianMixture
    config : Merge2DConfig
    sde : VPSDE
    seed : int
        Training seed.

    Returns
    -------
    list of K ConditionalScoreMLP (eval mode)
    """
    k_domains = len(domains)

    def source(k):
        def fit(model):
            x = domains[k].sample(config.n, generator=_generator("merge2d", "source-data", seed, k)).float()
            return mg.train_conditional(model, x, torch.full((config.n,), k), sde, epochs=config.source_epochs,
                                        batch_size=config.batch_size, lr=config.source_lr,
                                        generator=_generator("merge2d", "source-train", seed, k),
                                        progress=False)[0]

        key = _cache_key("merge2d-source", seed, sde, _fields(config, _GENERATED), k=k, n_domains=k_domains)
        return cached_model("merge2d-source", key,
                            lambda: build_network(config, sde, k_domains, seed_for("merge2d", "source-init", seed, k)),
                            fit)

    return [source(k) for k in range(k_domains)]


def generated_set(sources, config, sde, seed):
    r"""The data-free training set of one seed: ``n`` samples of every frozen source, labelled by domain.

    .. math:: \{(x, k) : x \sim p_{\theta^\mathrm{src}_k}\},\quad n \text{ per domain}

    (:func:`scorefusion.related.merging.generated_data`, seed ``seed_for("merge2d", "generated", seed)``.)

    Returns
    -------
    (x, labels) : tensors (K n, 2) float32 and (K n,) long
    """
    return mg.generated_data(sources, sde, config.n, n_steps=config.sampler_steps,
                             generator=_generator("merge2d", "generated", seed))


def root_copies(sources, data, config, sde, seed, root=0):
    r"""Model rooting on a shared generated set: copies of the root fitted to each other domain's samples.

    .. math:: \theta_k = \arg\min_\theta \mathbb E_{x_0 \sim \{x : (x, k) \in \mathcal D\}}\,\mathbb E_{t,z}
              \|\mathrm{std}_t s_\theta(x_t, t, k) + z\|^2,\quad \theta \leftarrow \theta^\mathrm{src}_{r}
              \text{ at the start};\qquad \theta_r = \theta^\mathrm{src}_r

    (:func:`scorefusion.related.merging.root_model` with ``data`` = the domain-``k`` rows of the
    generated set :math:`\mathcal D` of :func:`generated_set`, so that rooting uses no samples
    beyond the ones every method sees.) Cached.

    Parameters
    ----------
    sources : list of K ConditionalScoreMLP
    data : (x, labels)
        The generated set of :func:`generated_set` for the same ``seed``.
    config : Merge2DConfig
    sde : VPSDE
    seed : int
    root : int, default 0

    Returns
    -------
    list of K ConditionalScoreMLP: the root itself at ``root``, rooted copies elsewhere
    """
    x, labels = data
    out = []
    for k, source in enumerate(sources):
        if k == root:
            out.append(source)
            continue

        def fit(model, k=k, source=source):
            return mg.root_model(sources[root], source, k, sde, epochs=config.rooting_epochs, lr=config.lr,
                                 batch_size=config.batch_size, data=x[labels == k],
                                 generator=_generator("merge2d", "rooting", seed, k), progress=False)[0]

        key = _cache_key("merge2d-rooted", seed, sde, _fields(config, _GENERATED + ("rooting_epochs", "lr")),
                         k=k, root=root, n_domains=len(sources))
        out.append(cached_model("merge2d-rooted", key, lambda: build_network(config, sde, len(sources), 0), fit))
    return out


def finetuned(name, start, sources, data, config, sde, seed, epochs):
    r"""Fine-tune a start network on the generated set of all K domains (cached under ``name``).

    .. math:: \min_\theta \frac1K \sum_k \mathcal L_k(\theta)\quad \text{started at } \theta_\mathrm{start}

    (:func:`scorefusion.related.merging.finetune`; every start of one seed sees the same samples in
    the same mini-batch order, seed ``seed_for("merge2d", "finetune", seed)``, so the methods'
    results are paired.)

    Parameters
    ----------
    name : str
        What the start is ("naive", "rooted", "scratch"); part of the cache key, which must
        determine the start together with ``config`` and ``seed``.
    start : ConditionalScoreMLP
    sources : list of K ConditionalScoreMLP
    data : (x, labels), the generated set of :func:`generated_set`
    config : Merge2DConfig
    sde : VPSDE
    seed : int
    epochs : int
        Epochs over the ``K n`` samples (:func:`step_budget` gives the equal-budget numbers).

    Returns
    -------
    ConditionalScoreMLP (eval mode)
    """
    def fit(model):
        return mg.finetune(start, sources, sde, epochs=epochs, lr=config.lr, batch_size=config.batch_size,
                           data=data, generator=_generator("merge2d", "finetune", seed), progress=False)[0]

    key = _cache_key(f"merge2d-{name}-ft", seed, sde,
                     _fields(config, _GENERATED + ("rooting_epochs", "finetune_epochs", "lr")),
                     start=name, epochs=epochs, n_domains=len(sources))
    return cached_model(f"merge2d-{name}-ft", key, lambda: build_network(config, sde, len(sources), 0), fit)


def weight_distance(model, reference):
    r"""Distance in weight space relative to the reference's norm.

    .. math:: \|\theta - \theta_\mathrm{ref}\| / \|\theta_\mathrm{ref}\|

    Parameters
    ----------
    model, reference : nn.Module with parameters of equal shapes

    Returns
    -------
    float
    """
    a = torch.cat([p.detach().flatten() for p in model.parameters()])
    b = torch.cat([p.detach().flatten() for p in reference.parameters()])
    if a.shape != b.shape:
        raise ValueError(f"model and reference must have as many parameters, got {a.numel()} and {b.numel()}")
    return float((a - b).norm() / b.norm())


@dataclass
class DomainEval:
    """One model of one domain: its samples, W1 to fresh domain samples, likelihood TV and its standard error."""

    samples: torch.Tensor
    w1: float
    tv: float
    tv_se: float


def domain_w1(score, domain, config, sde, seed, k):
    r"""Samples of one model of domain ``k`` and their Wasserstein-1 to as many fresh samples of the domain.

    .. math:: W_1\big(\hat p_\theta^{(n)},\ \hat p_k^{(n)}\big), \qquad n = n_\mathrm{eval}

    Euler-Maruyama samples of ``score`` and the reference sample depend only on ``(seed, k)``: every
    model of one seed and domain is evaluated on common random numbers (paired).

    Returns
    -------
    (tensor (n_eval, 2), float)
    """
    with torch.no_grad():
        x = sampling.euler_maruyama(score, sde, shape=(config.n_eval, 2), n_steps=config.sampler_steps,
                                    generator=_generator("merge2d", "eval-samples", seed, k))
    ref = domain.sample(config.n_eval, generator=_generator("merge2d", "eval-reference", seed, k))
    return x, sf.w1_distance(x, ref)


def evaluate_domain(score, domain, config, sde, seed, k):
    r"""Samples, Wasserstein-1 and likelihood TV of one model of domain ``k``.

    W1 between ``n_eval`` Euler-Maruyama samples of ``score`` and as many fresh samples of the
    domain (:func:`domain_w1`: :func:`scorefusion.w1_distance`, exact transport); TV from the model's
    probability-flow likelihood at ``n_tv`` domain points (:func:`lab.dimension_free.diffusion_tv`),

    .. math:: \mathrm{TV}(p_k, p_\theta) = \mathbb E_{y \sim p_k}\big[(1 - p_\theta(y)/p_k(y))_+\big].

    The sampler noise, the reference sample and the TV points depend only on ``(seed, k)``: every
    model of one seed and domain is evaluated on common random numbers (paired).

    Parameters
    ----------
    score : callable (x, t) -> score
    domain : scorefusion.GaussianMixture
    config : Merge2DConfig
    sde : VPSDE
    seed, k : int
        Training seed and domain index (the evaluation's seeds).

    Returns
    -------
    DomainEval
    """
    x, w1 = domain_w1(score, domain, config, sde, seed, k)
    tv, tv_se = diffusion_tv(score, domain, sde, n_eval=config.n_tv, seed=seed_for("merge2d", "eval-tv", seed, k),
                             rtol=1e-3, atol=1e-3)
    return DomainEval(x, w1, tv, tv_se)


def w1_floor(domain, config, seed, k):
    r"""W1 between two independent samples of the true domain of the evaluation's size: the floor of W1.

    .. math:: W_1(\hat p_k, \hat p_k'), \qquad \hat p_k, \hat p_k' \text{ two } n_\mathrm{eval}\text{-samples of } p_k

    The second sample is the reference of :func:`evaluate_domain` for the same ``(seed, k)``.
    """
    x = domain.sample(config.n_eval, generator=_generator("merge2d", "eval-floor", seed, k))
    ref = domain.sample(config.n_eval, generator=_generator("merge2d", "eval-reference", seed, k))
    return sf.w1_distance(x, ref)


def time_sampler(score, sde, n=500, n_steps=100, repeats=2):
    r"""Best wall-clock time of ``repeats`` Euler-Maruyama runs of ``n`` samples and ``n_steps`` steps in 2-D.

    .. math:: \min_{r \le R} t_r

    Returns
    -------
    float
        Seconds.
    """
    check_positive_int(repeats, "repeats")
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            sampling.euler_maruyama(score, sde, shape=(n, 2), n_steps=n_steps, generator=torch.Generator().manual_seed(0))
        best = min(best, time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------------------------------
# Digits 7 and 9


@dataclass(frozen=True)
class MergeDigitsConfig:
    r"""Sizes of the digits experiment (8x8 digits 7 and 9, one source per class); :meth:`fast` is CI's.

    Attributes
    ----------
    classes : tuple of int
    t_range : (float, float)
        Times of every DSM loss; samplers and likelihoods stop at ``t_range[0]``.
    copies : int
        Dequantized copies of each training image in a source's training set.
    source_epochs, rooting_epochs, finetune_epochs : int
        As in :class:`Merge2DConfig`; the naive start gets the equal budget of :func:`step_budget`.
    n_gen : int
        Generated samples per domain.
    n_test : int
        Held-out test images per class for bits/dim.
    n_samples : int
        Samples per model and class shown to the classifier.
    sampler_steps : int
    batch_size : int
    lr : float
    hidden, depth, embed_dim : int
    """

    classes: tuple = (7, 9)
    t_range: tuple = (1.5e-2, 1.0)
    copies: int = 8
    source_epochs: int = 80
    rooting_epochs: int = 30
    finetune_epochs: int = 10
    n_gen: int = 512
    n_test: int = 60
    n_samples: int = 200
    sampler_steps: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    hidden: int = 256
    depth: int = 3
    embed_dim: int = 32

    @classmethod
    def fast(cls):
        """The reduced run of CI."""
        return cls(source_epochs=30, rooting_epochs=14, finetune_epochs=5, n_test=20, n_samples=100,
                   sampler_steps=100)


TRAIN_PER_CLASS = 119
"""Training images per class that the digits experiment uses (the smaller class's whole training pool)."""

N_LEVELS = 17
"""Grey levels of scikit-learn's digits; uniform guessing costs log2(17) = 4.09 bits/dim."""


def digit_sets(config):
    r"""Training and held-out test images of each class, flattened to 64 pixels in [0, 1].

    Returns
    -------
    (train, test) : two lists of tensors, (119, 64) and (n_test, 64), one per class
    """
    train = [digits(classes=(c,), weights=(1.0,), n=TRAIN_PER_CLASS,
                    generator=_generator("merge-digits", "train", c)).images.flatten(1) for c in config.classes]
    test = [digits(classes=(c,), weights=(1.0,), n=config.n_test, split="test",
                   generator=_generator("merge-digits", "test", c)).images.flatten(1) for c in config.classes]
    return train, test


def dequantize(x, copies, generator):
    r"""``copies`` copies of each image, each pixel moved uniformly within its grey level.

    .. math:: \tilde x = x + \tfrac1{16}(u - \tfrac12), \qquad u \sim U[0, 1)^{64}

    Parameters
    ----------
    x : tensor (n, 64)
    copies : int
    generator : torch.Generator

    Returns
    -------
    tensor (copies n, 64)
    """
    check_positive_int(copies, "copies")
    return x.repeat(copies, 1) + (torch.rand(copies * x.shape[0], x.shape[1], generator=generator) - 0.5) / 16


def train_digit_models(config, sde, seed=0):
    r"""Sources, rooted copy, generated set and the fine-tuned merges of the digits experiment (cached).

    Sources: one ``ConditionalScoreMLP`` per class on that class's dequantized training images. Then
    the same pipeline as in 2-D on ``n_gen`` generated samples per class: the root (class index 0)
    is rooted to class 1 on that class's generated rows, and the naive and rooted averages are
    fine-tuned on the whole set, the naive start for the rooted pipeline's total number of steps
    (:func:`step_budget`).

    Parameters
    ----------
    config : MergeDigitsConfig
    sde : VPSDE
    seed : int, default 0

    Returns
    -------
    dict with keys "sources" (list), "rooted" (list), "data" ((x, labels)), "budget" (StepBudget),
    and the networks "naive average", "rooted average", "naive + fine-tune", "rooted + fine-tune"
    """
    k_domains = len(config.classes)
    train, _ = digit_sets(config)
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
              if f.name not in ("n_test", "n_samples")}

    def cached(name, fit, init=0, **extra):
        key = _cache_key(f"mergedig-{name}", seed, sde, fields, **extra)
        return cached_model(f"mergedig-{name}", key, lambda: build_network(config, sde, k_domains, init, dim=64), fit)

    def source(k):
        def fit(model):
            x = dequantize(train[k], config.copies, _generator("merge-digits", "dequantize", seed, k))
            return mg.train_conditional(model, x, torch.full((x.shape[0],), k), sde, epochs=config.source_epochs,
                                        batch_size=config.batch_size, lr=config.lr, t_range=config.t_range,
                                        generator=_generator("merge-digits", "source-train", seed, k),
                                        progress=False)[0]
        return cached("source", fit, init=seed_for("merge-digits", "source-init", seed, k), k=k)

    sources = [source(k) for k in range(k_domains)]
    data = mg.generated_data(sources, sde, config.n_gen, n_steps=config.sampler_steps, eps=config.t_range[0],
                             generator=_generator("merge-digits", "generated", seed))
    x, labels = data

    def rooting(model):
        return mg.root_model(sources[0], sources[1], 1, sde, epochs=config.rooting_epochs, lr=config.lr,
                             batch_size=config.batch_size, t_range=config.t_range, data=x[labels == 1],
                             generator=_generator("merge-digits", "rooting", seed), progress=False)[0]

    rooted = [sources[0], cached("rooted", rooting)]
    budget = step_budget(config.n_gen, k_domains, config.batch_size, config.rooting_epochs, config.finetune_epochs)

    def finetune(start, epochs):
        return lambda model: mg.finetune(start, sources, sde, epochs=epochs, lr=config.lr,
                                         batch_size=config.batch_size, data=data, t_range=config.t_range,
                                         generator=_generator("merge-digits", "finetune", seed), progress=False)[0]

    naive, rooted_avg = mg.average_weights(sources), mg.average_weights(rooted)
    return {"sources": sources, "rooted": rooted, "data": data, "budget": budget,
            "naive average": naive, "rooted average": rooted_avg,
            "naive + fine-tune": cached("naive-ft", finetune(naive, budget.baseline_epochs),
                                        epochs=budget.baseline_epochs),
            "rooted + fine-tune": cached("rooted-ft", finetune(rooted_avg, config.finetune_epochs),
                                         epochs=config.finetune_epochs)}


def evaluate_digit_model(score, test, label, classifier, config, sde, seed, k):
    r"""Held-out bits/dim of one class under a model, and the share of its samples called the right digit.

    Bits/dim: :func:`scorefusion.sampling.bits_per_dim` with 17 grey levels (uniform dequantization),
    stopping at ``t_range[0]``; uniform guessing costs :math:`\log_2 17 \approx 4.09`. Right digit:

    .. math:: \frac1m \sum_{j \le m} \mathbf 1\big[\hat y(\mathrm{clip}_{[0,1]}(x_j)) = c\big],
              \quad x_j \sim p_\theta \text{ (Euler-Maruyama)}

    Parameters
    ----------
    score : callable (x, t) -> score
    test : tensor (n_test, 64)
    label : int
        The digit ``c``.
    classifier : fitted scikit-learn classifier
    config : MergeDigitsConfig
    sde : VPSDE
    seed, k : int
        Seeds of the dequantization and of the samples (shared by every model of ``(seed, k)``).

    Returns
    -------
    (bpd per test image: ndarray (n_test,), share right: float)
    """
    bpd = sampling.bits_per_dim(score, test, sde, n_levels=N_LEVELS, eps=config.t_range[0], rtol=1e-3, atol=1e-3,
                                generator=_generator("merge-digits", "eval-bpd", seed, k))
    with torch.no_grad():
        x = sampling.euler_maruyama(score, sde, shape=(config.n_samples, 64), n_steps=config.sampler_steps,
                                    eps=config.t_range[0], generator=_generator("merge-digits", "eval-samples", seed, k))
    right = float(np.mean(classifier.predict(x.clamp(0, 1).numpy()) == label))
    return np.asarray(torch.as_tensor(bpd).double()), right


def gaussian_bpd(train, test, copies, seed, k):
    r"""Held-out bits/dim of a full-covariance Gaussian fitted to one class's dequantized training images.

    .. math:: \mathrm{bpd}(x) = -\frac{\log \mathcal N(\tilde x;\ \hat\mu,\ \hat\Sigma + 10^{-3} I) + 64 \ln\frac1{16}}{64 \ln 2}

    Parameters
    ----------
    train, test : tensors (n, 64)
    copies : int
        Dequantized copies of the training images (as the sources see them).
    seed, k : int

    Returns
    -------
    ndarray (n_test,)
    """
    x = dequantize(train, copies, _generator("merge-digits", "dequantize", seed, k)).double()
    cov = torch.cov(x.T) + 1e-3 * torch.eye(x.shape[1], dtype=torch.float64)
    fit = torch.distributions.MultivariateNormal(x.mean(0), cov)
    xq = dequantize(test, 1, _generator("merge-digits", "gaussian-test", seed, k)).double()
    d = x.shape[1]
    return (-(fit.log_prob(xq) - d * math.log(16)) / (d * math.log(2))).numpy()
