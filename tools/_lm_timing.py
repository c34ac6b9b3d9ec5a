"""Tokens/s of tools/bench_lm.py's int8 files against the float teacher at ONE runtime thread, on both runtimes.

Each distill run times its files with its target's threads (the `cpu` profile: 2). On this shared 2-core host the int8
TFLite decoder at 2 threads stalls: the same file (decoder(32, 1), 64 ids, 2026-12-06, load average ~6) took 24 ms
median with XNNPACK at 2 threads, 0.39 ms with LiteRT's built-in kernels alone at 2 threads, and 0.14 ms with XNNPACK
at 1 thread, while the float file took 0.10 ms at 2 (likely because the int8 graph hands work back and forth between
XNNPACK and built-in kernels, e.g. for RSQRT / GATHER_ND / SELECT_V2, each with its own 2-thread pool: not verified op
by op). One thread is what a keyboard app's background decoder gets and what this benchmark's training used, so the
table gives both and judges the issue's speed target on this one. The same edgedistill functions as the runs: the
teacher exported by pipeline/lm_speed.teacher_files (torch.onnx for onnxruntime, litert-torch for LiteRT),
batch-1 steps, each a runtime call on ids prepared once with its raw output read (Runner.call_on), every file of
a runtime in the same interleaved rounds (paired_tokens_per_s); tokens/s = 1 / the median step in seconds.
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


def paired_tokens_per_s(files: dict, context: int, rounds: int = 20, calls: int = 25) -> dict:
    """{key: tokens/s} of each `files` entry (key -> (path, runtime)) at one runtime thread, timed in interleaved
    rounds: every round times `calls` batch-1 steps of each file in turn, and each file's figure is 1000 / its
    median ms over all rounds. On a shared host the load drifts over a minute; timing the teacher first and the
    students after (as profile/measure.measure does, one file at a time) moved the ratios by ~10 % between two
    runs of the same files, interleaving spreads the drift over every file alike. Each step is one runtime call on
    ids prepared once (Runner.call_on), after 10 warm-up calls."""
    import time

    import numpy as np

    from edgedistill.runtimes import LiteRTRunner, OnnxRunner

    def load(path: Path, runtime: str):
        return OnnxRunner(path, optimization="all", threads=1) if runtime == "onnxruntime" else \
            LiteRTRunner(path, threads=1)

    ids = np.zeros((1, context), np.int32)
    step = {k: load(path, rt).call_on(ids) for k, (path, rt) in files.items()}
    for f in step.values():
        for _ in range(10):
            f()
    times = {k: [] for k in step}
    for _ in range(rounds):
        for k, f in step.items():
            for _ in range(calls):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    return {k: 1.0 / float(np.median(v)) for k, v in times.items()}


def one_thread_speed(run_dirs: list[Path], teacher_dir: Path, context: int) -> dict[str, dict]:
    """{run dir name: {runtime: {student_tokens_per_s, teacher_tokens_per_s, ratio, and, where the run kept its float
    files, float_student_tokens_per_s, float_student_over_teacher, int8_over_float}}} at one thread, every file of
    a runtime timed in the same interleaved rounds (paired_tokens_per_s): the float student is the control that
    splits the ratio into what the smaller network buys and what int8 buys on top. A runtime the teacher could not
    be converted for is left out (its reason under the key 'not_timed')."""
    from edgedistill.pipeline.lm_speed import teacher_files
    from edgedistill.teachers.causal_lm import CausalLMTeacher

    teacher = CausalLMTeacher(teacher_dir)
    out = {run.name: {} for run in run_dirs}
    with tempfile.TemporaryDirectory() as tmp:
        tfiles, missing = teacher_files(teacher.module, context, Path(tmp))
        for rt, tpath in tfiles.items():
            files = {"teacher": (tpath, rt)}
            for run in run_dirs:
                for kind, names in (("int8", STUDENT_FILES), ("float", FLOAT_FILES)):
                    if file_of(run, names[rt]).is_file():
                        files[(run.name, kind)] = (file_of(run, names[rt]), rt)
            tps = paired_tokens_per_s(files, context)
            for run in run_dirs:
                s = tps.get((run.name, "int8"))
                if s is None:
                    continue
                row = {"student_tokens_per_s": s, "teacher_tokens_per_s": tps["teacher"], "ratio": s / tps["teacher"]}
                f = tps.get((run.name, "float"))
                if f is not None:  # what the smaller network buys, and what int8 buys on top
                    row.update(float_student_tokens_per_s=f, float_student_over_teacher=f / tps["teacher"],
                               int8_over_float=s / f)
                out[run.name][rt] = row
    return {name: {**row, **({"not_timed": missing} if missing else {})} for name, row in out.items()}


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

