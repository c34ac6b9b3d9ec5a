"""An .npz converted once, streamed, into a memory-mapped .npy folder in the cache (data/npz_convert.py)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest

from edgedistill.data import read_dataset
from edgedistill.data.mapped import is_mapped
from edgedistill.data.npz_convert import convert_npz, wants_mapping
from edgedistill.errors import DataError


def _arrays():
    rng = np.random.default_rng(3)
    return {"x": rng.integers(0, 256, (300, 3, 8, 8), dtype=np.uint8), "y": rng.integers(0, 4, 300),
            "x_test": rng.normal(size=(50, 3, 8, 8)).astype(np.float32), "y_test": rng.integers(0, 4, 50),
            "class_names": np.array(["a", "bb", "ccc", "d"]), "extra": np.zeros(3)}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_conversion_gives_the_same_arrays_memory_mapped_and_is_reused(tmp_path, save):
    arrays = _arrays()
    src = tmp_path / "user" / "data.npz"
    src.parent.mkdir()
    save(src, **arrays)
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    seen = []
    conv = convert_npz(src, tmp_path / "cache", lambda done, total: seen.append((done, total)))
    folder = tmp_path / "cache" / conv.sha256[:32]
    assert conv.folder == str(folder) and not conv.reused
    assert sorted(p.name for p in folder.iterdir()) == ["class_names.npy", "source.json", "x.npy", "x_test.npy",
                                                         "y.npy", "y_test.npy"]  # the five fields; `extra` not
    for k in ("x", "y", "x_test", "y_test", "class_names"):  # byte for byte what np.save writes
        ref = tmp_path / f"ref_{k}.npy"
        np.save(ref, arrays[k])
        assert (folder / f"{k}.npy").read_bytes() == ref.read_bytes(), k
    assert seen and seen[-1][0] == seen[-1][1] and all(a[0] < b[0] for a, b in zip(seen, seen[1:]))  # progress
    assert list(src.parent.iterdir()) == [src] and (src.read_bytes(), src.stat().st_mtime_ns) == before
    raw = read_dataset(str(folder))
    assert is_mapped(raw.train.x) and raw.train.x.dtype == np.uint8 and np.array_equal(raw.train.x, arrays["x"])
    assert raw.class_names == ["a", "bb", "ccc", "d"] and np.array_equal(raw.test.y, arrays["y_test"])
    x_inode = (folder / "x.npy").stat().st_ino
    again = convert_npz(src, tmp_path / "cache")
    assert again.reused and again.folder == conv.folder and (folder / "x.npy").stat().st_ino == x_inode


def test_the_size_rule_and_the_option(tmp_path):
    src = tmp_path / "d.npz"
    np.savez(src, **_arrays())
    assert not wants_mapping(src, "auto") and wants_mapping(src, "mapped") and not wants_mapping(src, "memory")


def test_an_object_array_or_a_damaged_archive_is_refused_and_leaves_nothing(tmp_path):
    bad = tmp_path / "objects.npz"
    np.savez(bad, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="Python objects"):
        convert_npz(bad, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    src = tmp_path / "d.npz"
    np.savez(src, x=np.arange(4096, dtype=np.int32).reshape(64, 1, 8, 8))
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside x's bytes: the member's CRC-32 no longer matches
    src.write_bytes(bytes(data))
    with pytest.raises(DataError, match="Cannot read"):
        convert_npz(src, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    with zipfile.ZipFile(tmp_path / "nox.npz", "w") as z:
        z.writestr("y.npy", b"")
    with pytest.raises(DataError, match="no `x`"):
        convert_npz(tmp_path / "nox.npz", tmp_path / "cache")


CHILD = """
import resource, sys
from pathlib import Path
import numpy as np
from edgedistill.data.npz_convert import convert_npz
vm_data = int(next(l for l in open("/proc/self/status") if l.startswith("VmData")).split()[1]) << 10
limit = vm_data + (64 << 20)  # 64 MiB more than the interpreter, numpy and torch already hold
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
if sys.argv[1] == "load":
    np.load(sys.argv[2])["x"]
else:
    print(convert_npz(Path(sys.argv[2]), Path(sys.argv[3])).folder)
"""


def test_conversion_streams_an_archive_larger_than_the_memory_limit(tmp_path):
    """With 64 MiB of headroom under a limit on the process's data segment (RLIMIT_DATA: heap and private writable
    maps; since Linux 4.7 shared and file maps are not counted), reading the archive's 160 MiB `x` whole fails, the
    streamed conversion does not."""
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(10_000, 1, 128, 128))
    x[:] = np.arange(128, dtype=np.uint8)
    x.flush()
    src = tmp_path / "big.npz"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_STORED, allowZip64=True) as z:  # np.savez's layout, written streamed
        z.write(tmp_path / "x.npy", "x.npy")
    (tmp_path / "x.npy").unlink()
    load = subprocess.run([sys.executable, "-c", CHILD, "load", str(src)], capture_output=True, text=True, timeout=60)
    assert load.returncode != 0 and "MemoryError" in load.stderr  # the limit bites
    conv = subprocess.run([sys.executable, "-c", CHILD, "convert", str(src), str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=60)
    assert conv.returncode == 0, conv.stderr[-2000:]
    got = np.load(f"{conv.stdout.strip()}/x.npy", mmap_mode="r")
    assert got.shape == (10_000, 1, 128, 128) and np.array_equal(got[-1, 0, 5], np.arange(128, dtype=np.uint8))
