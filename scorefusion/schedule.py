r"""Time-dependent fusion weights :math:`\lambda(t)`: a piecewise-constant schedule over time bins.

The bound of Song, Durkan, Murray and Ermon (2021, Thm. 1) on the reverse SDE's KL separates
over time, so the weights that minimise it may change with :math:`t`;
:func:`scorefusion.fusion.fit_weight_schedule` fits one simplex QP per bin and returns a
:class:`WeightSchedule`, which :class:`scorefusion.FusedScore` accepts in place of a constant
:math:`\lambda`.
"""

from dataclasses import dataclass

import torch

from ._checks import as_float_tensor, check_simplex, check_time


@dataclass(eq=False)
class WeightSchedule:
    r"""Piecewise-constant fusion weights over B time bins.

    .. math::

        \lambda(t) = \lambda^{(k)} \quad \text{for } t \in (e_k, e_{k+1}],
        \qquad k = 0, \dots, B - 1,

    with the first bin extended down to :math:`t \to 0` (a sampler may stop below
    :math:`e_0`); times above :math:`e_B` are refused.

    Parameters
    ----------
    edges : array of shape (B + 1,)
        Strictly increasing positive bin edges :math:`e_0 < \dots < e_B`.
    lam : array of shape (B, K)
        The weights of each bin, every row on the simplex.
    kkt_residuals : array of shape (B,), optional
        The KKT residual of each bin's fit (:func:`scorefusion.fusion.minimize_quadratic_on_simplex`).
    losses : array of shape (B,), optional
        Each bin's fitted objective at its weights.

    Attributes
    ----------
    edges, lam, kkt_residuals, losses : float64 tensors (the last two may be None)
    """

    edges: torch.Tensor
    lam: torch.Tensor
    kkt_residuals: torch.Tensor | None = None
    losses: torch.Tensor | None = None

    def __post_init__(self):
        edges = as_float_tensor(self.edges, "edges", dtype=torch.float64)
        if edges.ndim != 1 or edges.numel() < 2:
            raise ValueError(f"edges must have shape (B + 1,) with B >= 1 bins, got {tuple(edges.shape)}")
        if not bool((edges > 0).all()):
            raise ValueError(f"edges must be positive times, got {edges.tolist()}")
        gaps = edges[1:] - edges[:-1]
        if not bool((gaps > 0).all()):
            empty = int(torch.nonzero(gaps <= 0)[0, 0])
            raise ValueError(f"edges must be strictly increasing: bin {empty} ({float(edges[empty]):g}, "
                             f"{float(edges[empty + 1]):g}] is empty")
        lam = as_float_tensor(self.lam, "lam", dtype=torch.float64)
        n_bins = edges.numel() - 1
        if lam.ndim != 2 or lam.shape[0] != n_bins or lam.shape[1] == 0:
            raise ValueError(f"lam must have shape ({n_bins}, K), one row of weights per bin, got {tuple(lam.shape)}")
        for k in range(n_bins):
            check_simplex(lam[k], lam.shape[1], name=f"lam[{k}]")
        self.edges, self.lam = edges, lam
        for name in ("kkt_residuals", "losses"):
            value = getattr(self, name)
            if value is not None:
                value = as_float_tensor(value, name, dtype=torch.float64)
                if value.shape != (n_bins,):
                    raise ValueError(f"{name} must have shape ({n_bins},), one value per bin, got {tuple(value.shape)}")
                setattr(self, name, value)

    @property
    def n_bins(self):
        """B, the number of bins."""
        return self.lam.shape[0]

    @property
    def n_models(self):
        """K, the number of weights per bin."""
        return self.lam.shape[1]

    def __repr__(self):
        return f"WeightSchedule(B={self.n_bins}, K={self.n_models}, t in (0, {float(self.edges[-1]):g}])"

    def __call__(self, t):
        r"""The weights :math:`\lambda(t)`.

        Parameters
        ----------
        t : float or Tensor of shape (n,), in :math:`(0, e_B]`

        Returns
        -------
        Tensor of shape (K,) for a number or a 0-d tensor, (n, K) for a tensor of shape (n,);
        float64, on ``t``'s device.
        """
        check_time(t, float(self.edges[-1]))
        tt = torch.as_tensor(t, dtype=torch.float64).contiguous()
        inner = self.edges[1:-1].to(tt.device)
        return self.lam.to(tt.device)[torch.bucketize(tt, inner)]
