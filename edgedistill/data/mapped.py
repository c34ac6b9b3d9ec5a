"""Samples backed by files instead of anonymous memory: what keeps a run's resident memory flat in the number of
samples when the data is a memory-mapped x.npy folder (edgedistill.data.npy_dir).

Two things grow with N even when the data itself is memory-mapped, and both are handled here:

1. Copies. Cutting a split out of a memory-mapped array (`x[idx]` with an index array) makes an in-memory copy, and
   converting validation / test samples to float32 makes another. `take_rows` and `as_float32` write such a copy
   piecewise (SPILL_BYTES at a time) into a new `.npy` file that is memory-mapped instead: same values, same
   order, same dtype and strides as the in-memory copy (training reads identical bytes), but on disk. The file is
   unlinked as soon as it is mapped, so nothing is left behind, even after a crash; the space returns when the array
   is freed. It lives in `$EDGEDISTILL_SPILL`, or the system's temporary folder (set the variable where that folder
   is RAM-backed, a tmpfs, since there the copy would occupy memory again).
2. Touched pages. Every page of a mapping that the process has read stays in its resident set (Linux counts
   file-backed pages in RSS) until the kernel needs the memory back: a pass over every sample (the finiteness check,
   the teacher pass, hashing the data for the caches) makes the whole file resident; and a random row read through
   a mapping faults in the whole page-cache folio around it (64 KiB to 2 MiB on current Linux), so a single batch
   of random samples would make much of a file resident. Random rows (training batches, shuffled splits) are
   therefore read with pread (`gather`), which touches no page of the mapping, and passes in order release the
   pages they read every few MB: `release_pages()` tells the kernel, with `madvise(MADV_DONTNEED)`, that the
   process no longer needs the pages of every mapping opened here; the data stays in the kernel's page cache (reclaimable, shared, re-read on the next touch without a disk access while it is
   there) and the mapped contents are unchanged (the mappings are shared, so nothing written is discarded).

Small data never reaches this module: in-memory arrays stay where they are.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedistill.errors import DataError

SPILL_BYTES = 8 << 20  # bytes of a copy written between two releases of its pages

@dataclass
class _Mapping:
    """A tracked mapping: where it lies in memory, and the file under it, open for reading rows with pread."""

    ref: weakref.ref  # the mmap.mmap (weak: a freed array unmaps itself)
    address: int
    length: int
    fd: int | None
    start: int  # file position of the mapping's first byte


_MAPS: list[_Mapping] = []  # every mapping registered by `track`


def mapping_of(x) -> mmap.mmap | None:
    """The mmap.mmap under `x` (an np.memmap, or a view of one), or None for an in-memory array."""
    owner = _memmap_of(x)
    return None if owner is None else owner._mmap


def _memmap_of(x) -> np.memmap | None:
    while x is not None:
        if isinstance(x, np.memmap) and isinstance(getattr(x, "_mmap", None), mmap.mmap):
            return x
        x = getattr(x, "base", None)
    return None


def is_mapped(x) -> bool:
    """Whether numpy array `x` reads a memory-mapped file (np.load(mmap_mode=...), np.memmap, or a view of one)."""
    return isinstance(x, np.ndarray) and mapping_of(x) is not None


def track(x: np.ndarray) -> np.ndarray:
    """Register the mapping under `x` for `release_pages()` and `gather`; returns `x` unchanged. The mapping's file
    is opened for reading here (so an unlinked file stays readable) and closed when the mapping is freed."""
    owner = _memmap_of(x)
    if owner is None or any(e.ref() is owner._mmap for e in _MAPS):
        return x
    m = owner._mmap
    view = np.frombuffer(m, np.uint8) if len(m) else None  # the mapping's address (the view is dropped at once)
    address = 0 if view is None else int(view.ctypes.data)
    del view
    fd = None
    if isinstance(owner.filename, (str, os.PathLike)) and os.path.exists(owner.filename):
        fd = os.open(owner.filename, os.O_RDONLY)
        weakref.finalize(m, os.close, fd)
    start = int(owner.offset) - int(owner.offset) % mmap.ALLOCATIONGRANULARITY
    _MAPS[:] = [e for e in _MAPS if e.ref() is not None] + [_Mapping(weakref.ref(m), address, len(m), fd, start)]
    return x


def tracking() -> bool:
    """Whether any registered mapping is alive (the trainer reads batches through `gather` only then)."""
    return any(e.ref() is not None for e in _MAPS)


def _entry(x: np.ndarray) -> _Mapping | None:
    addr = int(x.ctypes.data)
    for e in _MAPS:
        m = e.ref()
        if m is not None and not m.closed and e.fd is not None and e.address <= addr \
                and addr + x.nbytes <= e.address + e.length:
            return e
    return None


def in_mapping(x) -> bool:
    """Whether `gather` reads x's rows from a file: a C-contiguous numpy array inside a tracked mapping."""
    return isinstance(x, np.ndarray) and x.ndim > 0 and x.flags.c_contiguous and len(x) > 0 and _entry(x) is not None


