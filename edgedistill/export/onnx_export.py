"""ONNX export. Float: torch.onnx. Int8: the quantized graph written directly as a QDQ graph (opset 17), one
lowering per int8 op kind (`LOWERINGS`), every op's output behind a QuantizeLinear / DequantizeLinear pair with
its quantizer's parameters.

The int8 graph carries int8 weight initializers (per-channel scales, axis 0) and int32 biases with scale
s_in · s_w, the layout onnxruntime's QDQ transformer fuses into QLinearConv / QGemm kernels. Every scale and zero
point is copied from the trained quantizers, so the file computes what QAT trained.

Activations (and per-tensor constants: embedding and position tables, LayerNorm γ / β) are written as uint8 codes
with zero point z + 128, the same grid as the quantizer's int8 one: QuantizeLinear gives the int8 code + 128 and
DequantizeLinear the same value, so the file's arithmetic is unchanged (onnxruntime at basic optimization gives
bit-identical outputs). onnxruntime fuses int8 activations badly on x86: its QDQ selectors refuse int8 activations
for MatMul and Conv there (`QDQIsInt8Allowed()` is true on ARM only), its int8 -> uint8 rewrite converts a Q/DQ pair
only where the QuantizeLinear has exactly one consumer (not a LayerNorm input, not the q / k / v projections' shared
input), and QLinearAdd / QLinearMul / QLinearWhere need both inputs and the output of one type, which a half-converted
graph breaks; the int8 decoder step ran 0.7x the float file's speed, half of it in unfused Q/DQ nodes. Weights stay
int8 (uint8 × int8 is MLAS's fast path). Interfaces that an app feeds int8 codes (the KV-cache step's caches) keep
their int8 Q/DQ.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgedistill import interrupt
from edgedistill.export.artifact import Artifact, TensorSpec, finish, sample_input
from edgedistill.optional import require
from edgedistill.quantize.arithmetic import LUT_TABLES
from edgedistill.quantize.capture import UnsupportedOpError
from edgedistill.quantize.fake import int32_bias, int8_weights
from edgedistill.quantize.graph import QuantGraph
from edgedistill.quantize.ops import Activation, AvgPool, Binary, Concat, Mean, QLayer, SameGrid, global_max_pool
from edgedistill.quantize.attention_ops import Attention, Constant, LayerNorm, MatMul
from edgedistill.quantize.int16_attention import Attention16, MatMul16
from edgedistill.quantize.int16_ops import LayerNorm16, Narrow, Op16, Widen
from edgedistill.quantize.sequence_ops import Embedding, table_codes, table_scale

OPSET = 17
CODE_OFFSET = 128  # an 8-bit grid's uint8 code: the int8 code + 128, zero point z + 128 (module doc)


def export_onnx_float(model: nn.Module, input_shape: tuple[int, ...], path: Path, name: str = "float") -> Artifact:
    require("onnx")
    x = sample_input(model, input_shape)
    tmp = path.with_name(path.name + ".tmp")
    # the TorchScript exporter calls Python from C++: a KeyboardInterrupt raised there can abort the process
    try:
        with interrupt.deferred("the ONNX exporter"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (x,), str(tmp), input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    size, digest = finish(tmp, path)
    out_shape = [int(d) for d in model(x).shape[1:]]  # K for a classifier, L×V for a causal LM
    return Artifact(name, "onnx", "float32", path, size, digest, TensorSpec([-1, *input_shape], str(x.dtype)[6:]),
                    TensorSpec([-1, *out_shape], "float32"))


class _Graph:
    def __init__(self, helper, numpy_helper, TensorProto):
        self.h, self.nh, self.TP = helper, numpy_helper, TensorProto
        self.nodes, self.inits, self.n = [], [], 0
        self.int16 = False  # the graph holds int16 Q/DQ pairs (com.microsoft domain)

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base: str, value: np.ndarray) -> str:
        nm = self.name(base)
        self.inits.append(self.nh.from_array(value, nm))
        return nm

    def node(self, op: str, inputs: list[str], base: str, domain: str | None = None, **attrs) -> str:
        out = self.name(base)
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out + "_op", domain=domain, **attrs))
        return out

    def zero_point(self, base: str, zp: int) -> str:
        """An 8-bit grid's zero point as this file writes it: uint8, zp + CODE_OFFSET (module doc)."""
        return self.const(base, np.array(zp + CODE_OFFSET, np.uint8))

    def codes(self, base: str, codes: np.ndarray) -> str:
        """int8 codes (any integer array in -128..127) stored as this file's uint8 codes, + CODE_OFFSET."""
        return self.const(base, (np.asarray(codes, np.int16) + CODE_OFFSET).astype(np.uint8))

    def qdq(self, x: str, scale: float, zp: int, base: str, bits: int = 8) -> str:
        """A QuantizeLinear / DequantizeLinear pair: uint8 codes for an 8-bit grid (module doc); int16 (16×8 ops)
        from onnxruntime's com.microsoft domain, which takes int16 at this file's opset (the standard ops take int16
        from opset 21)."""
        s = self.const(base + "_scale", np.array(scale, np.float32))
        z = (self.const(base + "_zp", np.array(zp, np.int16)) if bits == 16 else
             self.zero_point(base + "_zp", zp))
        domain = MS_DOMAIN if bits == 16 else None
        if bits == 16:
            self.int16 = True
        q = self.node("QuantizeLinear", [x, s, z], base + "_q", domain=domain)
        return self.node("DequantizeLinear", [q, s, z], base + "_dq", domain=domain)


