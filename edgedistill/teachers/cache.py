"""On-disk cache of teacher logits, keyed by the teacher's identity (file hashes, recipe) and the data's bytes.

A second run over the same teacher and data reads the logits instead of running the teacher again. Files are
written to a temporary name and renamed, so an interrupted run never leaves a truncated cache entry.

Entries are stored float16 relative to each row's maximum (edgedistill.teachers.logit_store: half the bytes, a
stated bound on the soft targets' error) and read memory-mapped, piece by piece.

The pass is written in chunks (edgedistill.teachers.chunked_pass): a pass killed midway resumes from its last
finished chunk, and the complete entry appears only when every chunk is there. Under torch.distributed each chunk's
batches (the same boundaries as a single process uses, so every logit is computed exactly as one process would) are
dealt round-robin to the ranks, gathered, and rank 0 writes the chunks and the one cache file; every rank returns
the complete array.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgedistill import distributed as ddp
from edgedistill.data.mapped import release_pages, spilled
from edgedistill.teachers.base import Teacher
from edgedistill.teachers.chunked_pass import CHUNK_BATCHES, partial_dir, run_pass
from edgedistill.teachers.logit_store import decode, encode, form_of, stored_bytes
from edgedistill.teachers.topk_store import encode_topk


def default_cache_dir() -> Path:
    env = os.environ.get("EDGEDISTILL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgedistill" / "logits"


SPILL_LOGITS = 16 << 20  # decoded logits larger than this (bytes) are memory-mapped, not held in memory
DIGEST_BYTES = 1 << 24  # bytes hashed between two releases of memory-mapped pages


def array_digest(x: np.ndarray) -> str:
    """sha256 of x's shape, dtype and bytes (C order). Hashed in pieces of DIGEST_BYTES, the pages of a memory-mapped
    x released after each (data.mapped): the digest is that of the whole buffer, the resident pages are not."""
    h = hashlib.sha256(str((x.shape, str(x.dtype))).encode())
    x = np.ascontiguousarray(x)
    rows = max(1, DIGEST_BYTES // max(1, x[:1].nbytes)) if x.ndim else 1
    for i in range(0, max(len(x), 1) if x.ndim else 1, rows):
        h.update((x[i : i + rows] if x.ndim else x).data)
        release_pages()
    return h.hexdigest()


STORE_VERSION = "shifted-f16-v1"  # part of every key: an entry in an older form is recomputed, never mixed in
TOPK_VERSION = "topk-v1"  # the top-k form's (with k and the temperatures)


@dataclass
class CacheStats:
    """Hits, misses, seconds spent running teachers, and each entry used: its form (teachers.logit_store), bytes on
    disk, samples and classes (metrics.json's `teacher_cache`)."""

    hits: int = 0
    misses: int = 0
    seconds_computing: float = 0.0
    entries: list = field(default_factory=list)
    batches_computed: int = 0  # teacher batches run on misses (a resumed pass runs only the unfinished chunks')
    batches_resumed: int = 0  # batches read back from the chunks of an interrupted pass

    def summary(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "bytes": sum(e["bytes"] for e in self.entries),
                "entries": list(self.entries), "batches_computed": self.batches_computed,
                "batches_resumed": self.batches_resumed}


class LogitCache:
    """`get(teacher, x, input_tag)` returns N×K logits, computing them in batches only on a miss.

    Entries are stored float16 relative to each row's maximum (teachers.logit_store; float32 where a row spans too
    much) and memory-mapped on reading. A miss returns the stored values too, so a run computes the same whether its
    logits were cached or not."""

    def __init__(self, directory: Path | None = None, enabled: bool = True, batch_size: int = 512,
                 chunk_batches: int = CHUNK_BATCHES):
        self.directory = Path(directory) if directory else default_cache_dir()
        self.enabled = enabled
        self.batch_size = batch_size
        self.chunk_batches = chunk_batches
        self.stats = CacheStats()

    def key(self, teacher: Teacher, x: np.ndarray, input_tag: str, form: str = STORE_VERSION) -> str:
        ident = teacher.identity()
        return hashlib.sha256(f"{ident}|{input_tag}|{array_digest(x)}|{form}".encode()).hexdigest()[:32]

    def _read(self, path: Path | None, n: int) -> np.ndarray | None:
        if path is None or not ddp.broadcast_object(path.exists()):  # rank 0's view decides for everyone
            return None
        try:
            stored = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry is recomputed and overwritten
        return stored if stored.ndim in (1, 2) and stored.shape[0] == n else None

    def get(self, teacher: Teacher, x: np.ndarray, input_tag: str = "raw",
            transform: Callable[[np.ndarray], np.ndarray] | None = None,
            progress: Callable[[int], None] | None = None) -> torch.Tensor:
        path = self.directory / f"{self.key(teacher, x, input_tag)}.npy" if self.enabled else None
        stored = self._read(path, len(x))
        if self._all_hit(stored, progress, len(x)):
            return self._logits(stored)
        return self._logits(self._miss(path, lambda: encode(self._compute(teacher, x, transform, progress,
                                                                          entry=path))))

    def get_topk(self, teacher: Teacher, x: np.ndarray, k: int, temperatures: tuple[float, ...],
                 input_tag: str = "raw", transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The top-k form (teachers/topk_store.py, chosen by teachers/cache_form.py): per sample the k largest
        logits, their classes and the rest's log mass at each of `temperatures`, encoded batch by batch as the
        teacher runs (the N×K logits never exist whole). k and the temperatures are part of the key. Returns the N
        records (topk_store.topk_dtype), memory-mapped from the cache file when there is one."""
        form = f"{TOPK_VERSION}|k={k}|T=" + ",".join(f"{t:g}" for t in temperatures)
        path = self.directory / f"{self.key(teacher, x, input_tag, form)}.npy" if self.enabled else None
        stored = self._read(path, len(x))
        if stored is not None and (not stored.dtype.names or "tail" not in stored.dtype.names
                                   or stored["tail"].shape[1:] != (len(temperatures),)):
            stored = None
        if not self._all_hit(stored, progress, len(x)):
            encoder = lambda z: encode_topk(z, k, temperatures)  # noqa: E731
            stored = self._miss(path, lambda: self._compute(teacher, x, transform, progress, encoder, path))
            mapped = self._read(path, len(x))  # read back memory-mapped, as a hit is: not held in memory
            stored = stored if mapped is None else mapped
        self.stats.entries.append({"form": "top-k", "bytes": stored_bytes(stored), "samples": len(stored),
                                   "k": k, "temperatures": [float(t) for t in temperatures],
                                   "bytes_per_sample": int(stored.dtype.itemsize)})
        return stored

    def _all_hit(self, stored: np.ndarray | None, progress, n: int) -> bool:
        """Whether every rank found the entry (a hit is counted once, on every rank alike)."""
        if int(ddp.all_sum(torch.tensor(int(stored is not None)))) == ddp.world() and stored is not None:
            self.stats.hits += 1
            if progress:
                progress(n)
            return True
        return False

    def _miss(self, path: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Run the teacher (`compute` returns the stored form), write the entry atomically on rank 0, return it."""
        t0 = time.perf_counter()
        stored = compute()
        self.stats.misses += 1
        self.stats.seconds_computing += time.perf_counter() - t0
        if path is not None and ddp.is_main():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, stored, allow_pickle=False)
            os.replace(tmp, path)
            shutil.rmtree(partial_dir(path, self.batch_size, self.chunk_batches), ignore_errors=True)
        ddp.barrier()
        return stored

    def _compute(self, teacher: Teacher, x: np.ndarray, transform, progress, encoder=None,
                 entry: Path | None = None) -> np.ndarray:
        """N×K float32 logits (with `encoder`: each batch's logits encoded as they come), batch by batch into one
        array allocated once (a dict of thousands of small batches, then a concatenation, held ~4 bytes a logit
        more at the peak and left the heap fragmented). With a cache `entry`, finished chunks are kept beside it
        and a rerun after a kill resumes from them (teachers.chunked_pass); under torch.distributed each chunk's
        batches are shared among the ranks."""
        def run_batch(i: int) -> np.ndarray:
            xb = x[i : i + self.batch_size]
            z = teacher.logits(transform(xb) if transform else xb).numpy()
            return encoder(z) if encoder else z.astype(np.float32, copy=False)

        part = partial_dir(entry, self.batch_size, self.chunk_batches) if entry is not None else None
        out, computed = run_pass(len(x), self.batch_size, run_batch, part, progress, self.chunk_batches,
                                 None if encoder else np.dtype(np.float32))
        self.stats.batches_computed += computed
        self.stats.batches_resumed += -(-len(x) // self.batch_size) - computed
        return out

    def _logits(self, stored: np.ndarray) -> torch.Tensor:
        """The stored entry as N×K float32 logits: in memory, or past SPILL_LOGITS bytes in a memory-mapped copy
        (edgedistill.data.mapped.spilled; the trainer reads its batches with pread), so that the decoded logits of a
        million samples do not stay in anonymous memory for the whole run."""
        shape = (len(stored), stored.dtype["shifted"].shape[0]) if stored.dtype.names else stored.shape
        big = stored.ndim == 1 and stored.dtype.names and 4 * int(np.prod(shape)) > SPILL_LOGITS
        out = torch.from_numpy(decode(stored, spilled(shape, np.float32) if big else None))
        self.stats.entries.append({"form": form_of(stored), "bytes": stored_bytes(stored), "samples": len(stored),
                                   "classes": int(out.shape[1]) if out.ndim == 2 else 1})
        release_pages()
        return out
