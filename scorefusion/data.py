"""Data: the paper's presets and real data that ships offline."""

import functools
from dataclasses import dataclass

import torch

from .distributions import GaussianMixture


@dataclass
class Preset1D:
    """The 1-D experiment of the paper: a target mixture, two auxiliary mixtures, and the map to raw coordinates.

    Attributes
    ----------
    target : GaussianMixture
    aux : list of GaussianMixture
    loc, scale : float
        A point ``x`` of these coordinates is ``loc + scale * x`` in the paper's raw coordinates: the
        target's mean and standard deviation for the standardised preset, 0 and 1 for the raw one.
    standardized : bool
        Whether every mixture was standardised by its own mean and standard deviation.
    """

    target: GaussianMixture
    aux: list
    loc: float = 0.0
    scale: float = 1.0
    standardized: bool = False

    def to_raw(self, x):
        r"""Map points of these coordinates to the raw ones, :math:`x \mapsto \mathrm{loc} + \mathrm{scale}\,x`."""
        return self.loc + self.scale * x


def _mixture_1d(weights, means, std):
    return GaussianMixture(
        torch.tensor(weights, dtype=torch.float64),
        torch.tensor(means, dtype=torch.float64)[:, None],
        torch.full((len(means), 1, 1), std**2, dtype=torch.float64),
    )


def _standardize_1d(mixture):
    """A 1-D mixture standardised by its own mean and standard deviation, with that mean and std."""
    w, m, v = mixture.weights, mixture.means[:, 0], mixture.covs[:, 0, 0]
    mean = float((w * m).sum())
    var = float((w * (v + m**2)).sum()) - mean**2
    return GaussianMixture(w, ((m - mean) / var**0.5)[:, None], mixture.covs / var), mean, var**0.5


def paper_1d(standardize=False):
    r"""The 1-D Gaussian-mixture preset of ScoreFusion (Liu et al., 2025, Sec. 5.1), raw or standardised.

    .. math::

        p_{\mathrm{target}} = 0.6\,\mathcal N(-6, 0.8^2) + 0.4\,\mathcal N(6, 0.8^2), \quad
        p_1 = 0.5\,\mathcal N(-3, 1) + 0.5\,\mathcal N(10, 1), \quad
        p_2 = 0.7\,\mathcal N(-7, 1) + 0.3\,\mathcal N(9, 1).

    With ``standardize=True`` every mixture is replaced by the law of
    :math:`(X - \mu_p)/\sigma_p`, its own mean :math:`\mu_p = \sum_k w_k m_k`
    and standard deviation :math:`\sigma_p^2 = \sum_k w_k (v_k + m_k^2) - \mu_p^2`
    removed, which is again a Gaussian mixture (means :math:`(m_k - \mu_p)/\sigma_p`,
    variances :math:`v_k/\sigma_p^2`). This is the geometry in which the
    official code trains and fuses (``src/datasets.py``, ``make_mixture_data``,
    which standardises every data set by its own sample mean and std); its
    samples go back to raw coordinates with the target's moments,
    :meth:`Preset1D.to_raw`.

    Parameters
    ----------
    standardize : bool, default False

    Returns
    -------
    Preset1D
        ``target`` and ``aux = [p_1, p_2]``, float64; ``loc``, ``scale`` the
        target's mean (-1.2) and standard deviation (about 5.933) when standardised.
    """
    if not isinstance(standardize, bool):
        raise TypeError(f"standardize must be a bool, got {type(standardize).__name__}")
    target = _mixture_1d([0.6, 0.4], [-6.0, 6.0], 0.8)
    aux = [_mixture_1d([0.5, 0.5], [-3.0, 10.0], 1.0), _mixture_1d([0.7, 0.3], [-7.0, 9.0], 1.0)]
    if not standardize:
        return Preset1D(target=target, aux=aux)
    target, loc, scale = _standardize_1d(target)
    return Preset1D(target=target, aux=[_standardize_1d(p)[0] for p in aux], loc=loc, scale=scale, standardized=True)


# ---------------------------------------------------------------------------
# Handwritten digits (scikit-learn's bundled 8x8 set, offline) and user files
# ---------------------------------------------------------------------------

DIGITS_AUX_WEIGHTS = ((0.1, 0.9), (0.3, 0.7), (0.7, 0.3), (0.9, 0.1))
"""7:9 proportions of the four auxiliary data sets of the paper's EMNIST experiment."""

