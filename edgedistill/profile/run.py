"""`profile(model, target)`: cost, measurement on this machine, target estimate and fit checks for any .onnx or
.tflite file. Every figure carries how it was obtained: measured-host, measured-host-tflm, or estimated."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgedistill.errors import EdgeDistillError, ModelLoadError
from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.estimate import estimate_latency, fit_checks
from edgedistill.profile.measure import measure
from edgedistill.profile.precision import tflite_precision
from edgedistill.targets import load_target


class TargetMismatchError(EdgeDistillError):
    """The model cannot run on the target (format, operators or precision)."""


def model_format(path: Path) -> str:
    if not path.is_file():
        raise ModelLoadError(f"Model file {path} does not exist.")
    head = path.read_bytes()[:8]
    if path.suffix == ".tflite" or head[4:8] == b"TFL3":
        if head[4:8] != b"TFL3":
            raise ModelLoadError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier).")
        return "tflite"
    if path.suffix == ".onnx":
        onnx = __import__("onnx")
        try:
            onnx.load(str(path))
        except Exception as exc:  # protobuf decode errors
            raise ModelLoadError(f"{path} is not an ONNX model: {str(exc).splitlines()[0]}") from None
        return "onnx"
    raise ModelLoadError(f"{path} is neither an ONNX (.onnx) nor a TFLite (.tflite) model.")


def tflite_facts(path: Path) -> tuple[list[str], int, str]:
    """Operators in the file, the number of float32 tensors, and its precision ("int8" only if fully integer: int8
    samples, or a text model's int32 token ids, in)."""
    from edgedistill.runtimes import LiteRTRunner

    r = LiteRTRunner(path, threads=1)
    ops = r.op_names()
    tensors = r.interp.get_tensor_details()
    floats = sum(1 for t in tensors if t["dtype"] == np.float32)
    return ops, floats, "int8" if np.issubdtype(r.inp["dtype"], np.integer) and floats == 0 else "float32"


def _why(c) -> str:
    if c.check in ("flash", "ram"):
        over = c.value - c.limit
        return f"{c.check} {c.value:,} B exceeds {c.limit:,} B by {over:,} B ({over / c.limit:+.0%})"
    return c.detail


def tokenizer_tables(model: Path, tokenizer: str | None, reads_ids: bool) -> tuple[int | None, str | None, str]:
    """(device tokenizer bytes, the file they come from, a note) for `profile --tokenizer` (data/tokenizer_flash.py:
    StudentTokenizer.device_bytes()). `reads_ids`: the model's input is integer token ids (a text model).
    "auto" (the default) counts the tokenizer.json a build writes beside its model files when the model reads token
    ids and the file is a student tokenizer; anything else beside it (a `transformers` tokenizer.json beside an
    optimum export) is left out with a note. "none" counts the model file alone, "bytes" the byte tokenizer (no
    tables); the words in any case. A path must be a student tokenizer and the model must read token ids: else
    ModelLoadError."""
    from edgedistill.data.tokenizers import load_tokenizer

    word = (tokenizer or "none").lower()
    if word == "none":
        return None, None, ""
    if word == "bytes":  # the byte tokenizer (build's --tokenizer bytes) reads no tables
        return (0, "the byte tokenizer", "") if reads_ids else (None, None, "")
    if word == "vocab":
        raise ModelLoadError("--tokenizer vocab: name the student's tokenizer.json (the file a build writes beside its "
                             "model), or give auto, none or bytes.")
    auto = word == "auto"
    path = model.parent / "tokenizer.json" if auto else Path(tokenizer)
    if auto:
        if not path.is_file() or not reads_ids:
            return None, None, ""
        try:
            return load_tokenizer(path).device_bytes(), str(path), ""
        except ModelLoadError:
            return None, None, (f"{path} is not a student tokenizer edgedistill wrote (a teacher's, perhaps): not "
                                "counted; give --tokenizer FILE for the student's")
    if not path.is_file():
        raise ModelLoadError(f"--tokenizer {tokenizer}: no such file. Give auto (the tokenizer.json beside the "
                             "model), none (the model file alone) or the path of the student's tokenizer.json.")
    if not reads_ids:
        raise ModelLoadError(f"--tokenizer {tokenizer} names a text tokenizer, but {model.name} reads samples, not "
                             "token ids: its flash has no tokenizer tables. Leave --tokenizer out.")
    return load_tokenizer(path).device_bytes(), str(path), ""


def _reads_ids(path: Path, fmt: str) -> bool:
    """Whether the model's first input is integer token ids (a text model), not samples."""
    if fmt == "tflite":
        from edgedistill.runtimes import LiteRTRunner

        return LiteRTRunner(path, threads=1).inp["dtype"] in (np.int32, np.int64)  # int8 / uint8: quantized samples
    import onnx

    elem = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.elem_type
    return elem in (onnx.TensorProto.INT32, onnx.TensorProto.INT64)


def _inputs(path: Path, fmt: str) -> list[tuple[str, list]]:
    """[(name, dims)] of the model's inputs, a dim None where it is dynamic (symbolic in ONNX, -1 in TFLite)."""
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        return [(d["name"], [None if v < 0 else int(v) for v in d["shape_signature"]])
                for d in Interpreter(model_path=str(path)).get_input_details()]
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}
    return [(i.name, [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim])
            for i in graph.input if i.name not in init]


