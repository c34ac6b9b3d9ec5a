"""TFLite Micro runner (PyPI `tflite-micro`): the microcontroller interpreter, one sample per invoke, with the
recording allocator's exact arena usage."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.errors import ModelLoadError
from edgedistill.optional import require
from edgedistill.runtimes.base import RUNTIMES, Runner, dequantize_output, integer_ids, quantize_input


@RUNTIMES.register("tflm", "TFLite Micro interpreter (tflite-micro), int8, batch 1 (.tflite)")
class TFLMRunner(Runner):
    name = "tflm"
    arithmetic = "tflm"

    def __init__(self, path: Path, arena_size: int | None = None):
        super().__init__(path)
        runtime = require("tflite_micro").python.tflite_micro.runtime
        try:
            self.interp = runtime.Interpreter.from_file(str(path), arena_size=arena_size)
        except Exception as exc:
            raise ModelLoadError(f"TFLite Micro cannot load {path}: {str(exc).splitlines()[0]}") from None
        self.inp = self.interp.get_input_details(0)
        self.out = self.interp.get_output_details(0)

    def _prepare(self, xi: np.ndarray) -> np.ndarray:
        """One sample (the input tensor's shape) as the input tensor's type."""
        if self.inp["dtype"] in (np.int8, np.uint8):
            qp = self.inp["quantization_parameters"]
            return quantize_input(xi, float(qp["scales"][0]), int(qp["zero_points"][0]), self.inp["dtype"])
        if self.inp["dtype"] in (np.int32, np.int64):  # token ids
            return integer_ids(xi, self.inp["dtype"])
        return xi

    def call_on(self, x: np.ndarray):
        x = np.asarray(x)
        x = x if np.issubdtype(x.dtype, np.integer) else np.asarray(x, np.float32)
        xi = self._prepare(x[:1].reshape([int(d) for d in self.inp["shape"]]))
        interp = self.interp

        def call():
            interp.set_input(xi, 0)
            interp.invoke()
            return interp.get_output(0)
        return call

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        x = x if np.issubdtype(x.dtype, np.integer) else np.asarray(x, np.float32)
        shape = [int(d) for d in self.inp["shape"]]
        out_shape = [int(d) for d in self.out["shape"]][1:] or [-1]  # K, or L×V for a causal LM, as LiteRT gives
        outs = []
        for i in range(len(x)):
            self.interp.set_input(self._prepare(x[i : i + 1].reshape(shape)), 0)
            self.interp.invoke()
            y = self.interp.get_output(0)
            if self.out["dtype"] in (np.int8, np.uint8):
                qp = self.out["quantization_parameters"]
                y = dequantize_output(y, float(qp["scales"][0]), int(qp["zero_points"][0]))
            outs.append(np.asarray(y, np.float32).reshape(1, *out_shape))
        return np.concatenate(outs)
