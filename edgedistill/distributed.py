"""torch.distributed, when edgedistill runs under `torchrun` (WORLD_SIZE > 1); plain single-process otherwise.

The rules the rest of the package follows:
* the global batch is the configured `batch_size`; each rank trains on its 1/world slice of every global batch,
  drawn from the same seeded order on every rank (a DistributedSampler with per-epoch seeding, without padding), so
  the optimisation sees the same batches and learning rate as one process — no learning-rate scaling is needed;
* gradients are averaged by DistributedDataParallel; BatchNorm statistics stay per rank (as in plain DDP);
* validation is sharded and the correct counts are summed, so every rank picks the same best epoch;
* rank 0 alone writes checkpoints, metrics, exports and reports; the others wait at a barrier and return.
gloo is used on CPU, nccl when CUDA is available.

Elastic restarts (`torchrun --max-restarts N`): a restarted run resumes from rank 0's last checkpoint, as any re-run
does. torchrun's restart count (TORCHELASTIC_RESTART_COUNT) is kept per node, not per job: the node whose process
failed counts the restart, the others restart for the membership change and keep their count. torch's default of
sharing the rendezvous store with the training processes relies on that count to keep the attempts' keys apart, so a
restarted attempt can read the previous one's addresses and fail to connect or hang (pytorch/pytorch#135712); launch
with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, which gives every attempt a store of its own (`restart_store_warning`).
"""

from __future__ import annotations

import datetime
import os
import sys

import torch
import torch.distributed as dist


def requested() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(timeout_s: float = 300.0) -> None:
    """Join the process group torchrun describes (no-op for a single process or when already joined)."""
    if not requested() or dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if os.environ.get("RANK") == "0" and (note := restart_store_warning()):
        print(f"warning: {note}", file=sys.stderr, flush=True)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


def restart_store_warning(env=os.environ) -> str | None:
    """One line when torchrun may restart this job (--max-restarts > 0) with the rendezvous store shared with the
    training processes, which breaks restarts on several nodes (module docstring); None otherwise."""
    if int(env.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0) <= 0 or env.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    return ("torchrun may restart this job (--max-restarts), but the rendezvous store is shared with the training "
            "processes, and a restarted attempt can then read the previous attempt's addresses and hang "
            "(pytorch/pytorch#135712); launch torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1.")


def restart_count() -> int:
    """torchrun's restart count as this process sees it (per node: module docstring); 0 outside torchrun."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def all_sum(value: torch.Tensor) -> torch.Tensor:
    if active():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def broadcast_object(obj):
    """rank 0's object on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj) -> list:
    if not active():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def my_share(items: list) -> list:
    """This rank's items (round-robin), e.g. batch indices of a sharded teacher pass."""
    return items[rank()::world()]


_FILTERED = False


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """DDP around the model; buffers (BatchNorm running statistics) stay per rank until `sync_buffers`.

    torch 2.13 deprecates `broadcast_buffers` (a FutureWarning) for `forward_sync_buffers`, which is used where the
    installed torch has it: it differs only in also copying rank 0's buffers at construction, and they are equal on
    every rank then (same seed or checkpoint; averaged at each epoch's end). The warnings filter is installed once:
    installing it on every call reset Python's once-per-location registry, so every later warning printed again."""
    if not active():
        return model
    import inspect
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    global _FILTERED
    if not _FILTERED:
        warnings.filterwarnings("ignore", message=".*Grad strides do not match bucket view strides.*")
        _FILTERED = True
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(model, forward_sync_buffers=False)
    return DistributedDataParallel(model, broadcast_buffers=False)


@torch.no_grad()
def sync_buffers(model: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running mean / variance) over the ranks, so every replica validates,
    checkpoints and exports the same model; the average of per-rank statistics approximates the global ones."""
    if not active():
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf /= world()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel) \
        else model


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
