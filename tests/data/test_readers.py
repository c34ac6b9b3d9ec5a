import gzip
import struct

import numpy as np
import pytest

from edgedistill.data import Normalizer, Split, kind_of, make_splits, read_dataset
from edgedistill.data.arrays import RawDataset
from edgedistill.errors import DataError


def _write_idx(path, arr, gz=False):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = struct.pack(">BBBB", 0, 0, codes[arr.dtype.type], arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(header + body)


def test_idx_directory_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 256, (20, 5, 6), dtype=np.uint8)
    ys = rng.integers(0, 3, 20).astype(np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", xs, gz=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", ys, gz=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", xs[:4])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", ys[:4])
    ds = read_dataset(str(tmp_path))
    assert ds.train.x.shape == (20, 1, 5, 6) and ds.train.x.dtype == np.float32
    np.testing.assert_allclose(ds.train.x[:, 0] * 255, xs)
    np.testing.assert_array_equal(ds.train.y, ys)
    assert len(ds.test) == 4 and ds.kind == "image"


def test_truncated_idx_is_rejected(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 2, 2), np.uint8))
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-3])
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="header promises"):
        read_dataset(str(tmp_path))


@pytest.mark.parametrize("shape,kind", [((30, 2, 5, 5), "image"), ((30, 3, 40), "signal"), ((30, 7), "features")])
def test_npz_kind_follows_shape(tmp_path, shape, kind):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal(shape), y=rng.integers(0, 3, shape[0]))
    ds = read_dataset(str(tmp_path / "d.npz"))
    assert ds.kind == kind and ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int64


def test_npz_without_labels_is_unlabeled(tmp_path):
    np.savez(tmp_path / "t.npz", x=np.zeros((5, 4)))
    assert read_dataset(str(tmp_path / "t.npz")).train.y is None


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="plain arrays"):
        read_dataset(str(tmp_path / "o.npz"))


def test_bad_rank_is_explained():
    with pytest.raises(DataError, match="rank 5"):
        kind_of(np.zeros((2, 1, 1, 1, 1)))


def test_image_folder(tmp_path):
    from PIL import Image

    for c, value in (("cat", 10), ("dog", 200)):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((6, 4), value + i, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = read_dataset(str(tmp_path))
    assert ds.train.x.shape == (6, 1, 6, 4) and ds.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(ds.train.y, [0, 0, 0, 1, 1, 1])
    assert ds.train.x[3, 0, 0, 0] == pytest.approx(200 / 255)


def test_digits_splits_are_seeded_and_disjoint():
    raw = read_dataset("builtin:digits")
    a, b = make_splits(raw, seed=3), make_splits(raw, seed=3)
    np.testing.assert_array_equal(a.val.x, b.val.x)
    c = make_splits(raw, seed=4)
    assert not np.array_equal(a.val.x, c.val.x)
    assert len(a.train) + len(a.val) + len(a.test) == len(raw.train)


def _tagged(n: int, seed: int = 0) -> Split:
    """n feature rows whose first feature is the sample's index (digits has duplicate images: rows alone cannot
    tell samples apart), with labels from 3 classes."""
    rng = np.random.default_rng(seed)
    x = np.stack([np.arange(n), rng.normal(size=n)], 1).astype(np.float32)
    return Split(x, rng.integers(0, 3, n))


def _ids(split: Split) -> list[int]:
    return split.x[:, 0].astype(np.int64).tolist()


@pytest.mark.parametrize("seed", [0, 3])
def test_held_out_splits_are_disjoint_and_cover_every_sample(seed):
    n = 200
    s = make_splits(RawDataset(_tagged(n), None, "mem"), val_fraction=0.1, test_fraction=0.2, seed=seed)
    tr, va, te = _ids(s.train), _ids(s.val), _ids(s.test)
    assert len(set(tr)) == len(tr) and len(set(va)) == len(va) and len(set(te)) == len(te)  # no sample twice
    assert not set(tr) & set(va) and not set(tr) & set(te) and not set(va) & set(te)
    assert set(tr) | set(va) | set(te) == set(range(n))
    assert (len(va), len(te)) == (20, 40)
    assert _ids(s.transfer) == tr  # without a transfer set the student distills on train, nothing else
    # each sample keeps its own label
    full = _tagged(n)
    for split in (s.train, s.val, s.test):
        np.testing.assert_array_equal(split.y, full.y[_ids(split)])


def test_own_test_split_is_kept_and_train_val_cover_train():
    n = 100
    test = Split(np.stack([np.arange(1000, 1030), np.zeros(30)], 1).astype(np.float32), np.zeros(30, np.int64))
    s = make_splits(RawDataset(_tagged(n), test, "mem"), val_fraction=0.2, seed=1)
    assert _ids(s.test) == list(range(1000, 1030))  # the dataset's own test split, untouched
    tr, va = _ids(s.train), _ids(s.val)
    assert not set(tr) & set(va) and len(tr) + len(va) == n and set(tr) | set(va) == set(range(n))
    capped = make_splits(RawDataset(_tagged(n), test, "mem"), val_fraction=0.2, seed=1, max_train=10)
    assert len(capped.train) == 10 and set(_ids(capped.train)) <= set(tr) and _ids(capped.val) == va


def test_normalizer_uses_train_only():
    rng = np.random.default_rng(0)
    train = Split(rng.normal(5.0, 2.0, (400, 2, 3, 3)).astype(np.float32), rng.integers(0, 2, 400))
    test = Split(rng.normal(-50.0, 9.0, (50, 2, 3, 3)).astype(np.float32), rng.integers(0, 2, 50))
    s = make_splits(RawDataset(train, test, "mem"), val_fraction=0.1)
    ref = s.train.x.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(s.normalizer.mean, ref, rtol=1e-5)
    z = s.normalizer.apply(s.train.x)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-3)


