"""edgedistill device-side benchmark: one self-contained file, copied to the device and run with its Python.

Needs only numpy and one interpreter: ai-edge-litert (or tflite-runtime) for .tflite, onnxruntime for .onnx. It never
imports edgedistill or torch. It loads the model (timed), runs warm-up and timed single-sample invocations with the
requested threads, records the latency distribution and the process's peak memory, checks the outputs against the
reference outputs shipped with it (parity on the device), and prints one JSON document on stdout:

    python3 bench.py MODEL --inputs inputs.npy [--reference reference.npy] [--threads 4] [--warmup 5] [--runs 50]

inputs.npy holds N float32 samples in the layout the model was trained on (N×C×H×W for images); int8 models are fed
through their own input quantization, and their outputs are dequantized, exactly as a deployed app would do.
A causal LM's KV-cache step (a .tflite whose inputs are ids (1, 1), pos (1,) and the key / value caches, whose
outputs are the logits and the updated caches, in that order) takes N windows of L token ids: each window is decoded
by the cached loop an app runs (caches zeroed, then one invoke a position, each invoke's caches fed to the next), its
L×V logits checked against the reference (N×L×V), and the timed unit is one step, one generated token.
Exit status 0 when it measured (parity verdict inside the JSON), 2 on bad input, 3 when no interpreter is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import sys
import time

SCHEMA = "edgedistill.device-bench/1"


def _fail(code: int, step: str, message: str) -> None:
    print(json.dumps({"schema": SCHEMA, "ok": False, "step": step, "error": message}))
    sys.exit(code)


def _device() -> dict:
    info = {"machine": platform.machine(), "system": platform.system(), "release": platform.release(),
            "python": platform.python_version(), "hostname": platform.node(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model") and val.strip():
                    info["cpu"] = val.strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/device-tree/model") as fh:  # Raspberry Pi and other device-tree boards
            info["model"] = fh.read().strip("\x00\n ")
    except OSError:
        pass
    return info


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


class TFLiteModel:
    def __init__(self, path: str, threads: int):
        try:
            from ai_edge_litert.interpreter import Interpreter
            self.runtime = "ai-edge-litert"
        except ImportError:
            try:
                from tflite_runtime.interpreter import Interpreter
                self.runtime = "tflite-runtime"
            except ImportError:
                _fail(3, "import", "no TFLite interpreter on this device: pip install ai-edge-litert (or tflite-runtime)")
        self.interp = Interpreter(model_path=path, num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def version(self) -> str:
        try:
            from importlib.metadata import version
            return version(self.runtime)
        except Exception:
            return "?"

    def prepare(self, x):
        import numpy as np
        want = [int(d) for d in self.inp["shape"]]
        if x.ndim == 3 and list(x.shape) != want[1:] and [*x.shape[1:], x.shape[0]] == want[1:]:
            x = x.transpose(1, 2, 0)  # channels-last model
        x = x[None]
        if self.inp["dtype"] in (np.int8, np.uint8):
            scale, zero = self.inp["quantization"]
            info = np.iinfo(self.inp["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(self.inp["dtype"])
        return np.ascontiguousarray(x.astype(self.inp["dtype"], copy=False))

    def run(self, x):
        import numpy as np
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        if self.out["dtype"] in (np.int8, np.uint8):
            scale, zero = self.out["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)


class TFLiteKVStep:
    """A KV-cache decoder step (module doc) on a loaded TFLiteModel: `run(window)` decodes one window of L ids with
    the cached loop and returns its L×V logits; `step(token, pos)` is one timed invoke on the current caches."""

    kv = True

    def __init__(self, interp, model=None):
        self.interp = interp  # an allocated interpreter of the file; `model` (a TFLiteModel) names its runtime
        self.runtime = getattr(model, "runtime", "?")
        self.version = getattr(model, "version", lambda: "?")
        self.ins, self.outs = self.interp.get_input_details(), self.interp.get_output_details()
        self.reset()

    def reset(self):
        import numpy as np
        self.caches = [np.zeros(d["shape"], d["dtype"]) for d in self.ins[2:]]

    def prepare(self, x):
        import numpy as np
        return np.ascontiguousarray(np.asarray(x).reshape(-1).astype(np.int32))

    def step(self, token, pos):
        import numpy as np
        self.interp.set_tensor(self.ins[0]["index"], np.full((1, 1), token, np.int32))
        self.interp.set_tensor(self.ins[1]["index"], np.full((1,), pos, np.int32))
        for d, c in zip(self.ins[2:], self.caches):
            self.interp.set_tensor(d["index"], c)
        self.interp.invoke()
        self.caches = [self.interp.get_tensor(d["index"]) for d in self.outs[1:]]
        y = self.interp.get_tensor(self.outs[0]["index"])
        if self.outs[0]["dtype"] in (np.int8, np.uint8):
            scale, zero = self.outs[0]["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def run(self, window):
        import numpy as np
        self.reset()
        return np.stack([self.step(int(t), p).reshape(-1) for p, t in enumerate(window)])


def open_model(path: str, threads: int):
    """The model's wrapper: onnxruntime for .onnx; LiteRT for .tflite, the KV-cache loop for a KV-cache step's file
    (its form: ids int32 (1, 1), pos int32 (1,), then the caches in; the logits and the caches out)."""
    if path.endswith(".onnx"):
        return OnnxModel(path, threads)
    model = TFLiteModel(path, threads)
    return TFLiteKVStep(model.interp, model) if is_kv_step(model.interp) else model


def is_kv_step(interp) -> bool:
    """Whether an interpreter's file has the KV-cache step's form: ids int32 (1, 1), pos int32 (1,), then the
    caches in; the logits and the caches out."""
    import numpy as np
    ins, outs = interp.get_input_details(), interp.get_output_details()
    return (len(ins) >= 4 and len(outs) == len(ins) - 1 and all(d["dtype"] == np.int32 for d in ins[:2])
            and [int(v) for v in ins[0]["shape"]] == [1, 1] and [int(v) for v in ins[1]["shape"]] == [1])


class OnnxModel:
    runtime = "onnxruntime"

    def __init__(self, path: str, threads: int):
        try:
            import onnxruntime as ort
        except ImportError:
            _fail(3, "import", "onnxruntime is not installed on this device: pip install onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name
        # token ids (int32 / int64 inputs: a text model) are fed as the file's integers, everything else as float32
        self.dtype = {"tensor(int32)": "int32", "tensor(int64)": "int64"}.get(self.session.get_inputs()[0].type,
                                                                               "float32")

    def version(self) -> str:
        import onnxruntime as ort
        return ort.__version__

    def prepare(self, x):
        import numpy as np
        return np.ascontiguousarray(x[None].astype(self.dtype))

    def run(self, x):
        return self.session.run(None, {self.name: x})[0]


def _percentile(sorted_vals: list, q: float) -> float:
    k = (len(sorted_vals) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def main(argv: list | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--inputs", required=True, help=".npy of float32 samples")
    ap.add_argument("--reference", help=".npy of the outputs the model must reproduce (N×K)")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |output − reference| for parity")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args(argv)
    try:
        import numpy as np
    except ImportError:
        _fail(3, "import", "numpy is not installed on this device")
    if not os.path.isfile(args.model):
        _fail(2, "load", f"model file {args.model} does not exist")
    try:
        inputs = np.load(args.inputs, allow_pickle=False).astype(np.float32)
        reference = np.load(args.reference, allow_pickle=False) if args.reference else None
    except (OSError, ValueError) as exc:
        _fail(2, "inputs", f"cannot read the inputs / reference: {exc}")
    if reference is not None and len(reference) != len(inputs):
        _fail(2, "inputs", f"{len(inputs)} inputs but {len(reference)} reference outputs")
    with open(args.model, "rb") as fh:
        blob = fh.read()
    rss_before = _peak_rss_bytes()
    t0 = time.perf_counter()
    try:
        model = open_model(args.model, args.threads)
    except SystemExit:
        raise
    except Exception as exc:
        _fail(2, "load", f"the interpreter cannot load {args.model}: {str(exc).splitlines()[0] if str(exc) else exc}")
    load_ms = (time.perf_counter() - t0) * 1e3
    try:
        prepared = [model.prepare(x) for x in inputs]
        outputs = np.stack([model.run(p).reshape(-1) for p in prepared])  # every sample once: parity
        steps = [(int(w[t]), t) for w in prepared for t in range(len(w))] if getattr(model, "kv", False) else []

        def one(i):  # the timed unit: one sample, or one step (a token) of the cached loop, the windows in turn
            if steps:
                model.step(*steps[i % len(steps)])
            else:
                model.run(prepared[i % len(prepared)])
        for i in range(args.warmup):
            one(i)
        times = []
        for i in range(args.runs):
            t = time.perf_counter()
            one(i)
            times.append((time.perf_counter() - t) * 1e3)
    except Exception as exc:
        _fail(2, "invoke", f"running the model failed: {str(exc).splitlines()[0] if str(exc) else exc}")
    times.sort()
    parity = {"checked": reference is not None}
    if reference is not None:
        ref = reference.reshape(len(reference), -1).astype(np.float32)
        if ref.shape != outputs.shape:
            parity.update(passed=False, reason=f"outputs {outputs.shape} vs reference {ref.shape}")
        else:
            diff = float(np.abs(outputs - ref).max())
            agree = float((outputs.argmax(1) == ref.argmax(1)).mean())
            parity.update(passed=bool(diff <= args.tolerance), max_abs_diff=diff, top1_agreement=agree,
                          samples=int(len(ref)), tolerance=args.tolerance)
    print(json.dumps({
        "schema": SCHEMA, "ok": True, "device": _device(),
        "runtime": {"name": model.runtime, "version": model.version(), "threads": args.threads},
        "model": {"path": os.path.basename(args.model), "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()},
        "load_ms": load_ms,
        "latency_ms": {"runs": len(times), "warmup": args.warmup, "mean": sum(times) / len(times),
                       "p50": _percentile(times, 0.5), "p90": _percentile(times, 0.9), "p99": _percentile(times, 0.99),
                       "min": times[0], "max": times[-1]},
        "peak_rss_bytes": _peak_rss_bytes(), "rss_before_load_bytes": rss_before,
        "parity": parity,
    }))


if __name__ == "__main__":
    main()
