"""The KV-cache decoder step of a causal-LM run (`--kv-cache`): exported beside the full-window files, checked
against them on every runtime, and timed.

Export: quantize/kv_step.py's step of the QAT graph, as student_int8_kv.tflite (LiteRT, TFLite Micro) and
student_int8_kv.onnx (onnxruntime), for the formats the run writes (export/kv_cache.py).

Parity (issue #29: "the KV-cache variant equals the full-window step"): each test window is fed through the cached
loop one token per invoke (runtimes/kv_loop.py) and its logits at every position are compared with (a) the
full-window int8 file's logits on the same runtime and (b) the QAT model computing that runtime's arithmetic;
a row passes when both agree on top-1 at ≥ 99.9 % of the positions and lie within the runtime's step bound
(export/parity.py: one output step on LiteRT and TFLite Micro, eight on onnxruntime's QDQ reference; measured 0 on
each). TFLite Micro runs the first `tflm_max_samples` windows, as for the window file. onnxruntime's fused kernels
are reported, not judged, as for the window file.

Speed: the step's median milliseconds on this host (one token; tokens/s = 1000 / ms) beside the window step's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.export.artifact import Artifact
from edgedistill.agreement import AGREEMENT, near_tie_agreement
from edgedistill.export.parity import INFORMATIONAL, _runner
from edgedistill.registry import Registry
from edgedistill.runtimes.kv_loop import KVStepRunner

KV_EXPORTERS: Registry = Registry("KV-cache exporter")


def _tflite(qmodel, path: Path) -> Artifact:
    from edgedistill.export.kv_cache import export_kv_tflite

    return export_kv_tflite(qmodel, path)


def _onnx(qmodel, path: Path) -> Artifact:
    from edgedistill.export.kv_cache import export_kv_onnx

    return export_kv_onnx(qmodel, path)


# format -> (writer, file name, the window file it equals, runtimes judged and informational)
KV_EXPORTERS.register("tflite", "int8 TFLite KV-cache step (LiteRT, its reference kernels, TFLite Micro)")(
    (_tflite, "student_int8_kv.tflite", "tflite-int8", ("litert", "litert-reference", "tflm")))
KV_EXPORTERS.register("onnx", "int8 ONNX (QDQ) KV-cache step (onnxruntime)")(
    (_onnx, "student_int8_kv.onnx", "onnx-int8", ("onnxruntime", "onnxruntime-fused")))


def export_kv(qmodel, formats, directory: Path) -> list[Artifact]:
    """The KV-cache step of `qmodel` in every format of `formats` that has one, into `directory`."""
    return [KV_EXPORTERS.get(f)[0](qmodel, directory / KV_EXPORTERS.get(f)[1]) for f in formats
            if f in KV_EXPORTERS]


def _steps(a: np.ndarray, b: np.ndarray, step: float, bound: float) -> tuple[float, float]:
    """(% of positions whose top-1 in `a` the other scores within the step bound of its best: near-ties count, as
    for the window files (export/parity.py), max |Δ| in output steps)."""
    return near_tie_agreement(a.argmax(-1), b, (bound + 1e-3) * step), float(np.abs(a - b).max()) / step


def kv_parity(kv_files: list[Artifact], window_files: list[Artifact], ref_int8, x: np.ndarray, step: float,
              tflm_max_samples: int, progress=None) -> list[dict]:
    """One row per (KV file, runtime): the cached loop's logits on the test windows `x` (N, L) against the window
    file on the same runtime and against `ref_int8(arithmetic, n)` (export/parity.int8_references); module doc.
    `step`: the logits' output quantization step."""
    rows = []
    windows = {a.name: a for a in window_files}
    for kv in kv_files:
        fmt = "tflite" if kv.format == "tflite" else "onnx"
        _, _, window_name, runtimes = KV_EXPORTERS.get(fmt)
        window = windows.get(window_name)
        for rt in runtimes:
            n = min(len(x), tflm_max_samples) if rt == "tflm" else len(x)
            loop = KVStepRunner(kv.path, rt, kv.extra).window_logits(x[:n])
            full = _runner(rt, window) if window is not None else None
            row = {"artifact": kv.name, "runtime": rt, "windows": n, "positions": int(n * x.shape[1]),
                   "bytes": kv.bytes, "checked": rt not in INFORMATIONAL}
            bound = _runner_bound(full)
            if full is not None:
                row["window_agreement"], row["window_max_steps"] = _steps(loop, full.predict(x[:n]), step, bound)
            ref = ref_int8(getattr(full, "arithmetic", "float"), n)
            row["qat_agreement"], row["qat_max_steps"] = _steps(loop, ref, step, bound)
            row["arithmetic"], row["step_bound"] = getattr(full, "arithmetic", "float"), bound
            agree = [row.get("window_agreement", 100.0), row["qat_agreement"]]
            worst = max(row.get("window_max_steps", 0.0), row["qat_max_steps"])
            row["passed"] = (min(agree) >= AGREEMENT and worst <= bound + 1e-3) or not row["checked"]
            if not row["checked"]:
                row["note"] = INFORMATIONAL[rt][1]
            rows.append(row)
            if progress:
                progress(1)
    return rows


def _runner_bound(runner) -> float:
    return float(getattr(runner, "step_bound", 1.0))


def kv_failure(row: dict) -> str:
    """A failed row in one sentence naming what failed: the cached loop against the full-window file on the same
    runtime, against the QAT model, or both (each with its top-1 agreement and output steps against the bounds);
    a comparison that held is given after it."""
    bound = row["step_bound"]
    ref = f"the QAT model computing {row.get('arithmetic', 'float')} arithmetic"
    found = [("the full-window file on the same runtime", row["window_agreement"], row["window_max_steps"])] \
        if "window_agreement" in row else []
    found.append((ref, row["qat_agreement"], row["qat_max_steps"]))
    failed = [f for f in found if f[1] < AGREEMENT or f[2] > bound + 1e-3]
    held = [f for f in found if f not in failed]
    text = (f"{row['artifact']} on {row['runtime']}: the KV-cache loop's logits differ from "
            f"{' and from '.join(_figures(*f) for f in failed)}; bounds: top-1 agreement {AGREEMENT}%, {bound:g} "
            "output steps")
    return text + "".join(f"; it matches {_figures(*f)}" for f in held)


def _figures(what: str, agreement: float, steps: float) -> str:
    return f"{what} (top-1 agreement {agreement:.2f}%, up to {steps:.1f} output steps)"


def kv_speed(kv_files: list[Artifact], threads: int, runs: int = 50, min_seconds: float = 0.3) -> list[dict]:
    """Host timing of each KV-cache step file on its judged runtime (LiteRT for .tflite, onnxruntime for .onnx)."""
    rows = []
    for kv in kv_files:
        rt = "litert" if kv.format == "tflite" else "onnxruntime-fused"
        median, p90, n = KVStepRunner(kv.path, rt, kv.extra, threads).time_step(runs, min_seconds)
        rows.append({"model": "student (int8, KV cache)", "file": kv.path.name,
                     "runtime": "litert" if kv.format == "tflite" else "onnxruntime", "threads": threads,
                     "runs": n, "median_ms": median, "p90_ms": p90, "tokens_per_s": 1000.0 / median})
    return rows
