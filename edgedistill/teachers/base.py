"""The teacher contract: `logits(batch) -> torch.Tensor (N, K)` over raw samples, plus what identifies it."""

from __future__ import annotations

import hashlib
from abc import ABC
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.errors import ModelLoadError
from edgedistill.teachers.contract import OutputContract, OutputInfo, input_layout, resolve_contract, to_logits

_DEFAULT_KEY = OutputContract().key()  # identities of plain logits teachers stay as they were (cached logits hold)


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
    """A frozen model that maps a batch of samples to class logits. Adapters never train or modify the model.

    Adapters implement `_outputs` (every raw output, float, dequantized) or, for one output, `_logits`. The output
    contract (edgedistill.teachers.contract) says which output holds the class scores, whether they are
    probabilities (turned into log-probabilities) and the input layout; `bind` settles it once the number of
    classes is known. Unbound, a teacher reads its first output, as logits unless its graph ends in a softmax."""

    format: str = "?"
    requested_output: str | int | None = None
    is_text: bool = False  # text teachers (teachers/text.py) take a sequence of strings instead of an array batch
    # (low, high) of the inputs the model was trained on, where known (the built-in image teachers: [0, 1]); None
    # when unknown. pipeline/checks.input_range_warning compares the data with it
    input_range: tuple[float, float] | None = None

    def __init__(self, name: str, files: list[Path]):
        self.name = name
        self.files = files
        infos = self.output_infos()
        first = infos[0] if infos else None
        self.contract = OutputContract(
            0, first.name if first else "output",
            "probabilities" if first is not None and first.final_op else "logits",
            f"graph: ends in {first.final_op}" if first is not None and first.final_op else "default",
            "as-is", tuple(infos))

    def _logits(self, x: np.ndarray) -> np.ndarray | torch.Tensor:
        return self._outputs(x)[0]

    def _outputs(self, x: np.ndarray) -> list[np.ndarray | torch.Tensor]:
        """Every raw output for a batch (float32; quantized outputs dequantized), in the model's order."""
        return [self._logits(x)]

    def output_infos(self) -> list[OutputInfo]:
        """The model's declared outputs; empty when the format does not declare them (found on the first run)."""
        return []

    def input_shape(self) -> tuple[int | None, ...] | None:
        """The declared input shape (None for dynamic dimensions), or None when the format does not declare it."""
        return None

    def _feed(self, x: np.ndarray) -> np.ndarray:
        if self.contract.layout == "NHWC" and x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x, dtype=np.float32)

    def raw_outputs(self, batch: np.ndarray) -> list[np.ndarray]:
        outs = self._outputs(self._feed(np.asarray(batch, np.float32)))
        return [np.asarray(o.detach().cpu().numpy() if isinstance(o, torch.Tensor) else o) for o in outs]

    def bind(self, num_classes: int, sample: np.ndarray) -> OutputContract:
        """Settle the output contract on a few samples (as they will be fed): which output, logits or
        probabilities, layout. Raises DataError when the outputs are ambiguous (listing them)."""
        declared = self.input_shape()
        layout = input_layout(tuple(sample.shape[1:]), declared)
        self.contract = replace(self.contract, layout=layout)
        raw = self.raw_outputs(sample)
        infos = self.output_infos() or [OutputInfo(f"output{i}", (None, *o.shape[1:])) for i, o in enumerate(raw)]
        self.contract = resolve_contract(infos, raw, num_classes, self.requested_output, layout, repr(self.name))
        return self.contract

    def logits(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Logits (float32, N×K) for a float32 batch N×... of raw samples."""
        x = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch
        x = self._feed(np.asarray(x, np.float32))
        c = self.contract
        out = self._outputs(x)[c.index] if c.index or len(c.outputs) > 1 else self._logits(x)
        if c.kind == "probabilities":
            out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out
            step = c.outputs[c.index].quant_step if c.outputs else None
            out = to_logits(out, c, step)
        out = torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out)
        return out.detach().float().reshape(out.shape[0], -1)

    def digests(self) -> list[str]:
        """sha256 of each of the teacher's files (computed once per teacher)."""
        if not hasattr(self, "_digests"):
            self._digests = [file_digest(f) for f in self.files]
        return self._digests

    def identity(self) -> str:
        """A string that changes whenever the teacher's files or loading recipe change (cache key part)."""
        key = self.contract.key()
        return f"{self.format}|{self.recipe()}|{','.join(self.digests())}" + ("" if key == _DEFAULT_KEY else f"|{key}")

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
    def _outputs(self, x: np.ndarray) -> list[torch.Tensor]:
        return flatten_outputs(self.module(torch.from_numpy(x)))

    def _logits(self, x: np.ndarray) -> torch.Tensor:
        return self._outputs(x)[0]

    def torch_module(self) -> nn.Module | None:
        return self.module if isinstance(self.module, nn.Module) else None


def flatten_outputs(out) -> list[torch.Tensor]:
    """A module's outputs as a list: a tensor, a tuple / list of tensors, or a dict (in insertion order)."""
    if isinstance(out, dict):
        return [v for v in out.values() if isinstance(v, torch.Tensor)]
    if isinstance(out, (tuple, list)):
        return [v for v in out if isinstance(v, torch.Tensor)]
    return [out]
