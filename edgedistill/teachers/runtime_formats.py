"""Teachers run by an inference runtime: ONNX (onnxruntime) and TFLite (LiteRT interpreter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.errors import ModelLoadError
from edgedistill.optional import require
from edgedistill.teachers.base import Teacher, existing_file


class OnnxTeacher(Teacher):
    format = "onnx"

    def __init__(self, path: str | Path, name: str | None = None):
        p = existing_file(path, "ONNX file")
        ort = require("onnxruntime")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ModelLoadError(f"{p} is not a loadable ONNX model: {str(exc).splitlines()[0]}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        super().__init__(name or p.stem, [p])

    def _logits(self, x: np.ndarray) -> np.ndarray:
        if self.fixed_batch in (None, len(x)):
            return self.session.run(None, {self.input_name: x})[0]
        b = self.fixed_batch
        return np.concatenate([self.session.run(None, {self.input_name: x[i : i + b]})[0] for i in range(0, len(x), b)])


class TFLiteTeacher(Teacher):
    """Float or int8 .tflite; int8 inputs/outputs are (de)quantized with the file's own scale and zero point."""

    format = "tflite"

    def __init__(self, path: str | Path, name: str | None = None):
        p = existing_file(path, "TFLite file")
        interp_mod = require("ai_edge_litert.interpreter")
        try:
            self.interp = interp_mod.Interpreter(model_path=str(p), num_threads=2)
            self.interp.allocate_tensors()
        except Exception as exc:
            raise ModelLoadError(f"{p} is not a loadable TFLite model: {str(exc).splitlines()[0]}") from None
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        super().__init__(name or p.stem, [p])

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        want = [int(d) for d in self.inp["shape"]]
        if x.ndim == 4 and list(x.shape[1:]) != want[1:] and [*x.shape[2:], x.shape[1]] == want[1:]:
            x = x.transpose(0, 2, 3, 1)  # a channels-last (TensorFlow-made) model
        if list(x.shape[1:]) != want[1:]:
            raise ValueError(f"samples of shape {tuple(x.shape[1:])} do not fit the model input {tuple(want[1:])}")
        if self.inp["dtype"] in (np.int8, np.uint8):
            scale, zero = self.inp["quantization"]
            info = np.iinfo(self.inp["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(self.inp["dtype"])
        return np.ascontiguousarray(x)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != int(self.inp["shape"][0]):
            self.interp.resize_tensor_input(self.inp["index"], list(x.shape))
            self.interp.allocate_tensors()
            self.inp, self.out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        if self.out["dtype"] in (np.int8, np.uint8):
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.copy()

    def _logits(self, x: np.ndarray) -> np.ndarray:
        x = self._prepare(x)
        if int(self.inp["shape_signature"][0]) == -1:  # dynamic batch: one call
            return self._invoke(x)
        b = int(self.inp["shape_signature"][0])  # static batch (litert-torch exports): run slice by slice
        if len(x) % b:
            raise ValueError(f"the model's static batch size {b} does not divide the batch of {len(x)}")
        return np.concatenate([self._invoke(x[i : i + b]) for i in range(0, len(x), b)])
