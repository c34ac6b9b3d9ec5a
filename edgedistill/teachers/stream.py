"""Teacher outputs for augmented batches (function matching), computed on the fly and reused where valid.

With augmentation on, the teacher must see exactly the tensor the student sees, so its outputs cannot come from the
per-sample logit cache. They are still deterministic: the batch at (epoch, step) depends only on the training data,
the seed, the batch size and the augmentation recipe (see edgedistill.data.augment). `TeacherStream` therefore keys
each epoch's outputs by those inputs plus the teacher's identity, keeps them in memory (the auto-tuning trials all
replay one stream) and, with a cache directory, on disk, one file per epoch, so that a resumed run, the QAT epochs
that replay the float run's first epochs, or a second student on the same data and seed do not run the teacher
again. Anything else (another seed, recipe, batch size or data) is a different key.
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

from edgedistill.data.augment import DRAWS
from edgedistill.teachers.cache import array_digest


@dataclass
class StreamStats:
    computed: int = 0  # batches the teacher ran on
    reused: int = 0  # batches served from memory or disk
    seconds: float = 0.0


class TeacherStream:
    def __init__(self, members_fn: Callable[[torch.Tensor], torch.Tensor], identity: str,
                 cache_dir: Path | None = None):
        """members_fn: raw batch (B×...) -> member logits (M×B×K). identity: changes with the teachers."""
        self._fn = members_fn
        self.identity = identity
        self.cache_dir = cache_dir
        self._memo: dict[tuple[str, int], dict[int, torch.Tensor]] = {}
        self._digests: dict[int, tuple[torch.Tensor, str]] = {}
        self.stats = StreamStats()

    def stream_key(self, x: torch.Tensor, seed: int, batch_size: int, augment) -> str:
        ref = self._digests.get(id(x))
        if ref is None or ref[0] is not x:
            ref = (x, array_digest(x.numpy()))
            self._digests[id(x)] = ref
        blob = f"{self.identity}|{ref[1]}|{seed}|{batch_size}|{augment!r}|{DRAWS}"
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def members(self, key: str, epoch: int, step: int, steps: int, xb: torch.Tensor) -> torch.Tensor:
        slot = self._memo.get((key, epoch))
        if slot is None:
            slot = self._memo[(key, epoch)] = self._load(key, epoch, steps)
        out = slot.get(step)
        if out is not None and out.shape[1] == xb.shape[0]:
            self.stats.reused += 1
            return out
        t0 = time.perf_counter()
        out = self._fn(xb)
        self.stats.seconds += time.perf_counter() - t0
        self.stats.computed += 1
        slot[step] = out
        if len(slot) == steps:
            self._save(key, epoch, slot, steps)
        return out

    def _path(self, key: str, epoch: int) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"stream-{key}-e{epoch}.npy"

    def _load(self, key: str, epoch: int, steps: int) -> dict[int, torch.Tensor]:
        path = self._path(key, epoch)
        if path is None or not path.exists():
            return {}
        try:
            arr = np.load(path, allow_pickle=False)  # M × (sum of batch sizes) × K, steps in order
            bounds = np.load(path.with_suffix(".idx.npy"), allow_pickle=False)
        except (OSError, ValueError):
            return {}
        if len(bounds) != steps + 1:
            return {}
        t = torch.from_numpy(arr)
        return {i: t[:, bounds[i] : bounds[i + 1]] for i in range(steps)}

    def _save(self, key: str, epoch: int, slot: dict[int, torch.Tensor], steps: int) -> None:
        path = self._path(key, epoch)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        parts = [slot[i] for i in range(steps)]
        bounds = np.cumsum([0] + [p.shape[1] for p in parts])
        for target, arr in ((path.with_suffix(".idx.npy"), bounds), (path, torch.cat(parts, 1).numpy())):
            tmp = target.with_name(target.name + f".tmp{os.getpid()}.npy")
            np.save(tmp, arr)
            os.replace(tmp, target)
