"""A self-describing student checkpoint: weights (safetensors) + student.json (architecture, input, classes).

Everything needed to rebuild the module is plain data, so later stages (export, profile) load it without pickles.
A user's student is recorded by its factory spec (an absolute file path, or package.module:function) and keyword
arguments: rebuilding it imports that code again, so the file must still be there (the error says so if not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from edgedistill.data.splits import Normalizer
from edgedistill.data.tokenizers import StudentTokenizer, load_tokenizer
from edgedistill.errors import ConfigError, ModelLoadError
from edgedistill.students import StudentArch, build_student
from edgedistill.util import published_mode

WEIGHTS, META, TOKENIZER = "student.safetensors", "student.json", "tokenizer.json"


@dataclass(frozen=True)
class StudentCheckpoint:
    arch: StudentArch
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]
    normalizer: Normalizer
    tokenizer: StudentTokenizer | None = None  # text students: what turns a string into their input ids

    def build(self) -> nn.Module:
        vocab = None if self.tokenizer is None else self.tokenizer.vocab_size
        return build_student(self.arch, self.input_shape, self.num_classes, self.normalizer, vocab)


def save_weights(tensors: dict, path: Path) -> None:
    """`tensors` (name -> contiguous torch.Tensor) as a .safetensors file at `path`, with the usual file mode
    (safetensors writes 0600: edgedistill.util.published_mode)."""
    save_file(tensors, str(path))
    published_mode(path)


def save_student(directory: Path, model: nn.Module, ckpt: StudentCheckpoint, stem: str = "student") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{stem}.safetensors"
    # cloned: a tied table (the decoder's embedding is its output projection) is one tensor under two names,
    # which safetensors refuses to write; each name gets its own copy and loading ties them again
    save_weights({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, weights)
    meta = {
        "arch": ckpt.arch.to_dict(), "input_shape": list(ckpt.input_shape), "num_classes": ckpt.num_classes,
        "class_names": ckpt.class_names, "normalizer": ckpt.normalizer.to_dict(), "weights": weights.name,
    }
    if ckpt.tokenizer is not None:  # the tokenizer beside the model files: the device app's first step
        ckpt.tokenizer.save(directory / TOKENIZER)
        meta["tokenizer"] = TOKENIZER
    (directory / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return weights


def load_student(path: Path) -> tuple[nn.Module, StudentCheckpoint]:
    """Load from a build directory (student.json inside) or from a `<stem>.json` file."""
    meta_path = path / META if path.is_dir() else path
    if not meta_path.is_file():
        raise ModelLoadError(f"No student checkpoint at {path} (expected {META} beside the weights).")
    try:
        meta = json.loads(meta_path.read_text())
        tokenizer = load_tokenizer(meta_path.parent / meta["tokenizer"]) if meta.get("tokenizer") else None
        ckpt = StudentCheckpoint(StudentArch.from_dict(meta["arch"]), tuple(meta["input_shape"]),
                                 int(meta["num_classes"]), list(meta["class_names"]), Normalizer(**meta["normalizer"]),
                                 tokenizer)
        model = ckpt.build()
        model.load_state_dict(load_file(str(meta_path.parent / meta["weights"])))
    except ConfigError as exc:  # the user's factory is gone or changed since the student was trained
        raise ModelLoadError(f"Student checkpoint {meta_path} cannot be rebuilt: {exc}") from None
    except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
        raise ModelLoadError(f"Student checkpoint {meta_path} is damaged or incomplete: {exc}.") from None
    return model.eval(), ckpt
