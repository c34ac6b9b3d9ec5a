"""Labels as people store them: 1..K, sparse codes, bool / uint8 / int16 arrays, and unlabelled samples (-1)."""

import numpy as np
import pytest

from edgedistill.data import Normalizer, Split, make_splits, read_dataset
from edgedistill.data.arrays import RawDataset
from edgedistill.errors import DataError


def _npz(tmp_path, y, n_features=3, **extra):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(y), n_features))
    np.savez(tmp_path / "d.npz", x=x, y=y, **extra)
    return read_dataset(str(tmp_path / "d.npz"))


def test_labels_1_to_k_map_to_k_classes(tmp_path):
    y = np.tile(np.arange(1, 11), 10)  # 1..10: ten classes, not eleven
    s = make_splits(_npz(tmp_path, y), seed=0)
    assert s.num_classes == 10
    assert s.summary()["label_map"] == {"original_labels": list(range(1, 11)), "identity": False}
    # every split's index i stands for the data's label i + 1
    for split in (s.train, s.val, s.test):
        assert split.y.min() >= 0 and split.y.max() <= 9
    raw = read_dataset(str(tmp_path / "d.npz"))
    rows = {r.tobytes(): int(lab) for r, lab in zip(raw.train.x, raw.train.y)}
    assert all(rows[r.tobytes()] == int(i) + 1 for r, i in zip(s.val.x, s.val.y))
    assert s.class_names == [str(v) for v in range(1, 11)]  # the map travels with the student as class names


def test_sparse_labels_map_in_sorted_order(tmp_path):
    y = np.array([42, 3, 7] * 20)
    s = make_splits(_npz(tmp_path, y, class_names=np.array(["three", "seven", "forty-two"])), seed=1)
    assert s.num_classes == 3 and s.label_map.original == (3, 7, 42)
    assert s.class_names == ["three", "seven", "forty-two"]
    raw = read_dataset(str(tmp_path / "d.npz"))
    rows = {r.tobytes(): int(lab) for r, lab in zip(raw.train.x, raw.train.y)}
    assert all(rows[r.tobytes()] == (3, 7, 42)[int(i)] for r, i in zip(s.train.x, s.train.y))


def test_labels_already_0_to_k_are_untouched(tmp_path):
    y = np.arange(60) % 4
    s = make_splits(_npz(tmp_path, y))
    assert s.label_map.identity and s.num_classes == 4


def test_transfer_labels_follow_the_main_data_map(tmp_path):
    y = np.tile([1, 2, 3], 20)
    raw = _npz(tmp_path, y)
    t = Split(np.zeros((4, 3), np.float32), np.array([3, 1, -1, 2]))
    s = make_splits(raw, transfer=t)
    np.testing.assert_array_equal(s.transfer.y, [2, 0, -1, 1])
    with pytest.raises(DataError, match=r"labels \[9\]"):
        make_splits(raw, transfer=Split(np.zeros((2, 3), np.float32), np.array([1, 9])))


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.bool_])
def test_small_integer_and_bool_arrays_are_numbers(tmp_path, dtype):
    rng = np.random.default_rng(2)
    y = (np.arange(40) % 2).astype(dtype)
    x = rng.integers(0, 2 if dtype == np.bool_ else 200, (40, 5)).astype(dtype)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = read_dataset(str(tmp_path / "d.npz"))
    assert ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int64
    np.testing.assert_array_equal(ds.train.x, x.astype(np.float64))  # values, not rescaled
    np.testing.assert_array_equal(ds.train.y, y.astype(np.int64))
    assert make_splits(ds).num_classes == 2


def test_negative_int16_samples_keep_their_sign(tmp_path):
    x = np.array([[-300, 5], [7, -32768]] * 10, np.int16)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 2)
    np.testing.assert_array_equal(read_dataset(str(tmp_path / "d.npz")).train.x, x.astype(np.float32))


