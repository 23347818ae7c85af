"""A deterministic cache of trained models, keyed by a hash of their configuration."""

import hashlib
import json
import os
from pathlib import Path

import torch


def cache_dir():
    """Folder of cached weights: ``$SCOREFUSION_CACHE`` or ``~/.cache/scorefusion``."""
    return Path(os.environ.get("SCOREFUSION_CACHE", Path.home() / ".cache" / "scorefusion"))


def config_key(config):
    """Stable 16-hex-digit key of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_model(name, config, build, train):
    """Return ``build()`` with weights from the cache, training and saving them on a miss.

    Parameters
    ----------
    name : str
        Readable prefix of the file name.
    config : dict
        Everything that determines the weights (architecture, data, seed,
        epochs...); its hash names the file, so a changed config retrains.
    build : callable () -> nn.Module
        Makes the untrained model.
    train : callable (nn.Module) -> nn.Module
        Trains it deterministically and returns the trained model.

    Returns
    -------
    nn.Module in eval mode
    """
    if not name or "/" in name:
        raise ValueError(f"name must be a non-empty file-name prefix, got {name!r}")
    path = cache_dir() / f"{name}-{config_key(config)}.pt"
    model = build()
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    model = train(model)
    save_atomic({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return model.eval()


def save_atomic(state, path):
    """``torch.save`` to a temporary file beside ``path``, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
