r"""Data-free merging of score models by model rooting (Avrahami et al., GAN Cocktail, 2022; PAPERS.md Sec. 3).

GAN Cocktail merges K generators without their data in two steps; here the generators are
domain-conditional score models:

1. **Rooting.** Every model is domain-conditional (a domain label :math:`y \in \{0..K-1\}`),
   and source :math:`k` generates domain :math:`k`. Pick a root model (source :math:`r`); for
   every other source :math:`k`, initialise a copy from the root and fit it, by denoising score
   matching, to fresh samples of the frozen source :math:`k` only (labelled :math:`k`):

   .. math:: \theta_k = \arg\min_\theta\ \mathbb E_{x_0 \sim p_{\theta^\mathrm{src}_k}}
             \mathbb E_{t, z} \| \mathrm{std}_t\, s_\theta(x_t, t, k) + z \|^2,\quad
             \theta \leftarrow \theta_r \text{ at start}.

2. **Merging.** Average the weights, :math:`\bar\theta = \frac1K \sum_k \theta_k`, then fine-tune
   :math:`\bar\theta` on samples of all K sources labelled by domain, drawn uniformly.

Naive averaging skips step 1 (models trained from different initialisations live in different
basins, and their average is poor). ScoreFusion instead keeps all K networks and sums their scores
at sampling time (K evaluations per step, K times the parameters).

The paper roots adversarially (StyleGAN2-ADA); with score models the natural objective is the one
each model was trained with, denoising score matching, which is what this module uses.
"""

import copy
import functools

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_points, check_positive_int, check_simplex
from ..losses import dsm_loss
from ..nets import FourierFeatures, noise_conditioning

__all__ = ["ConditionalScoreMLP", "DomainScore", "average_weights", "count_parameters", "finetune",
           "generated_data", "merge", "root_model", "sample_domain", "train_conditional"]


class ConditionalScoreMLP(nn.Module):
    r"""Domain-conditional score network for vectors: an MLP on :math:`(c_\mathrm{in} x,\ \text{features}(\log \mathrm{std}_t),\ e_y)`.

    .. math:: s_\theta(x, t, y) = F_\theta(c_\mathrm{in}(t)\, x,\ \phi(\log\mathrm{std}_t),\ e_y) / \mathrm{std}_t

    The class-conditional generator of GAN Cocktail (Avrahami et al., 2022, Sec. 3), as a score
    network with the conditioning of :class:`scorefusion.nets.ScoreMLP`.

    Parameters
    ----------
    sde : VESDE or VPSDE
    dim : int
        Data dimension; inputs have shape (n, dim).
    n_domains : int
        Number of domain labels K; :math:`e_y` is a learned embedding.
    hidden, depth, embed_dim : int
        Width and number of hidden layers; size of the noise and domain features.
    init_seed : int, optional
        Seed of the initial weights (drawn without touching the global RNG); default: the
        global RNG, as ``nn.Linear`` does.

    Notes
    -----
    ``forward(x, t, y)``: ``x`` (n, dim), ``t`` a float or (n,), ``y`` long labels (n,) or a
    scalar; returns the score, shape (n, dim).
    """

    def __init__(self, sde, dim, n_domains, hidden=128, depth=3, embed_dim=32, init_seed=None):
        super().__init__()
        for name, value in (("dim", dim), ("n_domains", n_domains), ("hidden", hidden), ("depth", depth),
                            ("embed_dim", embed_dim)):
            check_positive_int(value, name)
        if init_seed is not None and (isinstance(init_seed, bool) or not isinstance(init_seed, int)):
            raise TypeError(f"init_seed must be an int or None, got {type(init_seed).__name__}")
        self.sde, self.dim, self.n_domains = sde, dim, n_domains
        with torch.random.fork_rng(devices=[], enabled=init_seed is not None):
            if init_seed is not None:
                torch.manual_seed(init_seed)
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
            raise TypeError(f"y must hold integer domain labels (torch.long), got {y.dtype}")
        y = y.expand(x.shape[0]) if y.ndim == 0 else y
        if y.shape != (x.shape[0],) or (y < 0).any() or (y >= self.n_domains).any():
            raise ValueError(f"y must have shape ({x.shape[0]},) with labels in 0..{self.n_domains - 1}")
        return self.score(x, t, y)

    def score(self, x, t, y):
        r"""The score without the checks of ``forward``.

        .. math:: s_\theta(x, t, y) = F_\theta(c_\mathrm{in}(t)\, x,\ \phi(\log\mathrm{std}_t),\ e_y) / \mathrm{std}_t

        Those checks read the labels' values, which ``torch.vmap`` forbids; this method has none,
        so :class:`DomainScore` and :func:`train_conditional` call it, the former under
        ``torch.vmap`` when :class:`scorefusion.FusedScore` stacks K domains. Arguments as in
        ``forward``, with ``y`` of shape (n,).
        """
        _, c_in, c_noise, std = noise_conditioning(self.sde, x, t)
        h = torch.cat([x * c_in[:, None], self.embed(c_noise), self.domain(y)], dim=1)
        return self.net(h) / std[:, None]


