r"""Generalized contrastive divergence against its two baselines on 2-D toy data (chapter 10).

GCD (Yoon et al., 2023; :mod:`scorefusion.related.gcd`) trains an energy and a few-step diffusion
sampler jointly; the baselines are the same sampler trained alone by its ELBO and the same energy
trained by contrastive divergence with short-run Langevin chains. This module holds what the
chapter runs but does not need to show: the data sets, the sizes, the cached training of every
model (with snapshots of the sampler along the way, for learning curves), the evaluation (W1 and
binned TV to held-out data, exact samples of an energy on a grid) and the summaries over training
seeds. Every seed comes from :func:`scorefusion.seed_for` with descriptive keys.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import make_moons
from torch import nn

import scorefusion as sf
from scorefusion import seed_for
from scorefusion._checks import check_positive_int
from scorefusion.cache import cached_model
from scorefusion.related import gcd

CACHE_VERSION = 1
"""Part of every cache key of this module (1: seeds from ``seed_for``, sampler snapshots)."""

METHODS = ("gcd", "elbo", "cd")
"""The three trainers: GCD (energy and sampler), the sampler alone by its ELBO, the energy alone by CD."""


def _generator(*keys):
    return torch.Generator().manual_seed(seed_for(*keys))


def ring(weights, std=0.2, radius=2.0):
    r"""Mixture of 8 Gaussians on a circle, with the given (unnormalised) mode weights.

    .. math:: p(x) = \sum_{j<8} w_j\, \mathcal N\big(x;\ r(\cos\tfrac{2\pi j}{8}, \sin\tfrac{2\pi j}{8}),\ s^2 I\big),
              \qquad \textstyle\sum_j w_j = 1

    Parameters
    ----------
    weights : sequence of 8 positive floats
        Normalised here.
    std, radius : float

    Returns
    -------
    scorefusion.GaussianMixture (float64)
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (8,) or not bool((w > 0).all()):
        raise ValueError(f"weights must be 8 positive numbers, got shape {tuple(w.shape)}")
    if not (std > 0 and radius > 0):
        raise ValueError(f"std and radius must be positive, got {std!r} and {radius!r}")
    ang = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
    means = torch.stack([radius * ang.cos(), radius * ang.sin()], 1)
    return sf.GaussianMixture(w / w.sum(), means, std**2 * torch.eye(2, dtype=torch.float64).expand(8, 2, 2))


def moons(n, seed):
    r"""scikit-learn's two moons (noise 0.08), centred and scaled by 1.6.

    .. math:: x = 1.6\,(m - (0.5, 0.25)), \qquad m \sim \text{make\_moons}(n, \text{noise} = 0.08)

    Parameters
    ----------
    n : int
    seed : int
        Any non-negative int (reduced modulo :math:`2^{32}` for scikit-learn).

    Returns
    -------
    tensor (n, 2), float32
    """
    check_positive_int(n, "n")
    x, _ = make_moons(n, noise=0.08, random_state=int(seed) % 2**32)
    return torch.as_tensor((x - np.array([0.5, 0.25])) * 1.6, dtype=torch.float32)


@dataclass(frozen=True)
class GCDConfig:
    r"""Sizes of the chapter's experiment; :meth:`fast` is the CI run.

    Attributes
    ----------
    hidden, depth : int
        Energy MLP width and depth (the sampler's MLP has the same width).
    n_steps : int
        Steps K of the diffusion sampler.
    batch_size, iters : int
        Mini-batch and iterations of every trainer.
    lr, energy_reg : float
        Adam learning rate; DxMI's energy penalty alpha.
    n_langevin, step_size, init_std : int, float, float
        Contrastive divergence's short-run Langevin chains.
    n_train, n_held : int
        Training points and held-out points of each data set.
    n_eval : int
        Samples per W1 / binned-TV evaluation.
    lim, n_grid : float, int
        Energies are normalised on the grid of ``[-lim, lim]^2`` with ``n_grid`` nodes per side.
    bins : int
        Histogram bins per side of the binned TV.
    curve_every : int
        Iterations between two points of a learning curve.
    """

    hidden: int = 64
    depth: int = 3
    n_steps: int = 6
    batch_size: int = 256
    iters: int = 2000
    lr: float = 1e-3
    energy_reg: float = 0.1
    n_langevin: int = 20
    step_size: float = 0.01
    init_std: float = 2.0
    n_train: int = 4096
    n_held: int = 20_000
    n_eval: int = 2000
    lim: float = 4.0
    n_grid: int = 161
    bins: int = 24
    curve_every: int = 200

    @classmethod
    def fast(cls):
        """The reduced run of CI (``SCOREFUSION_FAST=1``): 400 iterations, smaller evaluations."""
        return cls(iters=400, n_eval=1000, n_grid=121, curve_every=100)

    @property
    def curve_iterations(self):
        """Iterations at which the samplers are recorded: ``curve_every, 2 curve_every, ..., iters``."""
        its = list(range(self.curve_every, self.iters + 1, self.curve_every))
        return tuple(its if its and its[-1] == self.iters else its + [self.iters])

    @property
    def bounds(self):
        """The grid's square, ``(-lim, lim)``."""
        return (-self.lim, self.lim)


