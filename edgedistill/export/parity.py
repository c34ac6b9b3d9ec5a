"""Parity: every exported file is run by its own runtime(s) on the test split and compared with the torch model it
came from (the float student for float files, the QAT student for int8 files)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from edgedistill.export.artifact import Artifact
from edgedistill.export.registry import EXPORTERS
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, OnnxRunner, TFLMRunner


@dataclass(frozen=True)
class ParityRow:
    artifact: str
    runtime: str
    samples: int
    accuracy: float
    reference_accuracy: float
    top1_agreement: float
    max_abs_logit_diff: float
    bytes: int
    checked: bool  # False: informational (e.g. a runtime's fused kernels), not part of the pass/fail verdict
    passed: bool
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# Runtimes run beside the required ones, reported but not part of the verdict: format -> why.
INFORMATIONAL = {
    "onnxruntime-fused": ("onnx", "onnxruntime's fused int8 kernels on this CPU (informational: int8 dot products "
                                  "can saturate on x86 without VNNI)"),
    "litert-reference": ("tflite", "LiteRT's reference kernels: TFLite Micro's int8 rounding on every test image "
                                   "(informational: XNNPACK rounds like the torch model, microcontrollers do not)"),
}


def _runner(runtime: str, art: Artifact):
    if runtime == "onnxruntime":
        # Q/DQ executed as written: the reference semantics of the file.
        return OnnxRunner(art.path, optimization="basic" if art.precision == "int8" else "all")
    if runtime == "onnxruntime-fused":
        return OnnxRunner(art.path, optimization="all")
    if runtime == "litert":
        return LiteRTRunner(art.path)
    if runtime == "litert-reference":
        return LiteRTReferenceRunner(art.path)
    if runtime == "tflm":
        return TFLMRunner(art.path)
    raise ValueError(runtime)


def parity_plan(artifacts: list[Artifact]) -> list[tuple[Artifact, str]]:
    """Every (file, runtime) pair to run: the exporter's runtimes, plus two informational ones: onnxruntime's fused
    kernels for int8 ONNX, and LiteRT's reference kernels (TFLite Micro's arithmetic on the whole test split, where
    the TFLite Micro row covers its first `tflm_max_samples`) for int8 TFLite."""
    plan = []
    for art in artifacts:
        runtimes = list(EXPORTERS.get(art.name).runtimes)
        if art.precision == "int8":
            runtimes += [rt for rt in INFORMATIONAL if INFORMATIONAL[rt][0] == art.format]
        plan += [(art, rt) for rt in runtimes]
    return plan


def check_parity(artifacts: list[Artifact], ref_float: np.ndarray, ref_int8: np.ndarray | None, x: np.ndarray,
                 y: np.ndarray, tolerance: float, tflm_max_samples: int = 1000, progress=None,
                 predictions: dict | None = None) -> list[ParityRow]:
    """ref_*: the torch reference logits on `x`. A row fails when its accuracy is more than `tolerance` points
    below its reference (the QAT student for int8 files, the float student for float files). `predictions`, when
    given, receives each row's predicted classes (N ints) under "artifact/runtime"."""
    rows = []
    for art, rt in parity_plan(artifacts):
        ref = ref_int8 if art.precision == "int8" else ref_float
        n = min(len(x), tflm_max_samples) if rt == "tflm" else len(x)
        out = _runner(rt, art).predict_batched(x[:n], batch=1024)
        acc = 100.0 * float((out.argmax(1) == y[:n]).mean())
        if predictions is not None:
            predictions[f"{art.name}/{rt}"] = out.argmax(1)
        ref_acc = 100.0 * float((ref[:n].argmax(1) == y[:n]).mean())
        checked = rt not in INFORMATIONAL
        note = "" if checked else INFORMATIONAL[rt][1]
        rows.append(ParityRow(
            artifact=art.name, runtime=rt, samples=n, accuracy=acc, reference_accuracy=ref_acc,
            top1_agreement=100.0 * float((out.argmax(1) == ref[:n].argmax(1)).mean()),
            max_abs_logit_diff=float(np.abs(out - ref[:n]).max()), bytes=art.bytes, checked=checked,
            passed=acc >= ref_acc - tolerance or not checked, note=note))
        if progress:
            progress(1)
    return rows
