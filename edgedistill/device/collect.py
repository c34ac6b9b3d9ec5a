"""Measure an exported file on a device for a report: the device's figures, or a record that they are missing.

A device that cannot be reached, times out, lacks an interpreter or answers garbage never fails the host-side work:
the report gets `{"status": "missing", "error": ...}` (never zeros) and the caller decides what to print.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.device.runners import DeviceRequest, open_runner
from edgedistill.errors import DeviceError


SAMPLE_IDS = 16  # token ids a run without data draws from: 1 … 15, inside any real vocabulary


def sample_inputs(model: Path, n: int = 32, seed: int = 0) -> np.ndarray:
    """Deterministic samples shaped like the model's input (for a device run without data): uniform [0, 1) floats,
    or for a model that takes token ids (an int32 / int64 input) whole ids 1 … SAMPLE_IDS − 1, as float32."""
    if model.suffix == ".onnx":
        import onnxruntime as ort

        first = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_inputs()[0]
        shape, ids = first.shape, "int" in first.type
    else:
        from edgedistill.runtimes.litert import LiteRTRunner

        inp = LiteRTRunner(model, threads=1).inp
        shape, ids = [int(d) for d in inp["shape"]], np.issubdtype(inp["dtype"], np.integer) and \
            inp["dtype"] not in (np.int8, np.uint8, np.int16)
    dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape[1:]]
    rng = np.random.default_rng(seed)
    if ids:
        return rng.integers(1, SAMPLE_IDS, (n, *dims)).astype(np.float32)
    return rng.random((n, *dims), dtype=np.float32)


def host_reference(model: Path, x: np.ndarray) -> tuple[np.ndarray, float]:
    """What the file computes on this machine's runtime (the outputs the device must reproduce), and the parity
    tolerance: one output quantization step for an int8 file (another CPU's kernels may round one step
    differently), a relative 1e-4 for float files. A KV-cache step's (device/bench.py) is its cached loop's logits
    on each window of `x` (N, L ids): N×L×V."""
    from edgedistill.runtimes import RUNTIMES

    runner = RUNTIMES.get("onnxruntime" if model.suffix == ".onnx" else "litert")(model, threads=1)
    interp = getattr(runner, "interp", None)  # LiteRT's interpreter
    if interp is not None:
        from edgedistill.device.bench import TFLiteKVStep, is_kv_step

        if is_kv_step(interp):  # a KV-cache step: the cached loop the device runs, window by window
            step = TFLiteKVStep(interp)
            return np.stack([step.run(step.prepare(w)) for w in x]), float(step.outs[0]["quantization"][0]) * 1.001
    ref = runner.predict(x)
    out = getattr(runner, "out", None)  # LiteRT's output tensor details
    if out is not None and out["dtype"] in (np.int8, np.uint8):
        return ref, float(out["quantization"][0]) * 1.001
    return ref, 1e-4 * (1.0 + float(np.abs(ref).max()))


def measure_on_device(url: str, model: Path, x: np.ndarray, reference: np.ndarray | None, threads: int,
                      runs: int = 50, warmup: int = 5, tolerance: float = 1e-4, timeout_s: float = 300,
                      benchmark_flags: tuple[str, ...] = ()) -> dict:
    try:
        doc = open_runner(url).benchmark(DeviceRequest(model, x, reference, tolerance, threads, warmup, runs,
                                                       timeout_s, tuple(benchmark_flags)))
    except DeviceError as exc:
        return {"status": "missing", "url": url, "model": model.name, "error": str(exc)}
    return {"status": "measured", "where": "measured-device", **doc}