MS_DOMAIN = "com.microsoft"


def _qdq_out(g: _Graph, y: str, op) -> str:
    q = op.grid
    return g.qdq(y, float(q.scale), int(q.zero_point), op.name + "_out", q.bits)


def _act(g: _Graph, y: str, act: str, base: str) -> str:
    if act == "relu":
        return g.node("Relu", [y], base + "_relu")
    if act == "relu6":
        lo, hi = g.const(base + "_min", np.array(0.0, np.float32)), g.const(base + "_max", np.array(6.0, np.float32))
        return g.node("Clip", [y, lo, hi], base + "_relu6")
    return y  # "none"; "hardsigmoid": folded into the weights, the [0, 1] output grid saturates


def _pair(v, n: int) -> list[int]:
    return [int(v)] * n if isinstance(v, int) else [int(u) for u in v]


def _layer(g: _Graph, layer: QLayer, xs: list[str], shape) -> str:
    wq, ws = int8_weights(layer.weight)
    w = g.node("DequantizeLinear", [g.const(layer.name + "_w_int8", wq), g.const(layer.name + "_w_scale", ws),
                                    g.const(layer.name + "_w_zp", np.zeros_like(ws, dtype=np.int8))],
               layer.name + "_w", axis=0)
    bq, bias_scale = int32_bias(layer.bias, float(layer.in_q.scale), layer.weight)
    b = g.node("DequantizeLinear", [g.const(layer.name + "_b_int32", bq), g.const(layer.name + "_b_scale", bias_scale),
                                    g.const(layer.name + "_b_zp", np.zeros_like(bq))], layer.name + "_b", axis=0)
    if layer.kind == "linear" and shape is not None and len(shape) >= 3:
        return _rows_gemm(g, layer, xs[0], w, b, shape)
    if layer.kind == "linear":
        y = g.node("Gemm", [xs[0], w, b], layer.name, transB=1)
    else:
        k = list(layer.weight.shape[2:])
        pad = _pair(layer.padding, len(k))
        y = g.node("Conv", [xs[0], w, b], layer.name, kernel_shape=k, strides=_pair(layer.stride, len(k)),
                   pads=pad + pad, group=layer.groups)
    return _act(g, y, layer.act, layer.name)