_TRAINING = ("hidden", "depth", "n_steps", "batch_size", "iters", "lr", "energy_reg", "n_langevin", "step_size",
             "init_std", "n_train", "curve_every")


def datasets(config):
    r"""The two data sets, training and held-out points: ``{"ring": (train, held), "moons": (train, held)}``.

    Ring: :func:`ring` with equal weights; moons: :func:`moons`. Seeds
    ``seed_for("gcd10", name, "train" | "held")``; the data are the same for every training seed.

    Returns
    -------
    dict of name -> (tensor (n_train, 2), tensor (n_held, 2)), float32
    """
    uniform = ring(torch.ones(8))
    return {
        "ring": (uniform.sample(config.n_train, generator=_generator("gcd10", "ring", "train")).float(),
                 uniform.sample(config.n_held, generator=_generator("gcd10", "ring", "held")).float()),
        "moons": (moons(config.n_train, seed_for("gcd10", "moons", "train")),
                  moons(config.n_held, seed_for("gcd10", "moons", "held"))),
    }


def hist_tv(x, ref, lim, bins=24):
    r"""Total variation between the 2-D histograms of two sample sets on ``[-lim, lim]^2``; mass outside counts.

    .. math:: \tfrac12 \Big(\sum_b |\hat p_b - \hat q_b| + \big|(1 - \textstyle\sum_b \hat p_b) - (1 - \sum_b \hat q_b)\big|\Big)

    Parameters
    ----------
    x, ref : arrays (n, 2) and (m, 2)
    lim : float
    bins : int

    Returns
    -------
    float
    """
    check_positive_int(bins, "bins")
    rng = [[-lim, lim], [-lim, lim]]
    x, ref = np.asarray(x, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or ref.ndim != 2 or ref.shape[1] != 2:
        raise ValueError(f"x and ref must have shape (n, 2), got {x.shape} and {ref.shape}")
    hx = np.histogram2d(*x.T, bins=bins, range=rng)[0].ravel() / len(x)
    hr = np.histogram2d(*ref.T, bins=bins, range=rng)[0].ravel() / len(ref)
    return float(0.5 * (np.abs(hx - hr).sum() + abs((1 - hx.sum()) - (1 - hr.sum()))))


def sample_scores(x, held, config):
    r"""(W1 to ``n_eval`` held-out points, binned TV to all held-out points) of samples ``x``.

    W1 by :func:`scorefusion.w1_distance` (exact transport) on the first ``n_eval`` samples and
    held-out points; binned TV by :func:`hist_tv` of the first ``n_eval`` samples.

    Returns
    -------
    (float, float)
    """
    x = x[:config.n_eval]
    return sf.w1_distance(x.double(), held[:config.n_eval].double()), hist_tv(x, held, config.lim, config.bins)


def initial_models(config, seed):
    """The untrained energy, sampler and learning-curve snapshots of one training seed.

    Every method starts from these weights (seed ``seed_for("gcd10", "init", seed)``); the chapter
    also scores the untrained energy, as the reference a trained one must beat.

    Parameters
    ----------
    config : GCDConfig
    seed : int

    Returns
    -------
    torch.nn.ModuleDict
        ``"energy"``, ``"sampler"`` and ``"snapshots"`` (one sampler per recorded iteration).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for("gcd10", "init", seed))
        energy = gcd.EnergyMLP(2, config.hidden, config.depth)
        sampler = gcd.DiffusionSampler(2, config.n_steps, config.hidden)
    snapshots = nn.ModuleList(gcd.DiffusionSampler(2, config.n_steps, config.hidden)
                              for _ in config.curve_iterations)
    return nn.ModuleDict({"energy": energy, "sampler": sampler, "snapshots": snapshots})


def train_method(method, name, data, config, seed, init=None):
    r"""The models of one trainer on one data set and training seed, from the cache when present.

    ``method`` is ``"gcd"`` (:func:`scorefusion.related.gcd.train_gcd`), ``"elbo"``
    (:func:`~scorefusion.related.gcd.train_diffusion_elbo`, the sampler alone) or ``"cd"``
    (:func:`~scorefusion.related.gcd.train_contrastive_divergence`, the energy alone), all with
    ``config.iters`` iterations of batch ``config.batch_size``. Initial weights have seed
    ``seed_for("gcd10", "init", seed)`` (the same for every method), mini-batches and noise
    ``seed_for("gcd10", "train", method, name, seed)``. The sampler's weights after every
    iteration of :attr:`GCDConfig.curve_iterations` are kept in ``"snapshots"`` (for learning curves).

    Parameters
    ----------
    method : str
    name : str
        Name of the data set (part of the cache key, which must determine ``data``).
    data : tensor (n, 2)
    config : GCDConfig
    seed : int
        Training seed.
    init : (str, nn.ModuleDict), optional
        A label and trained models to start from instead of fresh networks.

    Returns
    -------
    nn.ModuleDict with "energy" (EnergyMLP), "sampler" (DiffusionSampler), "snapshots"
    (ModuleList of DiffusionSampler, one per curve iteration; untrained for ``"cd"``)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    key = {"chapter": "10", "version": CACHE_VERSION, "method": method, "data": name, "seed": seed,
           "init": None if init is None else init[0], **{f: getattr(config, f) for f in _TRAINING}}

    def fit(m):
        if init is not None:
            m.load_state_dict(init[1].state_dict())
        gen = _generator("gcd10", "train", method, name, seed)
        slots = {it: i for i, it in enumerate(config.curve_iterations)}

        def record(it):
            if it in slots:
                m["snapshots"][slots[it]].load_state_dict(m["sampler"].state_dict())

        common = {"iters": config.iters, "batch_size": config.batch_size, "generator": gen, "progress": False}
        if method == "gcd":
            gcd.train_gcd(m["energy"], m["sampler"], data, lr_energy=config.lr, lr_sampler=config.lr,
                          energy_reg=config.energy_reg, callback=record, **common)
        elif method == "elbo":
            gcd.train_diffusion_elbo(m["sampler"], data, lr=config.lr, callback=record, **common)
        else:
            gcd.train_contrastive_divergence(m["energy"], data, lr=config.lr, n_langevin=config.n_langevin,
                                             step_size=config.step_size, init_std=config.init_std,
                                             energy_reg=config.energy_reg, **common)
        return m

    return cached_model(f"gcd10-{method}-{name}", key, lambda: initial_models(config, seed), fit)


def energy_density(energy, config):
    r"""The energy's normalised density on the configured grid (:func:`~scorefusion.related.gcd.energy_density_on_grid`).

    .. math:: q_\theta(g) = e^{-E_\theta(g)} \big/ \textstyle\sum_{g'} e^{-E_\theta(g')}\,\Delta A

    Returns
    -------
    (points (G, 2), density (G,), cell_area)
    """
    return gcd.energy_density_on_grid(energy, bounds=config.bounds, n_grid=config.n_grid)


def energy_samples(energy, n, config, generator):
    r"""Exact samples of :math:`q_\theta \propto e^{-E_\theta}` restricted to the grid: a cell, then uniform jitter.

    .. math:: P(\text{cell } g) \propto e^{-E_\theta(g)}

    Returns
    -------
    tensor (n, 2), float32
    """
    pts, dens, _ = energy_density(energy, config)
    return gcd.grid_sample(pts, dens, n, generator=generator)


def langevin_samples(energy, n, config, generator):
    r"""Contrastive divergence's own negatives: short-run Langevin chains from :math:`\mathcal N(0, s^2 I)`.

    .. math:: x_0 \sim \mathcal N(0, s^2 I),\qquad x \leftarrow x - \tfrac\epsilon2 \nabla E_\theta(x) + \sqrt\epsilon\, z

    Returns
    -------
    tensor (n, 2)
    """
    x0 = config.init_std * torch.randn((n, 2), generator=generator)
    return gcd.langevin(energy, x0, n_steps=config.n_langevin, step_size=config.step_size, generator=generator)


def learning_curve(models, held, config, seed, name):
    r"""W1 and binned TV to held-out data of the sampler recorded at every curve iteration.

    Each snapshot draws ``n_eval`` samples with the generator ``seed_for("gcd10", "curve", name,
    seed, iteration)``, the same for every method of one data set and seed (paired).

    Parameters
    ----------
    models : nn.ModuleDict from :func:`train_method` ("gcd" or "elbo")
    held : tensor (m, 2)
    config : GCDConfig
    seed : int
    name : str

    Returns
    -------
    ndarray (len(curve_iterations), 2): columns W1, TV
    """
    rows = []
    for it, sampler in zip(config.curve_iterations, models["snapshots"]):
        x = sampler.sample(config.n_eval, generator=_generator("gcd10", "curve", name, seed, it))
        rows.append(sample_scores(x, held, config))
    return np.array(rows)
