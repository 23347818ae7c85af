r"""The paper's 1-D experiment (Liu et al., 2025, Sec. 5.1) and the DSM-noise measurement of chapter 03.

Trained auxiliary ``ScoreMLP`` networks fused by ISM against a network trained
from scratch on the target samples, Wasserstein-1 to the target; the notebook
and the claim ``dsm_tiny_t_variance`` call the same functions.
"""

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from scorefusion import VESDE, AnalyticScore, FusedScore, GeometricMixture, fit_weights, sampling
from scorefusion.cache import cached_model
from scorefusion.data import paper_1d
from scorefusion.losses import perturb
from scorefusion.metrics import w1_distance
from scorefusion.nets import ScoreMLP
from scorefusion.train import train_score_model


def dsm_linear_term_spread(aux, x0, sde, times, generator=None):
    r"""Spread of the per-sample DSM linear coefficient, rescaled to the ISM scale, at several times.

    On one draw :math:`x_t = x_0 + \mathrm{std}_t z` the DSM quadratic's
    linear coefficient is :math:`b_i = -u_i \cdot z` with
    :math:`u_i = \mathrm{std}_t\, s_i(x_t, t)`. A Taylor expansion in
    :math:`\mathrm{std}_t` gives

    .. math::

        \frac{b_i}{\mathrm{std}_t^2} = -\frac{s_i(x_0, t) \cdot z}{\mathrm{std}_t}
            - z^\top \nabla s_i(x_0, t)\, z + O(\mathrm{std}_t),

    whose mean is the ISM coefficient :math:`-\nabla\cdot s_i` while its
    standard deviation is that of the leading term, about
    :math:`\sqrt{\mathbb E\|s_i\|^2} / \mathrm{std}_t`: the noise of DSM at
    tiny times (Vincent, 2011; Liu et al., 2025, Sec. 4).

    Parameters
    ----------
    aux : sequence of K scores
    x0 : Tensor of shape (n, d)
    sde : VESDE or VPSDE
    times : sequence of T floats in (0, sde.T]
    generator : torch.Generator, optional

    Returns
    -------
    stds : ndarray of shape (T,)
        The marginal standard deviations std_t.
    mean : ndarray of shape (T, K)
        Mean over samples of :math:`b_i / \mathrm{std}_t^2`.
    spread : ndarray of shape (T, K)
        Standard deviation over samples of :math:`b_i / \mathrm{std}_t^2`.
    leading : ndarray of shape (T, K)
        Standard deviation over the same draws of the leading term
        :math:`s_i(x_0, t) \cdot z / \mathrm{std}_t` alone.
    """
    n = x0.shape[0]
    stds, means, spreads, leads = [], [], [], []
    with torch.no_grad():
        for t in times:
            tt = torch.full((n,), float(t), dtype=x0.dtype)
            xt, z, std = perturb(x0, sde, tt, generator)
            std_t = float(std.reshape(-1)[0])
            b = torch.stack([-(std * s(xt, tt) * z).flatten(1).sum(1) for s in aux]) / std_t**2  # (K, n)
            lead = torch.stack([(s(x0, tt) * z).flatten(1).sum(1) for s in aux]) / std_t
            stds.append(std_t)
            means.append(b.mean(1).numpy())
            spreads.append(b.std(1).numpy())
            leads.append(lead.std(1).numpy())
    return np.array(stds), np.array(means), np.array(spreads), np.array(leads)


@dataclass
class Paper1DConfig:
    """Sizes of the paper's 1-D experiment (ScoreFusion, Sec. 5.1), for :func:`paper_1d_networks`.

    Attributes
    ----------
    target_ns : tuple of int
        Target sample sizes.
    aux_n : int
        Training samples per auxiliary (16384 in the paper).
    aux_steps, scratch_steps : int
        Optimiser steps of the auxiliary and from-scratch trainings.
    batch_size : int
    lr : float
    ema : float
        Decay of the weights' exponential moving average (lower it for short runs).
    hidden, depth : int
        ``ScoreMLP`` width and depth.
    n_samples : int
        Samples drawn from every model for W1.
    sample_steps : int
        Euler-Maruyama steps.
    n_test : int
        Fresh target samples W1 is measured against.
    seed : int
    """

    target_ns: tuple = (32, 64, 128, 256, 512, 1024)
    aux_n: int = 16384
    aux_steps: int = 6000
    scratch_steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    ema: float = 0.999
    hidden: int = 128
    depth: int = 3
    n_samples: int = 8192
    sample_steps: int = 500
    n_test: int = 8192
    seed: int = 0


def train_mlp_score_net(data, dim, sde, config, steps, name, seed, progress=False):
    r"""A ``ScoreMLP`` fitted to data in ``dim`` dimensions by denoising score matching, cached on disk.

    .. math:: \theta = \arg\min_\theta \mathbb E\,\|\mathrm{std}_t\, s_\theta(x_0 + \mathrm{std}_t z, t) + z\|^2

    The cache key (:func:`scorefusion.cache.cached_model`) holds every number
    that determines the weights (the data's size and seed, the network, the
    optimiser and the number of steps), so fast- and full-size runs never share
    weights and a rerun loads instead of training.

    Parameters
    ----------
    data : callable () -> Tensor of shape (n, dim)
        Makes the training data deterministically (only called on a cache miss).
    dim : int
    sde : VESDE
    config : Paper1DConfig
        Network and optimiser settings (``hidden``, ``depth``, ``batch_size``, ``lr``).
    steps : int
        Optimiser steps.
    name : str
        Cache file prefix.
    seed : int
        Seeds the data description in the key and the training randomness.
    progress : bool

    Returns
    -------
    nets.ScoreMLP in eval mode
    """
    key = {"sde": repr(sde), "dim": dim, "hidden": config.hidden, "depth": config.depth, "steps": steps,
           "batch_size": config.batch_size, "lr": config.lr, "ema": config.ema, "seed": seed, "name": name,
           "version": 2}  # 2: exactly `steps` optimiser steps; 1 rounded up to whole epochs

    def build():
        torch.manual_seed(seed)  # the initial weights
        return ScoreMLP(sde, dim, hidden=config.hidden, depth=config.depth)

    def fit(model):
        x = data()
        res = train_score_model(model, x.float(), sde, steps=steps,
                                batch_size=min(config.batch_size, x.shape[0]), lr=config.lr, ema=config.ema, device="cpu",
                                progress=progress, generator=torch.Generator().manual_seed(seed))
        return res.model

    return cached_model(name, key, build, fit)