def _rows_gemm(g: _Graph, layer: QLayer, x: str, w: str, b: str, shape) -> str:
    """A linear layer on N×L×F (`shape`: its input's, one sample): the rows N·L×F through one Gemm with the int32
    bias, reshaped back to N×L×O. onnxruntime fuses DQ -> Gemm (+ Relu) -> Q into one QGemm (it moves the Q/DQ
    pairs across the Reshapes onto the same grids); MatMul then Add leaves a float Add and a QuantizeLinear after
    a MatMulIntegerToFloat (QGemm takes 2-D inputs only). The same sum, but onnxruntime's float kernels do not
    round it identically: at basic optimization on the bench decoder(96, 2) the 96-wide layers gave bit-identical
    values, its 384-wide FFN layer values 1 ulp apart on 39 % of them, which moved 1 code in ~400,000 by one step;
    the parity figures did not change (README: int8 ONNX layout)."""
    out_features, in_features = layer.weight.shape
    rows = g.node("Reshape", [x, g.const(layer.name + "_rows", np.array([-1, in_features], np.int64))],
                  layer.name + "_rows")
    y = _act(g, g.node("Gemm", [rows, w, b], layer.name + "_gemm", transB=1), layer.act, layer.name)
    back = np.array([-1, *shape[1:-1], out_features], np.int64)
    return g.node("Reshape", [y, g.const(layer.name + "_shape", back)], layer.name)


def _binary(g: _Graph, op: Binary, xs: list[str], shape) -> str:
    y = g.node({"add": "Add", "sub": "Sub", "mul": "Mul"}[op.kind], xs, op.name + "_" + op.kind)
    return _act(g, y, op.act, op.name)


def _concat(g: _Graph, op: Concat, xs: list[str], shape) -> str:
    return g.node("Concat", xs, op.name + "_concat", axis=op.dim)


def _mean(g: _Graph, op: Mean, xs: list[str], shape) -> str:
    return g.node("ReduceMean", xs, op.name + "_mean", axes=list(op.dims), keepdims=int(op.keepdim))


def _lookup(g: _Graph, op: Activation, x: str) -> str:
    """A table op (GELU) as LiteRT computes it: the input's uint8 code (QuantizeLinear on its own grid: exact; the
    int8 code + 128), cast to int32, indexes the kernel's 256 output codes (LiteRT's table, indexed by the int8
    code + 128, stored as uint8 codes), then DequantizeLinear on the output grid. opset 17 has no Gelu; the table
    makes onnxruntime compute LiteRT's integers, not a float formula's."""
    (si, zi), (so, zo) = [(float(q.scale), int(q.zero_point)) for q in (op.in_qs[0], op.out_q)]
    table = LUT_TABLES[op.kind](si, zi, so, zo)  # entry c + 128: the output code for input code c
    code = g.node("QuantizeLinear", [x, g.const(op.name + "_in_scale", np.array(si, np.float32)),
                                     g.zero_point(op.name + "_in_zp", zi)], op.name + "_code")
    index = g.node("Cast", [code], op.name + "_index", to=g.TP.INT32)
    out = g.node("Gather", [g.codes(op.name + "_lut", table), index], op.name + "_lookup", axis=0)
    return g.node("DequantizeLinear", [out, g.const(op.name + "_out_scale", np.array(so, np.float32)),
                                       g.zero_point(op.name + "_out_zp", zo)], op.name + "_" + op.kind)


def _activation(g: _Graph, op: Activation, xs: list[str], shape) -> str:
    if op.kind in LUT_TABLES:
        return _lookup(g, op, xs[0])
    return g.node({"hardswish": "HardSwish", "sigmoid": "Sigmoid"}[op.kind], xs, op.name + "_" + op.kind)


def _embedding(g: _Graph, op: Embedding, xs: list[str], shape) -> str:
    """Gather from the int8 table (per-tensor, zero point 0), N×L×D; transposed to N×D×L for a conv student."""
    # the output grid follows the table (as the TFLite export's prepare_export makes it): after an optimizer step
    # with no forward since, the stored grid was the old table's and the file's gather output sat off its codes
    s = op._sync_grid()
    codes = table_codes(op.weight, s).numpy()  # QAT's codes, ties included
    table = g.node("DequantizeLinear", [g.codes(op.name + "_table_codes", codes),
                                        g.const(op.name + "_table_scale", np.array(s, np.float32)),
                                        g.zero_point(op.name + "_table_zp", 0)], op.name + "_table")
    y = g.node("Gather", [table, xs[0]], op.name + "_gather", axis=0)
    return g.node("Transpose", [y], op.name + "_ncl", perm=[0, 2, 1]) if op.channels_first else y


def _sub(g: _Graph, op, xs: list[str], shape=None) -> str:
    """A sub-op of a composite op, lowered and put on its own grid (QDQ), as the top-level ops are."""
    return _qdq_out(g, LOWERINGS[type(op)](g, op, xs, shape), op)


