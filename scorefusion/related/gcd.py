r"""Generalized contrastive divergence: an energy and a diffusion sampler trained jointly (Yoon et al., 2023; PAPERS.md Sec. 4).

An energy-based model :math:`q_\theta(x) \propto e^{-E_\theta(x)}`, data :math:`p` and a
few-step diffusion sampler :math:`\pi_\phi` play the minimax game (GCD, Sec. 2 of the paper)

.. math::

    \min_\theta \max_\phi\ \mathrm{KL}(p\,\|\,q_\theta) - \mathrm{KL}(\pi_\phi\,\|\,q_\theta)
    = \mathbb E_p[E_\theta] - \mathbb E_{\pi_\phi}[E_\theta] + H(\pi_\phi) - H(p),

in which :math:`\log Z_\theta` cancels, so no MCMC is needed. The inner optimum is
:math:`\pi = q_\theta` (then the outer problem is maximum likelihood) and the equilibrium is
:math:`q_\theta = \pi_\phi = p`.

Choices made here (the paper leaves them open or uses other ones at scale):

* The sampler is :math:`x_0 \sim \mathcal N(0, I)`,
  :math:`x_{k+1} = x_k + \mu_\phi(x_k, k) + \sigma_k z_k` for :math:`k < K` (learned per-step
  :math:`\sigma_k`), trained by backpropagation through the whole trajectory (:math:`K \le 10`).
* Its entropy :math:`H(x_K)` is replaced by the variational lower bound obtained from a fixed
  noising chain :math:`r(x_k \mid x_{k+1}) = \mathcal N(\sqrt{1-b_k}\,x_{k+1}, b_k I)` (the DDPM
  forward kernels, cosine schedule), as in DxMI:
  :math:`H(x_K) \ge H(x_{0:K}) + \mathbb E_\pi \sum_k \log r(x_k \mid x_{k+1})`. The bound is tight
  when the sampler is the exact reversal of the chain, so the sampler is pulled toward a K-step
  diffusion model of :math:`q_\theta`. (The cruder bound :math:`H(x_K) \ge H(x_K \mid x_{K-1})` lets
  the drift collapse all mass onto one mode: the minimax game then cycles like a GAN.)
* The energy step adds :math:`\alpha(\mathbb E_p E^2 + \mathbb E_\pi E^2)`, the small penalty of DxMI.

Baselines: the same sampler trained alone by its evidence lower bound (a K-step DDPM,
:func:`train_diffusion_elbo`), and contrastive divergence with short-run Langevin MCMC from noise.
Fusion: the KL barycenter of :math:`q_i \propto e^{-E_i}` has energy :math:`\sum_i \lambda_i E_i`
exactly; its normaliser (and the maximum-likelihood lam) is computed on a grid in 2-D. Score fusion
of samplers: the drift of a reversed DDPM step is affine in the score, so summing
:math:`\lambda_i \mu_i` is ScoreFusion's fused score (:class:`FusedSampler`).
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import logsumexp, softmax
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_points, check_positive_int, check_simplex
from ..barycenter import grid, sample_grid_cells
from ..fusion import minimize_quadratic_on_simplex
from ..sampling import langevin_step

__all__ = ["DiffusionSampler", "EnergyMLP", "FusedSampler", "GCDResult", "cosine_betas", "energy_density_on_grid",
           "fit_energy_weights", "grid_sample", "langevin", "train_contrastive_divergence",
           "train_diffusion_elbo", "train_gcd", "tv_on_grid"]


class EnergyMLP(nn.Module):
    r"""A scalar energy :math:`E_\theta : \mathbb R^d \to \mathbb R`, an MLP with SiLU activations.

    .. math:: E_\theta(x) = f_\theta(x) + c\,\|x\|^2, \qquad q_\theta(x) = e^{-E_\theta(x)} / Z_\theta

    The fixed confining term :math:`c\|x\|^2` (our choice) keeps :math:`Z_\theta` finite whatever the
    MLP :math:`f_\theta` does far from the data, where nothing else constrains it.

    Parameters
    ----------
    dim : int
    hidden : int, default 128
    depth : int, default 3
    confine : float, default 0.1
        The coefficient c >= 0.
    """

    def __init__(self, dim=2, hidden=128, depth=3, confine=0.1):
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            check_positive_int(value, name)
        if not confine >= 0:
            raise ValueError(f"confine must be >= 0, got {confine!r}")
        self.dim, self.confine = dim, float(confine)
        layers, width = [], dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        """Energy of ``x`` of shape (n, dim), returned with shape (n,)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return self.net(x).squeeze(-1) + self.confine * x.pow(2).sum(-1)


