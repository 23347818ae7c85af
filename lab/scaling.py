r"""Chapter 07's experiment: the fused score by one stacked ``torch.vmap`` call against a Python loop.

The official code loops over the K auxiliary networks; ``FusedScore`` stacks their
parameters and evaluates all K at once. ``benchmarks/fused_sampling.py`` and the
chapter time both ways with :func:`time_fused_vs_loop`.
"""

import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from scorefusion import FusedScore
from scorefusion._checks import check_positive_int


def loop_fused_score(nets, lam, x, t):
    r"""The fused score by a Python loop over the networks (the official code's way).

    .. math:: s_\lambda(x, t) = \sum_{i=1}^K \lambda_i\, s_i(x, t)

    Parameters
    ----------
    nets : list of K score networks
    lam : Tensor of shape (K,)
    x : Tensor of shape (n, *event_shape)
    t : Tensor of shape (n,)

    Returns
    -------
    Tensor shaped like ``x``
    """
    if len(nets) != len(lam):
        raise ValueError(f"lam must have one weight per network ({len(nets)}), got {len(lam)}")
    lam = torch.as_tensor(lam).to(device=x.device, dtype=x.dtype)
    out = lam[0] * nets[0](x, t)
    for weight, net in zip(lam[1:], nets[1:]):
        out = out + weight * net(x, t)
    return out


@dataclass
class FusedTiming:
    """Median seconds of one fused-score evaluation, batched (vmap) and looped.

    Attributes
    ----------
    k : int
    batch : int
    batched_s, loop_s : float
    max_abs_diff : float
        Largest difference between the two results.
    """

    k: int
    batch: int
    batched_s: float
    loop_s: float
    max_abs_diff: float

    @property
    def speedup(self):
        """``loop_s / batched_s``: above 1 the batched call is faster."""
        return self.loop_s / self.batched_s


def time_fused_vs_loop(nets, x, t, repeats=10, warmup=2, autocast_dtype=None):
    r"""Time FusedScore's single batched call against the loop over the nets, interleaved.

    Each repeat times one call of each variant in turn (CUDA synchronised), so
    load on a shared machine hits both alike; the medians are returned.

    .. math:: \text{speedup} = \frac{\operatorname{median} t_{\text{loop}}}{\operatorname{median} t_{\text{batched}}}

    Parameters
    ----------
    nets : list of K same-architecture networks (on x's device)
    x : Tensor of shape (n, *event_shape)
    t : Tensor of shape (n,)
    repeats, warmup : int
    autocast_dtype : torch.dtype, optional
        e.g. ``torch.bfloat16`` on CUDA.

    Returns
    -------
    FusedTiming
    """
    check_positive_int(repeats, "repeats")
    k = len(nets)
    lam = torch.full((k,), 1.0 / k, dtype=torch.float64)
    fused = FusedScore(nets, lam, vectorize=True).to(x.device)  # the vmap path, on every device
    cuda = x.device.type == "cuda"

    def context():
        if autocast_dtype is None:
            return nullcontext()
        return torch.autocast(x.device.type, dtype=autocast_dtype)

    def batched():
        with context():
            return fused(x, t)

    def loop():
        with context():
            return loop_fused_score(nets, lam, x, t)

    def once(fn):
        if cuda:
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(x.device)
        return time.perf_counter() - start

    with torch.no_grad():
        diff = float((batched().float() - loop().float()).abs().max())
        for _ in range(warmup):
            once(batched), once(loop)
        times = {"batched": [], "loop": []}
        for _ in range(repeats):
            times["batched"].append(once(batched))
            times["loop"].append(once(loop))
    return FusedTiming(k, x.shape[0], statistics.median(times["batched"]), statistics.median(times["loop"]), diff)
