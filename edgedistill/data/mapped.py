"""Samples backed by files instead of anonymous memory: what keeps a run's resident memory flat in the number of
samples when the data is a memory-mapped x.npy folder (edgedistill.data.npy_dir).

Two things grow with N even when the data itself is memory-mapped, and both are handled here:

1. Copies. Cutting a split out of a memory-mapped array (`x[idx]` with an index array) makes an in-memory copy, and
   converting validation / test samples to float32 makes another. `take_rows` and `as_float32` write such a copy
   piecewise (SPILL_ROWS samples at a time) into a new `.npy` file that is memory-mapped instead: same values, same
   order, same dtype and strides as the in-memory copy (training reads identical bytes), but on disk. The file is
   unlinked as soon as it is mapped, so nothing is left behind, even after a crash; the space returns when the array
   is freed. It lives in `$EDGEDISTILL_SPILL`, or the system's temporary folder (set the variable where that folder
   is RAM-backed, a tmpfs, since there the copy would occupy memory again).
2. Touched pages. Every page of a mapping that the process has read stays in its resident set (Linux counts
   file-backed pages in RSS) until the kernel needs the memory back: a pass over every sample (the finiteness check,
   the teacher pass, hashing the data for the caches) or a few hundred random training batches (one page per sample
   of a small signal) makes the whole file resident. `release_pages()` tells the kernel, with
   `madvise(MADV_DONTNEED)`, that the process no longer needs the pages of every mapping opened here; the data stays
   in the kernel's page cache (reclaimable, shared, re-read on the next touch without a disk access while it is
   there) and the mapped contents are unchanged (the mappings are shared, so nothing written is discarded).

Small data never reaches this module: in-memory arrays stay where they are.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np

SPILL_ROWS = 1 << 14  # samples copied at a time: the copy never holds more than this many in memory

_MAPS: list[weakref.ref] = []  # every mapping opened by `track` (weak: a freed array unmaps itself)


def mapping_of(x) -> mmap.mmap | None:
    """The mmap.mmap under `x` (an np.memmap, or a view of one), or None for an in-memory array."""
    while x is not None:
        if isinstance(x, mmap.mmap):
            return x
        if isinstance(x, np.memmap) and isinstance(getattr(x, "_mmap", None), mmap.mmap):
            return x._mmap
        x = getattr(x, "base", None)
    return None


def is_mapped(x) -> bool:
    """Whether numpy array `x` reads a memory-mapped file (np.load(mmap_mode=...), np.memmap, or a view of one)."""
    return isinstance(x, np.ndarray) and mapping_of(x) is not None


def track(x: np.ndarray) -> np.ndarray:
    """Register the mapping under `x` for `release_pages()`; returns `x` unchanged."""
    m = mapping_of(x)
    if m is not None and not any(r() is m for r in _MAPS):
        _MAPS[:] = [r for r in _MAPS if r() is not None] + [weakref.ref(m)]
    return x


def release_pages() -> int:
    """madvise(MADV_DONTNEED) on every live mapping registered with `track`: their pages leave this process's
    resident set (module docstring). Returns the number of mappings released; 0 where madvise is missing (not
    Linux / macOS), which only costs memory."""
    done = 0
    for ref in list(_MAPS):
        m = ref()
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


def _spilled(shape: tuple[int, ...], dtype) -> np.memmap:
    """A new writable .npy mapping of `shape` / `dtype`, its file already unlinked (module docstring)."""
    folder = spill_directory()
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="edgedistill-split-", suffix=".npy", dir=folder)
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(name, mode="w+", dtype=dtype, shape=shape)
    finally:
        os.unlink(name)
    return track(out)


def _fill(out: np.memmap, rows) -> np.memmap:
    """out[i] = rows(i, j) piece by piece, the pages released after each piece."""
    for i in range(0, len(out), SPILL_ROWS):
        j = min(i + SPILL_ROWS, len(out))
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
    out = _spilled((len(idx),) + tuple(x.shape[1:]), x.dtype)
    return _fill(out, lambda i, j: x[idx[i:j]])


def as_float32(x: np.ndarray) -> np.ndarray:
    """Memory-mapped samples in another dtype, as float32 in a memory-mapped copy; anything else unchanged."""
    if x.dtype == np.float32 or not is_mapped(x):
        return x
    out = _spilled(tuple(x.shape), np.float32)
    return _fill(out, lambda i, j: np.asarray(x[i:j], dtype=np.float32))
