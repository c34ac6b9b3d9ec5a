"""What a user would do instead of distilling: ship the teacher itself, quantized dynamically by onnxruntime.

The `transformers` teacher is exported to ONNX (torch.onnx's exporter; inputs `input_ids` and `attention_mask`, as
optimum names them; dynamic batch and sequence), passed through onnxruntime's recommended pre-processing
(`quant_pre_process`: graph optimization; its symbolic shape inference does not complete on this export and is
skipped) and quantized with `quantize_dynamic` (int8 weights, activations quantized at run time: float tensors
between the integer matmuls, so no microcontroller runtime takes it). Measured: file sizes, test accuracy on the
texts the build's teacher read, and host latency per sample at batch 1 on one thread.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch


class IdsToLogits(torch.nn.Module):
    """The classifier as the exporter sees it: (input_ids, attention_mask) -> logits."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_teacher(teacher, folder: Path) -> dict[str, Path]:
    """`folder`/teacher.onnx (float, as exported), teacher_pre.onnx (after onnxruntime's pre-processing) and
    teacher_dynamic_int8.onnx, with the tokenizer.json beside them as optimum writes it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folder.mkdir(parents=True, exist_ok=True)
    files = {"float": folder / "teacher.onnx", "float_pre": folder / "teacher_pre.onnx",
             "dynamic_int8": folder / "teacher_dynamic_int8.onnx"}
    enc = teacher.tokenizer.encode(["haus", "maison"])
    sample = (torch.from_numpy(enc.input_ids), torch.from_numpy(enc.attention_mask))
    dyn = {0: "batch", 1: "sequence"}
    torch.onnx.export(IdsToLogits(teacher.torch_module()).eval(), sample, str(files["float"]),
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_shapes=(dyn, dyn), external_data=False, verbose=False)
    quant_pre_process(str(files["float"]), str(files["float_pre"]), skip_symbolic_shape=True)
    quantize_dynamic(str(files["float_pre"]), str(files["dynamic_int8"]), weight_type=QuantType.QInt8)
    shutil.copy(teacher.tokenizer.path, folder / "tokenizer.json")
    return files


def session(path: Path):
    """An onnxruntime CPU session on one thread with every graph optimization (what a deployment gets)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _feed(enc, rows=slice(None)) -> dict:
    return {"input_ids": enc.input_ids[rows].astype(np.int64),
            "attention_mask": enc.attention_mask[rows].astype(np.int64)}


def teacher_predictions(sess, teacher, texts: list[str], batch: int = 512) -> np.ndarray:
    """Top-1 class per text, in the data's class order (the teacher's own class order, as the build applied it)."""
    out = []
    for i in range(0, len(texts), batch):
        enc = teacher.tokenizer.encode(texts[i : i + batch])
        out.append(sess.run(None, _feed(enc))[0])
    logits = np.concatenate(out)
    if teacher.class_order is not None:
        logits = logits[:, list(teacher.class_order)]
    return logits.argmax(1)