def cosine_betas(n_steps, offset=0.008, max_beta=0.999):
    r"""Noise levels :math:`b_0, \dots, b_{K-1}` of a K-step DDPM chain, cosine schedule, noise end first.

    .. math:: \bar\alpha(s) = \cos^2\!\Big(\frac{\pi}{2}\,\frac{s + o}{1 + o}\Big),\qquad
              b_k = 1 - \frac{\bar\alpha\big((K-k)/K\big)}{\bar\alpha\big((K-k-1)/K\big)}\ \text{(at most } b_{\max})

    (Nichol and Dhariwal, 2021). Sampler step k maps :math:`x_k` to :math:`x_{k+1}`; the chain adds
    noise the other way, :math:`x_k = \sqrt{1-b_k}\,x_{k+1} + \sqrt{b_k}\,\varepsilon`, so
    :math:`b_0` (next to the prior) is the largest and :math:`b_{K-1}` (next to the data) the smallest.

    Returns
    -------
    tensor (n_steps,) float32
    """
    check_positive_int(n_steps, "n_steps")
    s = torch.linspace(0, 1, n_steps + 1, dtype=torch.float64)
    abar = torch.cos(0.5 * math.pi * (s + offset) / (1 + offset)) ** 2
    b = (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)  # data-first order
    return b.flip(0).float()