class DomainScore(nn.Module):
    r"""The unconditional score :math:`s(x, t) = s_\theta(x, t, k)` of one domain of a conditional model.

    .. math:: s_k(x, t) = s_\theta(x, t, y = k)

    The label is a buffer, so K such modules stack correctly in
    :class:`scorefusion.FusedScore` (ScoreFusion's :math:`\sum_k \lambda_k s_k`, Liu et al. 2025,
    Sec. 3), each with its own domain.

    Parameters
    ----------
    model : ConditionalScoreMLP
    k : int
        Domain label in ``0..model.n_domains - 1``.
    """

    def __init__(self, model, k):
        super().__init__()
        if not isinstance(model, ConditionalScoreMLP):
            raise TypeError(f"model must be a ConditionalScoreMLP, got {type(model).__name__}")
        _check_index(k, model.n_domains, "k")
        self.model = model
        self.register_buffer("label", torch.tensor(k, dtype=torch.long))

    @property
    def k(self):
        """The domain label as an int."""
        return int(self.label)

    def forward(self, x, t):
        if x.ndim != 2 or x.shape[1] != self.model.dim:
            raise ValueError(f"x must have shape (n, {self.model.dim}), got {tuple(x.shape)}")
        return self.model.score(x, t, self.label.expand(x.shape[0]))


def _check_index(value, n, name):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise ValueError(f"{name} must be an int in 0..{n - 1}, got {value!r}")


