"""Memory-mapped splits and page release (edgedistill.data.mapped): the same samples as in-memory copies, nothing left
on disk, and resident memory that actually goes down."""

import sys

import numpy as np
import pytest

from edgedistill.data import make_splits, read_dataset
from edgedistill.data.arrays import RawDataset, Split
from edgedistill.data.mapped import as_float32, gather, is_mapped, release_pages, take_rows, track


def _mapped(tmp_path, arr, name="x.npy"):
    np.save(tmp_path / name, arr)
    return track(np.load(tmp_path / name, mmap_mode="r"))


def test_take_rows_is_the_in_memory_copy_memory_mapped_and_leaves_no_file(tmp_path, monkeypatch):
    spill = tmp_path / "spill"
    monkeypatch.setenv("EDGEDISTILL_SPILL", str(spill))
    monkeypatch.setattr("edgedistill.data.mapped.SPILL_BYTES", 7 * 65536)  # pieces of 7 rows
    x = np.random.default_rng(0).integers(0, 255, (50, 1, 3, 4)).astype(np.uint8)
    xm = _mapped(tmp_path, x)
    idx = np.random.default_rng(1).permutation(50)[:23]
    got = take_rows(xm, idx)
    assert is_mapped(got) and got.dtype == np.uint8
    assert np.array_equal(got, x[idx]) and got.strides == x[idx].strides
    mask = np.arange(50) % 3 == 0
    assert np.array_equal(take_rows(xm, mask), x[mask])
    f = as_float32(got)
    assert is_mapped(f) and f.dtype == np.float32 and np.array_equal(f, x[idx].astype(np.float32))
    assert list(spill.iterdir()) == []  # unlinked as soon as mapped
    plain = take_rows(x, idx)  # in memory: the ordinary copy
    assert not is_mapped(plain) and np.array_equal(plain, x[idx])


def _rss_file_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RssFile is Linux's")
def test_release_pages_takes_read_pages_out_of_the_resident_set(tmp_path):
    xm = _mapped(tmp_path, np.arange(16 << 20, dtype=np.float32), "big.npy")  # 64 MiB
    before = _rss_file_kib()
    assert float(xm.sum(dtype=np.float64)) == float(np.arange(16 << 20, dtype=np.float64).sum())
    read = _rss_file_kib()
    assert read - before > 48 << 10  # the pass made (most of) the file resident
    assert release_pages() >= 1
    assert read - _rss_file_kib() > 48 << 10
    assert xm[12345] == 12345  # contents unchanged, read again on touch


def test_splits_of_a_npy_folder_are_mapped_and_equal_the_in_memory_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDISTILL_SPILL", str(tmp_path / "spill"))
    rng = np.random.default_rng(2)
    x = rng.integers(0, 255, (300, 1, 6)).astype(np.uint8)
    y = np.arange(300) % 3
    d = tmp_path / "npy"
    d.mkdir()
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    mapped = make_splits(read_dataset(str(d)), seed=4)
    memory = make_splits(RawDataset(Split(x, y), None, "mem"), seed=4)
    for name in ("train", "val", "test", "transfer"):
        a, b = getattr(mapped, name), getattr(memory, name)
        assert np.array_equal(a.y, b.y), name
        assert np.array_equal(np.asarray(a.x, np.float32), np.asarray(b.x, np.float32)), name
    assert is_mapped(mapped.train.x) and mapped.train.x.dtype == np.uint8
    assert is_mapped(mapped.val.x) and mapped.val.x.dtype == np.float32 and mapped.test.x.dtype == np.float32
    assert np.allclose(mapped.normalizer.mean, memory.normalizer.mean, rtol=1e-12)
    assert np.allclose(mapped.normalizer.std, memory.normalizer.std, rtol=1e-12)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RssFile is Linux's")
def test_gather_reads_rows_with_pread_equal_to_indexing_and_faults_nothing_in(tmp_path):
    import torch

    x = np.random.default_rng(3).normal(size=(200_000, 1, 40)).astype(np.float32)  # 32 MB
    xm = _mapped(tmp_path, x, "g.npy")
    view = xm[1000:]  # a view inside the mapping: positions count from its own first row
    idx = np.random.default_rng(4).integers(-5000, len(view), 4096)
    idx[:50] = np.arange(100, 150)  # a run of consecutive rows: read at once
    gather(view, idx[:2])  # the first call loads code pages
    release_pages()
    before = _rss_file_kib()
    got = gather(view, idx)
    assert _rss_file_kib() - before < 4 << 10  # through the mapping: ~1 MB a random row on large page-cache folios
    want = torch.from_numpy(np.ascontiguousarray(view))[torch.from_numpy(idx)]
    assert torch.equal(torch.from_numpy(got), want) and torch.from_numpy(got).stride() == want.stride()
    with pytest.raises(IndexError):
        gather(view, [len(view)])
    plain = gather(x, idx)  # not mapped: plain indexing
    assert np.array_equal(plain, x[idx])


def test_an_unusable_spill_folder_is_one_paragraph_naming_the_variable(tmp_path, monkeypatch):
    from edgedistill.data.mapped import spilled
    from edgedistill.errors import DataError

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("EDGEDISTILL_SPILL", str(blocker / "spill"))
    with pytest.raises(DataError, match=r"EDGEDISTILL_SPILL.*Not a directory.*Set EDGEDISTILL_SPILL"):
        spilled((10, 3), np.float32)


def test_concat_rows_of_a_mapped_part_is_mapped_and_equals_numpy(tmp_path):
    from edgedistill.data.mapped import concat_rows, is_mapped, track

    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (37, 2, 3, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    mapped = track(np.load(tmp_path / "a.npy", mmap_mode="r"))
    b = rng.random((5, 2, 3, 3), dtype=np.float32)
    out = concat_rows([mapped, b])
    assert is_mapped(out) and out.dtype == np.float32
    assert np.array_equal(np.asarray(out), np.concatenate([a, b]))
    assert not is_mapped(concat_rows([a, b]))
