"""Stage 7, measure: what the report shows and the gate judges. Each exported file and the teacher, batch 1, on
this machine's runtimes; the deployed int8 file's exact cost, target estimate and fit checks; and, when asked, the
same file on a device (whose outputs must reproduce this machine's)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.estimate import estimate_latency, fit_checks
from edgedistill.profile.measure import measure
from edgedistill.profile.ram import ram_figure
from edgedistill.targets import TargetProfile

RUNTIME = {"onnx": "onnxruntime", "tflite": "litert"}


def profile_artifacts(artifacts, threads: int, runs: int = 200) -> dict:
    out = {}
    for a in artifacts:
        m = measure(a.path, RUNTIME[a.format], threads=threads, runs=runs, min_seconds=0.5)
        out[a.name] = {"bytes": a.bytes, "latency_ms": m.median_ms, "p90_ms": m.p90_ms,
                       "where": f"measured-host ({m.runtime}, {threads} thread{'s' * (threads != 1)})"}
    return out


class _IdsToLogits(torch.nn.Module):
    """A transformers classifier as a text student is timed: int32 token ids in (every position a token), logits out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids.long(), attention_mask=torch.ones_like(ids)).logits


def _profile_text_teacher(teacher, input_shape, threads: int, runs: int, window: int | None = None) -> dict | None:
    """A transformers teacher converted to float TFLite at its own sequence length for the data (`window`: the 99th
    percentile of the training texts' counts in its tokens, as the student's is chosen; without one, the student's
    length, at most the teacher's own), timed by LiteRT as the student is; an ONNX / TFLite text teacher (several
    inputs) is sized but not timed."""
    model_files = [f for f in teacher.files if f.name != "tokenizer.json"]
    size = sum(f.stat().st_size for f in model_files)
    module = teacher.torch_module()
    if module is None:
        return {"bytes": size, "latency_ms": None, "where": "not timed (a text model with several inputs)"}
    from edgedistill.export.tflite_export import export_tflite_float

    length = int(window) if window else min(int(input_shape[0]), int(teacher.max_length))
    whose = "its own tokens for these texts" if window else "the student's length"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            art = export_tflite_float(_IdsToLogits(module).eval(), (length,), Path(tmp) / "teacher.tflite")
        except Exception:  # a teacher litert-torch cannot convert is reported without latency, not a failure
            return {"bytes": size, "latency_ms": None, "where": "not timed (litert-torch cannot convert it)"}
        m = measure(art.path, "litert", threads=threads, runs=runs, min_seconds=0.5)
    return {"bytes": size, "latency_ms": m.median_ms,
            "where": f"measured-host (litert, {threads} thread{'s' * (threads != 1)}, converted to float TFLite, "
                     f"{length} tokens: {whose})"}


def profile_teacher(teacher, input_shape, threads: int, runs: int = 100, window: int | None = None) -> dict | None:
    """The teacher's own file where it is ONNX / TFLite; a torch teacher is converted to float TFLite first
    (litert-torch) so that teacher and student are timed by the same runtime. `window`: a text teacher's sequence
    length for the data (_profile_text_teacher)."""
    if getattr(teacher, "is_text", False):
        return _profile_text_teacher(teacher, input_shape, threads, runs, window)
    fmt = teacher.format
    if fmt in RUNTIME:
        path = teacher.files[0]
        m = measure(path, RUNTIME[fmt], threads=threads, runs=runs, min_seconds=0.5)
        return {"bytes": path.stat().st_size, "latency_ms": m.median_ms,
                "where": f"measured-host ({m.runtime}, {threads} thread{'s' * (threads != 1)})"}
    module = teacher.torch_module()
    if module is None:
        return None
    from edgedistill.export.tflite_export import export_tflite_float

    with tempfile.TemporaryDirectory() as tmp:
        try:
            art = export_tflite_float(module, tuple(input_shape), Path(tmp) / "teacher.tflite")
        except Exception:  # a teacher litert-torch cannot convert is reported without latency, not a failure
            return None
        m = measure(art.path, "litert", threads=threads, runs=runs, min_seconds=0.5)
        return {"bytes": art.bytes, "latency_ms": m.median_ms,
                "where": f"measured-host (litert, {threads} thread{'s' * (threads != 1)}, converted to float TFLite)"}


