"""Input validation shared by the library: clear errors that name the argument."""

import torch


def as_float_tensor(value, name, dtype=None):
    """Convert ``value`` to a floating tensor, rejecting NaN/inf and non-numbers."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
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


def check_time(t, T, name="t"):
    """Check that every time lies in (0, T]."""
    t_tensor = torch.as_tensor(t)
    if not torch.isfinite(t_tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if (t_tensor <= 0).any() or (t_tensor > T).any():
        raise ValueError(f"{name} must lie in (0, {T}], got values in "
                         f"[{float(t_tensor.min())}, {float(t_tensor.max())}]")
    return t


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value
