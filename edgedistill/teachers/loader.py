"""Pick the adapter for a teacher spec. Formats register by name with a file-suffix test (no if/elif chain)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Callable

from edgedistill.errors import ModelLoadError
from edgedistill.registry import Registry
from edgedistill.teachers.base import Teacher
from edgedistill.teachers.runtime_formats import OnnxTeacher, TFLiteTeacher
from edgedistill.teachers.text_runtime import OnnxTextTeacher, TFLiteTextTeacher, takes_token_ids
from edgedistill.teachers.torch_formats import (
    ExportedProgramTeacher,
    StudentCheckpointTeacher,
    TorchModuleTeacher,
    TorchScriptTeacher,
    is_student_checkpoint,
    is_torchscript_archive,
)


@dataclass(frozen=True)
class TeacherSpec:
    """Where a teacher lives and how to load it. `format="auto"` decides by the file name (and zip contents)."""

    path: str
    format: str = "auto"
    factory: str | None = None
    factory_kwargs: dict = field(default_factory=dict)
    allow_pickle: bool = False
    output: str | None = None  # which output holds the class scores: a name or an index (--teacher-output)
    allow_remote_code: bool = False  # a transformers folder whose config needs code shipped with the model
    tokenizer: str | None = None  # tokenizer.json of a text teacher (--teacher-tokenizer), else the one beside it


@dataclass(frozen=True)
class Format:
    load: Callable[[TeacherSpec, Path], Teacher]
    matches: Callable[[Path], bool]


TEACHER_FORMATS: Registry[Format] = Registry("teacher format")
_WEIGHT_SUFFIXES = {".safetensors", ".pt", ".pth", ".bin", ".ckpt"}


def _torch(spec: TeacherSpec, p: Path) -> Teacher:
    if not spec.factory:
        raise ModelLoadError(
            f"{p} holds weights only; name the module that builds the network with a factory "
            "('package.module:function', --teacher-factory), or export the model as TorchScript, .pt2 or ONNX."
        )
    return TorchModuleTeacher(p, spec.factory, spec.factory_kwargs, spec.allow_pickle)


def _transformers(spec: TeacherSpec, p: Path) -> Teacher:
    from edgedistill.teachers.text_transformers import TransformersTeacher  # imports transformers lazily

    folder = p.parent if p.is_file() else p
    return TransformersTeacher(folder, spec.tokenizer, spec.allow_remote_code, spec.allow_pickle)


def is_transformers_folder(p: Path) -> bool:
    """A save_pretrained folder (or its config.json); a folder with student.json is an edgedistill build."""
    folder = p.parent if p.is_file() and p.name == "config.json" else p
    return folder.is_dir() and (folder / "config.json").is_file() and not (folder / "student.json").exists()


TEACHER_FORMATS.register("onnx", "ONNX model run by onnxruntime (.onnx)")(
    Format(lambda s, p: OnnxTeacher(p), lambda p: p.suffix == ".onnx" and not takes_token_ids(p)))
TEACHER_FORMATS.register("tflite", "TFLite model run by the LiteRT interpreter (.tflite)")(
    Format(lambda s, p: TFLiteTeacher(p), lambda p: p.suffix == ".tflite" and not takes_token_ids(p)))
TEACHER_FORMATS.register("transformers", "text: a transformers save_pretrained folder (config.json, *.safetensors, "
                         "tokenizer.json), a sequence classifier, loaded offline")(
    Format(_transformers, is_transformers_folder))
TEACHER_FORMATS.register("onnx-text", "text: ONNX model taking input_ids / attention_mask (as optimum exports), "
                         "with its tokenizer.json")(
    Format(lambda s, p: OnnxTextTeacher(p, s.tokenizer), lambda p: p.suffix == ".onnx" and takes_token_ids(p)))
TEACHER_FORMATS.register("tflite-text", "text: TFLite model taking int32 / int64 token ids, with its tokenizer.json")(
    Format(lambda s, p: TFLiteTextTeacher(p, s.tokenizer), lambda p: p.suffix == ".tflite" and takes_token_ids(p)))
TEACHER_FORMATS.register("exported", "torch.export ExportedProgram (.pt2)")(
    Format(lambda s, p: ExportedProgramTeacher(p), lambda p: p.suffix == ".pt2"))
TEACHER_FORMATS.register("torchscript", "TorchScript archive (torch.jit.save)")(
    Format(lambda s, p: TorchScriptTeacher(p), lambda p: p.suffix in {".pt", ".pth", ".jit", ".ts"}
           and is_torchscript_archive(p)))
TEACHER_FORMATS.register("edgedistill", "a student edgedistill trained: build directory or its student.json "
                         "(teacher-assistant chains)")(
    Format(lambda s, p: StudentCheckpointTeacher(p), is_student_checkpoint))
TEACHER_FORMATS.register("torch", "nn.Module factory + weights (.safetensors, or state dict with weights_only)")(
    Format(_torch, lambda p: p.suffix in _WEIGHT_SUFFIXES and not is_torchscript_archive(p)))

# Built-in teachers: name -> (factory, weights file in edgedistill/zoo, data set they were trained for); a factory of
# None marks a model folder in edgedistill/zoo that loads by its format (a transformers folder)
BUILTIN_TEACHERS = {
    "fashion-mnist": ("edgedistill.zoo.models:fashion_cnn", "fashion_cnn.safetensors", "builtin:fashion-mnist"),
    # a second member (seed 1, 15 epochs) for ensembles: --teacher builtin:fashion-mnist --teacher builtin:fashion-mnist-s1
    "fashion-mnist-s1": ("edgedistill.zoo.models:fashion_cnn", "fashion_cnn_s1.safetensors", "builtin:fashion-mnist"),
    "digits": ("edgedistill.zoo.models:digits_cnn", "digits_cnn.safetensors", "builtin:digits"),
    # a 0.8M-parameter BERT and its WordPiece tokenizer (84.75 % on the 14,000 test words), trained by
    # tools/train_text_teacher.py
    "langid": (None, "langid_bert", "builtin:langid"),
    # a 0.95M-parameter BERT of the same shape (vocabulary 3,000) on paragraphs of 8 libraries' docstrings (76.46 % on
    # the 2,400 test paragraphs), trained by tools/train_text_teacher.py --data docs
    "docs": (None, "docs_bert", "builtin:docs"),
    # a 1.26M-parameter GPT-2 (byte-level BPE, 2,048 tokens) on the training-side paragraphs of the same docstrings,
    # the causal-LM teacher for builtin:docs-lm, trained by tools/train_lm_teacher.py (log: zoo/docs_gpt2.json)
    "docs-lm": (None, "docs_gpt2", "builtin:docs-lm"),
}


# The input range each built-in image teacher was trained on: pixels scaled to [0, 1] (edgedistill/data/builtin.py:
# Fashion-MNIST's bytes / 255, sklearn digits' 0..16 / 16); each model normalises [0, 1] itself (zoo/models.py)
BUILTIN_INPUT_RANGES = {"fashion-mnist": (0.0, 1.0), "fashion-mnist-s1": (0.0, 1.0), "digits": (0.0, 1.0)}


def builtin_spec(name: str) -> TeacherSpec:
    if name not in BUILTIN_TEACHERS:
        raise ModelLoadError(f"Unknown built-in teacher {name!r}; known: {', '.join(sorted(BUILTIN_TEACHERS))}.")
    factory, weights, _ = BUILTIN_TEACHERS[name]
    path = resources.files("edgedistill.zoo") / weights
    if factory is None:
        return TeacherSpec(path=str(path))
    return TeacherSpec(path=str(path), format="torch", factory=factory)


def resolve_builtin(path: str) -> str:
    """`builtin:NAME` -> the path of that built-in teacher's file or folder in edgedistill/zoo; any other path as
    given. Raises ModelLoadError (naming the known ones) for an unknown NAME."""
    return builtin_spec(path.split(":", 1)[1]).path if path.startswith("builtin:") else path


def load_teacher(spec: TeacherSpec) -> Teacher:
    """Load one teacher, validating the file before anything else runs."""
    if spec.path.startswith("builtin:"):
        name = spec.path.split(":", 1)[1]
        teacher = load_teacher(replace(builtin_spec(name), output=spec.output))
        teacher.input_range = BUILTIN_INPUT_RANGES.get(name)
        return teacher
    p = Path(spec.path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"Teacher file {p} does not exist.")
    if spec.format != "auto":
        fmt = TEACHER_FORMATS.get(spec.format)
    else:
        found = [e.obj for e in TEACHER_FORMATS if e.obj.matches(p)]  # matchers are mutually exclusive
        if not found:
            raise ModelLoadError(
                f"Cannot tell the format of teacher {p}. Supported: .onnx, .tflite, .pt2, TorchScript "
                "(.pt/.pth), weights (.safetensors/.pt with a factory), an edgedistill build directory (student.json "
                "inside), a transformers folder (config.json inside); or set the format explicitly."
            )
        fmt = found[0]
    teacher = fmt.load(spec, p)
    if spec.tokenizer and not teacher.is_text:
        raise ModelLoadError(f"A tokenizer ({spec.tokenizer}) was given, but teacher {p} takes float samples, not "
                             "token ids; --teacher-tokenizer only applies to text teachers.")
    teacher.requested_output = spec.output
    return teacher
