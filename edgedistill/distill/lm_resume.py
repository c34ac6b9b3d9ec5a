"""Checkpoints of a causal-LM fit (distill/lm_trainer.fit_lm): written at every evaluation point, read back to resume
exactly after an interrupt, as distill/resume.py does for the classifiers.

A checkpoint holds the weights, optimizer and scheduler state, the steps done, the data order (the current
permutation, the position in it and the order generator's state), torch's global generator (dropout), the best
weights so far with their perplexity and step, the history and the seconds spent. It is written atomically and keyed
by a fingerprint of everything the fit depends on (settings, temperature, α, the windows, targets and teacher
top-k, the validation windows, the model's parameter shapes): a checkpoint of anything else is ignored and the fit
starts fresh. A finished fit's last checkpoint makes a resumed run skip it (the twin after the student, QAT after
both).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from edgedistill.distill.resume import load, save_atomic
from edgedistill.teachers.cache import array_digest

__all__ = ["lm_fingerprint", "load", "save_atomic"]


def lm_fingerprint(settings, temperature: float, alpha: float, tensors: list[torch.Tensor | None], model: nn.Module,
                   score_start: bool) -> str:
    """16 hex digits of sha256 over the settings, T, α, the content of `tensors` (windows, targets, teacher top-k,
    validation windows; None for an absent teacher), the model's parameter shapes, whether the start competes and,
    for a QAT graph, its arithmetic and exact-integer schedule."""
    content = [None if t is None else array_digest(t.detach().cpu().numpy()) for t in tensors]
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    parts = [asdict(settings), float(temperature), float(alpha), content, shapes, bool(score_start)]
    if hasattr(model, "arithmetic_schedule"):  # a QAT graph: the integers it computes, and on which steps
        parts.append(model.arithmetic_schedule())
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_path(directory: Path | None, name: str) -> Path | None:
    """`directory/name.pt`, or None when the run keeps no checkpoints."""
    return None if directory is None else Path(directory) / f"{name}.pt"
