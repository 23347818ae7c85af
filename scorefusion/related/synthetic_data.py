r"""Training a VAE on a diffusion model's samples (Xiao, Zenn and Bamler, 2023; PAPERS.md Sec. 2).

Normal training maximises the mean ELBO over a finite training set :math:`D`; DMaaPx
("diffusion model as :math:`p_\mathrm{data}(x)`") maximises instead

.. math:: \mathbb E_{x \sim p_\mathrm{DM}}\,[\mathrm{ELBO}_{\theta,\phi}(x)],

with :math:`p_\mathrm{DM}` a diffusion model fitted to the same :math:`D` and fresh samples every
epoch. Only the data source changes. This module has the VAE, its ELBO, the three data sources
(finite set, classical augmentation, generated samples), training, and the two gaps the paper
measures (generalization gap and amortization gap, the latter after Cremer et al., 2018).
"""

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import as_float_tensor, check_positive_int

__all__ = ["VAE", "VAEGaps", "VAETrainResult", "augment_digits", "digits_unit", "elbo", "generated_pool",
           "optimized_elbo", "pool_source", "train_vae", "vae_gaps"]


def digits_unit(n_test=300, generator=None):
    """All of scikit-learn's 8x8 digits in [0, 1], flattened, split into train and test.

    Parameters
    ----------
    n_test : int
        Size of the test split (the rest, 1797 - n_test images, is the training split).
    generator : torch.Generator, optional
        Draws the split permutation (default seed 0).

    Returns
    -------
    (train, test) : tensors of shape (1797 - n_test, 64) and (n_test, 64), float32
    """
    from sklearn.datasets import load_digits

    check_positive_int(n_test, "n_test")
    images = torch.as_tensor(load_digits().data, dtype=torch.float32) / 16.0
    if n_test >= images.shape[0]:
        raise ValueError(f"n_test must be smaller than {images.shape[0]}, got {n_test}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    perm = torch.randperm(images.shape[0], generator=generator)
    return images[perm[n_test:]], images[perm[:n_test]]


def _check_images(x, name="x"):
    x = as_float_tensor(x, name)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"{name} must have shape (n, 64) (flattened 8x8 images), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if (x < 0).any() or (x > 1).any():
        raise ValueError(f"{name} must lie in [0, 1] (Bernoulli decoder targets)")
    return x.float()


class VAE(nn.Module):
    r"""A small VAE with Gaussian encoder and Bernoulli decoder on flattened 8x8 images.

    .. math::

        q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,\sigma^2_\phi(x)),\quad
        p(z) = \mathcal N(0, I),\quad
        p_\theta(x \mid z) = \prod_j \mathrm{Bern}(x_j;\, \mathrm{sigmoid}(f_\theta(z))_j).

    The decoder is Bernoulli on grey levels in [0, 1] (cross-entropy), a common choice for digit
    VAEs; it is not a normalised density of continuous pixels, so ELBOs compare models only on the
    same data.

    Parameters
    ----------
    dim : int, default 64
    latent : int, default 8
    hidden : int, default 128
    generator : torch.Generator, optional
        Draws the initial weights (PyTorch's default ``nn.Linear`` initialisation, from this
        generator); without it the global RNG is used, as ``nn.Linear`` does.
    """

    def __init__(self, dim=64, latent=8, hidden=128, generator=None):
        super().__init__()
        for name, value in (("dim", dim), ("latent", latent), ("hidden", hidden)):
            check_positive_int(value, name)
        self.dim, self.latent = dim, latent
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, dim))
        if generator is not None:
            for layer in self.modules():
                if isinstance(layer, nn.Linear):  # nn.Linear.reset_parameters, with our generator
                    bound = 1.0 / math.sqrt(layer.in_features)
                    with torch.no_grad():
                        layer.weight.uniform_(-bound, bound, generator=generator)
                        layer.bias.uniform_(-bound, bound, generator=generator)

    def encode(self, x):
        """Return the posterior mean and log-variance, each of shape (n, latent)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x):
        return self.encode(x)


def _elbo_given(vae, x, mu, logvar, n_samples, generator):
    eps = torch.randn((n_samples,) + mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    z = mu + (0.5 * logvar).exp() * eps
    logits = vae.decoder(z)
    rec = -nn.functional.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
    return rec.mean(0) - kl


def elbo(vae, x, n_samples=1, generator=None):
    r"""Per-example evidence lower bound with the amortized (encoder) posterior.

    .. math:: \mathrm{ELBO}(x) = \mathbb E_{q_\phi(z|x)} \log p_\theta(x \mid z) - \mathrm{KL}(q_\phi(z|x)\,\|\,p(z)),

    the reconstruction term by ``n_samples`` reparameterised draws, the KL in closed form.

    Parameters
    ----------
    vae : VAE
    x : tensor (n, 64) in [0, 1]
    n_samples : int
    generator : torch.Generator, optional

    Returns
    -------
    tensor (n,): nats per image
    """
    x = _check_images(x)
    check_positive_int(n_samples, "n_samples")
    mu, logvar = vae.encode(x)
    return _elbo_given(vae, x, mu, logvar, n_samples, generator)


def optimized_elbo(vae, x, steps=100, lr=0.05, n_samples=4, n_eval=64, generator=None, eval_generator=None,
                   progress=False):
    r"""ELBO with per-example optimised variational parameters (for the amortization gap).

    Starting from the encoder's output, :math:`(\mu_i, \log\sigma_i^2)` of every example are
    optimised (Adam, decoder frozen) to maximise its own ELBO; Cremer et al. (2018):

    .. math:: \text{amortization gap} = \mathbb E_x[\max_{\mu, \sigma} \mathrm{ELBO}(x; \mu, \sigma)
              - \mathrm{ELBO}(x; \mu_\phi(x), \sigma_\phi(x))] \ge 0.

    The returned value is a plain Monte Carlo estimate of the optimised ELBO (``n_eval`` draws); it
    is not maximised against the encoder's ELBO, so a measured gap can come out slightly negative
    by Monte Carlo noise rather than being biased upward.

    Parameters
    ----------
    vae : VAE
        Its parameters are left unchanged (and their ``requires_grad`` flags restored).
    x : tensor (n, 64) in [0, 1]
    steps : int
    lr : float
    n_samples : int
        Reparameterised draws per optimisation step.
    n_eval : int
        Draws of the final estimate.
    generator : torch.Generator, optional
        Draws of the optimisation (and of the final estimate when ``eval_generator`` is not given).
    eval_generator : torch.Generator, optional
        Draws of the final estimate; give it the state used for the amortized ELBO to compare both
        on common random numbers (as :func:`vae_gaps` does).
    progress : bool

    Returns
    -------
    tensor (n,): the optimised ELBO, nats per image
    """
    x = _check_images(x)
    check_positive_int(steps, "steps")
    check_positive_int(n_samples, "n_samples")
    check_positive_int(n_eval, "n_eval")
    with torch.no_grad():
        mu0, logvar0 = vae.encode(x)
    mu, logvar = mu0.clone().requires_grad_(), logvar0.clone().requires_grad_()
    opt = torch.optim.Adam([mu, logvar], lr=lr)
    flags = [p.requires_grad for p in vae.parameters()]
    for p in vae.parameters():
        p.requires_grad_(False)
    try:
        for _ in tqdm(range(steps), disable=not progress, desc="per-example q"):
            opt.zero_grad()
            loss = -_elbo_given(vae, x, mu, logvar, n_samples, generator).sum()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out = _elbo_given(vae, x, mu, logvar, n_eval, generator if eval_generator is None else eval_generator)
    finally:
        for p, flag in zip(vae.parameters(), flags):
            p.requires_grad_(flag)
    return out


@dataclass
class VAEGaps:
    """The two gaps of a trained VAE, in nats per image (Xiao et al., 2023; Cremer et al., 2018).

    Attributes
    ----------
    train_elbo, test_elbo : float
        Mean amortized ELBO on the real training set and on the test set.
    optimized_test_elbo : float
        Mean test ELBO with per-example optimised q.
    """

    train_elbo: float
    test_elbo: float
    optimized_test_elbo: float

    @property
    def generalization(self):
        """Generalization gap: train ELBO - test ELBO."""
        return self.train_elbo - self.test_elbo

    @property
    def amortization(self):
        """Amortization gap on the test set: optimised ELBO - amortized ELBO."""
        return self.optimized_test_elbo - self.test_elbo


def vae_gaps(vae, train, test, n_samples=32, steps=100, lr=0.05, generator=None):
    r"""Generalization and amortization gaps of a VAE (the paper's two metrics).

    .. math::

        \text{gen. gap} = \overline{\mathrm{ELBO}}(D_\mathrm{train}) - \overline{\mathrm{ELBO}}(D_\mathrm{test}),
        \qquad
        \text{amort. gap} = \overline{\max_{q}\mathrm{ELBO}_q}(D_\mathrm{test}) - \overline{\mathrm{ELBO}}(D_\mathrm{test}),

    both ELBOs with the encoder's :math:`q_\phi`, the optimised one by :func:`optimized_elbo`; the
    two test ELBOs of the amortization gap use the same standard-normal draws (common random
    numbers), so their difference carries little Monte Carlo noise.
    The train ELBO is always taken on the *real* training set, also for a model trained on
    generated data (Xiao et al., 2023, Sec. 4).

    Parameters
    ----------
    vae : VAE
    train, test : tensors (n, 64) and (m, 64) in [0, 1]
    n_samples : int
        Reparameterised draws of the amortized ELBOs (and of the optimised one's estimate).
    steps, lr : int, float
        Per-example optimisation of :func:`optimized_elbo`.
    generator : torch.Generator, optional
        Default seed 0.

    Returns
    -------
    VAEGaps
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    common = int(torch.randint(2**62, (1,), generator=generator))
    with torch.no_grad():
        tr = float(elbo(vae, train, n_samples=n_samples, generator=generator).mean())
        te = float(elbo(vae, test, n_samples=n_samples, generator=torch.Generator().manual_seed(common)).mean())
    opt = float(optimized_elbo(vae, test, steps=steps, lr=lr, n_eval=n_samples, generator=generator,
                               eval_generator=torch.Generator().manual_seed(common)).mean())
    return VAEGaps(tr, te, opt)


def augment_digits(x, generator=None, max_shift=1, noise=0.05):
    r"""Classical augmentation of 8x8 digits: a random shift and pixel noise, clamped to [0, 1].

    .. math:: \tilde x = \mathrm{clip}_{[0,1]}\big(\mathrm{shift}_{(a, b)}(x) + \epsilon\big),\quad
              a, b \sim U\{-s..s\},\ \epsilon \sim \mathcal N(0, \sigma^2 I).

    The clamp is part of the augmentation (decoder targets must lie in [0, 1]), not a silent fix.

    Parameters
    ----------
    x : tensor (n, 64) in [0, 1]
    generator : torch.Generator, optional
    max_shift : int
        Largest shift in pixels (zero padding).
    noise : float
        Standard deviation of the additive noise.

    Returns
    -------
    tensor (n, 64)
    """
    x = _check_images(x)
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative int, got {max_shift!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    n = x.shape[0]
    img = x.view(n, 8, 8)
    pad = nn.functional.pad(img, (max_shift,) * 4)
    shifts = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    rows = (torch.arange(8)[None, :] + shifts[:, :1])  # (n, 8)
    cols = (torch.arange(8)[None, :] + shifts[:, 1:])
    out = pad[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    out = out + noise * torch.randn(out.shape, generator=generator)
    return out.reshape(n, 64).clamp(0.0, 1.0)


def generated_pool(score, sde, n, n_steps=200, generator=None, batch_size=2048, progress=False):
    r"""Draw ``n`` flattened images from a diffusion model (Euler-Maruyama), clamped to [0, 1].

    .. math:: x \sim p_\mathrm{DM}: \text{reverse SDE } dx = [f - g^2 s_\theta(x, t)]\,dt + g\, d\bar w,

    then :math:`x \mapsto \mathrm{clip}_{[0,1]}(x)`: the Bernoulli decoder needs targets in [0, 1],
    and a diffusion model's samples overshoot slightly; the clamp is deliberate and documented.

    Parameters
    ----------
    score : callable (x, t) -> tensor
        Score model on flattened images (n, 64).
    sde : VESDE or VPSDE
    n : int
    n_steps : int
    generator : torch.Generator, optional
    batch_size : int
    progress : bool

    Returns
    -------
    tensor (n, 64), float32
    """
    from ..sampling import euler_maruyama

    check_positive_int(n, "n")
    check_positive_int(batch_size, "batch_size")
    out = []
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="sampling p_DM"):
        m = min(batch_size, n - start)
        with torch.no_grad():
            out.append(euler_maruyama(score, sde, shape=(m, 64), n_steps=n_steps, generator=generator))
    return torch.cat(out).float().clamp(0.0, 1.0)


def pool_source(pool, n_per_epoch):
    r"""A data source for :func:`train_vae` that walks through a fixed pool of generated images.

    Epoch :math:`e` gets the slice :math:`[(e \bmod k)\,m, (e \bmod k + 1)\,m)` of the pool, with
    :math:`m` = ``n_per_epoch`` and :math:`k = \lfloor |\mathrm{pool}| / m \rfloor`: a pool of
    :math:`k \times |D|` samples is the paper's ablation (Xiao et al., 2023), and a pool of
    :math:`\text{epochs} \times |D|` samples gives every epoch fresh, never reused i.i.d. samples
    of :math:`p_\mathrm{DM}`, which is DMaaPx itself.

    .. math:: \mathcal S_e = \{x_{(e \bmod k) m + j}\}_{j=0}^{m-1}, \quad x_i \overset{iid}{\sim} p_\mathrm{DM}

    Parameters
    ----------
    pool : tensor (N, 64) in [0, 1]
    n_per_epoch : int, at most N

    Returns
    -------
    callable (epoch, generator) -> tensor (n_per_epoch, 64)
    """
    pool = _check_images(pool, "pool")
    check_positive_int(n_per_epoch, "n_per_epoch")
    if n_per_epoch > pool.shape[0]:
        raise ValueError(f"n_per_epoch must be at most the pool size {pool.shape[0]}, got {n_per_epoch}")
    k = pool.shape[0] // n_per_epoch

    def source(epoch, generator=None):
        start = (epoch % k) * n_per_epoch
        return pool[start:start + n_per_epoch]

    return source


@dataclass
class VAETrainResult:
    """Outcome of :func:`train_vae`: the model and the mean training loss (-ELBO) per epoch."""

    model: VAE
    losses: list = field(default_factory=list)


def train_vae(vae, source, epochs=50, batch_size=128, lr=1e-3, generator=None, progress=True):
    r"""Train a VAE by maximising the mean ELBO over a data source (Adam).

    .. math:: \max_{\theta,\phi}\ \mathbb E_{x \sim \mathcal S_e}\,[\mathrm{ELBO}_{\theta,\phi}(x)],

    where :math:`\mathcal S_e` is the data of epoch :math:`e`: the fixed training set (normal
    training), an augmented copy of it, or fresh samples of a diffusion model (DMaaPx).

    Parameters
    ----------
    vae : VAE
    source : tensor (n, 64) or callable (epoch, generator) -> tensor (m, 64)
        A fixed set, or a function returning the epoch's data.
    epochs, batch_size : int
    lr : float
    generator : torch.Generator, optional
        All randomness (shuffling, reparameterisation, the source's own draws); default seed 0.
    progress : bool

    Returns
    -------
    VAETrainResult
    """
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not (callable(source) or isinstance(source, torch.Tensor)):
        raise TypeError(f"source must be a tensor or a callable (epoch, generator) -> tensor, "
                        f"got {type(source).__name__}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    fixed = None if callable(source) else _check_images(source, "source")
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    losses = []
    vae.train()
    for epoch in tqdm(range(epochs), disable=not progress, desc="VAE"):
        data = fixed if fixed is not None else _check_images(source(epoch, generator), "source(epoch)")
        perm = torch.randperm(data.shape[0], generator=generator)
        total = 0.0
        for start in range(0, data.shape[0], batch_size):
            xb = data[perm[start:start + batch_size]]
            opt.zero_grad()
            loss = -elbo(vae, xb, generator=generator).mean()
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        losses.append(total / data.shape[0])
    vae.eval()
    return VAETrainResult(vae, losses)
