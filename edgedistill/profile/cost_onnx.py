"""Cost of an ONNX file: parameters and weight bytes from its initializers, MACs of Conv / Gemm / MatMul from
shape inference (batch 1): a MatMul of two activations (an attention's Q·Kᵀ and P·V) counts its output elements
times the contracted size, as TFLite's BATCH_MATMUL does in profile/cost.py. Peak activation memory is not estimated for ONNX (the runtime's allocator decides)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.optional import require
from edgedistill.profile.cost import ModelCost, OpCost


def onnx_cost(path: Path) -> ModelCost:
    onnx = require("onnx")
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    g = model.graph
    for inp in g.input:  # fix the batch dimension to 1 so shapes infer
        d = inp.type.tensor_type.shape.dim
        if d and not d[0].dim_value:
            d[0].dim_value = 1
    # data_prop: shapes computed in the graph (Shape -> Gather -> Concat -> Reshape, as torch.onnx writes an
    # attention's head split) propagate as values; without it those tensors' dimensions stay unknown (0) and the
    # MatMuls after them counted no MACs (a decoder's float file: 1.8 M of its 27.6 M)
    model = shape_inference.infer_shapes(model, data_prop=True)
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*g.value_info, *g.input, *g.output]}
    # QDQ files hold weights as int8 initializers behind DequantizeLinear: resolve them to their source.
    dq_src = {n.output[0]: n.input[0] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    layers = []
    for k, n in enumerate(g.node):
        macs = 0
        w_name = dq_src.get(n.input[1], n.input[1]) if len(n.input) > 1 else None
        w = inits.get(w_name) if w_name else None
        out = shapes.get(n.output[0], [])
        if n.op_type == "Conv" and w is not None and out:
            macs = int(np.prod(out)) * int(np.prod(w.shape[1:]))
        elif n.op_type in ("Gemm", "MatMul") and w is not None and out:
            macs = int(np.prod(out)) * int(w.shape[1] if n.op_type == "Gemm" and any(
                a.name == "transB" and a.i for a in n.attribute) else w.shape[0])
        elif n.op_type == "MatMul" and out and shapes.get(n.input[0]):  # both operands are activations
            macs = int(np.prod(out)) * int(shapes[n.input[0]][-1])
        kind = {"Conv": "conv", "Gemm": "fc", "MatMul": "fc"}.get(n.op_type, "other")
        if kind == "conv" and w is not None and w.shape[1] == 1 and len(w.shape) > 2:
            kind = "depthwise"
        layers.append(OpCost(k, n.op_type, kind, macs, 0, 0, 0, 0, [int(v) for v in out]))
    # parameters: weight tensors, not the scales / zero points of Q/DQ nodes (a per-channel scale is an array too)
    qparams = {name for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") for name in n.input[1:]}
    params = sum(int(a.size) for name, a in inits.items() if a.ndim >= 1 and a.size > 1 and name not in qparams)
    weight_bytes = sum(int(a.nbytes) for a in inits.values())
    in_dtype = "float32"
    return ModelCost(str(path), params, weight_bytes, sum(l.macs for l in layers), 0, in_dtype, layers)