def test_unlabelled_npz_samples_join_transfer_only(tmp_path):
    y = np.arange(100) % 3
    y[::4] = -1  # 25 unlabelled samples
    s = make_splits(_npz(tmp_path, y), seed=0)
    for split in (s.train, s.val, s.test):
        assert (split.y >= 0).all()
    assert len(s.train) + len(s.val) + len(s.test) == 75
    assert int((s.transfer.y == -1).sum()) == 25 and len(s.transfer) == len(s.train) + 25
    assert s.num_classes == 3 and s.label_map.identity  # -1 never enters the map
    summary = s.summary()
    assert summary["transfer_counts"] == {"labelled": len(s.train), "unlabelled": 25}


def test_minus_one_with_one_other_label_is_explained(tmp_path):
    with pytest.raises(DataError, match="unlabelled"):
        make_splits(_npz(tmp_path, np.tile([-1, 1], 20)))


@pytest.mark.parametrize("label", [0, 3])
def test_a_single_class_is_refused_before_any_teacher_runs(tmp_path, label):
    """One label everywhere used to pass as a 1-class task and fail later as a teacher/class-count mismatch."""
    with pytest.raises(DataError, match=f"same label \\({label}\\).*at least two classes"):
        make_splits(_npz(tmp_path, np.full(40, label)))


def test_unlabeled_image_subfolder(tmp_path):
    from PIL import Image

    for c, value, n in (("cat", 10, 6), ("dog", 200, 6), ("unlabeled", 90, 5)):
        (tmp_path / c).mkdir()
        for i in range(n):
            Image.fromarray(np.full((6, 4), value + i, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = read_dataset(str(tmp_path))
    assert ds.class_names == ["cat", "dog"]
    assert int((ds.train.y == -1).sum()) == 5
    s = make_splits(ds, val_fraction=0.2, test_fraction=0.2)
    assert s.num_classes == 2 and s.class_names == ["cat", "dog"]
    assert s.summary()["transfer_counts"]["unlabelled"] == 5
    unl = s.transfer.x[s.transfer.y == -1]
    np.testing.assert_allclose(sorted(unl[:, 0, 0, 0] * 255), np.arange(90, 95), atol=1e-4)


def test_all_unlabelled_transfer_has_no_labels():
    rng = np.random.default_rng(3)
    raw = RawDataset(Split(rng.standard_normal((40, 2)).astype(np.float32), np.arange(40) % 2), None, "mem")
    s = make_splits(raw, transfer=Split(np.zeros((5, 2), np.float32), np.full(5, -1)))
    assert s.transfer.y is None and len(s.transfer) == 5


def test_constant_column_and_channel_give_finite_unit_scale():
    x = np.random.default_rng(4).standard_normal((50, 3)).astype(np.float32)
    x[:, 1] = 7.5  # zero variance
    n = Normalizer.fit(x)
    assert np.isfinite(n.std).all() and min(n.std) > 0
    z = n.apply(x)
    assert np.isfinite(z).all() and np.all(z[:, 1] == 0)
    img = np.random.default_rng(5).random((20, 3, 4, 4)).astype(np.float32)
    img[:, 2] = 0.0
    m = Normalizer.fit(img)
    assert m.std[2] == 1.0 and np.isfinite(m.apply(img)).all()
    # a near-constant column (float noise around a large value) must not blow up either
    x[:, 1] = 1e6 + np.random.default_rng(6).standard_normal(50).astype(np.float32) * 1e-3
    assert np.abs(Normalizer.fit(x).apply(x)).max() < 1e3


def test_one_class_is_refused_even_when_class_names_name_more(tmp_path):
    """y all 0 with ten class names used to train and report a 100 % student."""
    with pytest.raises(DataError, match="same label \\(0\\)"):
        make_splits(_npz(tmp_path, np.zeros(40, np.int64), class_names=np.array([str(i) for i in range(10)])))
    with pytest.raises(DataError, match="\\{-1, 0\\} labels are one class"):
        make_splits(_npz(tmp_path, np.tile([-1, 0], 20)))
