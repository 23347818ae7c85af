r"""Data-free merging of score models by model rooting (Avrahami et al., GAN Cocktail, 2022; PAPERS.md Sec. 3).

GAN Cocktail merges K generators without their data in two steps, here with score models:

1. **Rooting.** Every model is domain-conditional (a domain label :math:`y \in \{0..K-1\}`).
   Pick a root model (domain :math:`r`); for every other source :math:`k`, initialise a copy from
   the root and fit it, by denoising score matching, to fresh samples of the frozen source
   :math:`k` only (labelled :math:`k`):

   .. math:: \theta_k = \arg\min_\theta\ \mathbb E_{x_0 \sim p_{\theta^\mathrm{src}_k}}
             \mathbb E_{t, z} \| \mathrm{std}_t\, s_\theta(x_t, t, k) + z \|^2,\quad \theta \leftarrow \theta_r \text{ at start}.

2. **Merging.** Average the weights, :math:`\bar\theta = \frac1K \sum_k \theta_k`, then fine-tune
   :math:`\bar\theta` on samples of all K sources labelled by domain, drawn uniformly.

Naive averaging skips step 1 (models trained from different initialisations live in different
basins, and their average is poor). ScoreFusion instead keeps all K networks and sums their scores
at sampling time (K evaluations per step, K times the parameters).
"""

import copy

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_points, check_positive_int
from ..losses import perturb, sample_times
from ..nets import FourierFeatures, _noise_conditioning

__all__ = ["ConditionalScoreMLP", "DomainScore", "average_weights", "count_parameters", "merge",
           "root_model", "sample_domain", "train_conditional"]


