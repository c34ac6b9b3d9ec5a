"""ONNX export. Float: torch.onnx. Int8: the QuantStudent written directly as a QDQ graph (opset 17).

The int8 graph carries int8 weight initializers (per-channel scales, axis 0) and int32 biases with scale
s_in · s_w, the layout onnxruntime's QDQ transformer fuses into QLinearConv / QGemm kernels. Every scale and zero
point is copied from the trained quantizers, so the file computes what QAT trained.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.export.artifact import Artifact, TensorSpec, finish
from edgedistill.optional import require
from edgedistill.quantize.fake import int8_weights
from edgedistill.quantize.qmodel import GlobalAvg, QLayer, QuantStudent, SameGrid, UnsupportedOpError

OPSET = 17


def export_onnx_float(model: nn.Module, input_shape: tuple[int, ...], path: Path, name: str = "float") -> Artifact:
    require("onnx")
    x = torch.zeros(1, *input_shape)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(tmp), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    size, digest = finish(tmp, path)
    k = int(model(x).shape[1])
    return Artifact(name, "onnx", "float32", path, size, digest, TensorSpec([-1, *input_shape], "float32"),
                    TensorSpec([-1, k], "float32"))


class _Graph:
    def __init__(self, helper, numpy_helper, TensorProto):
        self.h, self.nh, self.TP = helper, numpy_helper, TensorProto
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base: str, value: np.ndarray) -> str:
        nm = self.name(base)
        self.inits.append(self.nh.from_array(value, nm))
        return nm

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.name(base)
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out + "_op", **attrs))
        return out

    def qdq(self, x: str, scale: float, zp: int, base: str) -> str:
        s = self.const(base + "_scale", np.array(scale, np.float32))
        z = self.const(base + "_zp", np.array(zp, np.int8))
        return self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, s, z], base + "_q"), s, z], base + "_dq")


def _layer(g: _Graph, layer: QLayer, x: str) -> str:
    wq, ws = int8_weights(layer.weight)
    s_in = float(layer.in_q.scale)
    w = g.node("DequantizeLinear", [g.const(layer.name + "_w_int8", wq), g.const(layer.name + "_w_scale", ws),
                                    g.const(layer.name + "_w_zp", np.zeros_like(ws, dtype=np.int8))],
               layer.name + "_w", axis=0)
    bias_scale = (np.float32(s_in) * ws).astype(np.float32)
    bq = np.round(layer.bias.detach().numpy().astype(np.float64) / bias_scale).astype(np.int32)
    b = g.node("DequantizeLinear", [g.const(layer.name + "_b_int32", bq), g.const(layer.name + "_b_scale", bias_scale),
                                    g.const(layer.name + "_b_zp", np.zeros_like(bq))], layer.name + "_b", axis=0)
    if layer.kind == "linear":
        y = g.node("Gemm", [x, w, b], layer.name, transB=1)
    else:
        k = list(layer.weight.shape[2:])
        stride = list(layer.stride) if isinstance(layer.stride, (tuple, list)) else [layer.stride] * len(k)
        pad = list(layer.padding) if isinstance(layer.padding, (tuple, list)) else [layer.padding] * len(k)
        y = g.node("Conv", [x, w, b], layer.name, kernel_shape=k, strides=stride, pads=pad + pad, group=layer.groups)
    if layer.relu:
        y = g.node("Relu", [y], layer.name + "_relu")
    return g.qdq(y, float(layer.out_q.scale), int(layer.out_q.zero_point), layer.name + "_out")


def _same_grid(g: _Graph, stage: SameGrid, x: str, idx: int) -> str:
    op, q = stage.op, stage.in_q[0]
    if isinstance(op, nn.Flatten):
        y = g.node("Flatten", [x], f"flatten{idx}", axis=1)
    else:
        k = [op.kernel_size] * (2 if isinstance(op, nn.MaxPool2d) else 1) if isinstance(op.kernel_size, int) else list(op.kernel_size)
        st = op.stride if op.stride is not None else op.kernel_size
        st = [st] * len(k) if isinstance(st, int) else list(st)
        y = g.node("MaxPool", [x], f"maxpool{idx}", kernel_shape=k, strides=st)
    return g.qdq(y, float(q.scale), int(q.zero_point), f"pool{idx}")


def export_onnx_int8(qmodel: QuantStudent, input_shape: tuple[int, ...], num_classes: int, path: Path,
                     name: str = "int8") -> Artifact:
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    g = _Graph(helper, numpy_helper, TensorProto)
    x = g.qdq("input", float(qmodel.input_q.scale), int(qmodel.input_q.zero_point), "input")
    for idx, stage in enumerate(qmodel.stages):
        if isinstance(stage, QLayer):
            x = _layer(g, stage, x)
        elif isinstance(stage, SameGrid):
            x = _same_grid(g, stage, x, idx)
        elif isinstance(stage, GlobalAvg):
            x = g.qdq(g.node("GlobalAveragePool", [x], f"gap{idx}"), float(stage.out_q.scale),
                      int(stage.out_q.zero_point), f"gap{idx}")
        else:
            raise UnsupportedOpError(f"Stage {idx} ({type(stage).__name__}) has no ONNX int8 lowering.")
    g.nodes.append(helper.make_node("Identity", [x], ["logits"], name="output"))
    graph = helper.make_graph(
        g.nodes, "edgedistill_int8",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgedistill")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    size, digest = finish(tmp, path)
    q_in, q_out = qmodel.input_q, qmodel.output_q
    return Artifact(name, "onnx", "int8", path, size, digest,
                    TensorSpec([-1, *input_shape], "float32", float(q_in.scale), int(q_in.zero_point)),
                    TensorSpec([-1, num_classes], "float32", float(q_out.scale), int(q_out.zero_point)))