class DiffusionSampler(nn.Module):
    r"""A K-step Gaussian diffusion sampler with learned drift and per-step noise levels.

    .. math:: x_0 \sim \mathcal N(0, I),\qquad x_{k+1} = x_k + \mu_\phi(x_k, k) + \sigma_k z_k,\quad z_k \sim \mathcal N(0, I)

    It carries the fixed noising chain :math:`r(x_k \mid x_{k+1}) = \mathcal N(\sqrt{1-b_k}\,x_{k+1}, b_k I)`
    (:func:`cosine_betas`) against which both its entropy bound (GCD) and its evidence lower bound
    (DDPM training) are taken. :math:`\sigma_k` starts at :math:`\sqrt{b_k}`.

    Parameters
    ----------
    dim : int
    n_steps : int, default 8
        K, the number of steps.
    hidden : int, default 128
    """

    def __init__(self, dim=2, n_steps=8, hidden=128):
        super().__init__()
        for name, value in (("dim", dim), ("n_steps", n_steps), ("hidden", hidden)):
            check_positive_int(value, name)
        self.dim, self.n_steps = dim, n_steps
        self.register_buffer("betas", cosine_betas(n_steps))
        self.step_embed = nn.Embedding(n_steps, 32)
        self.net = nn.Sequential(nn.Linear(dim + 32, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, dim))
        self.log_sigma = nn.Parameter(0.5 * self.betas.log())

    def drift(self, x, k):
        r"""The drift :math:`\mu_\phi(x, k)` of step ``k`` for ``x`` of shape (n, dim)."""
        emb = self.step_embed(torch.full((x.shape[0],), k, dtype=torch.long, device=x.device))
        return self.net(torch.cat([x, emb], 1))

    def trajectory(self, n, generator=None):
        """The reparameterised trajectory :math:`[x_0, \\dots, x_K]`, each (n, dim), differentiable in phi."""
        check_positive_int(n, "n")
        dev = self.log_sigma.device
        x = torch.randn((n, self.dim), generator=generator, device=dev)
        path = [x]
        for k in range(self.n_steps):
            x = x + self.drift(x, k) + self.log_sigma[k].exp() * torch.randn(
                (n, self.dim), generator=generator, device=dev)
            path.append(x)
        return path

    def forward(self, n, generator=None):
        """Draw ``n`` samples :math:`x_K` (differentiable in phi); shape (n, dim)."""
        return self.trajectory(n, generator=generator)[-1]

    def entropy_lower_bound(self, path):
        r"""Monte-Carlo estimate of the lower bound on :math:`H(x_K)` along sampled trajectories ``path``.

        .. math:: H(x_K) \ge H(x_0) + \sum_{k<K} H(x_{k+1} \mid x_k)
                  + \mathbb E_\pi \sum_{k<K} \log r(x_k \mid x_{k+1}),
                  \qquad H(x_{k+1} \mid x_k) = \tfrac d2 \log(2\pi e) + d \log\sigma_k

        The gap is :math:`\mathbb E\,\mathrm{KL}(\pi(x_{0:K-1} \mid x_K)\,\|\,r(x_{0:K-1} \mid x_K)) \ge 0`.

        Parameters
        ----------
        path : list of K+1 tensors (n, dim), from :meth:`trajectory`

        Returns
        -------
        scalar tensor
        """
        d = self.dim
        h = 0.5 * d * math.log(2 * math.pi * math.e) * (self.n_steps + 1) + d * self.log_sigma.sum()
        for k in range(self.n_steps):
            b = self.betas[k]
            resid = path[k] - (1 - b).sqrt() * path[k + 1]
            h = h + (-0.5 * resid.pow(2).sum(-1) / b - 0.5 * d * torch.log(2 * math.pi * b)).mean()
        return h

    def noising_path(self, x, generator=None):
        r"""Run the fixed chain backwards from data ``x`` (n, dim): :math:`x_k = \sqrt{1-b_k}\,x_{k+1} + \sqrt{b_k}\,\varepsilon`.

        Returns
        -------
        list of K+1 tensors (n, dim), :math:`[x_0, \dots, x_K = x]`
        """
        path = [x]
        for k in reversed(range(self.n_steps)):
            b = self.betas[k]
            path.insert(0, (1 - b).sqrt() * path[0] + b.sqrt() * torch.randn(
                x.shape, generator=generator, device=x.device, dtype=x.dtype))
        return path

    def log_transitions(self, path):
        r"""Per-sample :math:`\sum_{k<K} \log \mathcal N(x_{k+1};\, x_k + \mu_\phi(x_k, k),\, \sigma_k^2 I)`, shape (n,)."""
        d, out = self.dim, 0.0
        for k in range(self.n_steps):
            resid = path[k + 1] - path[k] - self.drift(path[k], k)
            ls = self.log_sigma[k]
            out = out - 0.5 * resid.pow(2).sum(-1) / (2 * ls).exp() - d * ls - 0.5 * d * math.log(2 * math.pi)
        return out

    def sample(self, n, generator=None):
        """Samples without gradients, shape (n, dim)."""
        with torch.no_grad():
            return self(n, generator=generator)


class FusedSampler(nn.Module):
    r"""Score fusion of K-step samplers that share one noising chain: drift and log-noise averaged with weights lam.

    .. math:: x_{k+1} = x_k + \sum_i \lambda_i\, \mu_i(x_k, k) + \exp\Big(\sum_i \lambda_i \log\sigma_{i,k}\Big) z_k

    The optimal drift of a reversed DDPM step is affine in the score of the k-th marginal,
    :math:`\mu(x, k) = (\tfrac{1}{\sqrt{1-b_k}} - 1)\,x + \tfrac{b_k}{\sqrt{1-b_k}}\, s_k(x)`, so with
    :math:`\sum_i \lambda_i = 1` the weighted drift is that of the fused score :math:`\sum_i \lambda_i s_{i,k}`
    (ScoreFusion Sec. 3).

    Parameters
    ----------
    samplers : list of K DiffusionSampler with equal dim, n_steps and betas
    lam : sequence of K floats on the simplex
    """

    def __init__(self, samplers, lam):
        super().__init__()
        if not samplers:
            raise ValueError("samplers must be a non-empty list")
        ref = samplers[0]
        for s in samplers[1:]:
            if s.dim != ref.dim or s.n_steps != ref.n_steps or not torch.equal(s.betas, ref.betas):
                raise ValueError("samplers must share dim, n_steps and betas")
        self.samplers = nn.ModuleList(samplers)
        self.dim, self.n_steps = ref.dim, ref.n_steps
        self.register_buffer("lam", check_simplex(lam, len(samplers)).float())

    def sample(self, n, generator=None):
        """Samples from the fused chain, shape (n, dim)."""
        check_positive_int(n, "n")
        with torch.no_grad():
            x = torch.randn((n, self.dim), generator=generator)
            for k in range(self.n_steps):
                mu = sum(w * s.drift(x, k) for w, s in zip(self.lam, self.samplers))
                sig = sum(w * s.log_sigma[k] for w, s in zip(self.lam, self.samplers)).exp()
                x = x + mu + sig * torch.randn((n, self.dim), generator=generator)
        return x