def _check_labels(labels, n, n_domains):
    labels = torch.as_tensor(labels)
    if labels.dtype != torch.long:
        raise TypeError(f"labels must hold integer domain labels (torch.long), got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if (labels < 0).any() or (labels >= n_domains).any():
        raise ValueError(f"labels must lie in 0..{n_domains - 1}")
    return labels


def train_conditional(model, data, labels, sde, epochs=100, batch_size=256, lr=2e-3, generator=None,
                      progress=True, t_range=None):
    r"""Train a domain-conditional score model by denoising score matching (Adam).

    .. math:: \min_\theta\ \mathbb E_{(x_0, y)}\,\mathbb E_{t, z}\,
              \|\mathrm{std}_t\, s_\theta(\mathrm{scale}_t x_0 + \mathrm{std}_t z, t, y) + z\|^2

    (Song et al. 2021b's weighting; the objective of every step of the merge, PAPERS.md Sec. 3).

    Parameters
    ----------
    model : ConditionalScoreMLP
        Trained in place.
    data : tensor (n, dim)
    labels : tensor (n,) of long, in 0..K-1
    sde : VESDE or VPSDE
    epochs, batch_size : int
    lr : float
        Adam learning rate.
    generator : torch.Generator, optional
        Shuffling, times and noise (default seed 0).
    progress : bool
        tqdm bar over epochs.
    t_range : (float, float), optional
        Times of the loss; default ``(1e-5, T)``.

    Returns
    -------
    (model, losses) : the trained model (in place, eval mode) and the mean loss per epoch (list)
    """
    if not isinstance(model, ConditionalScoreMLP):
        raise TypeError(f"model must be a ConditionalScoreMLP, got {type(model).__name__}")
    data = check_points(data, model.dim, "data").float()
    labels = _check_labels(labels, data.shape[0], model.n_domains)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
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
            loss = dsm_loss(functools.partial(model.score, y=y), x0, sde, generator=generator, t_range=t_range)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * x0.shape[0]
        losses.append(total / data.shape[0])
    model.eval()
    return model, losses


def sample_domain(model, k, sde, n, n_steps=200, generator=None, eps=1e-3):
    r"""Draw ``n`` samples of domain ``k`` from a conditional score model (Euler-Maruyama).

    .. math:: dx = [f(x, t) - g(t)^2 s_\theta(x, t, k)]\,dt + g(t)\,d\bar w

    Parameters
    ----------
    model : ConditionalScoreMLP
    k : int
    sde : VESDE or VPSDE
    n, n_steps : int
    generator : torch.Generator, optional
    eps : float, default 1e-3
        Last time of the sampler (the samples are of the model at time ``eps``).

    Returns
    -------
    tensor (n, dim), float32
    """
    from ..sampling import euler_maruyama

    check_positive_int(n, "n")
    with torch.no_grad():
        return euler_maruyama(DomainScore(model, k), sde, shape=(n, model.dim), n_steps=n_steps,
                              generator=generator, eps=eps).float()


def generated_data(sources, sde, n_per_domain, n_steps=200, generator=None, eps=1e-3):
    r"""The data-free training set: ``n_per_domain`` samples of every frozen source, labelled by domain.

    .. math:: \{(x, k) : x \sim p_{\theta^\mathrm{src}_k},\ k = 0..K-1\}, \quad n \text{ per domain}

    (GAN Cocktail, Sec. 3.2: the merged model is fine-tuned on the original generators' outputs.)

    Parameters
    ----------
    sources : list of K ConditionalScoreMLP
        ``sources[k]`` generates domain ``k``.
    sde : VESDE or VPSDE
    n_per_domain, n_steps : int
    generator : torch.Generator, optional
    eps : float, default 1e-3
        Last time of the sampler.

    Returns
    -------
    (x, labels) : tensors (K n, dim) float32 and (K n,) long
    """
    _same(*sources)
    check_positive_int(n_per_domain, "n_per_domain")
    xs = [sample_domain(s, k, sde, n_per_domain, n_steps=n_steps, generator=generator, eps=eps)
          for k, s in enumerate(sources)]
    labels = torch.cat([torch.full((n_per_domain,), k, dtype=torch.long) for k in range(len(sources))])
    return torch.cat(xs), labels


def root_model(root, source, k, sde, n_samples=2048, epochs=50, lr=1e-3, batch_size=256, n_steps=200,
               generator=None, progress=True, t_range=None, data=None):
    r"""Model rooting: fine-tune a copy of the root to reproduce source ``k`` from its samples alone.

    .. math:: \theta_k = \arg\min_\theta \mathbb E_{x_0 \sim p^\mathrm{src}_k}\,\mathbb E_{t,z}
              \|\mathrm{std}_t s_\theta(x_t, t, k) + z\|^2, \quad \text{started at } \theta_\mathrm{root}

    (GAN Cocktail, Sec. 3.1, with DSM in place of the adversarial loss.) Samples of the frozen
    source are drawn fresh for this call (no access to its training data), unless ``data`` gives
    them.

    Parameters
    ----------
    root, source : ConditionalScoreMLP
        Same architecture; ``source`` generates domain ``k``.
    k : int
    sde : VESDE or VPSDE
    n_samples, epochs, batch_size, n_steps : int
        Generated samples, DSM epochs over them, batch, Euler-Maruyama steps.
    lr : float
    generator : torch.Generator, optional
    progress : bool
    t_range : (float, float), optional
        Times of the DSM loss, default ``(1e-5, T)``; the sampler stops at ``t_range[0]``
        (default 1e-3).
    data : tensor (m, dim), optional
        Samples of source ``k`` to fit (for example the domain-``k`` rows of :func:`generated_data`,
        so that rooting and fine-tuning share one generated set); ``n_samples`` and ``n_steps`` are
        then unused. Default: ``n_samples`` samples drawn here.

    Returns
    -------
    (ConditionalScoreMLP, list) : the rooted copy (root and source unchanged) and its losses per epoch
    """
    _same(root, source)
    _check_index(k, root.n_domains, "k")
    if data is None:
        check_positive_int(n_samples, "n_samples")
        x = sample_domain(source, k, sde, n_samples, n_steps=n_steps, generator=generator, eps=_eps(t_range))
    else:
        x = check_points(data, root.dim, "data").float()
    rooted = copy.deepcopy(root).requires_grad_(True)
    labels = torch.full((x.shape[0],), k, dtype=torch.long)
    return train_conditional(rooted, x, labels, sde, epochs=epochs, batch_size=batch_size, lr=lr,
                             generator=generator, progress=progress, t_range=t_range)


def _eps(t_range):
    return 1e-3 if t_range is None else float(t_range[0])


def _same(*models):
    if not models:
        raise ValueError("need at least one model")
    for m in models:
        if not isinstance(m, ConditionalScoreMLP):
            raise TypeError(f"models must be ConditionalScoreMLP, got {type(m).__name__}")
    shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("models must share one architecture (same parameter names and shapes)")


def average_weights(models, weights=None):
    r"""Weight averaging: a copy of ``models[0]`` with parameters :math:`\bar\theta = \sum_k w_k \theta_k`.

    .. math:: \bar\theta = \sum_{k=1}^K w_k\, \theta_k, \qquad w \in \Delta^{K-1} \text{ (default uniform)}

    (GAN Cocktail, Sec. 3.2, the merge step; also the "naive averaging" baseline when the models
    were not rooted.)

    Parameters
    ----------
    models : list of K ConditionalScoreMLP, same architecture
    weights : sequence of K floats on the simplex, optional

    Returns
    -------
    ConditionalScoreMLP in eval mode
    """
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
    return out.eval()


def finetune(model, sources, sde, n_per_domain=2048, epochs=50, lr=1e-3, batch_size=256, n_steps=200,
             generator=None, progress=True, data=None, t_range=None):
    r"""Fine-tune a (merged) model on samples of all K sources, labelled by domain, drawn uniformly.

    .. math:: \min_\theta \frac1K \sum_{k=1}^K \mathbb E_{x_0 \sim p^\mathrm{src}_k}\,\mathbb E_{t,z}
              \|\mathrm{std}_t s_\theta(x_t, t, k) + z\|^2, \quad \text{started at } \bar\theta

    (GAN Cocktail, Sec. 3.2.)

    Parameters
    ----------
    model : ConditionalScoreMLP
        Start; not modified (a copy is trained).
    sources : list of K ConditionalScoreMLP
    sde : VESDE or VPSDE
    n_per_domain, epochs, batch_size, n_steps : int
    lr : float
    generator : torch.Generator, optional
    progress : bool
    data : (x, labels), optional
        A set from :func:`generated_data` to reuse (so several starts see the same samples);
        default: drawn here from ``sources``.
    t_range : (float, float), optional
        Times of the DSM loss (and the sampler's last time), as in :func:`root_model`.

    Returns
    -------
    (ConditionalScoreMLP, list) : the fine-tuned copy and its losses per epoch
    """
    _same(model, *sources)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if data is None:
        data = generated_data(sources, sde, n_per_domain, n_steps=n_steps, generator=generator, eps=_eps(t_range))
    tuned = copy.deepcopy(model).requires_grad_(True)
    return train_conditional(tuned, data[0], data[1], sde, epochs=epochs, batch_size=batch_size, lr=lr,
                             generator=generator, progress=progress, t_range=t_range)


def merge(sources, sde, root_index=0, rooting=True, rooting_epochs=50, finetune_epochs=50, n_samples=2048,
          lr=1e-3, batch_size=256, n_steps=200, generator=None, progress=True, t_range=None):
    r"""GAN-Cocktail merge of K domain models into one network: rooting, averaging, fine-tuning.

    .. math:: \bar\theta = \mathrm{FT}\Big(\tfrac1K \textstyle\sum_k \theta_k\Big),\quad
              \theta_k = \mathrm{root}(\theta_r \to p^\mathrm{src}_k)\ (k \ne r),\ \theta_r = \theta^\mathrm{src}_r

    ``sources[k]`` generates domain ``k``; the root is ``sources[root_index]``. With
    ``rooting=False`` the sources are averaged as they are (naive averaging). Rooting and
    fine-tuning use ``n_samples`` fresh samples per domain from the frozen sources;
    ``finetune_epochs=0`` skips fine-tuning. (Avrahami et al., 2022, Sec. 3: rooting, merging,
    fine-tuning on the original generators' outputs; DSM in place of their adversarial losses.)

    Parameters
    ----------
    sources : list of K >= 2 ConditionalScoreMLP
    sde : VESDE or VPSDE
    root_index : int
    rooting : bool
    rooting_epochs, finetune_epochs, n_samples, batch_size, n_steps : int
    lr : float
    generator : torch.Generator, optional
    progress : bool
    t_range : (float, float), optional
        Times of every DSM loss, as in :func:`root_model`.

    Returns
    -------
    dict with keys "averaged" (before fine-tuning), "merged" (after), "rooted" (list of K models),
    "losses" (dict: "rooting" -> list of K lists, empty for the root; "finetune" -> list)
    """
    if not isinstance(sources, (list, tuple)) or len(sources) < 2:
        raise ValueError("sources must be a list of at least two models")
    _same(*sources)
    _check_index(root_index, len(sources), "root_index")
    if isinstance(finetune_epochs, bool) or not isinstance(finetune_epochs, int) or finetune_epochs < 0:
        raise ValueError(f"finetune_epochs must be a non-negative int, got {finetune_epochs!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    root = sources[root_index]
    rooted, root_losses = [], []
    for k, source in enumerate(sources):
        if not rooting or k == root_index:
            rooted.append(source)
            root_losses.append([])
            continue
        model, losses = root_model(root, source, k, sde, n_samples=n_samples, epochs=rooting_epochs, lr=lr,
                                   batch_size=batch_size, n_steps=n_steps, generator=generator, progress=progress,
                                   t_range=t_range)
        rooted.append(model)
        root_losses.append(losses)
    averaged = average_weights(rooted)
    merged, ft_losses = averaged, []
    if finetune_epochs:
        merged, ft_losses = finetune(averaged, sources, sde, n_per_domain=n_samples, epochs=finetune_epochs, lr=lr,
                                     batch_size=batch_size, n_steps=n_steps, generator=generator, progress=progress,
                                     t_range=t_range)
    return {"averaged": averaged, "merged": merged.eval(), "rooted": rooted,
            "losses": {"rooting": root_losses, "finetune": ft_losses}}


def count_parameters(model):
    r"""Number of parameters of ``model`` (or the sum over a list of models), frozen ones included.

    .. math:: |\theta| = \sum_{\text{tensors } w} \mathrm{numel}(w)

    Parameters
    ----------
    model : nn.Module or list of nn.Module

    Returns
    -------
    int
    """
    if isinstance(model, (list, tuple)):
        return sum(count_parameters(m) for m in model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or a list of them, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())