def check_timeable(path: Path, fmt: str) -> None:
    """profile times one sample of generated inputs a run (module doc): a file it cannot feed so is refused in one
    paragraph (ModelLoadError) before anything runs: several inputs (a causal LM's KV-cache step), a dynamic
    dimension besides the batch (a sequence length profile would have to guess), or a fixed batch other than 1."""
    inputs = _inputs(path, fmt)
    if len(inputs) != 1:
        raise ModelLoadError(f"{path.name} has {len(inputs)} inputs ({', '.join(n for n, _ in inputs)}); profile feeds "
                             "one input of generated samples or token ids. A causal LM's KV-cache step (its ids, "
                             "position and caches) is timed by the build itself: see its metrics.json "
                             "(speed.kv_cache).")
    name, dims = inputs[0]
    if any(d is None for d in dims[1:]):
        raise ModelLoadError(f"{path.name}'s input {name!r} has a dynamic dimension besides the batch ({dims}): its "
                             "cost and latency depend on a size profile cannot choose (a sequence length). Export it "
                             "with that size fixed, as edgedistill's own files are, and profile that file.")
    if dims and dims[0] not in (None, 1):
        raise ModelLoadError(f"{path.name}'s input {name!r} has a fixed batch of {dims[0]}; profile times one sample "
                             "a run (latency per inference). Export it with batch 1 or a dynamic batch.")


def _measured(path: Path, runtime: str, **kw):
    """profile.measure.measure, with a runtime's refusal of the generated inputs (an out-of-range position) as one
    paragraph (ModelLoadError) instead of the interpreter's traceback."""
    try:
        return measure(path, runtime, **kw)
    except (RuntimeError, ValueError) as exc:  # LiteRT / TFLite Micro raise RuntimeError, onnxruntime ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{runtime} could not run {path.name} on generated inputs ({first[:200]}). profile feeds "
                             "random samples or token ids to a model's inputs; a file whose other inputs must hold "
                             "real values (a causal LM's KV-cache step: a position within the window, its caches) "
                             "cannot be timed this way: its timing is in the build's metrics.json "
                             "(speed.kv_cache).") from None


def profile_model(path: Path, target_name: str, runs: int = 100, warmup: int = 10,
                  tokenizer: str | None = "auto") -> dict:
    """The profile of one file (module doc). `tokenizer`: whose device tables flash counts beside the file
    (tokenizer_tables)."""
    path = Path(path)
    target = load_target(target_name)
    fmt = model_format(path)
    if fmt not in target.formats:
        raise TargetMismatchError(f"{target.name} runs {', '.join(target.formats)} models ({target.runtime}); "
                                  f"{path.name} is {fmt}.")
    if fmt == "tflite":
        try:
            check_timeable(path, fmt)
            cost = tflite_cost(path)
            ops, floats, precision = tflite_facts(path)
        except ValueError as exc:  # the flatbuffer does not parse: a truncated or damaged file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{path} is not a readable .tflite file ({first}); it may be truncated or "
                                 "damaged: export it again.") from None
    else:
        from edgedistill.profile.cost_onnx import onnx_cost

        check_timeable(path, fmt)
        cost = onnx_cost(path)
        ops, floats = [], 0
        precision = "int8" if any(layer.op == "DequantizeLinear" for layer in cost.layers) else "float32"
    tok_bytes, tok_file, tok_note = tokenizer_tables(path, tokenizer, _reads_ids(path, fmt))  # a readable file now
    report = {"model": str(path), "format": fmt, "precision": precision, "target": target.name,
              "file_bytes": path.stat().st_size, "tokenizer_bytes": tok_bytes, "tokenizer_file": tok_file,
              **({"tokenizer_note": tok_note} if tok_note else {}),
              "cost": cost.to_dict(), "measured": [], "estimate": None}
    ram = None
    if fmt == "tflite" and precision == "int8":
        from edgedistill.profile.tflm_arena import tflm_arena

        try:
            arena = tflm_arena(path)
        except Exception as exc:  # TFLite Micro cannot load or run the file: its fit checks say why
            report["tflm_arena"] = None
            report["tflm_arena_error"] = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        else:
            report["tflm_arena"] = asdict(arena)
            ram = arena.total_bytes if target.runtime == "tflm" else None
    runs_on_target = True
    if fmt == "tflite":
        facts = tflite_precision(path)
        report["activations"] = {"precision": facts.precision, "float_ops": facts.float_ops,
                                 "int8_weight_ops": facts.int8_weight_ops}
        checks = fit_checks(cost, report["file_bytes"], ram, ops, floats, target, facts.describe(), tok_bytes)
        report["fit"] = [asdict(c) for c in checks]
        runs_on_target = all(c.passed for c in checks if c.check in ("ops", "precision"))
        bad = [c for c in checks if not c.passed]
        report["fits"] = not bad  # every figure above is still reported; the caller exits non-zero when False
        report["verdict"] = (f"fits {target.name}" if not bad else f"{path.name} does not fit {target.name}: "
                             + "; ".join(_why(c) for c in bad) + ".")
    runtime = {"onnx": "onnxruntime", "tflite": "litert"}[fmt]
    host = _measured(path, runtime, threads=target.threads if target.kind == "host" else 1, warmup=warmup,
                     runs=runs)
    report["measured"].append({"where": "measured-host", **host.to_dict()})
    if fmt == "tflite" and precision == "int8" and runs_on_target:
        micro = _measured(path, "tflm", warmup=min(warmup, 3), runs=max(10, runs // 10), min_seconds=0.2)
        report["measured"].append({"where": "measured-host-tflm", **micro.to_dict(),
                                   "note": "TFLite Micro reference kernels on this host: the arena is exact for any "
                                           "device, the latency is not the device's"})
    peak = target.peak_int8_macs_per_s if precision == "int8" else target.peak_fp32_macs_per_s
    if peak is not None and fmt == "tflite":
        est = estimate_latency(cost, target, precision)
        report["estimate"] = {"where": "estimated", **est.to_dict(), "source": target.sources.get("efficiency", "")}
        if target.kind == "host":
            report["estimate"]["measured_error"] = est.total_ms / host.median_ms - 1.0
    return report
