"""Export of the KV-cache decoder step (quantize/kv_step.py) beside the full-window files: int8 TFLite (litert-torch
STATIC QDQ, as export/tflite_export.py) and int8 ONNX (QDQ, written with export/onnx_export.py's lowerings).

Both files take ids int32 (1, 1), pos int32 (1,) and one int8 (1, H, L, d) key cache and value cache per layer
(k_0, v_0, k_1, v_1, … on the grids QAT trained for each layer's K and V projections), and give the token's
logits (1, 1, V) (int8 on the window file's output grid in TFLite; float32 in ONNX, as the window ONNX file) and
the updated caches (int8, same grids), which the app feeds back at the next position. The Artifact's `extra`
lists every input and output (TensorSpec dicts, in order) and the step's form.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from edgedistill.export.artifact import Artifact, TensorSpec
from edgedistill.export.onnx_export import LOWERINGS, _constant, _Graph, _heads, _qdq_out, _shapes, _sub, \
    save_qdq_model
from edgedistill.optional import require
from edgedistill.quantize.attention_ops import Attention, Constant
from edgedistill.quantize.graph import QuantGraph
from edgedistill.quantize.kv_step import KVCacheStep
from edgedistill.quantize.ops import QLayer

FORM = ("KV-cache step at batch 1: ids int32 (1, 1), pos int32 (1,), per layer an int8 key cache and value cache "
        "(1, H, L, d) -> logits (1, 1, V) and the updated caches (slot pos written)")


def cache_names(step: KVCacheStep) -> list[str]:
    """k_0, v_0, k_1, v_1, …: the cache inputs (and outputs) in order."""
    return [f"{kv}_{i}" for i in range(len(step.attention)) for kv in ("k", "v")]


def _specs(step: KVCacheStep, out: TensorSpec) -> dict:
    caches = [TensorSpec(list(shape), "int8", float(q.scale), int(q.zero_point))
              for shape, q in zip(step.cache_shapes(), step.cache_grids())]
    ins = [TensorSpec([1, 1], "int32"), TensorSpec([1], "int32"), *caches]
    names = cache_names(step)
    return {"step": "kv-cache", "form": FORM, "context": step.context,
            "input_names": ["ids", "pos", *names], "inputs": [asdict(s) for s in ins],
            "output_names": ["logits", *names], "outputs": [asdict(s) for s in [out, *caches]]}


def export_kv_tflite(qmodel: QuantGraph, path: Path, name: str = "tflite-int8-kv") -> Artifact:
    """The int8 TFLite KV-cache step of `qmodel` (not modified) at `path`. Raises UnsupportedOpError for a graph
    without one (quantize/kv_step.kv_cache_refusal)."""
    from edgedistill.export.tflite_export import _convert, _fixups, _static_qdq_config

    m = copy.deepcopy(qmodel)
    m.set_mode("export")
    step = KVCacheStep(m).eval()
    sample = (torch.zeros(1, 1, dtype=torch.int32), torch.zeros(1, dtype=torch.int32),
              *[torch.zeros(s) for s in step.cache_shapes()])
    size, digest = _convert(step, sample, path, _static_qdq_config(), fixup=_fixups(m))
    q = qmodel.output_q
    vocab = int(_shapes(qmodel, (step.context,))["<output>"][-1])
    logits = TensorSpec([1, 1, vocab], "int8", float(q.scale), int(q.zero_point))
    extra = _specs(step, logits)
    _check_tflite_io(path, extra)
    return Artifact(name, "tflite", "int8", path, size, digest, TensorSpec([1, 1], "int32"), logits, extra)


def _check_tflite_io(path: Path, extra: dict) -> None:
    """The converted file's inputs / outputs are those `extra` lists, in that order, on those grids (a converter
    that reordered them would make an app feed a key cache as a value cache)."""
    interp = require("ai_edge_litert.interpreter").Interpreter(model_path=str(path))
    for details, specs in ((interp.get_input_details(), extra["inputs"]),
                           (interp.get_output_details(), extra["outputs"])):
        for d, s in zip(details, specs):
            scale, zp = d["quantization"]
            same = [int(v) for v in d["shape"]] == s["shape"] and np.dtype(d["dtype"]).name == s["dtype"] and (
                s["scale"] is None or (np.isclose(scale, s["scale"], rtol=1e-6) and zp == s["zero_point"]))
            if not same or len(details) != len(specs):
                path.unlink(missing_ok=True)
                raise RuntimeError(f"the KV-cache TFLite file's tensor {d['name']} is {d['shape']} {d['dtype']} "
                                   f"{d['quantization']}, expected {s}")


def _kv_attention(g: _Graph, op: Attention, x: str, shape, slots: str, pos: str, caches: list[str]):
    """The cached attention of quantize/kv_step.py in ONNX: (output before its QDQ, keys, values)."""
    q, k, v = (_sub(g, layer, [x], shape) for layer in (op.q, op.k, op.v))
    here = g.node("Reshape", [g.node("Equal", [slots, pos], op.name + "_here"),
                              g.const(op.name + "_col", np.array([1, 1, -1, 1], np.int64))], op.name + "_slot")
    rows = []
    for cache, new, grid, base in ((caches[0], k, op.k.out_q, "_keys"), (caches[1], v, op.v.out_q, "_values")):
        s, z = g.const(op.name + base + "_scale", np.array(float(grid.scale), np.float32)), \
            g.const(op.name + base + "_zp", np.array(int(grid.zero_point), np.int8))
        old = g.node("DequantizeLinear", [cache, s, z], op.name + base + "_cache")
        rows.append(g.node("Where", [here, _heads(g, op, new, [0, 2, 1, 3], op.name + base), old], op.name + base))
    keys, values = rows
    scores = _sub(g, op.scores, [_heads(g, op, q, [0, 2, 1, 3], op.name + "_q"),
                                 g.node("Transpose", [keys], op.name + "_keys_t", perm=[0, 1, 3, 2])])
    later = g.node("Reshape", [g.node("Greater", [slots, pos], op.name + "_later"),
                               g.const(op.name + "_row", np.array([1, 1, 1, -1], np.int64))], op.name + "_mask")
    s, z = float(op.scores.out_q.scale), int(op.scores.out_q.zero_point)
    low = g.const(op.name + "_low", np.array((-128 - z) * s, np.float32))
    scores = _qdq_out(g, g.node("Where", [later, low, scores], op.name + "_masked"), op.scores)
    probs = _qdq_out(g, g.node("Softmax", [scores], op.name + "_softmax", axis=-1), op.softmax)
    ctx = _sub(g, op.context, [probs, values])
    merged = g.node("Reshape", [g.node("Transpose", [ctx], op.name + "_merge", perm=[0, 2, 1, 3]),
                                g.const(op.name + "_merged", np.array([0, 0, -1], np.int64))], op.name + "_ctx")
    return LOWERINGS[QLayer](g, op.out, [merged], shape), keys, values


def export_kv_onnx(qmodel: QuantGraph, path: Path, name: str = "onnx-int8-kv") -> Artifact:
    """The int8 ONNX (QDQ, opset 17) KV-cache step of `qmodel` at `path` (module doc). Raises UnsupportedOpError for
    a graph without one."""
    require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    step = KVCacheStep(qmodel)
    g = _Graph(helper, numpy_helper, TensorProto)
    # one position where the window has L (the linears' Gemm reshapes its rows back to N×1×O)
    shapes = {k: (s[0], 1, *s[2:]) if len(s) >= 2 else s for k, s in _shapes(qmodel, (step.context,)).items()}
    names = cache_names(step)
    slots = g.const("slots", np.arange(step.context, dtype=np.int32))
    env, outs, n = {qmodel.input_name: "ids"}, [], 0
    for key, ins, out in qmodel.steps:
        op = qmodel.ops[key]
        if isinstance(op, Attention):
            y, keys, values = _kv_attention(g, op, env[ins[0]], shapes[key], slots, "pos", names[n:n + 2])
            outs += [(keys, op.k.out_q), (values, op.v.out_q)]
            n += 2
        elif isinstance(op, Constant):  # the position table's row `pos`
            y = g.node("Gather", [_constant(g, op, [], None), "pos"], op.name + "_row", axis=1)
        else:
            y = LOWERINGS[type(op)](g, op, [env[i] for i in ins], shapes[key])
        env[out] = _qdq_out(g, y, op)
    g.nodes.append(helper.make_node("Identity", [env[qmodel.output_name]], ["logits"], name="output"))
    for (value, grid), nm in zip(outs, names):
        s, z = g.const(nm + "_out_scale", np.array(float(grid.scale), np.float32)), \
            g.const(nm + "_out_zp", np.array(int(grid.zero_point), np.int8))
        g.nodes.append(helper.make_node("QuantizeLinear", [value, s, z], [nm + "_out"], name=nm + "_out_q"))
    vocab = int(shapes["<output>"][-1])
    cache_info = [helper.make_tensor_value_info(nm, TensorProto.INT8, list(sh))
                  for nm, sh in zip(names, step.cache_shapes())]
    graph = helper.make_graph(
        g.nodes, "edgedistill_int8_kv",
        [helper.make_tensor_value_info("ids", TensorProto.INT32, [1, 1]),
         helper.make_tensor_value_info("pos", TensorProto.INT32, [1]), *cache_info],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, vocab]),
         *[helper.make_tensor_value_info(nm + "_out", TensorProto.INT8, list(sh))
           for nm, sh in zip(names, step.cache_shapes())]], g.inits)
    size, digest = save_qdq_model(g, graph, path)
    q = qmodel.output_q
    logits = TensorSpec([1, 1, vocab], "float32", float(q.scale), int(q.zero_point))
    return Artifact(name, "onnx", "int8", path, size, digest, TensorSpec([1, 1], "int32"), logits,
                    _specs(step, logits))
