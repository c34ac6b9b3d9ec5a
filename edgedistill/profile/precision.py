"""What arithmetic a .tflite file asks for: full int8, float, or "hybrid" (dynamic-range) quantization.

A hybrid file (what `Optimize.DEFAULT` without a representative dataset, or ai-edge-quantizer's
dynamic_wi8_afp32 recipe, produce) stores int8 weights but computes on float activations: the kernels dequantize
the weights (or quantize the activations on the fly) at run time. TFLite Micro and int8-only accelerators do not
run such files (tensorflow/tensorflow#64223); the fix is full-integer quantization with a representative dataset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_INT = (np.int8, np.uint8, np.int16)


@dataclass(frozen=True)
class PrecisionFacts:
    """precision: 'int8' (every activation integer), 'hybrid' (int8 weights, float activations) or 'float32'.
    float_ops: operator name -> how many of them produce float activations."""

    precision: str
    float_ops: dict[str, int]
    int8_weight_ops: dict[str, int]

    def describe(self) -> str:
        ops = ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in sorted(self.float_ops.items()))
        if self.precision == "hybrid":
            return (f"hybrid (dynamic-range) model: int8 weights but float activations in {ops}; TFLite Micro and "
                    "int8-only accelerators run only full-integer models (tensorflow#64223); quantize it with a "
                    "representative dataset (full int8 input to output)")
        if self.precision == "float32":
            return f"float model: float activations in {ops}; the target runs only int8 kernels"
        return ""


def precision_facts(interp) -> PrecisionFacts:
    """Classify a loaded LiteRT interpreter's model by the dtypes around each operator. QUANTIZE / DEQUANTIZE
    converting activations are not float compute; a DEQUANTIZE of a constant int8 tensor (a weight) and an op
    that reads an int8 constant but writes float are the hybrid pattern. XNNPACK's DELEGATE nodes are left out."""
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    ops = [op for op in interp._get_ops_details() if op["op_name"] != "DELEGATE"]
    produced = {int(i) for op in ops for i in op["outputs"]} | {d["index"] for d in interp.get_input_details()}
    float_ops, int_weight_ops = Counter(), Counter()
    for op in ops:
        outs = [dtypes.get(int(i)) for i in op["outputs"] if int(i) >= 0]
        consts = [dtypes.get(int(i)) for i in op["inputs"] if int(i) >= 0 and int(i) not in produced]
        if not any(d == np.float32 for d in outs):
            continue
        if any(d in _INT for d in consts):
            int_weight_ops[op["op_name"]] += 1
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE"):
            float_ops[op["op_name"]] += 1
    if not float_ops:
        precision = "int8"
    elif int_weight_ops:
        precision = "hybrid"
    else:
        precision = "float32"
    return PrecisionFacts(precision, dict(float_ops), dict(int_weight_ops))


def tflite_precision(path: Path) -> PrecisionFacts:
    from edgedistill.runtimes import LiteRTRunner

    return precision_facts(LiteRTRunner(path, threads=1).interp)
