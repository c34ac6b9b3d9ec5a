"""A teacher's output contract: which of its outputs holds the class scores, whether those are logits or
probabilities, and which input layout it takes.

Distillation needs logits z: the soft targets are softmax(z / T). A teacher that ends in a softmax hands back
p = softmax(z); read as logits, softmax(p / T) is nearly uniform at any T and the teacher teaches nothing. Since
log p = z - logsumexp(z) and softmax is shift-invariant, softmax(log p / T) = softmax(z / T): log-probabilities
are logits for every purpose here. Quantized (uint8 / int8) probabilities are dequantized first, and a zero is
clamped to half a quantization step before the log.

Detection, in order: the graph (a final Softmax / LOGISTIC op, seen through reshapes and (de)quantization), then
the data (every row non-negative and summing to 1 within the output's resolution).

Output choice: the one output, else `--teacher-output NAME|INDEX`, else the one output whose width equals the
number of classes; otherwise an error lists the outputs with their shapes.

Layout: a 4-D input declared N×H×W×C (TensorFlow-made models) while the data is N×C×H×W is fed the same samples
transposed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgedistill.errors import DataError

PROBABILITY_OPS = {"Softmax": "softmax", "SOFTMAX": "softmax", "LOGISTIC": "sigmoid", "Sigmoid": "sigmoid"}
# ops that only move, reshape or (de)quantize values: a softmax before them still ends the graph
PASS_THROUGH_OPS = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "QuantizeLinear",
                    "DequantizeLinear", "RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "CAST"}


@dataclass(frozen=True)
class OutputInfo:
    """One declared model output: name, shape (None for a dynamic dimension) and, for int8/uint8, the step."""

    name: str
    shape: tuple[int | None, ...]
    final_op: str | None = None  # "softmax" / "sigmoid" when the graph ends in one
    quant_step: float | None = None

    @property
    def width(self) -> int | None:
        dims = self.shape[1:]
        return None if any(d is None for d in dims) else int(np.prod(dims)) if dims else 1

    def describe(self) -> str:
        dims = "×".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name!r} ({dims})"


@dataclass(frozen=True)
class OutputContract:
    """How a teacher's raw outputs become logits (recorded as the teacher's `output` in metrics.json)."""

    index: int = 0
    name: str = "output"
    kind: str = "logits"  # "logits" | "probabilities"
    detected_by: str = "default"
    layout: str = "as-is"  # "as-is" | "NHWC"
    outputs: tuple[OutputInfo, ...] = field(default_factory=tuple)

    def key(self) -> str:
        return f"out={self.index}|{self.kind}|{self.layout}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["outputs"] = [{"name": o.name, "shape": list(o.shape)} for o in self.outputs]
        d["layout"] = {"as-is": "as the data (N×C×...)",
                       "NHWC": "channels-last: N×C×H×W samples fed as N×H×W×C"}[self.layout]
        return d


def choose_output(outputs: list[OutputInfo], num_classes: int, requested: str | int | None, who: str) -> int:
    """Index of the output holding the class scores. Raises DataError when the choice is ambiguous or wrong."""
    listing = "; ".join(f"[{i}] {o.describe()}" for i, o in enumerate(outputs))
    if requested is not None and str(requested) != "":
        req = str(requested)
        if req.lstrip("-").isdigit() and not any(o.name == req for o in outputs):
            i = int(req)
            if not -len(outputs) <= i < len(outputs):
                raise DataError(f"Teacher {who}: --teacher-output {req} is out of range; its outputs are {listing}.")
            return i % len(outputs)
        for i, o in enumerate(outputs):
            if o.name == req:
                return i
        raise DataError(f"Teacher {who} has no output named {req!r}; its outputs are {listing}.")
    if len(outputs) == 1:
        return 0
    fits = [i for i, o in enumerate(outputs) if o.width == num_classes]
    if len(fits) == 1:
        return fits[0]
    why = "none has" if not fits else f"{len(fits)} have"
    raise DataError(f"Teacher {who} has {len(outputs)} outputs and {why} one value per class ({num_classes}): "
                    f"{listing}. Name the one that holds the class scores with --teacher-output NAME|INDEX.")


def looks_like_probabilities(out: np.ndarray, step: float | None = None) -> bool:
    """Every row non-negative and summing to 1 (within K half-steps for quantized outputs, else 1e-3)."""
    rows = np.asarray(out, np.float64).reshape(len(out), -1)
    if rows.size == 0 or rows.shape[1] < 2:
        return False
    tol = max(1e-3, rows.shape[1] * step / 2) if step else 1e-3
    return bool((rows >= 0).all() and np.abs(rows.sum(axis=1) - 1.0).max() <= tol)


def _fits(shape: tuple, declared: tuple) -> bool:
    return len(shape) == len(declared) and all(d is None or d == s for s, d in zip(shape, declared))


def input_layout(sample_shape: tuple[int, ...], declared: tuple[int | None, ...] | None) -> str:
    """'NHWC' when the model declares N×H×W×C and the data's C×H×W samples only fit it transposed, else 'as-is'."""
    if declared is None or len(sample_shape) != 3 or len(declared) != 4:
        return "as-is"
    c, h, w = sample_shape
    if _fits(tuple(sample_shape), tuple(declared[1:])):
        return "as-is"
    return "NHWC" if _fits((h, w, c), tuple(declared[1:])) else "as-is"


def to_logits(out: np.ndarray, contract: OutputContract, step: float | None) -> np.ndarray:
    """log(p) for probabilities (zeros clamped to half a quantization step, or 1e-12), else `out` unchanged."""
    if contract.kind != "probabilities":
        return out
    floor = step / 2 if step else 1e-12
    return np.log(np.maximum(np.asarray(out, np.float64), floor)).astype(np.float32)


def resolve_contract(outputs: list[OutputInfo], raw: list[np.ndarray], num_classes: int,
                     requested: str | int | None, layout: str, who: str) -> OutputContract:
    """The contract for a teacher given its declared outputs and its raw outputs on a few samples."""
    i = choose_output(outputs, num_classes, requested, who)
    o = outputs[i]
    kind, by = "logits", "default"
    if o.final_op is not None:
        kind, by = "probabilities", f"graph: ends in {o.final_op}"
    elif looks_like_probabilities(raw[i], o.quant_step):
        kind, by = "probabilities", "data: non-negative rows summing to 1"
    return OutputContract(i, o.name, kind, by, layout, tuple(outputs))
