"""A teacher pass killed midway resumes from its last finished chunk (teachers/chunked_pass.py): the rerun runs the
teacher only on the rest, and the cache entry it writes equals an uninterrupted pass's byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgedistill.teachers import LogitCache
from edgedistill.teachers.base import Teacher
from edgedistill.teachers.chunked_pass import partial_dir

N, BATCH, CHUNK = 100, 8, 2  # 13 batches (the last of 4 rows), 7 chunks of 2 batches


class Killed(RuntimeError):
    pass


class CountingTeacher(Teacher):
    """A fixed linear teacher built in code that counts its batches and, when told, dies on the batch numbered
    `die_at` (0-based), as a killed process would, after the batches before it."""

    def __init__(self, die_at: int | None = None):
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(12, 10, generator=g) * 3
        self.batches = []
        self.die_at = die_at

    def logits(self, x) -> torch.Tensor:
        if self.die_at is not None and len(self.batches) == self.die_at:
            raise Killed("killed mid-pass")
        self.batches.append(np.asarray(x).copy())
        return torch.as_tensor(np.asarray(x), dtype=torch.float32).reshape(len(x), -1) @ self.w

    def identity(self) -> str:
        return "counting-linear-v1"


def _x() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(N, 12)).astype(np.float32)


def _run(kind: str, cache: LogitCache, teacher: Teacher, x: np.ndarray):
    if kind == "full":
        return cache.get(teacher, x)
    return cache.get_topk(teacher, x, k=3, temperatures=(1.0, 4.0))


def _entries(directory):
    return sorted(p for p in directory.iterdir() if p.suffix == ".npy")


@pytest.mark.parametrize("kind", ["full", "top-k"])
def test_killed_pass_resumes_from_the_last_chunk_and_matches_an_uninterrupted_one(tmp_path, kind):
    x = _x()
    whole = LogitCache(tmp_path / "whole", batch_size=BATCH, chunk_batches=CHUNK)
    ref = _run(kind, whole, CountingTeacher(), x)
    (ref_entry,) = _entries(tmp_path / "whole")
    assert not any(p.is_dir() for p in (tmp_path / "whole").iterdir())  # the partial folder is gone when complete

    cache_dir = tmp_path / "resumed"
    with pytest.raises(Killed):  # dies on batch 5: chunks 0 and 1 (batches 0-3) are finished, batch 4 is lost
        _run(kind, LogitCache(cache_dir, batch_size=BATCH, chunk_batches=CHUNK), CountingTeacher(die_at=5), x)
    assert _entries(cache_dir) == []  # no complete entry from a partial pass
    (part,) = [p for p in cache_dir.iterdir() if p.is_dir()]
    assert sorted(p.name for p in part.iterdir()) == ["000000000000-000000000016.npy", "000000000016-000000000032.npy"]

    teacher = CountingTeacher()
    cache = LogitCache(cache_dir, batch_size=BATCH, chunk_batches=CHUNK)
    got = _run(kind, cache, teacher, x)
    assert len(teacher.batches) == 13 - 4  # only the rest
    np.testing.assert_array_equal(teacher.batches[0], x[32:40])  # from the first unfinished chunk's first batch
    assert (cache.stats.batches_computed, cache.stats.batches_resumed) == (9, 4)
    (entry,) = _entries(cache_dir)
    assert entry.name == ref_entry.name and entry.read_bytes() == ref_entry.read_bytes()
    assert not part.exists()
    if kind == "full":
        assert torch.equal(got, ref)
    else:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))


def test_a_damaged_chunk_is_computed_again(tmp_path):
    x = _x()
    ref_dir, cache_dir = tmp_path / "whole", tmp_path / "resumed"
    LogitCache(ref_dir, batch_size=BATCH, chunk_batches=CHUNK).get(CountingTeacher(), x)
    with pytest.raises(Killed):
        LogitCache(cache_dir, batch_size=BATCH, chunk_batches=CHUNK).get(CountingTeacher(die_at=7), x)
    part = next(p for p in cache_dir.iterdir() if p.is_dir())
    assert part == partial_dir(cache_dir / f"{part.name.split('.')[0]}.npy", BATCH, CHUNK)
    first = sorted(part.iterdir())[0]
    first.write_bytes(first.read_bytes()[:60])  # cut short, as a disk error might leave it
    teacher = CountingTeacher()
    LogitCache(cache_dir, batch_size=BATCH, chunk_batches=CHUNK).get(teacher, x)
    assert len(teacher.batches) == 13 - 4  # chunks 1 and 2 reused; chunk 0 (2 batches) and 3-6 (7 batches) run
    np.testing.assert_array_equal(teacher.batches[0], x[0:8])
    assert _entries(cache_dir)[0].read_bytes() == _entries(ref_dir)[0].read_bytes()


def test_without_a_cache_the_pass_keeps_nothing_on_disk(tmp_path):
    x = _x()
    ref = LogitCache(tmp_path / "c", batch_size=BATCH, chunk_batches=CHUNK).get(CountingTeacher(), x)
    teacher = CountingTeacher()
    got = LogitCache(tmp_path / "off", enabled=False, batch_size=BATCH, chunk_batches=CHUNK).get(teacher, x)
    assert torch.equal(got, ref) and len(teacher.batches) == 13 and not (tmp_path / "off").exists()
