"""Checkpoints of a training run: what fit() writes at every evaluation point and reads back to resume exactly.

A checkpoint holds the weights, optimizer and scheduler state, the optimizer steps done, the data-order generator's
state at the start of the epoch the next step falls in (the epoch's shuffle is drawn again from it, so a run stopped
mid-epoch resumes on the same order), the best weights so far and the history. That is the sampler's whole
position: each batch's augmentation is seeded by (seed, epoch, step) (data.augment.batch_generator) and DataLoader
workers keep no state (distill/loader.py), so the batches a killed run's workers had prefetched are built again,
identical, and a run may resume with another number of workers. It is written atomically (a temporary file renamed), so a crash while writing leaves the
previous checkpoint, and it is keyed by a fingerprint of everything the run depends on: a checkpoint of other data,
another teacher, another architecture or another budget is ignored (the run starts fresh).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from edgedistill.data.augment import DRAWS
from edgedistill.teachers.cache import array_digest


def fingerprint(settings, objective, data, model: nn.Module) -> str:
    """What a checkpoint was trained on and for: the settings (budget included; not the worker count, which changes
    no batch), the objective, the samples, labels and teacher outputs (content digests), the teacher stream's
    identity, how batches draw their augmentation (data.augment.DRAWS), the model's parameter shapes and, for a QAT
    graph, its arithmetic and exact-integer schedule (a changed quant.exact_share does not resume the other's run)."""
    obj = asdict(objective)
    if not obj["features"]:
        del obj["features"]
    arrays = [data.x, data.y, data.teacher_members]
    content = [None if a is None else array_digest(a.detach().cpu().numpy()) for a in arrays]
    if data.teacher_topk is not None:  # a top-k teacher cache: its records and the temperatures of its tails
        content.append([array_digest(data.teacher_topk.records), list(data.teacher_topk.temperatures)])
    stream = data.teacher_stream.identity if data.teacher_stream is not None else None
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    run = {k: v for k, v in asdict(settings).items() if k != "workers"}
    parts = [run, obj, len(data), content, stream, shapes, DRAWS]
    if hasattr(model, "arithmetic_schedule"):  # a QAT graph: the integers it computes, and on which steps
        parts.append(model.arithmetic_schedule())
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Position:
    """Where a resumed run picks up: optimizer steps done and the data-order generator's state at the start of the
    epoch the next step falls in."""

    step: int
    generator: torch.Tensor


def load(path: Path, key: str) -> dict | None:
    """The checkpoint at `path` when it was written by a run with fingerprint `key`; None for a missing, foreign or
    damaged one (a checkpoint cut short by a crash: start over rather than fail)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != key or "step" not in state:
        return None
    return state
