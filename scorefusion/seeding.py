"""Deterministic seeds derived from named keys, the same in every process."""

import hashlib
import numbers

_SEED_BITS = 63


def _encode(key, name):
    """Type-tagged canonical text of one key: ``1``, ``1.0``, ``True`` and ``"1"`` all differ."""
    if isinstance(key, bool):
        return f"b{int(key)}"
    if isinstance(key, numbers.Integral):
        return f"i{int(key)}"
    if isinstance(key, numbers.Real):
        return f"f{float(key)!r}"
    if isinstance(key, str):
        return f"s{len(key)}:{key}"
    if isinstance(key, bytes):
        return f"y{key.hex()}"
    if key is None:
        return "n"
    if isinstance(key, tuple):
        return "t(" + ",".join(_encode(item, f"{name}[{i}]") for i, item in enumerate(key)) + ")"
    raise TypeError(f"{name} must be a str, bytes, int, float, bool, None or a tuple of them, "
                    f"got {type(key).__name__}")


def seed_for(*keys):
    r"""A 63-bit seed determined by the keys alone, independent of ``PYTHONHASHSEED``.

    The keys are written as one type-tagged canonical string and hashed with BLAKE2b:

    .. math::

        \mathrm{seed}(k_1, \dots, k_m) = \big\lfloor \mathrm{BLAKE2b}_{64}\big(\mathrm{enc}(k_1) \,|\, \cdots
        \,|\, \mathrm{enc}(k_m)\big) / 2 \big\rfloor \in [0, 2^{63}),

    so different tuples of keys give independent-looking seeds (no collision such as
    ``seed * 1000 + 700 + n`` meeting ``seed' * 1000 + 800 + n'``), and the same tuple gives the
    same seed in every process, on every platform. Use it as
    ``torch.Generator().manual_seed(seed_for("fine-tune", config.seed, n))``.

    Parameters
    ----------
    *keys : str, bytes, int, float, bool, None or tuple of these
        At least one key. Types are part of the key: ``1``, ``1.0``, ``True`` and ``"1"`` give
        different seeds; integer-like numbers (``numpy.int64``) count as ``int`` and real numbers
        (``numpy.float32``) as ``float``.

    Returns
    -------
    int
        A seed in ``[0, 2**63)``, accepted by ``torch.manual_seed`` and ``numpy.random.default_rng``.
    """
    if not keys:
        raise ValueError("keys: seed_for needs at least one key")
    text = "|".join(_encode(key, f"keys[{i}]") for i, key in enumerate(keys))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - _SEED_BITS)