DIGITS_TARGET_WEIGHTS = (0.6, 0.4)
"""7:9 proportion of the paper's target population."""

DIGITS_TEST_PER_CLASS = 60
"""Images of each class held out, once and for all, as the test pool."""

_SPLIT_SEED = 20240628  # fixed: the train/test split never depends on the caller's generator
_MAX_PIXEL = 16.0       # sklearn's digits take the 17 grey levels 0..16


@dataclass
class Digits:
    """Images and labels drawn by :func:`digits`.

    Attributes
    ----------
    images : Tensor of shape (n, 1, size, size), float32
    labels : Tensor of shape (n,), int64
        The digit of each image (an element of ``classes``).
    index : Tensor of shape (n,), int64
        Row of each image in ``sklearn.datasets.load_digits()``, so overlaps
        between sets can be checked.
    """

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor

    def __len__(self):
        return self.images.shape[0]


@functools.cache  # parsing sklearn's bundled CSV costs ~20 ms a call
def _digit_pools(classes):
    """Fixed train/test split of sklearn's digits, per class: {c: (train_rows, test_rows)}."""
    from sklearn.datasets import load_digits

    bundle = load_digits()
    target = torch.as_tensor(bundle.target)
    split = torch.Generator().manual_seed(_SPLIT_SEED)
    pools = {}
    for c in classes:
        rows = torch.nonzero(target == c).flatten()
        rows = rows[torch.randperm(rows.numel(), generator=split)]
        pools[c] = (rows[DIGITS_TEST_PER_CLASS:], rows[:DIGITS_TEST_PER_CLASS])
    return torch.as_tensor(bundle.images, dtype=torch.float32), pools


def _class_counts(weights, n):
    """Exact per-class counts ``round(n w_c)`` by largest remainders, summing to ``n``."""
    raw = [w * n for w in weights]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _scale_pixels(images, scale):
    if scale == "unit":
        return images / _MAX_PIXEL
    if scale == "symmetric":
        return images / (_MAX_PIXEL / 2) - 1.0
    raise ValueError(f"scale must be 'unit' ([0, 1]) or 'symmetric' ([-1, 1]), got {scale!r}")


