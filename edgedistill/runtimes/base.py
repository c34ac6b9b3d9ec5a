"""One `predict(x) -> float logits` contract over every runtime that runs our artifacts.

Int8 models are fed and read exactly as a device app would: q = clip(round(x / scale) + zero_point) on the way in,
(q - zero_point) · scale on the way out, with the parameters stored in the file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgedistill.registry import Registry

RUNTIMES: Registry = Registry("runtime")


def quantize_input(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def integer_ids(x: np.ndarray, dtype) -> np.ndarray:
    """Token ids for an integer input tensor (int32 / int64), exactly (they may arrive as floats); ValueError for
    values that are not whole numbers."""
    ids = np.asarray(x)
    if not np.issubdtype(ids.dtype, np.integer):
        if not np.all(np.isfinite(ids)) or not np.all(ids == np.round(ids)):
            raise ValueError("token ids must be whole numbers")
    return ids.astype(dtype)


def dequantize_output(y: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (y.astype(np.float32) - zero_point) * np.float32(scale)


class Runner(ABC):
    """A loaded model file. `predict` takes raw float32 samples (N×...) and returns float32 logits (N×K)."""

    name = "?"
    # The integer arithmetic this runtime's int8 kernels compute (quantize/arithmetic.py), so a parity check can
    # compare an int8 file with the QAT model computing the same integers; "float": torch's fake quantization.
    arithmetic = "float"
    # Output quantization steps an int8 file's logits may lie from that reference (0 expected where the arithmetic
    # is modelled bit for bit; see export/parity.py).
    step_bound = 1.0

    def __init__(self, path: Path):
        self.path = Path(path)

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def call_on(self, x: np.ndarray) -> Callable[[], object]:
        """One model call on the single sample `x` (1×...), its input prepared once here: the returned function sets
        the input, invokes and reads the runtime's raw output (int8 logits stay int8), which is what an app's call
        costs and what profile/measure.py times. This default calls `predict` (Python-side conversions included)."""
        return lambda: self.predict(x)

    def predict_batched(self, x: np.ndarray, batch: int = 1024) -> np.ndarray:
        return np.concatenate([self.predict(x[i : i + batch]) for i in range(0, len(x), batch)])
