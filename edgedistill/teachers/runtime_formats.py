"""Teachers run by an inference runtime: ONNX (onnxruntime) and TFLite (LiteRT interpreter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.runtimes import LiteRTRunner, OnnxRunner
from edgedistill.teachers.base import Teacher, existing_file


class OnnxTeacher(Teacher):
    format = "onnx"

    def __init__(self, path: str | Path, name: str | None = None):
        p = existing_file(path, "ONNX file")
        self.runner = OnnxRunner(p)
        super().__init__(name or p.stem, [p])

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self.runner.predict(x)


class TFLiteTeacher(Teacher):
    """Float or int8 .tflite; int8 inputs/outputs are (de)quantized with the file's own scale and zero point."""

    format = "tflite"

    def __init__(self, path: str | Path, name: str | None = None):
        p = existing_file(path, "TFLite file")
        self.runner = LiteRTRunner(p)
        super().__init__(name or p.stem, [p])

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self.runner.predict(x)