def upsample(images, size):
    r"""Bilinear resize of a batch of square images to ``size x size``.

    .. math:: x' = \mathrm{interpolate}(x,\ \mathrm{size}),\quad
              \text{bilinear},\ \text{align\_corners = False}

    (``torch.nn.functional.interpolate``; used to run the digits experiment of
    ScoreFusion, Sec. 5.2, at the 16x16 or 32x32 resolution of a GPU run).

    Parameters
    ----------
    images : Tensor of shape (n, c, h, w), floating
    size : int
        Output side; ``size == h`` returns the input unchanged.

    Returns
    -------
    Tensor of shape (n, c, size, size), same dtype
    """
    from ._checks import check_positive_int

    check_positive_int(size, "size")
    if not torch.is_tensor(images) or not images.is_floating_point() or images.ndim != 4:
        raise TypeError(f"images must be a floating tensor of shape (n, c, h, w), got "
                        f"{getattr(images, 'shape', type(images).__name__)}")
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def digits(classes=(7, 9), weights=DIGITS_TARGET_WEIGHTS, n=128, split="train", size=8, scale="unit",
           generator=None):
    r"""Handwritten digits of chosen classes in chosen proportions (scikit-learn, offline).

    The data are scikit-learn's bundled 8x8 handwritten digits
    (``sklearn.datasets.load_digits``: about 180 images per class, 17 grey
    levels 0..16), the offline stand-in for EMNIST in ScoreFusion's
    image experiment (Liu et al., 2025, Sec. 5.2: digits 7 and 9; auxiliary
    7:9 proportions 0.1/0.9, 0.3/0.7, 0.7/0.3, 0.9/0.1 in
    :data:`DIGITS_AUX_WEIGHTS`; target 0.6/0.4).

    How the sets are drawn:

    * **Split.** Each class is split once, by a fixed permutation that does not
      depend on ``generator``, into a test pool of :data:`DIGITS_TEST_PER_CLASS`
      (60) images and a training pool of the rest (119 sevens, 120 nines).
      ``split="test"`` draws only from the test pool, ``split="train"`` only
      from the training pool, so every test set is disjoint from every
      training set (auxiliary or target) by construction.
    * **Proportions.** Class ``c`` gets exactly
      :math:`n_c = \mathrm{round}(n\, w_c)` images (largest remainders, so
      :math:`\sum_c n_c = n`), then the result is shuffled.
    * **Replacement.** Within a class, images are drawn without replacement
      while :math:`n_c` does not exceed the pool; beyond that every pool image
      is used once and the remaining :math:`n_c - |\mathrm{pool}|` are drawn
      with replacement (duplicates). With about 120 training images per class,
      the target sets with ``n <= 128`` and ``weights = (0.6, 0.4)`` have no
      duplicates; ``n = 256`` (154 sevens) has. Auxiliary sets of any size are
      resamplings of the same training pool in other proportions.
    * **Overlap.** Auxiliary and target training sets come from the same
      training pool and may share images, as in the paper's code, where both
      are drawn from one EMNIST training split; ``Digits.index`` records the
      source rows so overlaps can be counted.

    .. math::

        x = \frac{\text{pixels}}{16} \in [0, 1] \ (\text{``unit''}) \quad\text{or}\quad
        x = \frac{\text{pixels}}{8} - 1 \in [-1, 1] \ (\text{``symmetric''})

    Parameters
    ----------
    classes : sequence of distinct ints in 0..9, default (7, 9)
    weights : sequence of non-negative floats summing to 1, one per class
    n : int
        Number of images.
    split : {"train", "test"}
    size : int, default 8
        Side of the returned images; above 8 they are upsampled bilinearly
        (:func:`upsample`), e.g. 16 or 32 for a GPU run.
    scale : {"unit", "symmetric"}
    generator : torch.Generator, optional
        Draws the images; same seed, same set.

    Returns
    -------
    Digits
        ``images`` (n, 1, size, size) float32, ``labels`` (n,), ``index`` (n,).
    """
    from ._checks import check_positive_int

    check_positive_int(n, "n")
    check_positive_int(size, "size")
    classes = tuple(classes)
    if not classes or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= 9 for c in classes):
        raise ValueError(f"classes must be a non-empty sequence of ints in 0..9, got {classes!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {classes!r}")
    weights = [float(w) for w in weights]
    if len(weights) != len(classes):
        raise ValueError(f"weights must have one entry per class ({len(classes)}), got {len(weights)}")
    if any(not w >= 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8 (the native 8x8 resolution), got {size}")
    images, pools = _digit_pools(classes)
    rows, labels = [], []
    for c, count in zip(classes, _class_counts(weights, n)):
        pool = pools[c][0 if split == "train" else 1]
        order = pool[torch.randperm(pool.numel(), generator=generator)]
        if count <= pool.numel():
            chosen = order[:count]
        else:
            extra = pool[torch.randint(pool.numel(), (count - pool.numel(),), generator=generator)]
            chosen = torch.cat([order, extra])
        rows.append(chosen)
        labels.append(torch.full((count,), c, dtype=torch.int64))
    rows, labels = torch.cat(rows), torch.cat(labels)
    perm = torch.randperm(n, generator=generator)
    rows, labels = rows[perm], labels[perm]
    x = _scale_pixels(images[rows], scale)[:, None]
    return Digits(upsample(x, size), labels, rows)


# ---------------------------------------------------------------------------
# User-supplied MNIST / EMNIST files
# ---------------------------------------------------------------------------

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path, name="path"):
    import gzip
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name} {str(path)!r} is not a file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{name} {str(path)!r} could not be read: {err}") from None


