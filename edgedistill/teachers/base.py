"""The teacher contract: `logits(batch) -> torch.Tensor (N, K)` over raw samples, plus what identifies it."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.errors import ModelLoadError


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (the teacher cache key and the build manifest use it)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def existing_file(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"{what} {p} does not exist.")
    if not p.is_file():
        raise ModelLoadError(f"{what} {p} is not a file.")
    return p


class Teacher(ABC):
    """A frozen model that maps a batch of samples to class logits. Adapters never train or modify the model."""

    format: str = "?"

    def __init__(self, name: str, files: list[Path]):
        self.name = name
        self.files = files

    @abstractmethod
    def _logits(self, x: np.ndarray) -> np.ndarray | torch.Tensor: ...

    def logits(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Logits (float32, N×K) for a float32 batch N×... of raw samples."""
        x = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch
        out = self._logits(np.ascontiguousarray(x, dtype=np.float32))
        out = torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out)
        return out.detach().float().reshape(out.shape[0], -1)

    def digests(self) -> list[str]:
        """sha256 of each of the teacher's files (computed once per teacher)."""
        if not hasattr(self, "_digests"):
            self._digests = [file_digest(f) for f in self.files]
        return self._digests

    def identity(self) -> str:
        """A string that changes whenever the teacher's files or loading recipe change (cache key part)."""
        return f"{self.format}|{self.recipe()}|{','.join(self.digests())}"

    def recipe(self) -> str:
        return ""

    def runtime(self) -> str:
        """What computes the logits (the module teacher may move to onnxruntime; see teachers/accelerate.py)."""
        return {"onnx": "onnxruntime", "tflite": "litert"}.get(self.format, "torch")

    def torch_module(self) -> nn.Module | None:
        """The underlying torch module when the format exposes one (for feature-based methods), else None."""
        return None

    def num_params(self) -> int | None:
        module = self.torch_module()
        return None if module is None else sum(p.numel() for p in module.parameters())


class TorchBackedTeacher(Teacher):
    """Shared forward pass for adapters whose model is a torch callable."""

    def __init__(self, name: str, files: list[Path], module: nn.Module):
        super().__init__(name, files)
        self.module = module
        if isinstance(module, nn.Module):
            try:
                module.eval()
            except NotImplementedError:
                pass  # torch.export modules are frozen in the mode they were exported in and refuse .eval()
            for p in module.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def _logits(self, x: np.ndarray) -> torch.Tensor:
        out = self.module(torch.from_numpy(x))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out

    def torch_module(self) -> nn.Module | None:
        return self.module if isinstance(self.module, nn.Module) else None
