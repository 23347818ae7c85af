"""Score functions: anything that maps ``(x, t)`` to ``grad_x log p_t(x)``.

A score is any callable ``score(x, t)`` with ``x`` of shape ``(n, *event_shape)``
and ``t`` a float or a tensor of shape ``(n,)``, returning a tensor shaped like ``x``.
Networks (``nets.ScoreMLP``, ``nets.ScoreUNet``), :class:`AnalyticScore` and
:class:`FusedScore` all follow it.
"""

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from ._checks import check_sde, check_simplex, check_time
from .distributions import GaussianMixture
from .schedule import WeightSchedule


def _time_vector(t, n, like):
    """Times ``t`` (a number or shape (n,)) as a tensor of shape (n,) in ``like``'s dtype and device."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"t must be a scalar or have shape ({n},), got {tuple(t.shape)}")
    return t


class AnalyticScore:
    r"""Exact score of a closed-form distribution pushed through the forward SDE.

    .. math::

        s(x, t) = \nabla_x \log p_t(x), \qquad
        p_t = \textstyle\sum_k w_k \mathcal N(\mathrm{scale}_t m_k,\
              \mathrm{scale}_t^2 S_k + \mathrm{std}_t^2 I).

    Every point may carry its own time. Inputs are checked: ``x`` a floating
    tensor of shape (n, d) with the distribution's d, ``t`` in (0, T].

    Parameters
    ----------
    dist : Gaussian or GaussianMixture
    sde : SDE
    """

    def __init__(self, dist, sde):
        if not isinstance(dist, GaussianMixture):
            raise TypeError(f"dist must be a Gaussian or GaussianMixture, got {type(dist).__name__}")
        self.dist = dist
        self.sde = check_sde(sde)

    def __repr__(self):
        return f"AnalyticScore({self.dist!r}, {self.sde!r})"

    def _scale_std(self, x, t):
        if not torch.is_tensor(x):
            raise TypeError(f"x must be a torch tensor of shape (n, {self.dist.dim}), got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating tensor, got {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.dist.dim:
            raise ValueError(f"x must have shape (n, {self.dist.dim}), the distribution's dimension, "
                             f"got {tuple(x.shape)}")
        check_time(t, self.sde.T)
        return self.sde.marginal(_time_vector(t, x.shape[0], x))

    def __call__(self, x, t):
        """Score of the noised distribution at ``(x, t)``; shape (n, d)."""
        scale, std = self._scale_std(x, t)
        return self.dist.score(x, scale, std).to(x.dtype)

    def log_prob(self, x, t):
        """Log-density of the noised distribution; shape (n,)."""
        scale, std = self._scale_std(x, t)
        return self.dist.log_prob(x, scale, std).to(x.dtype)

    def divergence(self, x, t):
        r"""Exact divergence :math:`\nabla_x \cdot s(x, t)`; shape (n,)."""
        return self.score_and_divergence(x, t)[1]

    def score_and_divergence(self, x, t):
        """Score (n, d) and its exact divergence (n,) from one evaluation of the components."""
        scale, std = self._scale_std(x, t)
        score, div = self.dist.score_and_divergence(x, scale, std)
        return score.to(x.dtype), div.to(x.dtype)


def _same_architecture(models):
    if not all(isinstance(m, nn.Module) for m in models):
        return False
    first = models[0]
    shapes = [(k, v.shape) for k, v in first.state_dict().items()]
    return all(
        type(m) is type(first) and [(k, v.shape) for k, v in m.state_dict().items()] == shapes
        for m in models[1:]
    )


class FusedScore(nn.Module):
    r"""Linear fusion of auxiliary scores, the ScoreFusion model.

    .. math:: s_\lambda(x, t) = \sum_{i=1}^K \lambda_i\, s_i(x, t)
              \quad\text{or, with a schedule,}\quad \sum_{i=1}^K \lambda_i(t)\, s_i(x, t)

    (Liu et al., 2025, Sec. 3). When the auxiliaries are networks of one
    architecture, their parameters are stacked with ``torch.func`` at
    construction (a snapshot: build the FusedScore after training the
    auxiliaries, on their device), so that all K can be evaluated in one
    vectorised call instead of a Python loop.

    Parameters
    ----------
    aux : sequence of K score callables
    lam : array of shape (K,) on the simplex, or a weight schedule
        Constant weights, or time-dependent ones: a :class:`scorefusion.schedule.WeightSchedule`
        (from :func:`scorefusion.fusion.fit_weight_schedule`; K checked here) or any callable
        mapping times of shape (n,) (float64) to a tensor of shape (n, K) whose rows lie on the
        simplex (checked at every call). The stacked (vmap) and looped paths both apply it.
    vectorize : {"auto", True, False}, default "auto"
        Evaluate stacked networks in one ``torch.vmap`` call: always (True),
        never (False), or only for inputs that are not on the CPU ("auto").
        On the CPU vmap turns each convolution into a grouped one, which
        ``benchmarks/fused_sampling.py`` measured at about half the speed of
        the loop (8x8 U-Nets, K = 2, 4, 8); on a GPU one launch per layer
        replaces K.
    """

    def __init__(self, aux, lam, vectorize="auto"):
        super().__init__()
        aux = list(aux)
        if len(aux) == 0:
            raise ValueError("aux must contain at least one score")
        if not all(callable(s) for s in aux):
            raise TypeError("every element of aux must be a callable score(x, t)")
        if not (vectorize == "auto" or isinstance(vectorize, bool)):
            raise ValueError(f"vectorize must be 'auto', True or False, got {vectorize!r}")
        self.aux = aux
        self.vectorize = vectorize
        self.schedule = None
        if isinstance(lam, WeightSchedule) or (callable(lam) and not torch.is_tensor(lam)):
            if isinstance(lam, WeightSchedule) and lam.n_models != len(aux):
                raise ValueError(f"lam is a schedule of {lam.n_models} weights per bin, but aux has {len(aux)} "
                                 "scores")
            self.schedule = lam
            self.register_buffer("lam", None)
        else:
            self.register_buffer("lam", check_simplex(lam, len(aux)))
        self._stacked = None
        if vectorize is not False and len(aux) > 1 and _same_architecture(aux):
            params, buffers = stack_module_state(aux)
            base = copy.deepcopy(aux[0]).to("meta")
            self._stacked = (base, params, buffers)

    @property
    def batched(self):
        """True when the auxiliaries are stacked for one vectorised call (see ``vectorize``)."""
        return self._stacked is not None

    def vectorized_on(self, device):
        """Whether inputs on ``device`` are evaluated in one vectorised call."""
        return self.batched and (self.vectorize is True or torch.device(device).type != "cpu")

    def components(self, x, t):
        """All auxiliary scores at ``(x, t)``, stacked: shape (K, n, *event_shape)."""
        if self.vectorized_on(x.device):
            base, params, buffers = self._stacked

            def one(p, b):
                return functional_call(base, (p, b), (x, t))

            out = torch.vmap(one, randomness="different")(params, buffers)
            if out.shape[1:] != x.shape:
                raise ValueError(f"auxiliary scores must return the shape of x {tuple(x.shape)}, "
                                 f"got {tuple(out.shape[1:])}")
            return out
        outputs = [s(x, t) for s in self.aux]
        for i, out in enumerate(outputs):
            if out.shape != x.shape:
                raise ValueError(f"aux[{i}] must return the shape of x {tuple(x.shape)}, got {tuple(out.shape)}")
        return torch.stack(outputs)

    def weights_at(self, t, n, device=None):
        """The weights at the times ``t`` (a number or shape (n,)): shape (n, K), float64.

        Constant weights are repeated; a schedule is evaluated (a plain callable's rows are
        checked to lie on the simplex).
        """
        if self.schedule is None:
            return self.lam.to(device).expand(n, -1)
        tt = _time_vector(t, n, torch.empty(0, dtype=torch.float64, device=device))
        lam = self.schedule(tt)
        k = len(self.aux)
        if not isinstance(self.schedule, WeightSchedule):
            if not torch.is_tensor(lam) or lam.shape != (n, k):
                got = tuple(lam.shape) if torch.is_tensor(lam) else type(lam).__name__
                raise ValueError(f"lam(t) must return a tensor of shape ({n}, {k}), one row of weights per time, "
                                 f"got {got}")
            lam = lam.to(torch.float64)
            bad = ~torch.isfinite(lam).all(1) | (lam < -1e-6).any(1) | ((lam.sum(1) - 1).abs() > 1e-6)
            if bool(bad.any()):
                i = int(torch.nonzero(bad)[0, 0])
                raise ValueError(f"lam(t) must return rows on the simplex (non-negative, summing to 1); at "
                                 f"t={float(tt[i]):g} it returned {lam[i].tolist()}")
        return lam

    def forward(self, x, t):
        """Fused score :math:`\\sum_i \\lambda_i s_i(x, t)` (or :math:`\\lambda_i(t)`), shaped like ``x``."""
        comps = self.components(x, t)
        if self.schedule is None:
            lam = self.lam.to(dtype=comps.dtype, device=comps.device)
            return torch.tensordot(lam, comps, dims=1)
        lam = self.weights_at(t, x.shape[0], comps.device).to(comps.dtype)
        return torch.einsum("nk,kn...->n...", lam, comps)