def test_feature_normalizer_is_per_feature():
    x = np.stack([np.arange(10.0), np.arange(10.0) * 100], 1).astype(np.float32)
    n = Normalizer.fit(x)
    assert n.axis_kind == "feature" and n.mean[1] == pytest.approx(450)


def test_nan_and_bad_labels_are_rejected():
    x = np.zeros((50, 4), np.float32)
    x[7, 2] = np.nan
    with pytest.raises(DataError, match=r"NaN.*positions in the data, counting from 0: \[7\]"):
        make_splits(RawDataset(Split(x, np.arange(50) % 2), None, "mem"))
    x[7, 2], x[40, 0] = 0.0, np.inf  # the index is the sample's position in the file, whatever the shuffle
    with pytest.raises(DataError, match=r"infinite.*: \[40\]"):
        make_splits(RawDataset(Split(x, np.arange(50) % 2), None, "mem"), seed=3)
    y = np.zeros(50, np.int64)
    y[3] = -5  # -1 would mark an unlabelled sample
    with pytest.raises(DataError, match="labels range"):
        make_splits(RawDataset(Split(np.zeros((50, 4), np.float32), y), None, "mem"))


def test_missing_path_lists_builtins(tmp_path):
    with pytest.raises(DataError, match="builtin:digits"):
        read_dataset(str(tmp_path / "nothing.npz"))


def _npy_dir(tmp_path, **arrays):
    d = tmp_path / "npy"
    d.mkdir()
    for k, v in arrays.items():
        np.save(d / f"{k}.npy", v)
    return d


def _mapped(arr) -> bool:
    """A np.memmap, or a view whose base chain reaches one."""
    while arr is not None:
        if isinstance(arr, np.memmap):
            return True
        arr = arr.base if isinstance(arr, np.ndarray) else None
    return False


