"""A teacher pass written in chunks, so that a pass killed midway resumes from its last finished chunk.

The pass over N samples runs in batches of `batch_size` rows starting at 0, 1·batch_size, ... (the boundaries a
single uninterrupted pass uses, so every logit is computed exactly as it would be). CHUNK_BATCHES consecutive batches
form a chunk; each finished chunk is saved as one `.npy` in a partial folder beside the cache entry,
`<key>.partial-b<batch>x<chunk batches>/<start>-<stop>.npy`, written to a temporary name and renamed, so a chunk file
is either whole or absent. A rerun with the same key (same teacher, data, form) finds the folder, reads the finished
chunks and computes only the rest. The complete entry `<key>.npy` is written (atomically, by the cache) only after
every chunk is there, so a partial pass is never read as a complete entry; the partial folder is removed then.

Under torch.distributed each chunk's batches are dealt round-robin to the ranks and gathered, rank 0 alone decides
which chunks are finished (its file system: no shared store needed) and writes them, and every rank returns the
whole array. A resumed run may use another number of ranks: the chunks do not depend on it.

Why 16 batches a chunk: at the default 512 rows that is 8,192 samples (64 KiB of float16-shifted records at 10
classes, 1.2 MiB of top-k records), few enough files for a million samples (123) and at most a few seconds of
teacher work lost to a kill.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from edgedistill import distributed as ddp
from edgedistill.data.mapped import release_pages

CHUNK_BATCHES = 16


def partial_dir(entry: Path, batch_size: int, chunk_batches: int = CHUNK_BATCHES) -> Path:
    """The folder of finished chunks for the cache entry `entry` (`<key>.npy`); batch and chunk sizes are in its
    name, since they set the boundaries every chunk was computed with."""
    return entry.with_name(f"{entry.stem}.partial-b{batch_size}x{chunk_batches}")


def _chunk_path(partial: Path, start: int, stop: int) -> Path:
    return partial / f"{start:012d}-{stop:012d}.npy"


def finished_chunks(partial: Path | None, n: int, rows: int) -> list[int]:
    """Start rows of the chunks a previous pass finished: readable `.npy` files holding exactly their rows. A damaged
    chunk is not listed (it is computed again and overwritten)."""
    if partial is None or not partial.is_dir():
        return []
    done = []
    for start in range(0, n, rows):
        path = _chunk_path(partial, start, min(n, start + rows))
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            continue
        if arr.ndim >= 1 and len(arr) == min(n, start + rows) - start:
            done.append(start)
    return done


def _save_chunk(partial: Path, start: int, z: np.ndarray) -> None:
    partial.mkdir(parents=True, exist_ok=True)
    path = _chunk_path(partial, start, start + len(z))
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npy")
    np.save(tmp, z, allow_pickle=False)
    os.replace(tmp, path)


def run_pass(n: int, batch_size: int, run_batch: Callable[[int], np.ndarray], partial: Path | None,
             progress: Callable[[int], None] | None = None, chunk_batches: int = CHUNK_BATCHES,
             dtype: np.dtype | None = None) -> tuple[np.ndarray, int]:
    """Run `run_batch(i)` (the stored form of rows i .. i + batch_size, as a numpy array) over all N rows, chunk by
    chunk, reusing the chunks a previous pass left in `partial` (None: keep nothing on disk). `dtype`: the array's
    dtype (None: the batches' own). Returns (the N rows in one array allocated once, the number of batches computed
    by this call, summed over ranks); `progress(rows)` is called as rows are done, read or computed."""
    rows = batch_size * chunk_batches
    done = set(ddp.broadcast_object(finished_chunks(partial, n, rows) if ddp.is_main() else None))
    out, computed = None, 0
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        if start in done:
            z = np.load(_chunk_path(partial, start, stop), allow_pickle=False) if ddp.is_main() else None
            z = ddp.broadcast_object(z)
        else:
            mine = {i: run_batch(i) for i in ddp.my_share(list(range(start, stop, batch_size)))}
            for other in ddp.gather_objects(mine) if ddp.active() else ():
                mine.update(other)
            computed += -(-(stop - start) // batch_size)
            z = np.concatenate([mine.pop(i) for i in sorted(mine)])
            if partial is not None and ddp.is_main():
                _save_chunk(partial, start, z)
        if out is None:
            out = np.empty((n,) + z.shape[1:], dtype or z.dtype)
        out[start:stop] = z
        release_pages()
        if progress:
            progress(stop - start)
    return out, computed
