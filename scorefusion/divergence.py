r"""The divergence of a vector field by autograd: exact in low dimension, Hutchinson's estimator above.

Implicit score matching (:func:`scorefusion.fusion.ism_quadratic`) needs the
divergence of each score, and the likelihood of the probability-flow ODE
(:func:`scorefusion.sampling.log_likelihood`) that of its drift. Both use
:func:`divergence`, exact when the dimension is at most
:data:`EXACT_DIVERGENCE_MAX_DIM` and with probes from :func:`draw_probes` above.
"""

import torch

__all__ = ["EXACT_DIVERGENCE_MAX_DIM", "divergence", "draw_probes"]

EXACT_DIVERGENCE_MAX_DIM = 16
"""Largest dimension D for which ``"auto"`` computes the divergence exactly (D backward passes)."""

PROBE_KINDS = ("rademacher", "gaussian")


def draw_probes(shape, n_probes, generator=None, kind="rademacher", dtype=torch.float64, device=None):
    r"""Probe vectors for Hutchinson's estimator: :math:`\mathbb E[v v^\top] = I`.

    .. math:: v \in \{-1, 1\}^D \text{ uniformly (Rademacher)}, \quad \text{or} \quad v \sim \mathcal N(0, I)

    Drawn on the generator's device, one after the other, then moved to ``device``.

    Parameters
    ----------
    shape : tuple (n, ...)
        Shape of one probe, the shape of the points.
    n_probes : int
    generator : torch.Generator, optional
    kind : {"rademacher", "gaussian"}
    dtype : torch.dtype, default float64
    device : torch.device, optional

    Returns
    -------
    list of ``n_probes`` Tensors of shape ``shape``
    """
    if kind not in PROBE_KINDS:
        raise ValueError(f"kind must be 'rademacher' or 'gaussian', got {kind!r}")
    gen_device = generator.device if generator is not None else device
    if kind == "rademacher":
        return [(torch.randint(0, 2, shape, generator=generator, device=gen_device).to(dtype) * 2 - 1).to(device)
                for _ in range(n_probes)]
    return [torch.randn(shape, generator=generator, dtype=dtype, device=gen_device).to(device)
            for _ in range(n_probes)]


def divergence(fn, x, probes=None, name="fn"):
    r"""``fn(x)`` and its divergence, per point, by autograd.

    .. math::

        \nabla \cdot f(x) = \sum_{j=1}^{D} \frac{\partial f_j}{\partial x_j}(x)
        \;\approx\; \frac1P \sum_{p=1}^{P} v_p^\top \frac{\partial f}{\partial x}(x)\, v_p,
        \qquad \mathbb E[v_p v_p^\top] = I .

    Exact with ``probes=None`` (one backward pass per coordinate, summed in
    coordinate order); otherwise the Hutchinson-Skilling estimator on the
    given probes (unbiased; keep the same probes along an ODE solve so the
    integrand stays smooth). Each point of the batch is treated separately:
    ``fn`` must not mix points (a score evaluated row by row).

    Parameters
    ----------
    fn : callable
        Maps x of shape (n, ...) to a tensor of the same shape, differentiably.
    x : Tensor of shape (n, ...)
    probes : list of Tensors shaped like ``x``, optional
        Hutchinson probes (see :func:`draw_probes`); cast to the dtype of ``fn(x)``.
    name : str, default "fn"
        Name of ``fn`` in error messages.

    Returns
    -------
    out : Tensor shaped like ``x``, detached
    div : Tensor of shape (n,), detached, in the dtype of ``out``
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = fn(x)
        if not torch.is_tensor(out) or out.shape != x.shape:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"{name} must return the shape of x {tuple(x.shape)}, got {got}")
        if not out.requires_grad:
            raise ValueError(f"{name} must be differentiable in x by autograd: it returned a tensor without a graph")
        n = x.shape[0]
        div = torch.zeros(n, dtype=out.dtype, device=out.device)
        if probes is None:
            flat = out.reshape(n, -1)
            for j in range(flat.shape[1]):
                (grad,) = torch.autograd.grad(flat[:, j].sum(), x, retain_graph=True)
                div += grad.reshape(n, -1)[:, j]
        else:
            for v in probes:
                v = v.to(dtype=out.dtype, device=out.device)
                (grad,) = torch.autograd.grad((out * v).sum(), x, retain_graph=True)
                div += (grad * v).reshape(n, -1).sum(1)
            div = div / len(probes)
    return out.detach(), div.detach()