def sample_1d(score, sde, n, n_steps, seed):
    r"""Samples of a 1-D score model by the Euler-Maruyama reverse SDE (``sampling.euler_maruyama``).

    .. math:: x_{k+1} = x_k + g(t_k)^2 s(x_k, t_k)\,\Delta t + g(t_k)\sqrt{\Delta t}\, z_k

    Returns
    -------
    Tensor of shape (n, 1), float64
    """
    with torch.no_grad():
        x = sampling.euler_maruyama(score, sde, (n, 1), n_steps=n_steps,
                                    generator=torch.Generator().manual_seed(seed))
    return x.detach().double()


@dataclass
class Paper1DRow:
    """One target size of the 1-D experiment: the fitted weights and W1 of each model to the target.

    ``lam`` is fitted with the trained auxiliary networks, ``lam_exact`` with the exact auxiliary scores
    on the same samples.
    """

    n: int
    lam: tuple
    lam_exact: tuple
    w1_fusion: float
    w1_scratch: float
    w1_barycenter: float


def paper_1d_networks(config=None, sde=None, progress=False):
    r"""The paper's 1-D experiment: ScoreFusion of trained auxiliaries vs a network trained from scratch.

    Auxiliary ``ScoreMLP`` networks are trained on ``config.aux_n`` samples of
    each auxiliary mixture of :func:`scorefusion.data.paper_1d`. For each
    target size ``n``: :math:`\hat\lambda` by ISM of the fused networks on the
    ``n`` target samples (exact divergences by autograd in 1-D), samples of
    the fused score :math:`\sum_i \hat\lambda_i s_{\theta_i}` by the reverse
    SDE, samples of a network trained from scratch on the same ``n`` samples,
    and the Wasserstein-1 distance of each to fresh target samples
    (Liu et al., 2025, Sec. 5.1). ``w1_barycenter`` is the W1 of the exact
    barycenter :math:`p_{\hat\lambda}` of the true auxiliaries (no network
    error), for reference.

    .. math:: W_1\Big(\mathrm{Law}\big(\text{reverse SDE with } \textstyle\sum_i \hat\lambda_i s_{\theta_i}\big),\ q\Big)
              \quad\text{vs}\quad W_1\big(\mathrm{Law}(\text{reverse SDE with } s_{\theta_n}),\ q\big)

    Parameters
    ----------
    config : Paper1DConfig, optional
    sde : VESDE, optional
        Default ``VESDE(25.0)``.
    progress : bool

    Returns
    -------
    rows : list of Paper1DRow
    aux_nets : list of nets.ScoreMLP
    samples : dict mapping (name, n) to Tensor of shape (n_samples, 1)
        ``("fusion", n)``, ``("scratch", n)`` and ``("target", 0)``.
    """
    config = config or Paper1DConfig()
    sde = sde or VESDE(25.0)
    preset = paper_1d()
    aux_nets = []
    for i, dist in enumerate(preset.aux):
        seed = config.seed * 1000 + i
        aux_nets.append(train_mlp_score_net(
            lambda dist=dist, seed=seed: dist.sample(config.aux_n, generator=torch.Generator().manual_seed(seed)),
            1, sde, config, config.aux_steps, f"paper1d-aux{i}-n{config.aux_n}", seed, progress))
    test = preset.target.sample(config.n_test, generator=torch.Generator().manual_seed(config.seed * 1000 + 99))
    samples = {("target", 0): test}
    rows = []
    for n in tqdm(config.target_ns, disable=not progress, desc="target sizes"):
        seed = config.seed * 1000 + 100 + n

        def target_data(n=n, seed=seed):
            return preset.target.sample(n, generator=torch.Generator().manual_seed(seed))

        x = target_data().float()
        fit = fit_weights(aux_nets, x, sde, method="ism")
        lam = tuple(round(float(v), 6) for v in fit.lam)
        exact = fit_weights([AnalyticScore(d, sde) for d in preset.aux], x.double(), sde, method="ism")
        lam_exact = tuple(round(float(v), 6) for v in exact.lam)
        fused = FusedScore(aux_nets, torch.tensor(lam, dtype=torch.float64))
        scratch = train_mlp_score_net(target_data, 1, sde, config, config.scratch_steps, f"paper1d-scratch-n{n}", seed,
                                     progress)
        fused_x = sample_1d(fused, sde, config.n_samples, config.sample_steps, seed)
        scratch_x = sample_1d(scratch, sde, config.n_samples, config.sample_steps, seed)
        bary_x = GeometricMixture(preset.aux, torch.tensor(lam, dtype=torch.float64), n_grid=4001).sample(
            config.n_samples, generator=torch.Generator().manual_seed(seed))
        samples[("fusion", n)] = fused_x
        samples[("scratch", n)] = scratch_x
        rows.append(Paper1DRow(n, lam, lam_exact, w1_distance(fused_x, test), w1_distance(scratch_x, test),
                               w1_distance(bary_x, test)))
    return rows, aux_nets, samples
