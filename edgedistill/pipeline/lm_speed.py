"""Stage 7 for a causal LM, measure: tokens per second of the int8 files and of the teacher, on this host and
estimated per target.

One generated token costs one fixed-window decoder step (batch 1: L int32 ids -> L×V logits; the README's greedy
loop runs the whole window once per token and reads the logits at the last real position), so tokens/s = 1000 /
the step's median milliseconds. On this host each int8 file is timed on its own runtime (student_int8.tflite on
LiteRT, student_int8.onnx on onnxruntime), the float student's files beside them (`int8_over_float`: what int8
itself buys there, the same network), and the teacher in float32 on the same runtimes: exported with torch.onnx
for onnxruntime and converted with litert-torch for LiteRT, at the same window and batch, so each ratio compares one
runtime with itself. Where the teacher cannot be put on a runtime (litert-torch cannot convert every transformers
model) that runtime's ratio is not given, and `not_timed` says why: no ratio is ever formed across two runtimes.
Timing: profile/measure.py (warm-up runs, then batch-1 runs until both a count and a duration are reached; the
median). With --kv-cache the KV-cache step (pipeline/lm_kv.py) is timed the same way on the same runtimes and
threads, and `kv_cache.speedup` gives its tokens/s over the window step's per runtime. Per target: profile/estimate.py's roofline estimate of the int8 TFLite file's step on every target profile,
and the run's target section (fit checks, arena) as the classifier builds give it.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.pipeline.measure import RUNTIME, target_section
from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.estimate import estimate_latency, fit_checks
from edgedistill.profile.measure import measure
from edgedistill.profile.ram import ram_figure
from edgedistill.targets import TargetProfile, load_profile_file, profile_files

STEP = ("one fixed-window decoder step at batch 1 (L int32 ids -> L×V logits), which the README's greedy loop runs "
        "once per generated token")
KV_STEP = ("one KV-cache decoder step at batch 1 (one int32 id and its position, the int8 key / value caches in and "
           "out -> 1×V logits), fed and read from Python as an app does")


@dataclass(frozen=True)
class StepTiming:
    """One model file timed on one runtime: the median (and p90) milliseconds of a decoder step over `runs` timed
    steps after warm-up, and tokens_per_s = 1000 / median_ms."""

    model: str  # "student (int8)", "student (float32)" or "teacher (float32)"
    file: str
    runtime: str
    threads: int
    runs: int
    median_ms: float
    p90_ms: float

    @property
    def tokens_per_s(self) -> float:
        return 1000.0 / self.median_ms

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


class TeacherStep(nn.Module):
    """A transformers causal LM as one decoder step: int32 ids (N, L) -> float32 logits (N, L, V), no key/value cache
    (the step recomputes the window, as the student's file does). The all-ones attention mask keeps transformers'
    packed-sequence check (torch.diff, which the ONNX exporter lacks) out of the traced graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        return self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits


def _time(model: str, path: Path, runtime: str, threads: int, runs: int, min_seconds: float) -> StepTiming:
    m = measure(path, runtime, threads=threads, runs=runs, min_seconds=min_seconds, per_op=False)
    return StepTiming(model, path.name, runtime, threads, m.runs, m.median_ms, m.p90_ms)


def teacher_files(module: nn.Module, context: int, directory: Path) -> tuple[dict, dict]:
    """The teacher as float32 files for the runtimes: {runtime: path} and {runtime: why not} for those it could not
    be put on. ONNX by torch.onnx (TorchScript exporter, opset 17); TFLite by litert-torch."""
    from edgedistill.export.onnx_export import export_onnx_float
    from edgedistill.export.tflite_export import export_tflite_float

    step = TeacherStep(module).eval()
    files, missing = {}, {}
    for runtime, export, name in (("onnxruntime", export_onnx_float, "teacher.onnx"),
                                  ("litert", export_tflite_float, "teacher.tflite")):
        try:
            files[runtime] = export(step, (context,), directory / name).path
        except Exception as exc:  # a teacher a converter cannot handle is reported untimed there, not a failure
            missing[runtime] = f"the teacher could not be converted for {runtime} ({type(exc).__name__})"
    return files, missing


def host_speed(artifacts, teacher_module: nn.Module | None, context: int, threads: int, runs: int = 50,
               min_seconds: float = 0.3) -> dict:
    """Tokens/s on this host of every int8 file in `artifacts` (export.artifact.Artifact) and of the teacher in
    float32 on the same runtimes, with the student / teacher ratio per runtime (module doc)."""
    rows = [_time("student (int8)", a.path, RUNTIME[a.format], threads, runs, min_seconds)
            for a in artifacts if a.precision == "int8"]
    student = {r.runtime: r for r in rows}
    floats = [_time("student (float32)", a.path, RUNTIME[a.format], threads, runs, min_seconds)
              for a in artifacts if a.precision != "int8" and RUNTIME.get(a.format) in student]
    rows += floats
    not_timed = {}
    if teacher_module is not None:
        with tempfile.TemporaryDirectory() as tmp:
            files, not_timed = teacher_files(teacher_module, context, Path(tmp))
            rows += [_time("teacher (float32)", path, runtime, threads, runs, min_seconds)
                     for runtime, path in files.items() if runtime in student]
    else:
        not_timed = {r: "no teacher module to export" for r in student}
    teacher = {r.runtime: r for r in rows if r.model.startswith("teacher")}
    ratio = {rt: {"student_tokens_per_s": s.tokens_per_s, "teacher_tokens_per_s": teacher[rt].tokens_per_s,
                  "ratio": s.tokens_per_s / teacher[rt].tokens_per_s} for rt, s in student.items() if rt in teacher}
    return {"step": STEP, "context": context, "threads": threads, "host": [r.to_dict() for r in rows],
            "ratio": ratio, "int8_over_float": int8_over_float(student, {r.runtime: r for r in floats}),
            "not_timed": {rt: why for rt, why in not_timed.items() if rt in student}}


def int8_over_float(int8: dict, float32: dict) -> dict:
    """{runtime: int8 student tokens/s ÷ float32 student tokens/s}: what int8 itself buys on that runtime, the
    same network in both files. Against the teacher the ratio is this times what the smaller network buys (about
    the parameter ratio, the MACs per token); below 1, the int8 file is slower than the float one there (at a
    few hundred thousand parameters LiteRT's XNNPACK runs the int8 attention's SOFTMAX, LayerNorm's RSQRT and a
    nonzero-zero-point BATCH_MATMUL outside its partitions, and onnxruntime spent half the step in unfused Q/DQ nodes before the
    int8 ONNX file's fused layout: measured on this project's benchmark, docs/lm.md)."""
    return {rt: int8[rt].tokens_per_s / float32[rt].tokens_per_s for rt in int8 if rt in float32}


def target_speeds(tflite_int8: Path) -> dict:
    """The int8 TFLite file's step estimated on every target profile: {name: {estimate_ms, tokens_per_s, runtime,
    kind}} (targets without int8 throughput figures are left out)."""
    cost = tflite_cost(tflite_int8)
    out = {}
    for name, path in sorted(profile_files().items()):
        t = load_profile_file(path)
        if t.peak_int8_macs_per_s:
            ms = estimate_latency(cost, t, "int8").total_ms
            out[name] = {"estimate_ms": ms, "tokens_per_s": 1000.0 / ms, "runtime": t.runtime, "kind": t.kind}
    return out


def kv_speed_section(kv_files, host: list[dict], threads: int, runs: int) -> dict:
    """metrics.json's speed.kv_cache: the KV-cache step's host timing per runtime (pipeline/lm_kv.kv_speed), its
    tokens/s over the window step's on the same runtime ({runtime: {window_tokens_per_s, kv_tokens_per_s,
    speedup}}), and its TFLite file's estimate on every target (target_speeds)."""
    from edgedistill.pipeline.lm_kv import kv_speed

    rows = kv_speed(kv_files, threads, runs)
    window = {r["runtime"]: r for r in host if r["model"] == "student (int8)"}
    tflite = next((a for a in kv_files if a.format == "tflite"), None)
    return {"step": KV_STEP, "host": rows, "targets": target_speeds(tflite.path) if tflite else {},
            "speedup": {r["runtime"]: {"window_tokens_per_s": window[r["runtime"]]["tokens_per_s"],
                                       "kv_tokens_per_s": r["tokens_per_s"],
                                       "speedup": r["tokens_per_s"] / window[r["runtime"]]["tokens_per_s"]}
                        for r in rows if r["runtime"] in window}}


def lm_speed(artifacts, teacher_module: nn.Module | None, context: int, target: TargetProfile,
             runs: int = 50, threads: int | None = None, kv_files=(), tokenizer_bytes: int | None = None) -> dict:
    """metrics.json's `speed` section: host timings and ratios (host_speed, with `threads`, the user's --threads,
    where given, else the target's threads on a host target, else one), the estimate on every target
    (target_speeds), and the run's target section with the figure its gate judges: `tokens_per_s` measured here for
    the deployed int8 TFLite file on a host target, else the target's estimate (as the classifier gate judges
    latency); with `kv_files`, the KV-cache step's figure (kv_judged). `tokenizer_bytes`: the student tokenizer's
    device tables, counted in the flash check beside the file."""
    threads = threads or (target.threads if target.kind == "host" else 1)
    speed = host_speed(artifacts, teacher_module, context, threads, runs)
    if kv_files:
        speed["kv_cache"] = kv_speed_section(kv_files, speed["host"], threads, runs)
    art = next((a for a in artifacts if a.name == "tflite-int8"), None)
    if art is None:
        return {**speed, "targets": {}, "target": {"name": target.name, "tokens_per_s": None,
                                                   "tokens_per_s_how": "missing: no int8 TFLite file"}}
    host = next((r for r in speed["host"] if r["file"] == art.path.name and r["runtime"] == "litert"), None)
    # the target's estimate is for its own thread count: a timing on another count is no ground truth for it
    section = target_section([art], target, host["median_ms"] if host and threads == target.threads else None,
                             tokenizer_bytes)
    section.pop("per_op", None)
    if target.kind == "host" and host is not None:
        section.update(tokens_per_s=host["tokens_per_s"], tokens_per_s_how=f"measured-host (litert, {threads} "
                       f"thread{'s' * (threads != 1)}, {art.path.name})")
    else:
        est = section.get("estimate_ms")
        section.update(tokens_per_s=1000.0 / est if est else None,
                       tokens_per_s_how=f"estimated on {target.name} ({section.get('estimate_model', 'roofline')})")
    section["file"] = art.path.name
    if "kv_cache" in speed:
        window = {k: section.get(k) for k in WINDOW_KEYS}
        section.update(kv_judged(speed["kv_cache"], section, target, threads))
        kv_tflite = next((a for a in kv_files if a.format == "tflite"), None)
        if kv_tflite is not None:
            section.update(kv_fit(kv_tflite, target, tokenizer_bytes, speed["kv_cache"]), window=window)
    return {**speed, "targets": target_speeds(art.path), "target": section}


# the target section's figures that describe one file: with --kv-cache the KV-cache step's replace them and the
# window file's are kept under `window`
WINDOW_KEYS = ("file", "fit", "macs", "file_bytes", "ram_figure", "peak_activation_bytes", "estimate_ms",
               "estimate_model", "estimate_error")


def kv_ram_figure(runtime: str | None, caches: int) -> str:
    """The RAM row's words with --kv-cache: "the KV-cache step's FIGURE + its key / value caches (N B)", where the
    runtime's figure (profile/ram.py) may end in its own clause after a semicolon ("...; LiteRT's own arena is not
    measured"), kept at the end."""
    head, _, tail = f"the KV-cache step's {ram_figure(runtime)}".partition("; ")
    return f"{head} + its key / value caches ({caches:,} B)" + (f"; {tail}" if tail else "")


def kv_fit(kv_art, target: TargetProfile, tokenizer_bytes: int | None, kv: dict) -> dict:
    """With --kv-cache the device holds the KV-cache step's file, not the window file, so the flash, RAM, operator
    and precision checks, the MACs per token and the target's estimate are that file's (profile/estimate.fit_checks;
    `kv`: metrics.json's speed.kv_cache, whose `targets` hold the estimate). Its RAM is the runtime's figure for one
    step (TFLite Micro's arena after a step, else the file's planned activations) plus the key / value caches the app
    keeps between steps (int8: one byte an element of the step's cache inputs)."""
    from edgedistill.profile.run import tflite_facts
    from edgedistill.profile.tflm_arena import tflm_arena

    cost = tflite_cost(kv_art.path)
    ops, floats, _ = tflite_facts(kv_art.path)
    caches = sum(int(np.prod(s["shape"])) for s in kv_art.extra["inputs"][2:])
    step_ram = tflm_arena(kv_art.path).total_bytes if target.runtime == "tflm" else cost.peak_activation_bytes
    figure = kv_ram_figure(target.runtime, caches)
    checks = [replace(c, detail=figure) if c.check == "ram" else c
              for c in fit_checks(cost, kv_art.bytes, step_ram + caches, ops, floats, target,
                                  tokenizer_bytes=tokenizer_bytes)]
    est = (kv.get("targets") or {}).get(target.name) or {}
    return {"file": kv_art.path.name, "fit": [asdict(c) for c in checks], "macs": cost.macs,
            "file_bytes": kv_art.bytes, "ram_figure": figure, "peak_activation_bytes": cost.peak_activation_bytes,
            "kv_cache_bytes": caches, "estimate_ms": est.get("estimate_ms"), "estimate_model": "roofline",
            "estimate_error": None,
            "macs_how": f"exact count of the KV-cache step's int8 TFLite file ({kv_art.path.name}): one step a "
                        "generated token"}


def kv_judged(kv: dict, section: dict, target: TargetProfile, threads: int) -> dict:
    """With --kv-cache the app decodes with the KV-cache step, so the gate's tokens/s is that step's: measured here
    for its TFLite file on LiteRT on a host target, else its estimate on the target; the window step's figure is
    kept as `window_tokens_per_s`. Unchanged (an empty dict) when the KV step has no TFLite file or no figure."""
    host = next((r for r in kv["host"] if r["runtime"] == "litert"), None)
    if target.kind == "host" and host is not None:
        tps, how = host["tokens_per_s"], (f"measured-host (litert, {threads} thread{'s' * (threads != 1)}, "
                                          f"{host['file']}: the KV-cache step)")
    else:
        est = (kv.get("targets") or {}).get(target.name)
        if not est:
            return {}
        tps, how = est["tokens_per_s"], f"estimated on {target.name} (the KV-cache step's TFLite file, roofline)"
    return {"tokens_per_s": tps, "tokens_per_s_how": how, "window_tokens_per_s": section.get("tokens_per_s"),
            "window_tokens_per_s_how": section.get("tokens_per_s_how")}


DISTURBED = 0.2  # an int8 step 5× slower than the same network in float32 on one runtime: a disturbed measurement


def slower_than_teacher_warnings(speed: dict | None) -> list[str]:
    """One warning per runtime where the int8 student decodes fewer tokens per second than the float teacher: a
    student about the teacher's shape saves nothing (a breaking session's default decoder(64, 2) under a 2×64
    teacher ran at 0.72× on onnxruntime, silently). Where the int8 file also ran under DISTURBED × the float
    student's speed there, the figure is called a disturbed measurement instead: a breaking session's busy machine
    timed the int8 TFLite step at 8.4 ms against 0.155 ms for the float one (at 2 threads, with another process
    holding the cores: 0.13 ms at 1 thread), and the advice to choose a smaller student would have been wrong."""
    ratios = (speed or {}).get("ratio") or {}
    own = (speed or {}).get("int8_over_float") or {}
    out = []
    for rt, r in sorted(ratios.items()):
        if r["ratio"] >= 1.0:
            continue
        head = (f"The int8 student decodes {r['ratio']:.2f}x the float teacher's tokens/s on {rt} "
                f"({r['student_tokens_per_s']:,.0f} against {r['teacher_tokens_per_s']:,.0f})")
        if own.get(rt) is not None and own[rt] < DISTURBED:
            out.append(f"{head}, and {1 / own[rt]:.0f}x slower than the same network in float32 there: that is a "
                       "disturbed measurement, not the student's size (another process held the cores while the "
                       "int8 step ran on several threads). Re-run on an idle machine, or time the files with "
                       f"`edgedistill profile FILE` at fewer threads; the tokens/s rows on {rt} are not to be trusted.")
        else:
            out.append(f"{head}: it is not faster than the teacher. Choose a smaller student (--student "
                       "decoder:width=N,depth=N), or let `edgedistill build --task causal-lm` search one under half the "
                       "teacher's parameters.")
    return out
