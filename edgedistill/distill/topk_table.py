"""A classifier's top-k teacher cache as the trainer reads it: N records of teachers/topk_store.py (memory-mapped
when read from the cache), decoded a batch at a time into the TopKLogits the top-k loss takes
(distill/lm_losses.top_k_kd, through distill/losses.TOPK_SOFT_LOSSES).

Rows of a memory-mapped table are read with pread (data/mapped.gather), as training samples are: a random batch
never faults the file's pages into the resident set. Indexing (`table[idx]`) returns the decoded batch, so a loop
that indexes dense teacher logits (`fixed[idx]`) indexes a table the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from edgedistill.data.mapped import gather, is_mapped, release_pages, track
from edgedistill.distill.lm_losses import TopKLogits
from edgedistill.errors import ConfigError
from edgedistill.teachers.topk_store import decode_topk

PIECE = 1 << 15  # records decoded at a time by whole-table passes


class TopKTable:
    """`records`: N structured records (topk_store.topk_dtype) holding one tail per temperature of
    `temperatures`. Read-only."""

    def __init__(self, records: np.ndarray, temperatures: tuple[float, ...]):
        if records["tail"].shape[1:] != (len(temperatures),):
            raise ValueError(f"records with {records['tail'].shape[1]} tails for temperatures {temperatures}")
        self.records = track(records) if is_mapped(records) else records
        self.temperatures = tuple(float(t) for t in temperatures)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def k(self) -> int:
        return int(self.records.dtype["shifted"].shape[0])

    def at(self, temperature: float) -> "TopKTable":
        """Self, after checking that the rest's mass was stored at `temperature`. Raises ConfigError otherwise."""
        if not any(abs(t - float(temperature)) < 1e-9 for t in self.temperatures):
            stored = ", ".join(f"{t:g}" for t in self.temperatures)
            raise ConfigError(
                f"The teacher cache keeps each sample's top {self.k} logits and the other classes' mass at T = "
                f"{stored} only, and this run asked for T = {float(temperature):g}: the other classes' mass at "
                "another temperature cannot be recovered from the top k. Use one of those temperatures, or give "
                f"--temperature {float(temperature):g} so the teacher pass stores it.")
        return self

    def __getitem__(self, idx) -> TopKLogits:
        """The decoded batch of rows `idx` (int64 indices): values float32 (B, k), indices int64 (B, k), tails
        float32 (B, temperatures)."""
        rows = gather(self.records, np.asarray(idx, dtype=np.int64).reshape(-1))
        values, indices, tails = decode_topk(rows, self.temperatures)
        return TopKLogits(torch.from_numpy(values), torch.from_numpy(indices), torch.from_numpy(tails),
                          self.temperatures)

    def subset(self, idx) -> "TopKTable":
        """The rows `idx`, in memory."""
        return TopKTable(gather(self.records, np.asarray(idx, dtype=np.int64).reshape(-1)), self.temperatures)

    def _pieces(self):
        for a in range(0, len(self.records), PIECE):
            yield self.records[a : a + PIECE]
            release_pages()

    def top1(self) -> torch.Tensor:
        """The teacher's predicted class per sample, int64 (N,): the first stored index (largest logit first)."""
        return torch.from_numpy(np.concatenate([p["indices"][:, 0].astype(np.int64) for p in self._pieces()]
                                               or [np.zeros(0, np.int64)]))

    def tail_mass(self) -> dict[str, float]:
        """The mean probability the teacher gives the classes outside its top k, at each stored temperature
        (keys "T=1" ...): the part of the soft target whose inner shape the top-k form does not keep."""
        sums = np.zeros(len(self.temperatures))
        for p in self._pieces():
            values, _, tails = decode_topk(p, self.temperatures)
            for i, t in enumerate(self.temperatures):
                v, tail = values.astype(np.float64) / t, tails[:, i].astype(np.float64)
                peak = np.maximum(v.max(1), tail)
                z = peak + np.log(np.exp(v - peak[:, None]).sum(1) + np.exp(tail - peak))
                sums[i] += float(np.exp(tail - z).sum())
        n = max(1, len(self.records))
        return {f"T={t:g}": float(s / n) for t, s in zip(self.temperatures, sums)}

    def nbytes(self) -> int:
        return int(self.records.nbytes)
