"""The peer row: ai-edge-quantizer's static int8 PTQ of the same float student, against our QAT int8 file.

ai-edge-quantizer (Google's post-training quantizer for LiteRT models) takes the float `student.tflite` of a build,
calibrates it on training texts and writes an int8 file with its documented static recipe
(`recipe.static_wi8_ai8()`: int8 weights and activations, min/max ranges). Both files are then scored on the whole
test split with LiteRT's reference kernels (what TFLite Micro computes) and on the TFLite Micro interpreter, paired
by McNemar's exact test, and inspected op by op: which ops the file holds and whether any of them computes in float.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgedistill.errors import ModelLoadError
from edgedistill.report.noise import paired_gain
from edgedistill.runtimes import RUNTIMES
from edgedistill.stats import wilson

PEER_FILE = "student_aeq_static_int8.tflite"


def aeq_static_int8(float_tflite: Path, x_calib: np.ndarray, out: Path) -> dict:
    """Quantize `float_tflite` with ai-edge-quantizer's static_wi8_ai8 recipe, calibrated on `x_calib` (N×L int32
    token ids, one sample per signature call, as the quantizer's calibrator takes them); writes `out`."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(float_tflite))
    (sig, io), = interp.get_signature_list().items()
    name = io["inputs"][0]
    want = interp.get_signature_runner(sig).get_input_details()[name]
    shape, dtype = [int(d) for d in want["shape"]], want["dtype"]
    t0 = time.perf_counter()
    q = quantizer.Quantizer(str(float_tflite), recipe.static_wi8_ai8())
    calib = {sig: [{name: x_calib[i : i + 1].reshape(shape).astype(dtype)} for i in range(len(x_calib))]}
    result = q.quantize(q.calibrate(calib, num_threads=1), enable_progress_report=False)
    out.write_bytes(result.quantized_model)
    return {"recipe": "static_wi8_ai8 (MIN_MAX_UNIFORM_QUANT)", "calibration_samples": len(x_calib),
            "seconds": time.perf_counter() - t0}


def inspect_ops(path: Path) -> dict:
    """The file's operators and which of them read or write a float32 tensor (a float op left in an int8 file)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), experimental_op_resolver_type=_ref_resolver())
    interp.allocate_tensors()
    types = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    ops, float_ops = [], []
    for op in interp._get_ops_details():
        ops.append(op["op_name"])
        dt = {types[i] for i in [*op["inputs"], *op["outputs"]] if i >= 0}
        if np.float32 in dt:
            float_ops.append(op["op_name"])
    io = {"input": np.dtype(interp.get_input_details()[0]["dtype"]).name,
          "output": np.dtype(interp.get_output_details()[0]["dtype"]).name}
    return {"ops": sorted(set(ops)), "op_count": len(ops), "float_ops": float_ops, "io": io,
            "float_weight_bytes": _float_constant_bytes(interp)}


def _ref_resolver():
    from ai_edge_litert.interpreter import OpResolverType

    return OpResolverType.BUILTIN_REF


def _float_constant_bytes(interp) -> int:
    """Bytes of the float32 constants (weights left in float): tensors that no op writes and that are not inputs."""
    written = {i for op in interp._get_ops_details() for i in op["outputs"]}
    fed = written | {d["index"] for d in interp.get_input_details()}
    total = 0
    for t in interp.get_tensor_details():
        if t["dtype"] == np.float32 and t["index"] not in fed:
            total += int(np.prod(t["shape"])) * 4
    return total


def predictions(path: Path, runtime: str, x: np.ndarray) -> np.ndarray:
    """Top-1 class per sample of `path` on `runtime` (a edgedistill.runtimes name)."""
    runner = RUNTIMES.get(runtime)(path)
    return runner.predict_batched(x, 1024 if runtime != "tflm" else 256).argmax(1)


def _accuracy(pred: np.ndarray, y: np.ndarray) -> dict:
    right = int((pred == y).sum())
    iv = wilson(right, len(y))
    return {"accuracy": iv.value, "ci95": [iv.low, iv.high], "n": len(y)}


def offset_buffers(path: Path) -> dict:
    """Constant buffers stored after the flatbuffer (Buffer.offset / size, the schema's form for models over 2 GB,
    which ai-edge-quantizer writes once its packed constants reach 256 KB): TFLite Micro does not read them
    (tensorflow/tflite-micro#3196, open), so their tensors hold no weights there."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
    sizes = [model.Buffers(i).Size() for i in range(model.BuffersLength()) if model.Buffers(i).Offset() > 1]
    return {"count": len(sizes), "bytes": int(sum(sizes))}


def inline_copy(path: Path, out: Path) -> Path:
    """The same model with every constant inside the flatbuffer (LiteRT's flatbuffer_utils: read, write back)."""
    from ai_edge_litert.tools import flatbuffer_utils

    flatbuffer_utils.write_model(flatbuffer_utils.read_model(str(path)), str(out))
    return out


def _tflm_row(path: Path, x: np.ndarray, y: np.ndarray, reference: np.ndarray) -> tuple[dict, np.ndarray | None]:
    t0 = time.perf_counter()
    try:
        p = predictions(path, "tflm", x)
    except ModelLoadError as exc:
        return {"loads": False, "error": str(exc)}, None
    return {"loads": True, **_accuracy(p, y), "seconds": time.perf_counter() - t0,
            "top1_agreement_with_reference_kernels": float((reference[: len(x)] == p).mean()) * 100}, p


def compare(ours: Path, peer: Path, peer_inline: Path, x_test: np.ndarray, y_test: np.ndarray,
            tflm_samples: int | None, tflm_samples_as_written: int = 1000) -> tuple[dict, np.ndarray]:
    """Accuracy of our file and the peer's on LiteRT's reference kernels (whole split) and on TFLite Micro (the
    first `tflm_samples`, all when None; the peer's file as written on the first `tflm_samples_as_written`, its
    inline copy on as many as ours), with McNemar's exact test ours vs peer on each runtime. Also returns our file's
    top-1 on the reference kernels."""
    rows: dict = {"litert-reference": {}, "tflm": {}}
    ref = {}
    for label, path in (("ours", ours), ("peer", peer)):
        t0 = time.perf_counter()
        ref[label] = p = predictions(path, "litert-reference", x_test)
        rows["litert-reference"][label] = {**_accuracy(p, y_test), "seconds": time.perf_counter() - t0}
    rows["litert-reference"]["mcnemar_ours_vs_peer"] = paired_gain(ref["ours"] == y_test, ref["peer"] == y_test)
    n = len(x_test) if tflm_samples is None else min(tflm_samples, len(x_test))
    k = min(n, tflm_samples_as_written)
    tflm = {}
    for label, path, m, against in (("ours", ours, n, "ours"), ("peer_as_written", peer, k, "peer"),
                                    ("peer_inline", peer_inline, n, "peer")):
        rows["tflm"][label], tflm[label] = _tflm_row(path, x_test[:m], y_test[:m], ref[against])
    if tflm["ours"] is not None and tflm["peer_inline"] is not None:
        rows["tflm"]["mcnemar_ours_vs_peer_inline"] = paired_gain(tflm["ours"] == y_test[:n],
                                                                  tflm["peer_inline"] == y_test[:n])
    return rows, ref["ours"]