class _LiteRT:
    """Our int8 file on LiteRT with XNNPACK, one thread, fed one sample at a time."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=1)
        self.interp.allocate_tensors()
        self.i, self.o = self.interp.get_input_details()[0]["index"], self.interp.get_output_details()[0]["index"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.interp.set_tensor(self.i, x)
        self.interp.invoke()
        return self.interp.get_tensor(self.o)


class _Ort:
    def __init__(self, sess):
        self.sess = sess

    def __call__(self, feed: dict) -> np.ndarray:
        return self.sess.run(None, feed)[0]


def latency(models: dict, inputs: dict, repeats: int, warmup: int = 20) -> dict:
    """Median wall and CPU (this thread's) time per call in ms for each model over `repeats` passes of its inputs
    (one sample per call), the models interleaved pass by pass so that a busy machine slows each alike."""
    wall = {k: [] for k in models}
    cpu = {k: [] for k in models}
    for name, run in models.items():
        for x in inputs[name][:warmup]:
            run(x)
    for _ in range(repeats):
        for name, run in models.items():
            for x in inputs[name]:
                t0, c0 = time.perf_counter(), time.thread_time()
                run(x)
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - t0)
    return {k: {"median_ms": statistics.median(wall[k]) * 1e3, "median_cpu_ms": statistics.median(cpu[k]) * 1e3,
                "calls": len(wall[k])} for k in models}


def latency_inputs(teacher, texts: list[str], ids: np.ndarray, onnx_dtype) -> dict:
    """Per-sample inputs at batch 1: the teacher's own tokens (each text at its own length, no padding), our
    student's byte ids (1×L int32 for LiteRT; the ONNX file's integer type for onnxruntime)."""
    teacher_feeds = [_feed(teacher.tokenizer.encode([t])) for t in texts]
    student = [np.ascontiguousarray(ids[i : i + 1].astype(np.int32)) for i in range(len(ids))]
    return {"teacher_float": teacher_feeds, "teacher_dynamic_int8": teacher_feeds, "ours_litert_xnnpack": student,
            "ours_onnxruntime": [{"x": s.astype(onnx_dtype)} for s in student]}


def latency_models(files: dict[str, Path], ours_tflite: Path, ours_onnx: Path | None) -> tuple[dict, type | None]:
    """The callables `latency` times, and our ONNX file's input type (None without one)."""
    models = {"teacher_float": _Ort(session(files["float_pre"])),
              "teacher_dynamic_int8": _Ort(session(files["dynamic_int8"])),
              "ours_litert_xnnpack": _LiteRT(ours_tflite)}
    dtype = None
    if ours_onnx is not None and ours_onnx.is_file():
        sess = session(ours_onnx)
        inp = sess.get_inputs()[0]
        dtype = {"tensor(int64)": np.int64}.get(inp.type, np.int32)
        models["ours_onnxruntime"] = _RenameInput(sess, inp.name)
    return models, dtype


class _RenameInput(_Ort):
    def __init__(self, sess, name: str):
        super().__init__(sess)
        self.name = name

    def __call__(self, feed: dict) -> np.ndarray:
        return self.sess.run(None, {self.name: feed["x"]})[0]


def teacher_row(teacher, texts: list[str], y: np.ndarray, ours: dict, work: Path, latency_samples: int,
                repeats: int) -> dict:
    """Sizes, accuracy and batch-1 latency of the teacher (float ONNX, dynamic int8 ONNX) beside our int8 files.
    `ours`: {"tflite": Path, "onnx": Path | None, "pred": our int8 file's top-1 on `texts` (reference kernels)}."""
    from edgedistill.report.noise import paired_gain
    from edgedistill.stats import wilson

    t0 = time.perf_counter()
    files = export_teacher(teacher, work)
    export_s = time.perf_counter() - t0
    pred = {k: teacher_predictions(session(files[k]), teacher, texts) for k in ("float_pre", "dynamic_int8")}
    acc = {}
    for k, p in pred.items():
        iv = wilson(int((p == y).sum()), len(y))
        acc[k] = {"accuracy": iv.value, "ci95": [iv.low, iv.high], "n": len(y)}
    models, dtype = latency_models(files, ours["tflite"], ours.get("onnx"))
    pick = np.random.default_rng(0).permutation(len(texts))[:latency_samples]
    inputs = latency_inputs(teacher, [texts[i] for i in pick], ours["ids"][pick], dtype or np.int32)
    lat = latency(models, {k: inputs[k] for k in models}, repeats)
    sizes = {"teacher_float_onnx": files["float"].stat().st_size,
             "teacher_float_onnx_preprocessed": files["float_pre"].stat().st_size,
             "teacher_dynamic_int8_onnx": files["dynamic_int8"].stat().st_size,
             "ours_int8_tflite": ours["tflite"].stat().st_size}
    if ours.get("onnx") is not None and ours["onnx"].is_file():
        sizes["ours_int8_onnx"] = ours["onnx"].stat().st_size
    return {"files": {k: str(v) for k, v in files.items()}, "export_s": export_s, "bytes": sizes,
            "accuracy": acc, "mcnemar_float_vs_dynamic": paired_gain(pred["float_pre"] == y, pred["dynamic_int8"] == y),
            "mcnemar_ours_vs_dynamic": paired_gain(ours["pred"] == y, pred["dynamic_int8"] == y),
            "latency": lat, "latency_samples": len(pick), "latency_repeats": repeats,
            "size_ratio_dynamic_over_ours": sizes["teacher_dynamic_int8_onnx"] / sizes["ours_int8_tflite"],
            "latency_ratio_dynamic_over_ours_litert": lat["teacher_dynamic_int8"]["median_ms"]
            / lat["ours_litert_xnnpack"]["median_ms"]}