class ConditionalScoreMLP(nn.Module):
    r"""Domain-conditional score network for vectors: an MLP on :math:`(c_\mathrm{in} x,\ \text{features}(\log \mathrm{std}_t),\ e_y)`.

    .. math:: s_\theta(x, t, y) = F_\theta(c_\mathrm{in}(t)\, x,\ \phi(\log\mathrm{std}_t),\ e_y) / \mathrm{std}_t

    Parameters
    ----------
    sde : VESDE or VPSDE
    dim : int
        Data dimension; inputs have shape (n, dim).
    n_domains : int
        Number of domain labels K; :math:`e_y` is a learned embedding.
    hidden, depth, embed_dim : int
    """

    def __init__(self, sde, dim, n_domains, hidden=128, depth=3, embed_dim=32):
        super().__init__()
        for name, value in (("dim", dim), ("n_domains", n_domains), ("hidden", hidden), ("depth", depth),
                            ("embed_dim", embed_dim)):
            check_positive_int(value, name)
        self.sde, self.dim, self.n_domains = sde, dim, n_domains
        self.embed = FourierFeatures(embed_dim)
        self.domain = nn.Embedding(n_domains, embed_dim)
        layers, width = [], dim + 2 * embed_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x, t, y):
        """Score at ``x`` (n, dim), times ``t`` (n,), domain labels ``y`` (n,) of dtype long."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        y = torch.as_tensor(y, device=x.device)
        if y.dtype != torch.long:
            raise TypeError(f"y must hold integer domain labels, got {y.dtype}")
        y = y.expand(x.shape[0]) if y.ndim == 0 else y
        if y.shape != (x.shape[0],) or (y < 0).any() or (y >= self.n_domains).any():
            raise ValueError(f"y must have shape ({x.shape[0]},) with labels in 0..{self.n_domains - 1}")
        _, c_in, c_noise, std = _noise_conditioning(self.sde, x, t)
        h = torch.cat([x * c_in[:, None], self.embed(c_noise), self.domain(y)], dim=1)
        return self.net(h) / std[:, None]


class DomainScore(nn.Module):
    r"""The unconditional score :math:`s(x, t) = s_\theta(x, t, k)` of one domain of a conditional model.

    .. math:: s_k(x, t) = s_\theta(x, t, y = k)

    Parameters
    ----------
    model : ConditionalScoreMLP
    k : int
    """

    def __init__(self, model, k):
        super().__init__()
        if not isinstance(model, ConditionalScoreMLP):
            raise TypeError(f"model must be a ConditionalScoreMLP, got {type(model).__name__}")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < model.n_domains:
            raise ValueError(f"k must be an int in 0..{model.n_domains - 1}, got {k!r}")
        self.model, self.k = model, k

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        return self.model(x, t, torch.full((x.shape[0],), self.k, dtype=torch.long, device=x.device))


def train_conditional(model, data, labels, sde, epochs=100, batch_size=256, lr=2e-3, generator=None,
                      progress=True, t_range=None):
    r"""Train a domain-conditional score model by denoising score matching (Adam).

    .. math:: \min_\theta\ \mathbb E_{(x_0, y)}\,\mathbb E_{t, z}\,
              \|\mathrm{std}_t\, s_\theta(\mathrm{scale}_t x_0 + \mathrm{std}_t z, t, y) + z\|^2

    Parameters
    ----------
    model : ConditionalScoreMLP
    data : tensor (n, dim)
    labels : tensor (n,) of long
    sde : VESDE or VPSDE
    epochs, batch_size : int
    lr : float
    generator : torch.Generator, optional
        Shuffling, times and noise (default seed 0).
    progress : bool
    t_range : (float, float), optional

    Returns
    -------
    (model, losses) : the trained model (in place) and the mean loss per epoch
    """
    data = check_points(data, model.dim, "data").float()
    labels = torch.as_tensor(labels)
    if labels.shape != (data.shape[0],):
        raise ValueError(f"labels must have shape ({data.shape[0]},), got {tuple(labels.shape)}")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in tqdm(range(epochs), disable=not progress, desc="DSM"):
        perm = torch.randperm(data.shape[0], generator=generator)
        total = 0.0
        for start in range(0, data.shape[0], batch_size):
            idx = perm[start:start + batch_size]
            x0, y = data[idx], labels[idx]
            t = sample_times(x0.shape[0], sde, t_range, generator=generator, dtype=x0.dtype)
            xt, z, std = perturb(x0, sde, t, generator=generator)
            loss = (std[:, None] * model(xt, t, y) + z).pow(2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * x0.shape[0]
        losses.append(total / data.shape[0])
    model.eval()
    return model, losses


def sample_domain(model, k, sde, n, n_steps=200, generator=None):
    r"""Draw ``n`` samples of domain ``k`` from a conditional score model (Euler-Maruyama).

    .. math:: dx = [f(x, t) - g(t)^2 s_\theta(x, t, k)]\,dt + g(t)\,d\bar w

    Returns
    -------
    tensor (n, dim), float32
    """
    from ..sampling import euler_maruyama

    with torch.no_grad():
        return euler_maruyama(DomainScore(model, k), sde, shape=(n, model.dim), n_steps=n_steps,
                              generator=generator).float()


def root_model(root, source, k, sde, n_samples=2048, epochs=50, lr=1e-3, n_steps=200, generator=None,
               progress=True):
    r"""Model rooting: fine-tune a copy of the root to reproduce source ``k`` from its samples alone.

    .. math:: \theta_k = \arg\min_\theta \mathbb E_{x_0 \sim p^\mathrm{src}_k}\,\mathbb E_{t,z}
              \|\mathrm{std}_t s_\theta(x_t, t, k) + z\|^2, \quad \text{started at } \theta_\mathrm{root}

    Samples of the frozen source are drawn fresh for this call (no access to its training data).

    Parameters
    ----------
    root, source : ConditionalScoreMLP
        Same architecture; ``source`` generates domain ``k``.
    k : int
    sde : VESDE or VPSDE
    n_samples, epochs, n_steps : int
    lr : float
    generator : torch.Generator, optional
    progress : bool

    Returns
    -------
    ConditionalScoreMLP : the rooted copy (root and source unchanged)
    """
    _same(root, source)
    check_positive_int(n_samples, "n_samples")
    x = sample_domain(source, k, sde, n_samples, n_steps=n_steps, generator=generator)
    rooted = copy.deepcopy(root)
    labels = torch.full((n_samples,), k, dtype=torch.long)
    rooted, _ = train_conditional(rooted, x, labels, sde, epochs=epochs, lr=lr, generator=generator,
                                  progress=progress)
    return rooted


def _same(*models):
    for m in models:
        if not isinstance(m, nn.Module):
            raise TypeError(f"models must be nn.Module, got {type(m).__name__}")
    shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("models must share one architecture (same parameter names and shapes)")


def average_weights(models, weights=None):
    r"""Weight averaging: a copy of ``models[0]`` with parameters :math:`\bar\theta = \sum_k w_k \theta_k`.

    .. math:: \bar\theta = \sum_{k=1}^K w_k\, \theta_k, \qquad w \in \Delta^{K-1} \text{ (default uniform)}

    Parameters
    ----------
    models : list of nn.Module, same architecture
    weights : sequence of K floats on the simplex, optional

    Returns
    -------
    nn.Module
    """
    from .._checks import check_simplex

    if not isinstance(models, (list, tuple)) or len(models) == 0:
        raise ValueError("models must be a non-empty list of networks")
    _same(*models)
    k = len(models)
    w = check_simplex(torch.full((k,), 1.0 / k) if weights is None else weights, k, "weights")
    out = copy.deepcopy(models[0])
    states = [m.state_dict() for m in models]
    avg = {name: sum(float(w[i]) * states[i][name].double() for i in range(k)).to(states[0][name].dtype)
           for name in states[0]}
    out.load_state_dict(avg)
    return out


def merge(root, sources, sde, root_index=0, rooting=True, finetune_epochs=50, n_samples=2048, epochs=50,
          lr=1e-3, n_steps=200, generator=None, progress=True):
    r"""GAN-Cocktail merge of K domain models into one network: rooting, averaging, fine-tuning.

    .. math:: \bar\theta = \mathrm{FT}\Big(\tfrac1K \textstyle\sum_k \theta_k\Big),\quad
              \theta_k = \mathrm{root}(\theta_r \to p^\mathrm{src}_k)\ (k \ne r),\ \theta_r = \text{root}

    ``sources[k]`` generates domain ``k``; ``root`` is ``sources[root_index]`` unless given otherwise.
    With ``rooting=False`` the sources are averaged as they are (naive averaging). Fine-tuning uses
    ``n_samples`` fresh samples per domain from the frozen sources, labelled by domain;
    ``finetune_epochs=0`` skips it.

    Returns
    -------
    dict with keys "averaged" (before fine-tuning), "merged" (after), "rooted" (list of K models)
    """
    if not isinstance(sources, (list, tuple)) or len(sources) < 2:
        raise ValueError("sources must be a list of at least two models")
    _same(root, *sources)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if rooting:
        rooted = [root if k == root_index else
                  root_model(root, sources[k], k, sde, n_samples=n_samples, epochs=epochs, lr=lr,
                             n_steps=n_steps, generator=generator, progress=progress)
                  for k in range(len(sources))]
    else:
        rooted = list(sources)
    averaged = average_weights(rooted)
    merged = copy.deepcopy(averaged)
    if finetune_epochs:
        xs = [sample_domain(s, k, sde, n_samples, n_steps=n_steps, generator=generator)
              for k, s in enumerate(sources)]
        labels = torch.cat([torch.full((n_samples,), k, dtype=torch.long) for k in range(len(sources))])
        merged, _ = train_conditional(merged, torch.cat(xs), labels, sde, epochs=finetune_epochs, lr=lr,
                                      generator=generator, progress=progress)
    return {"averaged": averaged.eval(), "merged": merged.eval(), "rooted": rooted}


def count_parameters(model):
    """Number of trainable parameters of ``model`` (or the sum over a list of models)."""
    if isinstance(model, (list, tuple)):
        return sum(count_parameters(m) for m in model)
    return sum(p.numel() for p in model.parameters())