def gather(x: np.ndarray, idx) -> np.ndarray:
    """x[idx] (integer indices along the first axis) as a new C-contiguous array. When x is a C-contiguous array
    inside a tracked mapping, the rows are read from its file with pread, touching no page of the mapping: a
    random row read through the mapping would fault in a whole page-cache folio around it (64 KiB to 2 MiB on
    current Linux, measured 1 MiB a row here), so a batch of 128 random samples could make 100 MB resident.
    Anything else: x[idx]."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    entry = _entry(x) if isinstance(x, np.ndarray) and x.ndim and x.flags.c_contiguous and len(x) else None
    if entry is None:
        return x[idx]
    n = len(x)
    if len(idx) and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"index out of range for {n} rows")
    idx = np.where(idx < 0, idx + n, idx)
    row = x[:1].nbytes
    out = np.empty((len(idx),) + tuple(x.shape[1:]), x.dtype)
    buf = memoryview(out.reshape(-1).view(np.uint8)) if out.size else None
    first = entry.start + int(x.ctypes.data) - entry.address
    cuts = np.flatnonzero(np.diff(idx) != 1) + 1  # runs of consecutive rows: one read each
    for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(idx)].tolist()):
        want = (b - a) * row
        got = os.preadv(entry.fd, [buf[a * row : b * row]], first + int(idx[a]) * row)
        if got != want:  # a file cut short under us: let numpy read it through the mapping (and raise)
            out[a:b] = x[idx[a:b]]
    return out


def release_pages() -> int:
    """madvise(MADV_DONTNEED) on every live mapping registered with `track`: their pages leave this process's
    resident set (module docstring). Returns the number of mappings released; 0 where madvise is missing (not
    Linux / macOS), which only costs memory."""
    done = 0
    for e in list(_MAPS):
        m = e.ref()
        if m is None or m.closed or not hasattr(m, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
            continue
        try:
            m.madvise(mmap.MADV_DONTNEED)
            done += 1
        except (OSError, ValueError):  # a mapping of length 0, or one the platform refuses: keep its pages
            pass
    return done


def spill_directory() -> Path:
    env = os.environ.get("EDGEDISTILL_SPILL")
    return Path(env) if env else Path(tempfile.gettempdir())


def spilled(shape: tuple[int, ...], dtype) -> np.memmap:
    """A new writable, tracked .npy mapping of `shape` / `dtype` in spill_directory(), its file already unlinked
    (module docstring): an array as large as the data, kept out of anonymous memory."""
    folder = spill_directory()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="edgedistill-split-", suffix=".npy", dir=folder)
        os.close(fd)
        try:
            out = track(np.lib.format.open_memmap(name, mode="w+", dtype=dtype, shape=shape))  # before unlinking
        finally:
            os.unlink(name)
    except OSError as exc:
        where = "$EDGEDISTILL_SPILL" if os.environ.get("EDGEDISTILL_SPILL") else "the temporary folder " \
            "($EDGEDISTILL_SPILL unset)"
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        raise DataError(f"Cannot write a memory-mapped copy of a data split ({need:,} bytes) in {folder}, "
                        f"{where}: {exc.strerror or exc}. Set EDGEDISTILL_SPILL to a writable folder on a disk with "
                        "room for it.") from None
    return out


def _fill(out: np.memmap, rows) -> np.memmap:
    """out[i:j] = rows(i, j) piece by piece (SPILL_BYTES of out at a time), the pages released after each piece."""
    step = max(1, SPILL_BYTES // max(1, out[:1].nbytes))
    for i in range(0, len(out), step):
        j = min(i + step, len(out))
        out[i:j] = rows(i, j)
        release_pages()
    return out


def take_rows(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`x[idx]` (rows of a memory-mapped array) as a memory-mapped copy (module docstring); an in-memory `x` gets
    the ordinary in-memory copy. idx: integer indices or a boolean mask over x's first axis."""
    idx = np.asarray(idx)
    if not is_mapped(x):
        return x[idx]
    if idx.dtype == np.bool_:
        idx = np.flatnonzero(idx)
    out = spilled((len(idx),) + tuple(x.shape[1:]), x.dtype)
    return _fill(out, lambda i, j: gather(x, idx[i:j]))  # read with pread: no page of x becomes resident


def as_float32(x: np.ndarray) -> np.ndarray:
    """Memory-mapped samples in another dtype, as float32 in a memory-mapped copy; anything else unchanged."""
    if x.dtype == np.float32 or not is_mapped(x):
        return x
    out = spilled(tuple(x.shape), np.float32)
    return _fill(out, lambda i, j: gather(x, np.arange(i, j)).astype(np.float32))


def concat_rows(parts: list[np.ndarray]) -> np.ndarray:
    """np.concatenate(parts) along the first axis; where any part is memory-mapped, into a memory-mapped copy
    (module docstring) written part by part in pieces, so joining a mapped split with its unlabelled rows never
    holds the samples in memory. Same values, dtype (numpy's result type) and order as np.concatenate."""
    if not any(is_mapped(p) for p in parts):
        return np.concatenate(parts)
    dtype = np.result_type(*parts)
    out = spilled((sum(len(p) for p in parts),) + tuple(parts[0].shape[1:]), dtype)
    at = 0
    for p in parts:
        step = max(1, SPILL_BYTES // max(1, out[:1].nbytes))
        for i in range(0, len(p), step):
            j = min(i + step, len(p))
            out[at + i : at + j] = gather(p, np.arange(i, j))
            release_pages()
        at += len(p)
    return out
