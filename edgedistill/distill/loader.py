"""Training batches through torch's DataLoader, with worker processes where they pay, and exactly resumable.

The sampler (`Order`, in the training process) yields keys (epoch, step, sample indices of the global batch); the
map-style dataset (`Batches`) turns a key into this rank's batch: its rows read (memory-mapped samples with pread,
edgedistill.data.mapped), made float32 (`model_input`) and augmented. Everything random in a batch is drawn from
`batch_generator(seed, epoch, step)`, so a batch is a pure function of its key: the same bytes whichever worker
builds it, with any number of workers, in a resumed run as in an uninterrupted one. Workers therefore hold no state
a checkpoint must keep: the sampler's position (the data-order generator's state at the epoch's start and the steps
done, distill/resume.py) is the whole of it, and the keys a killed run had prefetched are simply drawn again.

Under torch.distributed each rank builds only its slice of every global batch (`shard`), reading only those rows;
with mixup it also reads the partners its rows are mixed with (the permutation is the global batch's, the same on
every rank), so its rows equal the single-process batch's rows.

Workers are forked (where the platform has fork): they inherit the memory mappings and open files of the samples,
so nothing is copied; spawning would pickle the samples, and torch pickles a tensor by copying it into shared
memory, the whole data set in RAM.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from edgedistill.data.arrays import model_input
from edgedistill.data.augment import Augment, Mix, batch_generator
from edgedistill.data.mapped import gather, in_mapping, release_pages, tracking

RELEASE_EVERY = 16  # steps between two releases of memory-mapped pages (edgedistill.data.mapped)
PREFETCH = 2  # batches each worker builds ahead
MAPPED_WORKERS = 2  # the most workers "auto" gives memory-mapped samples


def rows_of(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[idx]; samples memory-mapped from a file are read with pread (edgedistill.data.mapped.gather): the same
    values and strides, without faulting the file's pages into the resident set. A table that is not a tensor (a
    top-k teacher cache, teachers/topk_table.py) reads its own rows."""
    if not isinstance(x, torch.Tensor):
        return x[idx]
    if tracking() and x.device.type == "cpu" and not x.requires_grad and in_mapping(arr := x.numpy()):
        return torch.from_numpy(gather(arr, idx.numpy()))
    return x[idx]


def is_memory_mapped(x: torch.Tensor) -> bool:
    """Whether the samples are read from a memory-mapped file (an x.npy folder, a spilled split)."""
    return tracking() and x.device.type == "cpu" and not x.requires_grad and in_mapping(x.numpy())


