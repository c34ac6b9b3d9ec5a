"""The KV-cache decoder step (export/kv_cache.py) run on a real runtime, one token per invoke: `step(ids, pos,
caches)` as a device app calls it, and `window_logits(ids)`, which feeds a window's tokens through the cached loop
(teacher forcing, caches starting at zero) and returns the logits at every position, as the full-window step gives
them: the comparison issue #29 asks for ("KV-cache variant equals the full-window step").

Runtimes: "litert" (XNNPACK), "litert-reference" (BUILTIN_REF), "tflm" (TFLite Micro) for the .tflite step,
"onnxruntime" (Q/DQ as written) and "onnxruntime-fused" (its int8 kernels) for the .onnx step. Inputs and outputs are matched by position and checked against the Artifact's
`extra` specs when loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.errors import ModelLoadError
from edgedistill.optional import require
from edgedistill.runtimes.base import dequantize_output


class KVStepRunner:
    """One loaded KV-cache step file. `step(token, pos, caches) -> (logits codes or floats (V,), caches)`."""

    def __init__(self, path: Path, runtime: str, extra: dict, threads: int = 1):
        self.path, self.runtime, self.extra = Path(path), runtime, extra
        self.names = extra["input_names"]
        self.caches0 = [np.zeros(s["shape"], np.int8) for s in extra["inputs"][2:]]
        out = extra["outputs"][0]
        self._deq = (out["scale"], out["zero_point"]) if out["dtype"] == "int8" else None
        try:
            self._open(threads)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{runtime} cannot load the KV-cache step {path}: "
                                 f"{(str(exc).splitlines() or [type(exc).__name__])[0]}") from None

    def _open(self, threads: int) -> None:
        if self.runtime.startswith("onnxruntime"):
            ort = require("onnxruntime")
            opts = ort.SessionOptions()
            opts.log_severity_level, opts.intra_op_num_threads = 3, threads
            # Q/DQ executed as written (the file's reference semantics), or fused into int8 kernels ("-fused")
            opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if self.runtime.endswith(
                "-fused") else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            self._in = [i.name for i in self.session.get_inputs()]
        elif self.runtime == "tflm":
            rt = require("tflite_micro").python.tflite_micro.runtime
            self.interp = rt.Interpreter.from_file(str(self.path))
        else:
            mod = require("ai_edge_litert.interpreter")
            kw = ({"experimental_op_resolver_type": mod.OpResolverType.BUILTIN_REF}
                  if self.runtime == "litert-reference" else {})
            self.interp = mod.Interpreter(model_path=str(self.path), num_threads=threads, **kw)
            self.interp.allocate_tensors()
            self._in = [d["index"] for d in self.interp.get_input_details()]
            self._out = [d["index"] for d in self.interp.get_output_details()]

    def step(self, token: int, pos: int, caches: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One token at position `pos` with the caches of positions < pos: (float32 logits (V,), new caches)."""
        feeds = [np.array([[token]], np.int32), np.array([pos], np.int32), *caches]
        if self.runtime.startswith("onnxruntime"):
            outs = self.session.run(None, dict(zip(self._in, feeds)))
        elif self.runtime == "tflm":
            for i, f in enumerate(feeds):
                self.interp.set_input(f, i)
            self.interp.invoke()
            outs = [np.array(self.interp.get_output(i)) for i in range(len(feeds) - 1)]
        else:
            for i, f in zip(self._in, feeds):
                self.interp.set_tensor(i, f)
            self.interp.invoke()
            outs = [self.interp.get_tensor(i) for i in self._out]
        logits = outs[0].reshape(-1)
        logits = dequantize_output(logits, *self._deq) if self._deq else logits.astype(np.float32)
        return logits, [np.array(c, np.int8) for c in outs[1:]]

    def window_logits(self, ids: np.ndarray) -> np.ndarray:
        """Logits (N, L, V) float32 of every position of every window in `ids` (N, L) int, by the cached loop."""
        ids = np.asarray(ids)
        rows = []
        for window in ids:
            caches, out = [c.copy() for c in self.caches0], []
            for t, token in enumerate(window):
                logits, caches = self.step(int(token), t, caches)
                out.append(logits)
            rows.append(np.stack(out))
        return np.stack(rows)

    def time_step(self, runs: int = 50, min_seconds: float = 0.3, warmup: int = 10) -> tuple[float, float, int]:
        """(median ms, p90 ms, timed runs) of one step at the window's last position (every step reads all L cache
        slots, so the position does not change its cost), fed and read as an app does; warm-up runs first, then
        runs until both `runs` and `min_seconds` are reached (profile/measure.py's protocol)."""
        import time

        pos = len(self.caches0[0][0, 0]) - 1 if self.caches0 else 0
        caches = [c.copy() for c in self.caches0]
        for _ in range(warmup):
            self.step(1, pos, caches)
        times, start = [], time.perf_counter()
        while len(times) < runs or time.perf_counter() - start < min_seconds:
            t = time.perf_counter()
            self.step(1, pos, caches)
            times.append((time.perf_counter() - t) * 1e3)
            if len(times) >= 100 * runs:
                break
        ts = np.asarray(times)
        return float(np.median(ts)), float(np.percentile(ts, 90)), len(ts)
