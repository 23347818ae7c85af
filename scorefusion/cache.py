"""Weights on disk: atomic saves, safe loads, and a deterministic cache of trained models keyed by a hash of
their configuration."""

import contextlib
import glob
import hashlib
import json
import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock


class CheckpointError(ValueError):
    """A file of weights or training state that cannot be used: unreadable, corrupt, of another kind or of
    another run. The message names the file and what to do (delete it or pass another path)."""


def cache_dir():
    """Folder of cached weights: ``$SCOREFUSION_CACHE`` or ``~/.cache/scorefusion``."""
    return Path(os.environ.get("SCOREFUSION_CACHE", Path.home() / ".cache" / "scorefusion"))


def tensor_digest(value):
    r"""SHA-256 of an array's dtype, shape and bytes (a torch tensor on any device, or a NumPy array).

    .. math:: \mathrm{digest}(x) = \mathrm{SHA256}(\mathrm{dtype} \,\|\, \mathrm{shape} \,\|\, \mathrm{bytes}(x))

    Returns
    -------
    str
        64 hex digits; arrays that differ in one element, their dtype or their shape differ.
    """
    if torch.is_tensor(value):
        value = value.detach().cpu().contiguous()
        dtype, shape = str(value.dtype), tuple(value.shape)
        data = value.reshape(-1).view(torch.uint8).numpy().tobytes()
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("value must be a tensor or a NumPy array of numbers, got an object array")
        dtype, shape, data = str(value.dtype), value.shape, np.ascontiguousarray(value).tobytes()
    else:
        raise TypeError(f"value must be a torch tensor or a NumPy array, got {type(value).__name__}")
    digest = hashlib.sha256(f"{dtype}|{shape}|".encode())
    digest.update(data)
    return digest.hexdigest()


def _json_default(value):
    # tensors and arrays by their bytes (str() abbreviates large ones); anything else as before, by str()
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        return {"array_sha256": tensor_digest(value)}
    return str(value)


def config_key(config):
    """Stable 16-hex-digit key of a configuration: JSON with sorted keys; tensors and arrays by
    :func:`tensor_digest`, other non-JSON values by ``str``."""
    text = json.dumps(config, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _lock(path):
    """An inter-process lock on ``path`` (the file ``<path>.lock``); none in a folder this process cannot write
    (a read-only cache has no writers to wait for)."""
    if os.access(path.parent, os.W_OK):
        return FileLock(f"{path}.lock")
    return contextlib.nullcontext()


def _remove_temps(path):
    """Remove the temporary files of ``path``; the caller holds its lock, so their writers are dead."""
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)


def _write(state, path):
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_atomic(state, path):
    """``torch.save`` to a temporary file beside ``path``, then rename: a reader never sees half a file.

    Writers take the lock ``<path>.lock``; under it, temporary files of ``path`` left by a killed writer
    are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        _remove_temps(path)
        _write(state, path)


def load_state(path, map_location="cpu"):
    """Load a file written by :func:`save_atomic` with ``torch.load(weights_only=True)``.

    Only tensors, numbers, strings, lists, tuples and dicts are accepted: a file holding any other
    object is refused without running any of its code. Temporary files of ``path`` left by a killed
    writer are removed first.

    Raises
    ------
    CheckpointError
        The file is empty, truncated, not a torch file, or holds other objects; the message names it.
    """
    path = Path(path)
    with _lock(path):
        _remove_temps(path)
        return _read(path, map_location)


def _read(path, map_location="cpu"):
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # every way of failing to read the file is one error here
        raise CheckpointError(f"{path} cannot be read ({_reason(err)}); delete it or pass another path") from err


def _reason(err):
    """What went wrong in torch.load, in one line (torch's weights-only message wraps it in advice that
    does not apply here: loading untrusted files with weights_only=False)."""
    text = str(err).strip()
    if text.startswith("Weights only load failed"):
        details = [p.strip() for p in text.split("\n\n")[1:] if p.strip() and not p.strip().startswith("Check the")]
        detail = details[0] if details else "the weights-only unpickler failed"
        if "GLOBAL" in detail:
            return ("it holds objects other than tensors, numbers, strings, lists and dicts, refused without "
                    f"running them: {detail}")
        return f"not a torch file of weights: {detail}"
    if isinstance(err, EOFError):
        return "empty or truncated file"
    return f"{type(err).__name__}: {text.splitlines()[0] if text else 'unreadable'}"


def cached_model(name, config, build, train):
    """Return ``build()`` with weights from the cache, training and saving them on a miss.

    One process at a time fills an entry: a second process asking for the same entry waits for the
    first (a file lock beside it) and then loads its weights. An entry that cannot be read (truncated,
    corrupt) is a miss: a warning names it, and it is retrained and overwritten.

    Parameters
    ----------
    name : str
        Readable prefix of the file name.
    config : dict
        Everything that determines the weights (architecture, data, seed,
        epochs...); its hash (:func:`config_key`) names the file, so a changed config retrains.
    build : callable () -> nn.Module
        Makes the untrained model.
    train : callable (nn.Module) -> nn.Module
        Trains it deterministically and returns the trained model.

    Returns
    -------
    nn.Module in eval mode

    Raises
    ------
    CheckpointError
        The entry holds weights of another architecture (``config`` does not determine it).
    """
    if not name or "/" in name:
        raise ValueError(f"name must be a non-empty file-name prefix, got {name!r}")
    path = cache_dir() / f"{name}-{config_key(config)}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build()
    with _lock(path):
        _remove_temps(path)
        state = _read_entry(path) if path.exists() else None
        if state is not None:
            try:
                model.load_state_dict(state)
            except RuntimeError as err:
                raise CheckpointError(f"cache entry {path} holds weights of another architecture ({err}); the "
                                      "config must determine the architecture: delete the entry or change the config"
                                      ) from None
            return model.eval()
        model = train(model)
        _write({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return model.eval()


def _read_entry(path):
    """The state dict of a cache entry, or None (with a warning naming the file) when it cannot be read."""
    try:
        state = _read(path)
    except CheckpointError as err:
        reason = str(err)
    else:
        if isinstance(state, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
            return state
        reason = f"{path} holds a {type(state).__name__}, not a dict of tensors"
    warnings.warn(f"cache entry unusable, treated as a miss and retrained: {reason}", stacklevel=3)
    return None