@dataclass
class GCDResult:
    """Outcome of the trainers: the models and a per-iteration history of the losses."""

    energy: nn.Module = None
    sampler: nn.Module = None
    history: dict = field(default_factory=dict)


def _training_data(data, dim, iters, batch_size):
    """Check the arguments every training loop shares; return the data as float32 points."""
    data = check_points(data, dim, "data").float()
    for name, value in (("iters", iters), ("batch_size", batch_size)):
        check_positive_int(value, name)
    if batch_size > data.shape[0]:
        raise ValueError(f"batch_size ({batch_size}) exceeds the number of data points ({data.shape[0]})")
    return data


def _check_callback(callback):
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")


def _batches(data, batch_size, generator):
    while True:
        perm = torch.randperm(data.shape[0], generator=generator)
        for start in range(0, data.shape[0] - batch_size + 1, batch_size):
            yield data[perm[start:start + batch_size]]


def _energy_step(energy, optimizer, xp, xq, energy_reg):
    """One descent step on E_p E - E_q E + alpha (E_p E^2 + E_q E^2), data ``xp``, negatives ``xq``;
    returns the contrastive gap E_p E - E_q E before the step."""
    ep, eq = energy(xp), energy(xq)
    loss = ep.mean() - eq.mean() + energy_reg * (ep.pow(2).mean() + eq.pow(2).mean())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float((ep.mean() - eq.mean()).detach())


