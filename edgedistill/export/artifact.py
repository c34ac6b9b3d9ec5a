"""The record every exporter returns: where the file is, what it holds, and how a device feeds it."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgedistill.teachers.base import file_digest


@dataclass(frozen=True)
class TensorSpec:
    """How to feed / read a model tensor: float, or int8 with q = round(x / scale) + zero_point."""

    shape: list[int]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class Artifact:
    name: str
    format: str
    precision: str
    path: Path
    bytes: int
    sha256: str
    input: TensorSpec
    output: TensorSpec
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = self.path.name
        return d


def sample_input(model, input_shape: tuple[int, ...]):
    """A zero batch of one sample as `model` takes it: int32 token ids for a text student (one with an embedding
    table), else float32."""
    import torch

    ids = any(isinstance(m, torch.nn.Embedding) for m in model.modules()) or getattr(model, "index_input", False)
    return torch.zeros(1, *input_shape, dtype=torch.int32 if ids else torch.float32)


def finish(tmp: Path, final: Path) -> tuple[int, str]:
    """Move a fully written temporary file into place (never leaves a half-written artifact)."""
    os.replace(tmp, final)
    return final.stat().st_size, file_digest(final)