def target_section(artifacts, target: TargetProfile, host_ms: float | None,
                   tokenizer_bytes: int | None = None) -> dict:
    """The deployed int8 TFLite file on `target`: its estimate, MACs, RAM figure and fit checks. Its flash check
    judges the file plus the tables the student's tokenizer reads on the device (`tokenizer_bytes`:
    StudentTokenizer.device_bytes(); None where there is no tokenizer), both recorded here."""
    art = next((a for a in artifacts if a.name == "tflite-int8"), None)
    if art is None:
        return {"name": target.name, "kind": target.kind, "runtime": target.runtime}
    cost = tflite_cost(art.path)
    est = estimate_latency(cost, target, "int8")
    from edgedistill.profile.run import tflite_facts
    from edgedistill.profile.tflm_arena import tflm_arena

    ops, floats, _ = tflite_facts(art.path)
    # the figures edgedistill.profile.ram describes: TFLite Micro's own arena, else the file's planned activations
    ram = tflm_arena(art.path).total_bytes if target.runtime == "tflm" else cost.peak_activation_bytes
    checks = fit_checks(cost, art.bytes, ram, ops, floats, target, tokenizer_bytes=tokenizer_bytes)
    return {"name": target.name, "kind": target.kind, "runtime": target.runtime, "estimate_ms": est.total_ms,
            "estimate_model": est.model,
            "estimate_error": (est.total_ms / host_ms - 1) if (target.kind == "host" and host_ms) else None,
            "per_op": est.per_op, "fit": [c.__dict__ for c in checks], "macs": cost.macs,
            "model_flash_bytes": target.model_flash_bytes,  # the model's default share of the flash (gate reads it)
            "file_bytes": art.bytes, "tokenizer_bytes": tokenizer_bytes,  # the flash check's two parts
            "ram_figure": ram_figure(target.runtime),
            "peak_activation_bytes": cost.peak_activation_bytes}


@dataclass(frozen=True)
class Measured:
    """`profiles`: artifact name (and "teacher") -> {bytes, latency_ms, where, ...}; `target`: the target section
    (estimate, fit checks, MACs, arena) of the deployed int8 TFLite file."""

    profiles: dict
    target: dict


def measure_build(artifacts, teachers, input_shape, target: TargetProfile, threads: int | None = None,
                  tokenizer_bytes: int | None = None, teacher_window: int | None = None) -> Measured:
    """Profile every artifact (and a lone teacher) on `threads` (the user's --threads) where given, else with the
    target's threads on a host target, else one thread; each profile's `where` names the count. `tokenizer_bytes`:
    the student tokenizer's device tables (None: not text), counted in the flash check beside the file."""
    threads = threads or (target.threads if target.kind == "host" else 1)
    profiles = profile_artifacts(artifacts, threads)
    if len(teachers) == 1:
        profiles["teacher"] = profile_teacher(teachers[0], input_shape, threads, window=teacher_window)
    host_ms = (profiles.get("tflite-int8") or {}).get("latency_ms")
    # the target's estimate is for its own thread count: a timing on another count is no ground truth for it
    return Measured(profiles, target_section(artifacts, target, host_ms if threads == target.threads else None,
                                             tokenizer_bytes))


def measure_device(url: str, model: Path, x: np.ndarray, threads: int, benchmark_flags: tuple[str, ...] = ()) -> dict:
    """The int8 TFLite file on the device at `url`, fed the real test samples `x`; the device must reproduce this
    machine's outputs. A device failure is a record with status "missing" (never zeros), not an exception.
    `benchmark_flags`: extra flags where the device runs TFLite's benchmark_model (device/runners.DeviceRequest)."""
    from edgedistill.device.collect import host_reference, measure_on_device

    ref, tolerance = host_reference(model, x)
    return measure_on_device(url, model, x, ref, threads, tolerance=tolerance, benchmark_flags=benchmark_flags)