def train_gcd(energy, sampler, data, iters=2000, batch_size=256, lr_energy=1e-3, lr_sampler=1e-3,
              energy_reg=0.1, temperature=1.0, sampler_steps=1, warmup=0, generator=None, progress=True,
              callback=None):
    r"""Train an energy and a diffusion sampler jointly by the GCD minimax objective.

    .. math::

        \min_\theta \max_\phi\ \mathbb E_{p}[E_\theta] - \mathbb E_{\pi_\phi}[E_\theta]
        + \tau\, \hat H(\pi_\phi) \;+\; \alpha\,(\mathbb E_p E_\theta^2 + \mathbb E_{\pi_\phi} E_\theta^2)\ \text{(energy step only)}

    (GCD, Sec. 2; the sampler step is the max-entropy RL step of Sec. 3) with :math:`\hat H` the entropy
    lower bound of :meth:`DiffusionSampler.entropy_lower_bound` and :math:`\tau = 1` the exact objective.
    Alternates ``sampler_steps`` Adam ascent steps on :math:`\phi` (backpropagating through the trajectory)
    and one descent step on :math:`\theta`. The first ``warmup`` iterations update the energy only, which
    is what fine-tuning a pre-trained sampler needs: a fresh energy first learns to tell data from its samples.

    Parameters
    ----------
    energy : EnergyMLP
    sampler : DiffusionSampler
    data : tensor (n, d)
    iters, batch_size, sampler_steps : int
    lr_energy, lr_sampler, energy_reg, temperature : float
    warmup : int, default 0
        Energy-only iterations at the start (counted in ``iters``).
    generator : torch.Generator, optional
        Mini-batches and sampler noise (default seed 0).
    progress : bool
    callback : callable, optional
        Called as ``callback(i)`` after iteration ``i = 1, ..., iters`` (for example to record a
        learning curve); it must not draw from ``generator``.

    Returns
    -------
    GCDResult with history keys "cd_gap" (E_p E - E_pi E per iteration), "entropy" (the bound) and
    "sampler_loss" (E_pi E - tau H)
    """
    data = _training_data(data, energy.dim, iters, batch_size)
    if sampler.dim != energy.dim:
        raise ValueError(f"sampler.dim ({sampler.dim}) must equal energy.dim ({energy.dim})")
    check_positive_int(sampler_steps, "sampler_steps")
    _check_callback(callback)
    if not (isinstance(warmup, int) and 0 <= warmup < iters):
        raise ValueError(f"warmup must be an int in [0, iters), got {warmup!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    opt_e = torch.optim.Adam(energy.parameters(), lr=lr_energy, betas=(0.5, 0.999))
    opt_s = torch.optim.Adam(sampler.parameters(), lr=lr_sampler, betas=(0.5, 0.999))
    batches = _batches(data, batch_size, generator)
    hist = {"cd_gap": [], "sampler_loss": [], "entropy": []}
    for it in tqdm(range(iters), disable=not progress, desc="GCD"):
        energy.requires_grad_(False)
        for _ in range(sampler_steps if it >= warmup else 1):
            path = sampler.trajectory(batch_size, generator=generator)
            ent = sampler.entropy_lower_bound(path)
            loss_s = energy(path[-1]).mean() - temperature * ent
            if it >= warmup:
                opt_s.zero_grad()
                loss_s.backward()
                opt_s.step()
        energy.requires_grad_(True)
        hist["cd_gap"].append(_energy_step(energy, opt_e, next(batches), path[-1].detach(), energy_reg))
        hist["sampler_loss"].append(float(loss_s.detach()))
        hist["entropy"].append(float(ent.detach()))
        if callback is not None:
            callback(it + 1)
    energy.eval()
    sampler.eval()
    return GCDResult(energy, sampler, hist)


def train_diffusion_elbo(sampler, data, iters=2000, batch_size=256, lr=1e-3, generator=None, progress=True,
                         callback=None):
    r"""Baseline: the K-step sampler trained alone, as a DDPM, by maximising its evidence lower bound.

    .. math:: \max_\phi\ \mathbb E_{x_K \sim p,\ x_{0:K-1} \sim r(\cdot \mid x_K)}
              \sum_{k<K} \log \mathcal N\big(x_{k+1};\ x_k + \mu_\phi(x_k, k),\ \sigma_k^2 I\big)

    (Ho et al., 2020, with all K terms of the bound and learned variances; the terms of
    :math:`\log \mathcal N(x_0; 0, I) - \log r` do not depend on :math:`\phi`.) This minimises
    :math:`\mathrm{KL}(p\, r \,\|\, \pi_\phi)` over trajectories, the forward KL; GCD's sampler step is the
    reverse direction against :math:`q_\theta`.

    Parameters
    ----------
    sampler : DiffusionSampler
    data : tensor (n, d)
    iters, batch_size : int
    lr : float
    generator : torch.Generator, optional
    progress : bool
    callback : callable, optional
        Called as ``callback(i)`` after iteration ``i = 1, ..., iters``, as in :func:`train_gcd`.

    Returns
    -------
    GCDResult with ``energy=None`` and history key "nll_bound" (per-sample negative bound, nats)
    """
    data = _training_data(data, sampler.dim, iters, batch_size)
    _check_callback(callback)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(sampler.parameters(), lr=lr)
    batches = _batches(data, batch_size, generator)
    hist = {"nll_bound": []}
    for it in tqdm(range(iters), disable=not progress, desc="ELBO"):
        path = sampler.noising_path(next(batches), generator=generator)
        loss = -sampler.log_transitions(path).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist["nll_bound"].append(float(loss.detach()))
        if callback is not None:
            callback(it + 1)
    sampler.eval()
    return GCDResult(None, sampler, hist)


def langevin(energy, x, n_steps=50, step_size=0.01, generator=None):
    r"""Unadjusted Langevin dynamics on :math:`e^{-E}` from ``x``.

    .. math:: x \leftarrow x - \tfrac{\epsilon}{2} \nabla E(x) + \sqrt{\epsilon}\, z,\quad z \sim \mathcal N(0, I)

    Each step is :func:`scorefusion.sampling.langevin_step` with score :math:`-\nabla E` and step
    :math:`\epsilon / 2`.

    Parameters
    ----------
    energy : callable (n, d) -> (n,)
    x : tensor (n, d), starting points
    n_steps : int
    step_size : float
    generator : torch.Generator, optional

    Returns
    -------
    tensor (n, d), detached
    """
    check_positive_int(n_steps, "n_steps")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}")
    x = x.detach().clone()
    for _ in range(n_steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = langevin_step(x, -grad, 0.5 * step_size, noise).detach()  # score -grad E, epsilon/2 in its convention
    return x


def train_contrastive_divergence(energy, data, iters=2000, batch_size=256, lr=1e-3, n_langevin=30,
                                 step_size=0.01, init_std=2.0, energy_reg=0.1, generator=None, progress=True):
    r"""Baseline: contrastive divergence with short-run Langevin negatives started from noise.

    .. math:: \min_\theta\ \mathbb E_p[E_\theta] - \mathbb E_{x^- \sim \mathrm{LD}_k(\mathcal N(0, s^2 I);\, E_\theta)}[E_\theta(x^-)]
              + \alpha\,(\mathbb E_p E_\theta^2 + \mathbb E E_\theta(x^-)^2)

    Parameters
    ----------
    energy : EnergyMLP
    data : tensor (n, d)
    iters, batch_size, n_langevin : int
    lr, step_size, init_std, energy_reg : float
    generator : torch.Generator, optional
    progress : bool

    Returns
    -------
    GCDResult with ``sampler=None`` and history key "cd_gap"
    """
    data = _training_data(data, energy.dim, iters, batch_size)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(energy.parameters(), lr=lr, betas=(0.5, 0.999))
    batches = _batches(data, batch_size, generator)
    hist = {"cd_gap": []}
    for _ in tqdm(range(iters), disable=not progress, desc="CD"):
        x0 = init_std * torch.randn((batch_size, energy.dim), generator=generator)
        xq = langevin(energy, x0, n_steps=n_langevin, step_size=step_size, generator=generator)
        hist["cd_gap"].append(_energy_step(energy, opt, next(batches), xq, energy_reg))
    energy.eval()
    return GCDResult(energy, None, hist)


def _square_grid(bounds, n_grid):
    """The nodes of :func:`scorefusion.barycenter.grid` on the square ``[lo, hi]^2`` and the area of one cell."""
    lo, hi = bounds
    if not hi > lo:
        raise ValueError(f"bounds must be (lo, hi) with hi > lo, got {bounds!r}")
    if check_positive_int(n_grid, "n_grid") < 2:
        raise ValueError(f"n_grid must be at least 2, got {n_grid}")
    axes, points = grid((lo, lo), (hi, hi), n_grid)
    return points, float(axes[0][1] - axes[0][0]) ** 2


def energy_density_on_grid(energies, lam=None, bounds=(-4.0, 4.0), n_grid=200):
    r"""Normalised density of :math:`e^{-\sum_i \lambda_i E_i}` on a 2-D grid (Riemann sum for Z).

    .. math:: q_\lambda(x) = \frac{e^{-\sum_i \lambda_i E_i(x)}}{\sum_{g} e^{-\sum_i\lambda_i E_i(g)}\,\Delta A}

    Parameters
    ----------
    energies : callable or list of callables (n, 2) -> (n,)
    lam : sequence of K floats, optional (default 1 for a single energy)
    bounds : (float, float)
        The square [lo, hi]^2.
    n_grid : int

    Returns
    -------
    (points (n_grid^2, 2) float64, density (n_grid^2,) float64, cell_area float)
    """
    energies = energies if isinstance(energies, (list, tuple)) else [energies]
    lam = torch.ones(1, dtype=torch.float64) if lam is None else torch.as_tensor(lam, dtype=torch.float64)
    if lam.shape != (len(energies),):
        raise ValueError(f"lam must have shape ({len(energies)},), got {tuple(lam.shape)}")
    pts, area = _square_grid(bounds, n_grid)
    with torch.no_grad():
        e = sum(float(lam[i]) * energies[i](pts.float()).double() for i in range(len(energies)))
    logq = -e - torch.logsumexp(-e, 0) - math.log(area)
    return pts, logq.exp(), area


def tv_on_grid(p, q, cell_area):
    r"""Total variation :math:`\tfrac12 \sum_g |p(g) - q(g)|\, \Delta A` of two densities on one grid."""
    p, q = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must share a grid, got shapes {tuple(p.shape)} and {tuple(q.shape)}")
    return float(0.5 * (p - q).abs().sum() * cell_area)


def grid_sample(points, density, n, generator=None):
    r"""Draw ``n`` points from a density tabulated on the square grid of :func:`energy_density_on_grid`.

    .. math:: P(\text{cell } g) \propto q(g), \qquad x = g + \Delta\, (u - \tfrac12),\ u \sim U[0,1]^2

    (:func:`scorefusion.barycenter.sample_grid_cells`, with the spacing :math:`\Delta` read off the
    first two nodes.)

    Parameters
    ----------
    points : tensor (n_grid^2, 2), density : tensor (n_grid^2,)
        As returned by :func:`energy_density_on_grid`.
    n : int
    generator : torch.Generator, optional

    Returns
    -------
    tensor (n, 2), float32
    """
    step = float((points[1] - points[0]).abs().max())
    return sample_grid_cells(points, density.double(), step, n, generator=generator).float()


def fit_energy_weights(energies, x, bounds=(-4.0, 4.0), n_grid=200, tol=1e-12, max_iter=100):
    r"""Maximum-likelihood weights of the energy barycenter :math:`e^{-\sum\lambda_i E_i}/Z_\lambda` on the simplex.

    .. math:: \hat\lambda = \arg\min_{\lambda \in \Delta}\ f(\lambda), \qquad
              f(\lambda) = \frac1n \sum_j \sum_i \lambda_i E_i(x_j) + \log Z_\lambda,

    a convex problem (the log-partition is convex), with :math:`Z_\lambda` the grid sum of
    :func:`energy_density_on_grid`. This is "vanilla" KL fusion, possible here because Z is a 2-D
    integral. Solved by Newton's method on the simplex: with :math:`g = \nabla f` and
    :math:`H = \nabla^2 f = \mathrm{Cov}_{q_\lambda}(E)` (the grid covariance of the energies), each
    step minimises the quadratic model exactly on the simplex
    (:func:`scorefusion.fusion.minimize_quadratic_on_simplex`),

    .. math:: \mu = \arg\min_{\mu \in \Delta}\ g^\top(\mu - \lambda) + \tfrac12 (\mu - \lambda)^\top H (\mu - \lambda),

    then moves to :math:`\lambda + s(\mu - \lambda)` with the largest :math:`s \in \{1, \frac12, \dots\}`
    that satisfies Armijo's condition, until the predicted decrease :math:`g^\top(\lambda - \mu)`
    falls below ``tol``.

    Parameters
    ----------
    energies : list of K callables
    x : tensor (n, 2), target samples
    bounds, n_grid : see :func:`energy_density_on_grid`
    tol : float, default 1e-12
        Stop when the predicted decrease of f is below this (nats).
    max_iter : int, default 100
        Newton steps before giving up with RuntimeError.

    Returns
    -------
    ndarray (K,)
    """
    x = check_points(x, 2, "x").float()
    k = len(energies)
    if k < 1:
        raise ValueError("energies must be a non-empty list")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    check_positive_int(max_iter, "max_iter")
    pts, area = _square_grid(bounds, n_grid)
    with torch.no_grad():
        eg = torch.stack([e(pts.float()).double() for e in energies]).numpy()  # (K, G)
        ex = torch.stack([e(x).double().mean() for e in energies]).numpy()  # (K,)

    def nll(lam):
        return float(lam @ ex + logsumexp(-(lam @ eg)) + np.log(area))

    lam = np.full(k, 1.0 / k)
    for _ in range(max_iter):
        q = softmax(-(lam @ eg))
        mean = eg @ q
        grad = ex - mean
        hess = (eg * q) @ eg.T - np.outer(mean, mean)
        mu, _ = minimize_quadratic_on_simplex(0.5 * hess, 0.5 * (hess @ lam - grad))
        direction = mu - lam
        decrease = -float(grad @ direction)
        if decrease <= tol:
            return lam
        f0, s = nll(lam), 1.0
        while nll(lam + s * direction) > f0 - 1e-4 * s * decrease and s > 1e-10:
            s *= 0.5
        lam = lam + s * direction
    raise RuntimeError(f"fit_energy_weights: Newton's method did not converge in {max_iter} steps")