def test_a_folder_of_npy_arrays_is_memory_mapped_in_its_stored_dtype(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 3, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 4, 300)
    xt, yt = rng.integers(0, 256, (50, 3, 8, 8), dtype=np.uint8), rng.integers(0, 4, 50)
    raw = read_dataset(str(_npy_dir(tmp_path, x=x, y=y, x_test=xt, y_test=yt, class_names=np.array(list("abcd")))))
    assert _mapped(raw.train.x) and raw.train.x.dtype == np.uint8 and np.array_equal(raw.train.x, x)
    assert _mapped(raw.test.x) and raw.test.y.dtype == np.int64 and np.array_equal(raw.test.y, yt)
    assert raw.kind == "image" and raw.class_names == list("abcd") and raw.notes == []
    s = make_splits(raw, seed=3)
    assert s.train.x.dtype == np.uint8 and s.transfer.x.dtype == np.uint8  # read batch by batch by the trainer
    assert s.val.x.dtype == np.float32 and s.test.x.dtype == np.float32  # scored whole: float32, same values
    assert np.array_equal(s.test.x, xt.astype(np.float32))
    # the same splits and statistics as the same data converted to float32 first (the .npz path)
    ref = make_splits(RawDataset(Split(x.astype(np.float32), y), Split(xt.astype(np.float32), yt), "ref"), seed=3)
    assert np.array_equal(s.train.x, ref.train.x) and np.array_equal(s.val.x, ref.val.x)
    assert np.allclose(s.normalizer.mean, ref.normalizer.mean, rtol=1e-12)
    assert np.allclose(s.normalizer.std, ref.normalizer.std, rtol=1e-9)


def test_npy_folder_features_and_bad_files(tmp_path):
    rng = np.random.default_rng(1)
    d = _npy_dir(tmp_path, x=rng.integers(0, 9, (40, 5)).astype(np.int16), y=np.arange(40) % 2)
    raw = read_dataset(str(d))  # N×F integers would read as token ids: features are float32, in memory
    assert raw.kind == "features" and raw.train.x.dtype == np.float32
    np.save(d / "y.npy", np.arange(39) % 2)
    with pytest.raises(DataError, match="pair up"):
        read_dataset(str(d))
    np.save(d / "y.npy", np.array([object()] * 40), allow_pickle=True)
    with pytest.raises(DataError, match="never loaded"):
        read_dataset(str(d))


@pytest.mark.parametrize("arrays,needle", [
    (dict(x=np.array(3.0), y=np.arange(4)), "`x(.npy)?` is a single value"),
    (dict(x=np.zeros((4, 3)), y=np.array(3)), r"`y(.npy)?` has shape \(\)"),
    (dict(x=np.zeros((4, 3)), y=np.eye(2)[[0, 1, 0, 1]]), r"y.argmax\(1\)"),
    (dict(x=np.zeros((4, 3)), y=np.arange(4) % 2, class_names=np.array("ab")), "one name per class"),
])
@pytest.mark.parametrize("form", ["npz", "npy"])
def test_arrays_of_the_wrong_rank_are_refused_by_name(tmp_path, arrays, needle, form):
    """A 0-d sample or label array, one-hot labels and a 0-d class_names get one paragraph each, in both forms
    (they once raised TypeError: len() of unsized object)."""
    if form == "npz":
        np.savez(tmp_path / "d.npz", **arrays)
        path = tmp_path / "d.npz"
    else:
        path = _npy_dir(tmp_path, **arrays)
    with pytest.raises(DataError, match=needle):
        read_dataset(str(path))


def test_class_names_that_do_not_cover_the_classes_are_refused(tmp_path):
    """Two names for four classes used to be dropped without a word (the classes became '0'..'3')."""
    rng = np.random.default_rng(2)
    d = _npy_dir(tmp_path, x=rng.normal(size=(80, 3)).astype(np.float32), y=np.arange(80) % 4,
                 class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match="2 class names .* for 4 classes"):
        make_splits(read_dataset(str(d)))
    np.save(d / "class_names.npy", np.array(list("abcd")))
    assert make_splits(read_dataset(str(d))).class_names == list("abcd")


def test_a_large_npz_read_whole_says_so_and_names_the_conversion(tmp_path):
    """numpy reads an .npz whole: past the limit the reader says so in one line, naming --npz mapped (the conversion
    itself: tests/data/test_npz_convert.py)."""
    from edgedistill.data.npz import large_npz_note

    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, (64, 1, 8, 8), dtype=np.uint8), rng.integers(0, 3, 64)
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=x, y=y)
    assert read_dataset(str(path)).notes == []  # far below 1 GiB
    (note,) = large_npz_note(path, limit=1000)  # 4,096 + 512 bytes of arrays, decompressed
    assert "\n" not in note and "cannot be memory-mapped" in note and "--npz mapped" in note