def spare_cores() -> int:
    """CPU cores this process may use that torch's training threads leave free, one kept for everything else."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, cores - torch.get_num_threads() - 1)


def default_workers(x: torch.Tensor) -> int:
    """`data.workers` "auto": 0 (batches built in the training process) for samples in memory, where indexing a
    batch costs microseconds and a worker only adds a copy through shared memory; for memory-mapped samples, whose
    reads, float32 conversion and augmentation can overlap the step, MAPPED_WORKERS on the cores the training
    threads leave free, none where there are none. Measured (docs/scale.md, tools/bench_workers.py) on a 2-core box
    shared with other jobs: building a batch of 128 uint8 3×32×32 images (pread, float32, shift, flip) took 5-7 ms;
    with 1 or 2 workers the steps waited as long for their batches as they took to build them in-process, and
    throughput did not rise: a worker only pays on a core of its own."""
    return min(MAPPED_WORKERS, spare_cores()) if is_memory_mapped(x) else 0


def workers_for(requested: int | str, x: torch.Tensor) -> int:
    """The worker count of `data.workers` (an int, or "auto": `default_workers`) for training samples x."""
    return default_workers(x) if requested == "auto" else int(requested)


@dataclass
class Batch:
    """One rank's share of the global batch at (epoch, step): `idx` the global batch's sample indices (B,), `x` this
    rank's rows (float32 or token ids, augmented), `y` the labels of the whole global batch (B,; mixup's soft labels
    need the partners'), `mix` what mixup did to the global batch, `read` the samples read to build it (this rank's
    rows, and with mixup their partners), `seconds` the time building it took."""

    epoch: int
    step: int
    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor | None
    mix: Mix | None
    read: int
    seconds: float


class Order(Sampler):
    """The keys of a run from optimizer step `start` to `total`: every epoch a permutation of the n samples drawn
    from `gen` (which must hold the state at the start of `start`'s epoch), cut into batches of `batch_size`, the
    last epoch cut short at `total`. Runs in the training process; records the generator's state at the start of
    every epoch it has drawn (`state_at`), which is what a checkpoint keeps, however far the workers prefetched."""

    def __init__(self, gen: torch.Generator, n: int, batch_size: int, per_epoch: int, start: int, total: int):
        self.gen, self.n, self.bs, self.per_epoch, self.start, self.total = gen, n, batch_size, per_epoch, start, total
        self._states: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self):
        done = self.start
        while done < self.total:
            epoch, first = divmod(done, self.per_epoch)
            self._states[epoch] = self.gen.get_state()
            self._states.pop(epoch - 3, None)  # the training loop is never more than an epoch behind the sampler
            order = torch.randperm(self.n, generator=self.gen)
            self._states[epoch + 1] = self.gen.get_state()
            for step in range(first, min(self.per_epoch, first + self.total - done)):
                yield epoch, step, order[step * self.bs : (step + 1) * self.bs]
                done += 1

    def state_at(self, epoch: int) -> torch.Tensor:
        """The data-order generator's state at the start of `epoch` (drawn already: the current or the next one)."""
        return self._states[epoch]


class Batches(Dataset):
    """Map-style: key (epoch, step, idx) -> Batch. `shard`: this rank's positions in every global batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None, augment: Augment, seed: int, shard: slice):
        self.x, self.y, self.augment, self.seed, self.shard = x, y, augment, seed, shard

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, key) -> Batch:
        epoch, step, idx = key
        t0 = time.perf_counter()
        aug = self.augment
        rows = torch.arange(len(idx))[self.shard].contiguous()
        mix, read = None, rows
        if not aug.enabled:
            x = model_input(rows_of(self.x, idx[rows]))
        elif aug.text_views:  # token views draw per batch, not per row: build the global batch, keep the rows
            x, mix = aug.apply(model_input(rows_of(self.x, idx)), batch_generator(self.seed, epoch, step))
            x, read = x[rows], idx
        else:
            drawn = aug.draw(len(idx), self.x.dim(), batch_generator(self.seed, epoch, step))
            mix = drawn.mix
            partners = mix.perm[rows] if mix is not None else None
            read = torch.unique(torch.cat([rows, partners])) if partners is not None else rows
            x = aug.apply_rows(model_input(rows_of(self.x, idx[read])), rows, drawn, partners)
        if step % RELEASE_EVERY == 0:
            release_pages()  # memory-mapped samples: pages random batches touched leave this process's resident set
        y = self.y[idx] if self.y is not None else None
        return Batch(epoch, step, idx, x, y, mix, len(read), time.perf_counter() - t0)


def _as_is(batch: Batch) -> Batch:
    return batch


def _worker_init(worker_id: int) -> None:
    np.random.seed(worker_id)  # nothing here draws from it; set so that no worker inherits the parent's stream


def loader(batches: Batches, order: Order, workers: int) -> DataLoader:
    """The DataLoader over `order`'s keys: batches in key order, built by `workers` forked processes (0: in this
    process). Its own generator keeps it from drawing the worker seed from torch's global generator, which a model
    (dropout) or a later stage may use: the global stream is the same with any number of workers."""
    kw: dict = {}
    if workers > 0:
        context = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        kw = {"num_workers": workers, "prefetch_factor": PREFETCH, "multiprocessing_context": context,
              "worker_init_fn": _worker_init}
    return DataLoader(batches, batch_size=None, sampler=order, collate_fn=_as_is,
                      generator=torch.Generator().manual_seed(0), **kw)
