"""Parity: every exported file is run by its own runtime(s) on the test split and compared with the torch model it
came from: the float student for float files; for int8 files, the QAT model computing the same integer arithmetic as
that runtime's kernels (quantize/arithmetic.py: XNNPACK's for LiteRT, the reference kernels' for LiteRT's
BUILTIN_REF, TFLite Micro's, torch's fake quantization for onnxruntime's QDQ reference).

A row passes when the file's top-1 class agrees with its reference on at least `AGREEMENT` % of the samples and,
for an int8 file, every logit lies within the runtime's step bound of the reference, in output quantization steps
(the file's own output scale): `MAX_STEPS` (one) for LiteRT and TFLite Micro, whose integers the QAT model computes
bit for bit (measured: 0 steps on every family), eight for onnxruntime's QDQ reference, which computes each op in
float32 in another summation order than torch (runtimes/onnxrt.py: measured up to 5 steps on a deep transformer).
A float file's logits must lie within `FLOAT_TOLERANCE` of the reference, relative to the reference's largest logit.

For an int8 file "agrees" counts near-ties as the step bound allows (`top1_within_bound`): the file's top-1 agrees
when the reference scores it within the runtime's step bound of the reference's own best. Int8 logits are quantized,
so exact ties at the top are common where the outputs are many: on a causal LM's 1,909-token vocabulary 5.1 % of
the test positions had two tokens tied for the reference's maximum (decoder(96, 2), 41,344 positions), where the
first index wins the argmax and one step's difference flips it. There onnxruntime's QDQ row, 6 steps from its
reference, agreed on 99.67 % of positions exactly and every flipped choice was within 2 steps of the reference's
best. The exact top-1 agreement (`top1_agreement`) is reported beside it; on LiteRT and TFLite Micro, whose
integers the reference computes bit for bit, the two are the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from edgedistill.agreement import AGREEMENT, agreement_words, near_tie_agreement
from edgedistill.data.mapped import release_pages
from edgedistill.export.artifact import Artifact
from edgedistill.export.registry import EXPORTERS
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, OnnxRunner, TFLMRunner

MAX_STEPS = 1.0         # int8 files on LiteRT / TFLite Micro: output steps between the file's and the reference's
FLOAT_TOLERANCE = 1e-3  # float files: max |Δlogit| relative to the reference's largest |logit|


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
    arithmetic: str = "float"          # the reference's arithmetic (int8 files: the runtime's, see module doc)
    max_steps: float | None = None     # int8 files: max |Δlogit| in output quantization steps
    step_bound: float | None = None    # int8 files: the runtime's bound on max_steps
    top1_within_bound: float | None = None  # int8 files: % agreeing up to near-ties within the bound (judged)

    def to_dict(self) -> dict:
        return asdict(self)

    def failure(self) -> str:
        """Which file, on which runtime, by how much (for a row that did not pass)."""
        off = (f"logits up to {self.max_steps:.1f} output steps apart (bound {self.step_bound:g})"
               if self.max_steps is not None else f"logits up to {self.max_abs_logit_diff:.3g} apart")
        return (f"{self.artifact} on {self.runtime}: top-1 agreement {agreement_words(self.to_dict())} with the "
                f"trained model computing {self.arithmetic} arithmetic (bound {AGREEMENT}%), {off}; accuracy "
                f"{self.accuracy:.2f}% vs {self.reference_accuracy:.2f}%")


# Runtimes run beside the required ones, reported but not part of the verdict: format -> why.
INFORMATIONAL = {
    "onnxruntime-fused": ("onnx", "onnxruntime's fused int8 kernels on this CPU (informational: int8 dot products "
                                  "can saturate on x86 without VNNI)"),
}
# Extra runtimes for int8 files: LiteRT's reference kernels run TFLite Micro's arithmetic on the whole test split
# (the TFLite Micro row covers its first `tflm_max_samples`, one sample per invoke).
INT8_EXTRA = {"tflite": ("litert-reference",), "onnx": ("onnxruntime-fused",)}


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
    """Every (file, runtime) pair to run: the exporter's runtimes, plus LiteRT's reference kernels for int8 TFLite
    and onnxruntime's fused kernels (informational) for int8 ONNX."""
    plan = []
    for art in artifacts:
        runtimes = list(EXPORTERS.get(art.name).runtimes)
        if art.precision == "int8":
            runtimes += list(INT8_EXTRA.get(art.format, ()))
        plan += [(art, rt) for rt in runtimes]
    return plan


def _judge(out: np.ndarray, ref: np.ndarray, step: float | None,
           bound: float) -> tuple[float, float, float | None, float | None, bool]:
    """(exact agreement %, max |Δ|, max Δ in steps or None, agreement % up to near-ties within the bound or None,
    within bounds)."""
    pick = out.argmax(-1)
    agreement = 100.0 * float((pick == ref.argmax(-1)).mean())  # per sample, or per position (N×L×V)
    diff = float(np.abs(out - ref).max()) if out.size else 0.0
    if step is not None:
        steps = diff / step
        tied = near_tie_agreement(pick, ref, (bound + 1e-3) * step)
        return agreement, diff, steps, tied, tied >= AGREEMENT and steps <= bound + 1e-3
    scale = max(float(np.abs(ref).max()), 1.0)
    return agreement, diff, None, None, agreement >= AGREEMENT and diff <= FLOAT_TOLERANCE * scale


