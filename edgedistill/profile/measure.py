"""Latency and memory measured on this machine with the real runtimes: warm-up, then timed single-sample runs
until both `runs` and `min_seconds` are reached; median / p90 / p99, load time, and memory: TFLite Micro's exact
arena, or the process's resident-memory growth over loading and first inference for the others. onnxruntime also
gives a per-op time breakdown from its own profiler.

Each timed run is one call of the runtime on an input prepared once (set the input, invoke, read the raw output, as
an app's call does: Runner.call_on). Python-side conversions (id checks, dequantizing int8 logits) are not timed: on
a decoder's 64×1,909 int8 logits they took half as long again as LiteRT's whole int8 step (0.39 against 0.24 ms)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgedistill.runtimes import LiteRTRunner, OnnxRunner, TFLMRunner


@dataclass
class Measurement:
    runtime: str
    threads: int
    warmup: int
    runs: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    load_ms: float
    memory_bytes: int | None
    memory_kind: str
    per_op: list[dict] = field(default_factory=list)
    per_op_note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _sample(runner, shape: list[int]) -> np.ndarray:
    """One input sample: uniform floats, or for a text model token ids (0 and 1: any id costs the same gather)."""
    dtype = runner.input_dtype if isinstance(runner, OnnxRunner) else runner.inp["dtype"]
    rng = np.random.default_rng(0)
    if np.issubdtype(np.dtype(dtype), np.integer) and np.dtype(dtype).itemsize >= 4:
        return rng.integers(0, 2, [1, *shape[1:]]).astype(dtype)
    return rng.random([1, *shape[1:]]).astype(np.float32)


def _load(path: Path, runtime: str, threads: int):
    if runtime == "onnxruntime":
        return OnnxRunner(path, optimization="all", threads=threads)
    if runtime == "litert":
        return LiteRTRunner(path, threads=threads)
    if runtime == "tflm":
        return TFLMRunner(path)
    raise ValueError(f"unknown runtime {runtime!r}")


def input_shape(runner) -> list[int]:
    if isinstance(runner, OnnxRunner):
        return [1 if not isinstance(d, int) else d for d in runner.session.get_inputs()[0].shape]
    return [int(d) for d in runner.inp["shape"]]


def measure(path: Path, runtime: str, threads: int = 1, warmup: int = 10, runs: int = 100,
            min_seconds: float = 1.0, per_op: bool = True) -> Measurement:
    """Time batch-1 runs of the file at `path` on `runtime` (onnxruntime, litert, tflm); module doc. `per_op` False
    skips onnxruntime's per-node profile (50 more runs under its profiler) where only the totals are wanted."""
    rss0 = _rss()
    t0 = time.perf_counter()
    runner = _load(path, runtime, threads)
    x = _sample(runner, input_shape(runner))
    runner.predict(x)
    load_ms = (time.perf_counter() - t0) * 1e3
    rss1 = _rss()
    call = runner.call_on(x)
    for _ in range(warmup):
        call()
    times = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1e3)
        if len(times) >= 100 * runs:
            break
    ts = np.asarray(times)
    memory, kind = (rss1 - rss0, "rss-growth-bytes")
    if runtime == "tflm":
        from edgedistill.profile.tflm_arena import tflm_arena

        memory, kind = tflm_arena(path).total_bytes, "tflm-arena-bytes"
    m = Measurement(runtime, threads, warmup, len(ts), float(np.median(ts)), float(np.percentile(ts, 90)),
                    float(np.percentile(ts, 99)), float(ts.mean()), load_ms, memory, kind)
    if runtime == "onnxruntime" and per_op:
        m.per_op = onnx_op_profile(path, threads, x)
    elif runtime != "onnxruntime":
        m.per_op_note = "per-op timing is not exposed by this runtime's Python API; see the estimate's per-op split"
    return m


def onnx_op_profile(path: Path, threads: int, x: np.ndarray, runs: int = 50) -> list[dict]:
    """onnxruntime's own profiler: mean time per node over `runs` inferences."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgedistill-ort-profile-") as tmp:  # never in the user's directory
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "onnxruntime_profile")
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per: dict[str, dict] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            rec = per.setdefault(node, {"node": node, "op": e.get("args", {}).get("op_name", "?"), "us": 0.0})
            rec["us"] += e["dur"] / runs
    return sorted(per.values(), key=lambda r: -r["us"])