def load_idx(path):
    r"""Read an IDX file (the MNIST / EMNIST format), optionally gzipped.

    Layout: a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim``
    big-endian uint32 sizes, then :math:`\prod_k d_k` values of the type
    (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), big-endian. The file must hold exactly that many bytes.

    .. math:: \text{bytes} = 4 + 4\,\mathrm{ndim} + \mathrm{itemsize}\prod_{k=1}^{\mathrm{ndim}} d_k

    (user data for the digits experiment of ScoreFusion, Sec. 5.2).

    Parameters
    ----------
    path : str or Path
        ``*.idx``, ``*-ubyte`` or the same with ``.gz``.

    Returns
    -------
    numpy.ndarray of shape (d_1, ..., d_ndim), native byte order

    Raises
    ------
    ValueError
        If the magic number, the type code, the sizes or the file length are wrong.
    """
    import numpy as np

    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"path {str(path)!r} is not an IDX file: {len(data)} bytes, need a 4-byte header")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"path {str(path)!r} is not an IDX file: magic number starts with "
                         f"{data[0]:#04x} {data[1]:#04x}, expected 0x00 0x00")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"path {str(path)!r}: unknown IDX type code {code:#04x}, expected one of "
                         f"{', '.join(f'{k:#04x}' for k in _IDX_DTYPES)}")
    if ndim == 0:
        raise ValueError(f"path {str(path)!r}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"path {str(path)!r} is truncated: header needs {header} bytes, file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise ValueError(f"path {str(path)!r}: IDX header declares shape {shape} of {dtype.name} "
                         f"({expected} bytes in all) but the file has {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_npz(path, key=None):
    r"""Read one array from a NumPy ``.npz`` archive (no pickles).

    .. math:: \text{array} = \text{archive}[\text{key}]

    Parameters
    ----------
    path : str or Path
    key : str, optional
        Array to read; default: the only array of the archive, else the first
        of ``"images"``, ``"x_train"``, ``"x"`` that exists.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        If the file is not a readable ``.npz`` or the key is missing or ambiguous.
    """
    import zipfile
    from pathlib import Path

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"path {str(path)!r} is not a readable .npz archive: {err}") from None
    if not hasattr(archive, "files"):  # np.load returned a plain .npy array
        raise ValueError(f"path {str(path)!r} holds a single .npy array, expected an .npz archive")
    with archive:
        names = list(archive.files)
        if key is None:
            if len(names) == 1:
                key = names[0]
            else:
                key = next((k for k in ("images", "x_train", "x") if k in names), None)
                if key is None:
                    raise ValueError(f"path {str(path)!r} holds arrays {names}; pass key= to choose one")
        if key not in names:
            raise ValueError(f"key {key!r} is not in {str(path)!r}, which holds {names}")
        try:
            return archive[key]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(f"path {str(path)!r}: array {key!r} could not be read: {err}") from None


def load_images(path, key=None, size=None, scale="unit"):
    r"""Load user-supplied grey-scale images (MNIST / EMNIST IDX or ``.npz``) as a float tensor.

    Accepts ``(n, h, w)`` or ``(n, 1, h, w)`` arrays of uint8 (0..255) or of
    floats already in [0, 1]. EMNIST's IDX images are stored transposed
    relative to MNIST; they are returned as stored.

    .. math:: x = \frac{\text{pixels}}{255} \in [0, 1]\ (\text{``unit''}),\qquad
              x = 2\,\frac{\text{pixels}}{255} - 1 \ (\text{``symmetric''})

    Parameters
    ----------
    path : str or Path
        ``.npz`` (read by :func:`load_npz`) or an IDX file (:func:`load_idx`),
        optionally ``.gz``.
    key : str, optional
        Array name inside an ``.npz``.
    size : int, optional
        Resize to ``size x size`` (:func:`upsample`).
    scale : {"unit", "symmetric"}

    Returns
    -------
    Tensor of shape (n, 1, h, w), float32

    Raises
    ------
    ValueError
        On a malformed file, a wrong shape, a float array outside [0, 1], NaNs,
        or an unsupported dtype.
    """
    from pathlib import Path

    import numpy as np

    if Path(path).suffix == ".npz":
        array = load_npz(path, key)
    else:
        if key is not None:
            raise ValueError("key applies to .npz archives only")
        array = load_idx(path)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(f"images in {str(path)!r} must have shape (n, h, w) or (n, 1, h, w) with n, h, w >= 1, "
                         f"got {array.shape}")
    if array.dtype == np.uint8:
        x = torch.as_tensor(array.astype(np.float32) / 255.0)
    elif np.issubdtype(array.dtype, np.floating):
        x = torch.as_tensor(array.astype(np.float32))
        if not torch.isfinite(x).all():
            raise ValueError(f"images in {str(path)!r} contain NaN or infinite values")
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"float images in {str(path)!r} must lie in [0, 1], got "
                             f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
    else:
        raise ValueError(f"images in {str(path)!r} must be uint8 (0..255) or floats in [0, 1], got {array.dtype}")
    if scale == "symmetric":
        x = 2 * x - 1
    elif scale != "unit":
        raise ValueError(f"scale must be 'unit' or 'symmetric', got {scale!r}")
    x = x[:, None]
    return upsample(x, size) if size is not None else x
