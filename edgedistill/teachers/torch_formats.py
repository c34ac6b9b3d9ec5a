"""PyTorch teachers: a module factory plus weights (safetensors or a plain state dict), TorchScript, `.pt2`."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from edgedistill.errors import ModelLoadError
from edgedistill.teachers.accelerate import OrtRunner
from edgedistill.teachers.base import TorchBackedTeacher, existing_file
from edgedistill.user_code import import_factory  # shared with student factories (file.py:fn too)


def load_state_dict(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Weights from safetensors, or from torch.save'd tensors with `weights_only=True` (no arbitrary unpickling)."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"{path} is not a readable safetensors file: {exc}.") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path} contains pickled Python objects, not just tensors, and edgedistill refuses to unpickle "
            f"arbitrary code. Save the weights with safetensors or `torch.save(model.state_dict())`, or, if you "
            f"trust the file, set allow_pickle (--teacher-allow-pickle). Detail: {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, IndexError, KeyError, ValueError, TypeError,
            AttributeError) as exc:  # torch.load on arbitrary bytes raises any of these
        raise ModelLoadError(f"{path} is not a readable PyTorch weights file: {type(exc).__name__}: {exc}.") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path} does not hold a state dict (a mapping of parameter names to tensors).")
    return obj


class TorchModuleTeacher(TorchBackedTeacher):
    """`factory()` builds the module, the weights file fills it (strict: every key must match)."""

    format = "torch"

    def __init__(self, weights: str | Path, factory: str, factory_kwargs: dict | None = None,
                 allow_pickle: bool = False, name: str | None = None):
        path = existing_file(weights, "Teacher weights file")
        self.factory, self.factory_kwargs = factory, dict(factory_kwargs or {})
        try:
            module = import_factory(factory)(**self.factory_kwargs)
        except ModelLoadError:
            raise
        except Exception as exc:  # the user's factory failed: report it, do not crash with its traceback
            raise ModelLoadError(f"Model factory {factory!r} raised {type(exc).__name__}: {exc}.") from None
        state = load_state_dict(path, allow_pickle)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).split("\n")[:3]
            raise ModelLoadError(f"Weights in {path} do not fit the module built by {factory!r}: {' '.join(first)}") from None
        super().__init__(name or path.stem, [path], module)
        self.runner = OrtRunner(module)

    def _logits(self, x: np.ndarray):
        out = self.runner(x)
        return super()._logits(x) if out is None else out

    def runtime(self) -> str:
        """Where the logits are computed: 'onnxruntime' once proven equal to torch, else 'torch'."""
        return "onnxruntime" if self.runner.state == "onnxruntime" else "torch"

    def recipe(self) -> str:
        return f"{self.factory}|{sorted(self.factory_kwargs.items())}"


class TorchScriptTeacher(TorchBackedTeacher):
    format = "torchscript"

    def __init__(self, path: str | Path, name: str | None = None):
        p = existing_file(path, "TorchScript file")
        try:
            module = torch.jit.load(str(p), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError, ValueError or zip errors for corrupt archives
            raise ModelLoadError(f"{p} is not a loadable TorchScript archive: {str(exc).splitlines()[0]}") from None
        super().__init__(name or p.stem, [p], module)


class ExportedProgramTeacher(TorchBackedTeacher):
    format = "exported"

    def __init__(self, path: str | Path, name: str | None = None):
        p = existing_file(path, "ExportedProgram file")
        try:
            module = torch.export.load(str(p)).module()
        except Exception as exc:
            raise ModelLoadError(f"{p} is not a loadable torch.export program (.pt2): {str(exc).splitlines()[0]}") from None
        super().__init__(name or p.stem, [p], module)

    def torch_module(self):
        return None  # an unlifted graph module: parameters are not the user's named layers


class StudentCheckpointTeacher(TorchBackedTeacher):
    """A student edgedistill trained (a build directory, or its `<stem>.json`) teaching a smaller one: the
    teacher-assistant chain of Mirzadeh et al. 2020 (big teacher -> mid student -> small student)."""

    format = "edgedistill"

    def __init__(self, path: str | Path, name: str | None = None):
        from edgedistill.students.checkpoint import META, load_student  # students import nothing from teachers

        p = Path(path)
        meta = p / META if p.is_dir() else p
        module, _ = load_student(p)  # raises ModelLoadError for a missing or damaged checkpoint
        weights = meta.parent / json.loads(meta.read_text())["weights"]
        super().__init__(name or (p.name if p.is_dir() else meta.stem), [meta, weights], module)


def is_student_checkpoint(path: Path) -> bool:
    """A build directory with student.json, or a `<stem>.json` naming an architecture and weights."""
    meta = path / "student.json" if path.is_dir() else path
    if meta.suffix != ".json" or not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and {"arch", "weights"} <= doc.keys()


def is_torchscript_archive(path: Path) -> bool:
    """TorchScript zips hold a `code/` tree; plain torch.save archives do not."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
