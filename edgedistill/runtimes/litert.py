"""LiteRT (TFLite) interpreter runner, with XNNPACK as the default CPU delegate; float or int8 I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.errors import ModelLoadError
from edgedistill.optional import require
from edgedistill.runtimes.base import RUNTIMES, Runner, dequantize_output, integer_ids, quantize_input


@RUNTIMES.register("litert", "LiteRT interpreter (ai-edge-litert), XNNPACK delegate (.tflite)")
class LiteRTRunner(Runner):
    name = "litert"
    arithmetic = "xnnpack"

    reference_kernels = False

    def __init__(self, path: Path, threads: int | None = 2):
        super().__init__(path)
        interp_mod = require("ai_edge_litert.interpreter")
        kw = {"experimental_op_resolver_type": interp_mod.OpResolverType.BUILTIN_REF} if self.reference_kernels else {}
        try:
            self.interp = interp_mod.Interpreter(model_path=str(path), num_threads=threads, **kw)
            self.interp.allocate_tensors()
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a loadable TFLite model: {str(exc).splitlines()[0]}") from None
        self._details()

    def _details(self) -> None:
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        want = [int(d) for d in self.inp["shape"]]
        if x.ndim == 4 and list(x.shape[1:]) != want[1:] and [*x.shape[2:], x.shape[1]] == want[1:]:
            x = x.transpose(0, 2, 3, 1)  # a channels-last (TensorFlow-made) model
        if list(x.shape[1:]) != want[1:]:
            raise ValueError(f"samples of shape {tuple(x.shape[1:])} do not fit the model input {tuple(want[1:])}")
        if self.inp["dtype"] in (np.int8, np.uint8):
            scale, zero = self.inp["quantization"]
            x = quantize_input(x, scale, zero, self.inp["dtype"])
        elif self.inp["dtype"] in (np.int32, np.int64):  # token ids
            x = integer_ids(x, self.inp["dtype"])
        return np.ascontiguousarray(x)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != int(self.inp["shape"][0]):
            self.interp.resize_tensor_input(self.inp["index"], list(x.shape))
            self.interp.allocate_tensors()
            self._details()
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        if self.out["dtype"] in (np.int8, np.uint8):
            scale, zero = self.out["quantization"]
            return dequantize_output(y, scale, zero)
        return y.copy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        x = self._prepare(x if np.issubdtype(x.dtype, np.integer) else np.asarray(x, np.float32))
        if int(self.inp["shape_signature"][0]) == -1:  # dynamic batch: one call
            return self._invoke(x)
        b = int(self.inp["shape_signature"][0])  # static batch (litert-torch exports): slice by slice
        if len(x) % b:
            raise ValueError(f"the model's static batch size {b} does not divide the batch of {len(x)}")
        return np.concatenate([self._invoke(x[i : i + b]) for i in range(0, len(x), b)])

    def call_on(self, x: np.ndarray):
        x = np.asarray(x)
        x = self._prepare(x if np.issubdtype(x.dtype, np.integer) else np.asarray(x, np.float32))
        self._invoke(x)  # resizes a dynamic batch once
        interp, i, o = self.interp, self.inp["index"], self.out["index"]

        def call():
            interp.set_tensor(i, x)
            interp.invoke()
            return interp.get_tensor(o)
        return call

    def op_names(self) -> list[str]:
        """The model file's operators (XNNPACK's DELEGATE nodes, added at load time, are left out)."""
        return [op["op_name"] for op in self.interp._get_ops_details() if op["op_name"] != "DELEGATE"]


@RUNTIMES.register("litert-reference", "LiteRT's reference kernels, no XNNPACK: TFLite Micro's int8 arithmetic, fast "
                                       "enough for a whole test split (.tflite)")
class LiteRTReferenceRunner(LiteRTRunner):
    """TFLite's reference kernels round int8 requantization as TFLite Micro does, which XNNPACK (and torch's fake
    quantization) do not. Measured on Fashion-MNIST students: every tensor up to the classifier equals TFLite
    Micro's bit for bit, the logits at most one output step apart; so this runs a microcontroller's arithmetic
    on every test image in seconds, where the TFLite Micro interpreter takes one sample per invoke."""

    name = "litert-reference"
    arithmetic = "reference"
    reference_kernels = True
