r"""Generalized contrastive divergence: an energy and a diffusion sampler trained jointly (Yoon et al., 2023; PAPERS.md Sec. 4).

An energy-based model :math:`q_\theta(x) \propto e^{-E_\theta(x)}`, data :math:`p` and a
few-step diffusion sampler :math:`\pi_\phi` play the minimax game

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
* Its entropy is replaced by the lower bound :math:`H(x_K) \ge H(x_K \mid x_{K-1}) = \tfrac d2
  \log(2\pi e \sigma_{K-1}^2)`, which the drift cannot inflate (the trajectory entropy
  :math:`\sum_k d \log\sigma_k` can be, because the drift may contract the noise again).
* The energy step adds :math:`\alpha(\mathbb E_p E^2 + \mathbb E_\pi E^2)`, the small penalty of DxMI.

Baselines: contrastive divergence with short-run Langevin MCMC from noise, and a score model
trained alone. Fusion: the KL barycenter of :math:`q_i \propto e^{-E_i}` has energy
:math:`\sum_i \lambda_i E_i` exactly; its normaliser (and the maximum-likelihood lam) is computed
on a grid in 2-D.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_points, check_positive_int

__all__ = ["DiffusionSampler", "EnergyMLP", "GCDResult", "energy_density_on_grid", "fit_energy_weights",
           "grid_sample", "langevin", "train_contrastive_divergence", "train_gcd", "tv_on_grid"]


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


class DiffusionSampler(nn.Module):
    r"""A K-step Gaussian diffusion sampler with learned drift and per-step noise levels.

    .. math:: x_0 \sim \mathcal N(0, I),\qquad x_{k+1} = x_k + \mu_\phi(x_k, k) + \sigma_k z_k,\quad z_k \sim \mathcal N(0, I)

    Parameters
    ----------
    dim : int
    n_steps : int, default 8
    hidden : int, default 128
    init_sigma : float, default 0.3
    """

    def __init__(self, dim=2, n_steps=8, hidden=128, init_sigma=0.3):
        super().__init__()
        for name, value in (("dim", dim), ("n_steps", n_steps), ("hidden", hidden)):
            check_positive_int(value, name)
        if not init_sigma > 0:
            raise ValueError(f"init_sigma must be positive, got {init_sigma!r}")
        self.dim, self.n_steps = dim, n_steps
        self.step_embed = nn.Embedding(n_steps, 32)
        self.net = nn.Sequential(nn.Linear(dim + 32, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, dim))
        self.log_sigma = nn.Parameter(torch.full((n_steps,), math.log(init_sigma)))

    def forward(self, n, generator=None):
        """Draw ``n`` samples with the reparameterised trajectory (differentiable in phi); shape (n, dim)."""
        check_positive_int(n, "n")
        dev = self.log_sigma.device
        x = torch.randn((n, self.dim), generator=generator, device=dev)
        for k in range(self.n_steps):
            emb = self.step_embed(torch.full((n,), k, dtype=torch.long, device=dev))
            x = x + self.net(torch.cat([x, emb], 1)) + self.log_sigma[k].exp() * torch.randn(
                (n, self.dim), generator=generator, device=dev)
        return x

    def entropy_lower_bound(self):
        r"""The bound :math:`H(x_K) \ge H(x_K \mid x_{K-1}) = \tfrac d2 \log(2\pi e) + d \log\sigma_{K-1}`."""
        return 0.5 * self.dim * math.log(2 * math.pi * math.e) + self.dim * self.log_sigma[-1]

    def sample(self, n, generator=None):
        """Samples without gradients, shape (n, dim)."""
        with torch.no_grad():
            return self(n, generator=generator)


@dataclass
class GCDResult:
    """Outcome of :func:`train_gcd` / :func:`train_contrastive_divergence`: models and per-iteration history."""

    energy: nn.Module
    sampler: nn.Module = None
    history: dict = field(default_factory=dict)


def _batches(data, batch_size, generator):
    while True:
        perm = torch.randperm(data.shape[0], generator=generator)
        for start in range(0, data.shape[0] - batch_size + 1, batch_size):
            yield data[perm[start:start + batch_size]]


def train_gcd(energy, sampler, data, iters=2000, batch_size=256, lr_energy=1e-3, lr_sampler=1e-3,
              energy_reg=0.1, temperature=1.0, sampler_steps=1, generator=None, progress=True):
    r"""Train an energy and a diffusion sampler jointly by the GCD minimax objective.

    .. math::

        \min_\theta \max_\phi\ \mathbb E_{p}[E_\theta] - \mathbb E_{\pi_\phi}[E_\theta]
        + \tau\, \hat H(\pi_\phi) \;+\; \alpha\,(\mathbb E_p E_\theta^2 + \mathbb E_{\pi_\phi} E_\theta^2)\ \text{(energy step only)}

    with :math:`\hat H` the entropy lower bound of :meth:`DiffusionSampler.entropy_lower_bound`
    and :math:`\tau = 1` the exact objective. Alternates ``sampler_steps`` Adam ascent steps on
    :math:`\phi` (backpropagating through the trajectory) and one descent step on :math:`\theta`.

    Parameters
    ----------
    energy : EnergyMLP
    sampler : DiffusionSampler
    data : tensor (n, d)
    iters, batch_size, sampler_steps : int
    lr_energy, lr_sampler, energy_reg, temperature : float
    generator : torch.Generator, optional
        Mini-batches and sampler noise (default seed 0).
    progress : bool

    Returns
    -------
    GCDResult with history keys "cd_gap" (E_p E - E_pi E per iteration) and "sampler_loss"
    """
    data = check_points(data, energy.dim, "data").float()
    if sampler.dim != energy.dim:
        raise ValueError(f"sampler.dim ({sampler.dim}) must equal energy.dim ({energy.dim})")
    for name, value in (("iters", iters), ("batch_size", batch_size), ("sampler_steps", sampler_steps)):
        check_positive_int(value, name)
    if batch_size > data.shape[0]:
        raise ValueError(f"batch_size ({batch_size}) exceeds the number of data points ({data.shape[0]})")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    opt_e = torch.optim.Adam(energy.parameters(), lr=lr_energy, betas=(0.5, 0.999))
    opt_s = torch.optim.Adam(sampler.parameters(), lr=lr_sampler, betas=(0.5, 0.999))
    batches = _batches(data, batch_size, generator)
    hist = {"cd_gap": [], "sampler_loss": []}
    for _ in tqdm(range(iters), disable=not progress, desc="GCD"):
        for p in energy.parameters():
            p.requires_grad_(False)
        for _ in range(sampler_steps):
            xs = sampler(batch_size, generator=generator)
            loss_s = energy(xs).mean() - temperature * sampler.entropy_lower_bound()
            opt_s.zero_grad()
            loss_s.backward()
            opt_s.step()
        for p in energy.parameters():
            p.requires_grad_(True)
        xp, xq = next(batches), sampler.sample(batch_size, generator=generator)
        ep, eq = energy(xp), energy(xq)
        loss_e = ep.mean() - eq.mean() + energy_reg * (ep.pow(2).mean() + eq.pow(2).mean())
        opt_e.zero_grad()
        loss_e.backward()
        opt_e.step()
        hist["cd_gap"].append(float((ep.mean() - eq.mean()).detach()))
        hist["sampler_loss"].append(float(loss_s.detach()))
    energy.eval()
    sampler.eval()
    return GCDResult(energy, sampler, hist)


def langevin(energy, x, n_steps=50, step_size=0.01, generator=None):
    r"""Unadjusted Langevin dynamics on :math:`e^{-E}` from ``x``.

    .. math:: x \leftarrow x - \tfrac{\epsilon}{2} \nabla E(x) + \sqrt{\epsilon}\, z,\quad z \sim \mathcal N(0, I)

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
        x = (x - 0.5 * step_size * grad + math.sqrt(step_size) * torch.randn(
            x.shape, generator=generator, dtype=x.dtype)).detach()
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
    data = check_points(data, energy.dim, "data").float()
    for name, value in (("iters", iters), ("batch_size", batch_size)):
        check_positive_int(value, name)
    if batch_size > data.shape[0]:
        raise ValueError(f"batch_size ({batch_size}) exceeds the number of data points ({data.shape[0]})")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(energy.parameters(), lr=lr, betas=(0.5, 0.999))
    batches = _batches(data, batch_size, generator)
    hist = {"cd_gap": []}
    for _ in tqdm(range(iters), disable=not progress, desc="CD"):
        x0 = init_std * torch.randn((batch_size, energy.dim), generator=generator)
        xq = langevin(energy, x0, n_steps=n_langevin, step_size=step_size, generator=generator)
        xp = next(batches)
        ep, eq = energy(xp), energy(xq)
        loss = ep.mean() - eq.mean() + energy_reg * (ep.pow(2).mean() + eq.pow(2).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist["cd_gap"].append(float((ep.mean() - eq.mean()).detach()))
    energy.eval()
    return GCDResult(energy, None, hist)


def _grid(bounds, n_grid):
    lo, hi = bounds
    if not hi > lo:
        raise ValueError(f"bounds must be (lo, hi) with hi > lo, got {bounds!r}")
    check_positive_int(n_grid, "n_grid")
    ax = torch.linspace(lo, hi, n_grid, dtype=torch.float64)
    gx, gy = torch.meshgrid(ax, ax, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), float(ax[1] - ax[0]) ** 2


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
    pts, area = _grid(bounds, n_grid)
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
    r"""Draw ``n`` points from a density tabulated on a uniform 2-D grid (cell, then uniform jitter).

    .. math:: P(\text{cell } g) \propto q(g), \qquad x = g + \Delta\, (u - \tfrac12),\ u \sim U[0,1]^2

    Returns
    -------
    tensor (n, 2), float32
    """
    check_positive_int(n, "n")
    idx = torch.multinomial(density.double(), n, replacement=True, generator=generator)
    h = float((points[1] - points[0]).abs().max())
    jitter = (torch.rand((n, 2), generator=generator, dtype=torch.float64) - 0.5) * h
    return (points[idx] + jitter).float()


def fit_energy_weights(energies, x, bounds=(-4.0, 4.0), n_grid=200):
    r"""Maximum-likelihood weights of the energy barycenter :math:`e^{-\sum\lambda_i E_i}/Z_\lambda` on the simplex.

    .. math:: \hat\lambda = \arg\min_{\lambda \in \Delta}\ \frac1n \sum_j \sum_i \lambda_i E_i(x_j) + \log Z_\lambda,

    a convex problem (log-partition is convex), solved by SLSQP with the grid normaliser.
    This is "vanilla" KL fusion, possible here because Z is a 2-D integral.

    Parameters
    ----------
    energies : list of K callables
    x : tensor (n, 2), target samples
    bounds, n_grid : see :func:`energy_density_on_grid`

    Returns
    -------
    ndarray (K,)
    """
    from scipy.optimize import minimize

    x = check_points(x, 2, "x").float()
    k = len(energies)
    if k < 1:
        raise ValueError("energies must be a non-empty list")
    pts, area = _grid(bounds, n_grid)
    with torch.no_grad():
        eg = torch.stack([e(pts.float()).double() for e in energies]).numpy()  # (K, G)
        ex = torch.stack([e(x).double().mean() for e in energies]).numpy()  # (K,)

    def nll(lam):
        s = -(lam @ eg)
        m = s.max()
        logz = m + np.log(np.exp(s - m).sum() * area)
        w = np.exp(s - m)
        grad = ex - (eg @ w) / w.sum()
        return float(lam @ ex + logz), grad

    res = minimize(nll, np.full(k, 1.0 / k), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * k,
                   constraints=[{"type": "eq", "fun": lambda lam: lam.sum() - 1.0}])
    lam = np.clip(res.x, 0.0, None)
    return lam / lam.sum()
