"""Import optional heavy packages with one clear error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgedistill.errors import MissingDependencyError

# module -> (pip extra, what it is for)
_EXTRAS = {
    "onnx": ("onnx", "reading and writing ONNX models"),
    "onnxruntime": ("onnx", "running ONNX models"),
    "ai_edge_litert": ("tflite", "running TFLite models with the LiteRT interpreter"),
    "ai_edge_litert.interpreter": ("tflite", "running TFLite models with the LiteRT interpreter"),
    "litert_torch": ("tflite", "converting PyTorch models to TFLite"),
    "ai_edge_quantizer": ("tflite", "quantizing TFLite models to int8"),
    "tflite_micro": ("tflite", "running models in the TFLite Micro interpreter"),
    "transformers": ("text", "loading transformers teachers (save_pretrained folders)"),
    "tokenizers": ("text", "tokenizing text with a tokenizer.json"),
}


def require(module: str) -> ModuleType:
    """Import `module` or raise MissingDependencyError saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra, purpose = _EXTRAS.get(module, ("all", "this step"))
        raise MissingDependencyError(
            f"The optional package {module!r} is needed for {purpose} but is not installed ({exc}). "
            f"Install it with: pip install 'edgedistill[{extra}]'."
        ) from None