def _constant(g: _Graph, op: Constant, xs: list[str], shape) -> str:
    s, z = float(op.out_q.scale), int(op.out_q.zero_point)
    codes = op.codes().numpy()  # QAT's codes, ties included
    return g.node("DequantizeLinear", [g.codes(op.name + "_codes", codes), g.const(op.name + "_scale", np.array(
        s, np.float32)), g.zero_point(op.name + "_zp", z)], op.name + "_value")


def _heads(g: _Graph, op: Attention, x: str, perm: list[int], base: str) -> str:
    shape = g.const(base + "_shape", np.array([0, 0, op.heads, op.head_dim], np.int64))
    return g.node("Transpose", [g.node("Reshape", [x, shape], base + "_split")], base + "_heads", perm=perm)


def _attention(g: _Graph, op: Attention, xs: list[str], shape) -> str:
    """Attention, and Attention16 (quantize/int16_attention.py): its widened q, k, v, int16 scores, SOFTMAX and
    context behind com.microsoft int16 Q/DQ pairs (onnxruntime computes each in float between them), the context
    narrowed to int8 before the heads merge."""
    x, ids = xs
    wide = isinstance(op, Attention16)
    q, k, v = (_sub(g, layer, [x], shape) for layer in (op.q, op.k, op.v))
    q, k = _heads(g, op, q, [0, 2, 1, 3], op.name + "_q"), _heads(g, op, k, [0, 2, 3, 1], op.name + "_k")
    if wide:
        q, k = _sub(g, op.wide_q, [q]), _sub(g, op.wide_k, [k])
    scores = _sub(g, op.scores, [q, k])
    if op.future is not None:  # a causal decoder: the constant mask of later keys
        pad = g.const(op.name + "_future", op.future.numpy()[None, None])
    else:
        pad = g.node("Unsqueeze", [g.node("Equal", [ids, g.const(op.name + "_pad", np.array(0, np.int32))],
                                          op.name + "_is_pad"),
                                   g.const(op.name + "_axes", np.array([1, 2], np.int64))], op.name + "_mask")
    grid = op.scores.out_q
    s, z = float(grid.scale), int(grid.zero_point)
    low = g.const(op.name + "_low", np.array((grid.width.qmin - z) * s, np.float32))
    scores = _qdq_out(g, g.node("Where", [pad, low, scores], op.name + "_masked"), op.scores)
    probs = _qdq_out(g, g.node("Softmax", [scores], op.name + "_softmax", axis=-1), op.softmax)
    v = _heads(g, op, v, [0, 2, 1, 3], op.name + "_v")
    ctx = _sub(g, op.context, [probs, _sub(g, op.wide_v, [v]) if wide else v])
    if wide:
        ctx = _sub(g, op.narrow, [ctx])
    merged = g.node("Reshape", [g.node("Transpose", [ctx], op.name + "_merge", perm=[0, 2, 1, 3]),
                                g.const(op.name + "_merged", np.array([0, 0, -1], np.int64))], op.name + "_ctx")
    return LOWERINGS[QLayer](g, op.out, [merged], shape)


def _layer_norm(g: _Graph, op: LayerNorm, xs: list[str], shape) -> str:
    x = xs[0]
    mu = _sub(g, op.mu, [x])
    d = _sub(g, op.diff, [x, mu])
    var = _sub(g, op.var, [_sub(g, op.square, [d, d])])
    r = _qdq_out(g, g.node("Reciprocal", [g.node("Sqrt", [var], op.name + "_sqrt")], op.name + "_rsqrt"), op.rsqrt)
    y = _sub(g, op.scaled, [d, r])
    z = _sub(g, op.times_gamma, [y, _constant(g, op.gamma, [], None)])
    return LOWERINGS[Binary](g, op.plus_beta, [z, _constant(g, op.beta, [], None)], None)


def _widen(g: _Graph, op: Widen, xs: list[str], shape) -> str:
    op.prepare_export()  # the grid (s_in / 128, 0) follows the input's
    return xs[0]


