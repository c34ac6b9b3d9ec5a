"""Tokens/s of tools/bench_lm.py's int8 files against the float teacher at ONE runtime thread, on both runtimes.

Each distill run times its files with its target's threads (the `cpu` profile: 2). On this shared 2-core host the int8
TFLite decoder at 2 threads stalls: the same file (decoder(32, 1), 64 ids, 2026-12-06, load average ~6) took 24 ms
median with XNNPACK at 2 threads, 0.39 ms with LiteRT's built-in kernels alone at 2 threads, and 0.14 ms with XNNPACK
at 1 thread, while the float file took 0.10 ms at 2 (likely because the int8 graph hands work back and forth between
XNNPACK and built-in kernels, e.g. for RSQRT / GATHER_ND / SELECT_V2, each with its own 2-thread pool: not verified op
by op). One thread is what a keyboard app's background decoder gets and what this benchmark's training used, so the
table gives both and judges the issue's speed target on this one. The same edgedistill functions as the runs: the
teacher exported by pipeline/lm_speed.teacher_files (torch.onnx for onnxruntime, litert-torch for LiteRT),
profile/measure.measure (warm-up, then batch-1 steps, each a runtime call on ids prepared once with its raw output
read: Runner.call_on; the median), tokens/s = 1000 / median ms.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

STUDENT_FILES = {"onnxruntime": "student_int8.onnx", "litert": "student_int8.tflite"}
FLOAT_FILES = {"onnxruntime": "student.onnx", "litert": "student.tflite"}  # the same network in float32: the control


def file_of(run: Path, name: str) -> Path:
    """The run's file `name`, or its re-export's (RUN/export/, tools/bench_lm.py --reexport-onnx) where there is
    one: the files the benchmark judges."""
    again = run / "export" / name
    return again if again.is_file() else run / name


def one_thread_speed(run_dirs: list[Path], teacher_dir: Path, context: int, runs: int = 100,
                     min_seconds: float = 1.0) -> dict[str, dict]:
    """{run dir name: {runtime: {student_tokens_per_s, teacher_tokens_per_s, ratio, and, where the run kept its float
    files, float_student_tokens_per_s, float_student_over_teacher, int8_over_float}}} at one thread: the float
    student is the control that splits the ratio into what the smaller network buys and what int8 buys on top. A
    runtime the teacher could not be converted for is left out (its reason under the key 'not_timed')."""
    from edgedistill.pipeline.lm_speed import teacher_files
    from edgedistill.profile.measure import measure
    from edgedistill.teachers.causal_lm import CausalLMTeacher

    def tps(path: Path, runtime: str) -> float:
        return 1000.0 / measure(path, runtime, threads=1, runs=runs, min_seconds=min_seconds, per_op=False).median_ms

    teacher = CausalLMTeacher(teacher_dir)
    with tempfile.TemporaryDirectory() as tmp:
        files, missing = teacher_files(teacher.module, context, Path(tmp))
        teacher_tps = {rt: tps(path, rt) for rt, path in files.items()}
    out = {}
    for run in run_dirs:
        row = {}
        for rt, name in STUDENT_FILES.items():
            if rt in teacher_tps and file_of(run, name).is_file():
                s = tps(file_of(run, name), rt)
                row[rt] = {"student_tokens_per_s": s, "teacher_tokens_per_s": teacher_tps[rt],
                           "ratio": s / teacher_tps[rt]}
                if file_of(run, FLOAT_FILES[rt]).is_file():  # what the smaller network buys, and int8 on top
                    f = tps(file_of(run, FLOAT_FILES[rt]), rt)
                    row[rt].update(float_student_tokens_per_s=f, float_student_over_teacher=f / teacher_tps[rt],
                                   int8_over_float=s / f)
        out[run.name] = {**row, **({"not_timed": missing} if missing else {})}
    return out


def xnnpack_partitions(path: Path) -> int:
    """How many XNNPACK partitions LiteRT cuts the file into (DELEGATE nodes after the delegate is applied): each
    boundary hands the tensors to a built-in kernel and back."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details())


def qdq_share(path: Path, context: int) -> float:
    """The share of onnxruntime's step time (its profiler, one thread) spent in QuantizeLinear / DequantizeLinear."""
    import numpy as np

    from edgedistill.profile.measure import onnx_op_profile

    per = onnx_op_profile(path, 1, np.zeros((1, context), np.int32))
    return sum(r["us"] for r in per if r["op"] in ("QuantizeLinear", "DequantizeLinear")) / sum(r["us"] for r in per)


def step_anatomy(run: Path, context: int) -> dict:
    """Why int8 buys what it buys on each runtime: XNNPACK partitions of the int8 and float TFLite files, and the
    Q/DQ share of the int8 ONNX step."""
    out = {}
    if (run / "student_int8.tflite").is_file() and (run / "student.tflite").is_file():
        out["xnnpack_partitions"] = {"int8": xnnpack_partitions(run / "student_int8.tflite"),
                                     "float32": xnnpack_partitions(run / "student.tflite")}
    if file_of(run, "student_int8.onnx").is_file():
        out["onnxruntime_qdq_share"] = qdq_share(file_of(run, "student_int8.onnx"), context)
    return out

