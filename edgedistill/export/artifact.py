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


def finish(tmp: Path, final: Path) -> tuple[int, str]:
    """Move a fully written temporary file into place (never leaves a half-written artifact)."""
    os.replace(tmp, final)
    return final.stat().st_size, file_digest(final)