def _op16(g: _Graph, op: Op16, xs: list[str], shape) -> str:
    if op.kind == "mean":
        return g.node("ReduceMean", xs, op.name + "_mean", axes=[-1], keepdims=1)
    if op.kind == "rsqrt":
        return g.node("Reciprocal", [g.node("Sqrt", xs, op.name + "_sqrt")], op.name + "_rsqrt")
    return g.node({"sub": "Sub", "mul": "Mul"}[op.kind], xs, op.name + "_" + op.kind)


def _layer_norm16(g: _Graph, op: LayerNorm16, xs: list[str], shape) -> str:
    x = _sub(g, op.widen, xs)
    d = _sub(g, op.diff, [x, _sub(g, op.mu, [x])])
    var = _sub(g, op.var, [_sub(g, op.square, [d, d])])
    y = _sub(g, op.narrow, [_sub(g, op.scaled, [d, _sub(g, op.rsqrt, [var])])])
    z = _sub(g, op.times_gamma, [y, _constant(g, op.gamma, [], None)])
    return LOWERINGS[Binary](g, op.plus_beta, [z, _constant(g, op.beta, [], None)], None)


def _pool(g: _Graph, op: SameGrid, x: str, onnx_op: str) -> str:
    kw = op.fn.kwargs
    k = kw["kernel_size"]
    n = len(k) if not isinstance(k, int) else (2 if op.fn._fn in (F.max_pool2d, F.avg_pool2d) else 1)
    pad = _pair(kw["padding"], n)
    return g.node(onnx_op, [x], op.name + "_pool", kernel_shape=_pair(k, n), strides=_pair(kw["stride"], n),
                  pads=pad + pad)


def _avg_rounding(g: _Graph, op: SameGrid, y: str) -> str:
    """TFLite's AVERAGE_POOL rounds the int8 codes' average half away from zero, QuantizeLinear half to even: nudge
    y by s/(4n) towards the sign of its code y/s + z (codes are multiples of 1/n, so only ties move)."""
    k = op.fn.kwargs["kernel_size"]
    n = int(np.prod(_pair(k, 2 if op.fn._fn is F.avg_pool2d else 1)))
    s, z = float(op.grid.scale), int(op.grid.zero_point)
    code = g.node("Add", [y, g.const(op.name + "_zs", np.array(z * s, np.float32))], op.name + "_code")
    sign = g.node("Sign", [code], op.name + "_sign")
    nudge = g.node("Mul", [sign, g.const(op.name + "_eps", np.array(s / (4 * n), np.float32))], op.name + "_nudge")
    return g.node("Add", [y, nudge], op.name + "_round")