def tflm_missing_ops(art: Artifact) -> list[str]:
    """The operators of a TFLite file that TFLite Micro registers no kernel for (its stored operator set,
    targets/ops/tflm.json), e.g. GELU: the interpreter cannot load such a file."""
    from edgedistill.profile.opsets import runtime_ops
    from edgedistill.profile.run import tflite_facts

    have = runtime_ops("tflm")
    return [] if have is None else sorted(set(tflite_facts(art.path)[0]) - have)


def check_parity(artifacts: list[Artifact], ref_float: np.ndarray, ref_int8: Callable[[str, int], np.ndarray] | None,
                 x: np.ndarray, y: np.ndarray, step: float | None, tflm_max_samples: int = 1000, progress=None,
                 predictions: dict | None = None, skipped: list | None = None) -> list[ParityRow]:
    """Run every planned (file, runtime) pair on `x` (N×...) and judge it against its torch reference: `ref_float`
    (N×K logits of the float student) for float files, `ref_int8(arithmetic, n)` (n×K logits of the QAT model
    computing that arithmetic) for int8 files, whose output quantization step is `step`. `predictions`, when
    given, receives each row's predicted classes (N ints) under "artifact/runtime". A causal LM's logits are
    N×L×V and its `y` the next tokens N×L: agreement and accuracy then count positions (the argmax is over the
    last axis either way). A file TFLite Micro cannot load (tflm_missing_ops: a GELU student for a LiteRT target)
    gets no TFLite Micro row; `skipped`, when given, receives a sentence saying so (a microcontroller target never
    gets such a file: its build substitutes the op, pipeline/inputs.fit_student_to_target)."""
    rows = []
    for art, rt in parity_plan(artifacts):
        if rt == "tflm" and (missing := tflm_missing_ops(art)):
            if skipped is not None:
                skipped.append(f"{art.path.name} was not run on TFLite Micro: it has no kernel for "
                               f"{', '.join(missing)}. The file runs on LiteRT; for a microcontroller, build for its "
                               "target (e.g. --target cortex-m4), which trains the documented substitute.")
            if progress:
                progress(1)
            continue
        runner = _runner(rt, art)
        int8 = art.precision == "int8"
        arithmetic = runner.arithmetic if int8 else "float"
        n = min(len(x), tflm_max_samples) if rt == "tflm" else len(x)
        ref = ref_int8(arithmetic, n) if int8 else ref_float
        out = runner.predict_batched(x[:n], batch=1024)
        release_pages()  # a memory-mapped test split: the pages this runtime read leave the resident set
        if predictions is not None:
            predictions[f"{art.name}/{rt}"] = out.argmax(-1)
        agreement, diff, steps, tied, within = _judge(out, ref[:n], step if int8 else None, runner.step_bound)
        checked = rt not in INFORMATIONAL
        rows.append(ParityRow(
            artifact=art.name, runtime=rt, samples=n, accuracy=100.0 * float((out.argmax(-1) == y[:n]).mean()),
            reference_accuracy=100.0 * float((ref[:n].argmax(-1) == y[:n]).mean()), top1_agreement=agreement,
            max_abs_logit_diff=diff, bytes=art.bytes, checked=checked, passed=within or not checked,
            note=INFORMATIONAL[rt][1] if not checked else "", arithmetic=arithmetic, max_steps=steps,
            step_bound=runner.step_bound if int8 else None, top1_within_bound=tied))
        if progress:
            progress(1)
    return rows


def int8_references(model, x: np.ndarray, predict,
                    known: dict[str, np.ndarray] | None = None) -> Callable[[str, int | None], np.ndarray]:
    """`(arithmetic, n) -> n×K logits` of the QAT `model` (a QuantGraph) on `x[:n]` (n None: all of `x`), computed
    once per arithmetic with `predict(model, x)` and only on the samples asked for (TFLite Micro's row runs on a
    prefix); the model's own rounding is restored after each. `known`: logits on all of `x` already computed, by
    arithmetic (the QAT evaluation's, in the model's trained arithmetic), reused instead of recomputed."""
    cache: dict[str, np.ndarray] = dict(known or {})

    def reference(arithmetic: str, n: int | None = None) -> np.ndarray:
        n = len(x) if n is None else min(int(n), len(x))
        if arithmetic not in cache or len(cache[arithmetic]) < n:
            trained = model.rounding
            model.set_rounding(arithmetic)
            try:
                cache[arithmetic] = predict(model, torch.from_numpy(np.ascontiguousarray(x[:n]))).numpy()
            finally:
                model.set_rounding(trained)
        return cache[arithmetic][:n]

    return reference
