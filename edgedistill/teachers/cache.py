"""On-disk cache of teacher logits, keyed by the teacher's identity (file hashes, recipe) and the data's bytes.

A second run over the same teacher and data reads the logits instead of running the teacher again. Files are
written to a temporary name and renamed, so an interrupted run never leaves a truncated cache entry.

Under torch.distributed the pass is sharded: the batches (the same boundaries as a single process uses, so every
logit is computed exactly as one process would) are dealt round-robin to the ranks, gathered, and rank 0 writes the
one cache file; every rank returns the complete array.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgedistill import distributed as ddp
from edgedistill.teachers.base import Teacher


def default_cache_dir() -> Path:
    env = os.environ.get("EDGEDISTILL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgedistill" / "logits"


def array_digest(x: np.ndarray) -> str:
    h = hashlib.sha256(str((x.shape, str(x.dtype))).encode())
    h.update(np.ascontiguousarray(x).data)
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    seconds_computing: float = 0.0


class LogitCache:
    """`get(teacher, x, input_tag)` returns N×K logits, computing them in batches only on a miss."""

    def __init__(self, directory: Path | None = None, enabled: bool = True, batch_size: int = 512):
        self.directory = Path(directory) if directory else default_cache_dir()
        self.enabled = enabled
        self.batch_size = batch_size
        self.stats = CacheStats()

    def key(self, teacher: Teacher, x: np.ndarray, input_tag: str) -> str:
        ident = teacher.identity()
        return hashlib.sha256(f"{ident}|{input_tag}|{array_digest(x)}".encode()).hexdigest()[:32]

    def get(self, teacher: Teacher, x: np.ndarray, input_tag: str = "raw",
            transform: Callable[[np.ndarray], np.ndarray] | None = None,
            progress: Callable[[int], None] | None = None) -> torch.Tensor:
        path = self.directory / f"{self.key(teacher, x, input_tag)}.npy" if self.enabled else None
        out = None
        if ddp.broadcast_object(path is not None and path.exists()):  # rank 0's view decides for everyone
            try:
                out = np.load(path, allow_pickle=False)
                out = out if out.shape[0] == len(x) else None
            except (OSError, ValueError):
                out = None  # a damaged entry is recomputed and overwritten
        if int(ddp.all_sum(torch.tensor(int(out is not None)))) == ddp.world() and out is not None:
            self.stats.hits += 1
            if progress:
                progress(len(x))
            return torch.from_numpy(out)
        t0 = time.perf_counter()
        parts = {}
        for i in ddp.my_share(list(range(0, len(x), self.batch_size))):
            xb = x[i : i + self.batch_size]
            parts[i] = teacher.logits(transform(xb) if transform else xb).numpy()
            if progress:
                progress(len(xb) * ddp.world())
        for other in ddp.gather_objects(parts) if ddp.active() else []:
            parts.update(other)
        out = np.concatenate([parts[i] for i in sorted(parts)]).astype(np.float32)
        self.stats.misses += 1
        self.stats.seconds_computing += time.perf_counter() - t0
        if path is not None and ddp.is_main():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, out)
            os.replace(tmp, path)
        ddp.barrier()
        return torch.from_numpy(out)