def _same_grid(g: _Graph, op: SameGrid, xs: list[str], shape) -> str:
    x, kw = xs[0], op.fn.kwargs
    if op.kind == "maxpool" and op.fn._fn is global_max_pool:
        return g.node("GlobalMaxPool", [x], op.name + "_gmp")
    if op.kind == "maxpool":
        return _pool(g, op, x, "MaxPool")
    if op.kind == "avgpool":
        return _avg_rounding(g, op, _pool(g, op, x, "AveragePool"))
    if op.kind in ("relu", "relu6"):
        return _act(g, x, op.kind, op.name)
    if op.kind == "first":  # N×L×D -> N×D: position 0
        return g.node("Gather", [x, g.const(op.name + "_first", np.array(0, np.int64))], op.name + "_first", axis=1)
    if op.kind == "flatten":
        return g.node("Flatten", [x], op.name + "_flatten", axis=1)
    if op.kind == "reshape":
        return g.node("Reshape", [x, g.const(op.name + "_shape", np.array([0, *kw["shape"]], np.int64))],
                      op.name + "_reshape")
    if op.kind == "pad":
        rank, pad = len(shape), list(kw["pad"])
        begin, end = [0] * rank, [0] * rank
        for i in range(len(pad) // 2):  # torch: (last dim begin, last dim end, next-to-last begin, ...)
            begin[rank - 1 - i], end[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
        return g.node("Pad", [x, g.const(op.name + "_pads", np.array(begin + end, np.int64))], op.name + "_pad",
                      mode="constant")
    raise UnsupportedOpError(f"Op {op.name!r} ({op.kind}) has no ONNX int8 lowering.")


LOWERINGS = {QLayer: _layer, Binary: _binary, Concat: _concat, Mean: _mean, Activation: _activation,
             Embedding: _embedding, Constant: _constant, Attention: _attention, LayerNorm: _layer_norm,
             MatMul: lambda g, op, xs, shape: g.node("MatMul", xs, op.name + "_matmul"),
             SameGrid: _same_grid, AvgPool: _same_grid, Widen: _widen, Narrow: lambda g, op, xs, shape: xs[0],
             Op16: _op16, LayerNorm16: _layer_norm16, Attention16: _attention,
             MatMul16: lambda g, op, xs, shape: g.node("MatMul", xs, op.name + "_matmul")}


def _shapes(qmodel: QuantGraph, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Each step's input shape (one sample), from a float pass of a copy; under OUTPUT, the model's output shape."""
    m = copy.deepcopy(qmodel)
    m.set_mode("float")
    shapes, hooks = {}, []
    for key, _, _ in m.steps:
        hooks.append(m.ops[key].register_forward_hook(  # a constant has no input
            lambda mod, inp, out, key=key: shapes.__setitem__(key, tuple(inp[0].shape) if inp else ())))
    with torch.no_grad():
        shapes[OUTPUT] = tuple(m(sample_input(m, input_shape)).shape)
    return shapes


OUTPUT = "<output>"  # _shapes' key of the model's output shape (N×K for a classifier, N×L×V for a causal LM)


def save_qdq_model(g: _Graph, graph, path: Path) -> tuple[int, str]:
    """Write `graph` (an onnx GraphProto built on `g`) as this module's int8 files are written: opset OPSET (plus
    com.microsoft's where an int16 Q/DQ needs it), IR version 8, the full checker, then a temporary file renamed
    onto `path` (export/artifact.finish). Returns (bytes, sha256). Raises onnx.checker.ValidationError."""
    import onnx
    from onnx import helper

    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if g.int16 else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgedistill")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    return finish(tmp, path)


def export_onnx_int8(qmodel: QuantGraph, input_shape: tuple[int, ...], num_classes: int, path: Path,
                     name: str = "int8") -> Artifact:
    require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    g = _Graph(helper, numpy_helper, TensorProto)
    shapes = _shapes(qmodel, input_shape)
    if shapes[OUTPUT][-1] != num_classes:
        raise ValueError(f"the model's output {shapes[OUTPUT]} does not end in its {num_classes} classes / tokens")
    x = "input"
    if qmodel.head is not None:  # float input head: (x · a + b) in float, then the input grid
        shape = (1, -1) + (1,) * (len(input_shape) - 1)
        a, b = (g.const("head_" + n, getattr(qmodel.head, n).reshape(shape).numpy()) for n in ("a", "b"))
        x = g.node("Add", [g.node("Mul", [x, a], "head_mul"), b], "head_add")
    env = {qmodel.input_name: x if qmodel.index_input else
           g.qdq(x, float(qmodel.input_q.scale), int(qmodel.input_q.zero_point), "input")}
    for key, ins, out in qmodel.steps:
        op = qmodel.ops[key]
        lower = LOWERINGS.get(type(op))
        if lower is None:
            raise UnsupportedOpError(f"Op {op.name!r} ({type(op).__name__}) has no ONNX int8 lowering.")
        env[out] = _qdq_out(g, lower(g, op, [env[i] for i in ins], shapes[key]), op)
    x = env[qmodel.output_name]
    g.nodes.append(helper.make_node("Identity", [x], ["logits"], name="output"))
    graph = helper.make_graph(
        g.nodes, "edgedistill_int8",
        [helper.make_tensor_value_info("input", TensorProto.INT32 if qmodel.index_input else TensorProto.FLOAT,
                                       ["batch", *input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", *shapes[OUTPUT][1:]])], g.inits)
    size, digest = save_qdq_model(g, graph, path)
    q_in, q_out = qmodel.input_q, qmodel.output_q
    in_q = (None, None) if qmodel.float_input or qmodel.index_input else (float(q_in.scale), int(q_in.zero_point))
    return Artifact(name, "onnx", "int8", path, size, digest,
                    TensorSpec([-1, *input_shape], "int32" if qmodel.index_input else "float32", *in_q),
                    TensorSpec([-1, *shapes[OUTPUT][1:]], "float32", float(q_out.scale), int(q_out.zero_point)))
