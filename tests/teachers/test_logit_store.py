"""The teacher cache's float16-shifted storage against float32 logits: soft targets within the stated bound at every
temperature the tuner uses, raw logits within float16's relative error, float32 where a row spans too much."""

import numpy as np
import pytest
import torch

from edgedistill.distill.tuning import TEMPERATURES
from edgedistill.teachers import LogitCache
from edgedistill.teachers.logit_store import F16_SPAN, decode, encode, form_of, soft_target_bound


def _soft(z: np.ndarray, t: float) -> np.ndarray:  # an independent softmax, float64
    e = np.exp((z.astype(np.float64) - z.max(axis=1, keepdims=True)) / t)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classes", [10, 100, 1000])
def test_soft_targets_from_float16_shifted_logits_are_within_the_bound(classes):
    rng = np.random.default_rng(classes)
    # confident teachers far from zero: float16 of the raw logits would lose ~0.25 at 500
    z = (rng.normal(0, 8, (2000, classes)) + 500.0).astype(np.float32)
    stored = encode(z)
    assert form_of(stored) == "float16-shifted" and stored.nbytes == 2000 * (4 + 2 * classes)
    back = decode(stored)
    d = np.abs(z - z.max(axis=1, keepdims=True))
    assert np.all(np.abs(back - z) <= d * 2.0 ** -11 + np.abs(z) * 2.0 ** -23 * 2)
    for t in TEMPERATURES:
        err = np.abs(_soft(back, t) - _soft(z, t)).max()
        assert err <= soft_target_bound(classes), (t, err)
    # plain float16 of the raw logits (steps of 0.25 at 500) errs far more: the shift is what keeps the error small
    naive = np.abs(_soft(z.astype(np.float16).astype(np.float32), 1.0) - _soft(z, 1.0)).max()
    assert naive > 20 * np.abs(_soft(back, 1.0) - _soft(z, 1.0)).max()


def test_a_row_spanning_more_than_float16_keeps_float32():
    z = np.array([[0.0, -3.0, 1.5], [10.0, -F16_SPAN - 10.0, 0.0]], np.float32)
    stored = encode(z)
    assert form_of(stored) == "float32" and np.array_equal(decode(stored), z)


class _Linear:
    def __init__(self):
        torch.manual_seed(0)
        self.m = torch.nn.Linear(6, 12)
        self.calls = 0

    def identity(self):
        return "linear-test"

    def logits(self, x):
        self.calls += 1
        with torch.no_grad():
            return self.m(torch.as_tensor(np.asarray(x, np.float32))) * 40


def test_cache_stores_shifted_float16_memory_maps_it_and_a_hit_equals_the_miss(tmp_path):
    x = np.random.default_rng(3).normal(size=(1300, 6)).astype(np.float32)
    teacher, cache = _Linear(), LogitCache(tmp_path, batch_size=256)
    first = cache.get(teacher, x)
    calls = teacher.calls
    second = LogitCache(tmp_path).get(teacher, x)
    assert teacher.calls == calls  # read, not recomputed
    assert torch.equal(first, second)
    (entry,) = tmp_path.glob("*.npy")
    on_disk = np.load(entry, mmap_mode="r")
    assert form_of(on_disk) == "float16-shifted" and entry.stat().st_size < 1300 * 12 * 4 * 0.6
    ref = teacher.logits(x).numpy()
    for t in TEMPERATURES:
        assert np.abs(_soft(first.numpy(), t) - _soft(ref, t)).max() <= soft_target_bound(12)
    s = cache.stats.summary()
    assert s["misses"] == 1 and s["entries"][0] == {"form": "float16-shifted", "bytes": on_disk.nbytes,
                                                     "samples": 1300, "classes": 12}


def test_large_decoded_logits_are_memory_mapped_with_the_same_values(tmp_path, monkeypatch):
    from edgedistill.data.mapped import in_mapping

    monkeypatch.setenv("EDGEDISTILL_SPILL", str(tmp_path / "spill"))
    x = np.random.default_rng(5).normal(size=(900, 6)).astype(np.float32)
    small = LogitCache(tmp_path / "a").get(_Linear(), x)
    monkeypatch.setattr("edgedistill.teachers.cache.SPILL_LOGITS", 1024)  # 900 × 12 × 4 bytes: past it
    big = LogitCache(tmp_path / "b").get(_Linear(), x)
    assert in_mapping(big.numpy()) and not in_mapping(small.numpy())
    assert torch.equal(big, small)
    assert list((tmp_path / "spill").iterdir()) == []
