"""Input validation shared by the library: clear errors that name the argument."""

import numpy as np
import torch


def as_float_tensor(value, name, dtype=None):
    """Convert ``value`` to a floating tensor, rejecting NaN/inf and non-numbers."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
    if value.is_complex() if torch.is_tensor(value) else np.iscomplexobj(value):
        raise TypeError(f"{name} must be real, got complex values")
    if isinstance(value, torch.Tensor):
        tensor = value
        if not tensor.is_floating_point():
            tensor = tensor.to(dtype or torch.get_default_dtype())
        elif dtype is not None:
            tensor = tensor.to(dtype)
    else:
        try:
            tensor = torch.as_tensor(value, dtype=dtype or torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be an array of numbers: {err}") from None
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def check_simplex(lam, k, name="lam", atol=1e-6):
    """Return ``lam`` as a float64 tensor of length ``k`` on the probability simplex."""
    lam = as_float_tensor(lam, name, dtype=torch.float64)
    if lam.ndim != 1 or lam.numel() != k:
        raise ValueError(f"{name} must have shape ({k},), one weight per model, got {tuple(lam.shape)}")
    if (lam < -atol).any() or abs(float(lam.sum()) - 1.0) > atol:
        raise ValueError(f"{name} must lie on the simplex (non-negative, summing to 1), got {lam.tolist()}")
    return lam


def check_points(x, dim, name="x"):
    """Check a batch of points of shape (n, dim) with n >= 1 and finite values."""
    if not isinstance(x, torch.Tensor):
        x = as_float_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one point")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_batch(x0, name="x0", dim=None):
    """Check one batch of data: a floating tensor of shape (n, ...), batch first, n >= 1, finite.

    With ``dim`` the batch must have shape (n, dim). Returns ``x0`` unchanged.
    """
    from .sde import SDE  # sde imports this module

    if isinstance(x0, SDE):
        raise TypeError(f"{name} must be a data tensor, got an SDE ({type(x0).__name__}): "
                        "check the order of the arguments (the data come before the sde)")
    if not torch.is_tensor(x0):
        raise TypeError(f"{name} must be a torch tensor of shape (n, ...), got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x0.dtype}")
    if x0.ndim < 2 or x0.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, ...) with n >= 1, batch first, got {tuple(x0.shape)}")
    if dim is not None and (x0.ndim != 2 or x0.shape[1] != dim):
        raise ValueError(f"{name} must have shape (n, {dim}), got {tuple(x0.shape)}")
    if not torch.isfinite(x0).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x0


def check_sde(sde, name="sde"):
    """Check that ``sde`` implements :class:`scorefusion.sde.SDE`; returns it."""
    from .sde import SDE  # sde imports this module

    if not isinstance(sde, SDE):
        raise TypeError(f"{name} must be a scorefusion.sde.SDE (e.g. VESDE(), VPSDE()), got {type(sde).__name__}")
    return sde


def check_time(t, T, name="t", allow_zero=False):
    """Check times: a number or a 0-d/1-d real tensor with every value in (0, T] ([0, T] with ``allow_zero``).

    Returns ``t`` unchanged.
    """
    if t is None or isinstance(t, (bool, str, bytes)):
        raise TypeError(f"{name} must be a number or a 0-d/1-d tensor of times, got {type(t).__name__}")
    if torch.is_tensor(t):
        tensor = t
    else:
        try:
            tensor = torch.as_tensor(t)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a number or a 0-d/1-d tensor of times: {err}") from None
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold real times, got dtype {tensor.dtype}")
    if tensor.ndim > 1:
        raise ValueError(f"{name} must be a number or a 0-d/1-d tensor of times, got shape {tuple(tensor.shape)}")
    low_ok = tensor >= 0 if allow_zero else tensor > 0
    if not bool((low_ok & (tensor <= T)).all()):  # one reduction; NaN fails both comparisons
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        interval = f"[0, {T}]" if allow_zero else f"(0, {T}]"
        raise ValueError(f"{name} must lie in {interval}, got values in "
                         f"[{float(tensor.min())}, {float(tensor.max())}]")
    return t


def check_time_range(t_range, T, name="t_range", ends=("t0", "t1")):
    """``t_range`` as two floats ``(lo, hi)`` with ``0 < lo < hi <= T``; ``ends`` names them in the errors."""
    lo, hi = ends
    try:
        t0, t1 = (float(v) for v in t_range)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair ({lo}, {hi}), got {t_range!r}") from None
    if not 0 < t0 < t1 <= T:
        raise ValueError(f"{name} must satisfy 0 < {lo} < {hi} <= T={T}, got {t_range!r}")
    return t0, t1


def check_generator(generator, name="generator"):
    """Check that ``generator`` is None or a ``torch.Generator``; returns it."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def check_shape(shape, name="shape", min_len=2):
    """Return ``shape`` as a tuple of positive ints ``(n, ...)`` with at least ``min_len`` entries."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{name} must be a tuple of positive ints (n, ...), got {type(shape).__name__}")
    shape = tuple(shape)
    if len(shape) < min_len or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise ValueError(f"{name} must be a tuple (n, ...) of positive ints with at least {min_len} entries, "
                         f"got {shape}")
    return shape


def check_fits(score, x, sde, name="x", score_name="score"):
    """Evaluate ``score`` once on the first point of ``x`` at ``t = sde.T``; an error it raises there is
    reported as a mismatch between the argument ``name`` and ``score_name`` (e.g. data of the wrong shape)."""
    with torch.no_grad():
        try:
            score(x[:1], torch.full((1,), float(sde.T), dtype=x.dtype, device=x.device))
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name} of shape {tuple(x.shape)} does not fit {score_name}: {err}") from None
