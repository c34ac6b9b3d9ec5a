"""Exact cost accounting of a .tflite file: parameters, MACs per op, weight bytes at the file's precision, and
the activation arena TFLite Micro's greedy memory planner needs (edgedistill.profile.tflm_planner).

MACs follow the kernels' arithmetic: CONV_2D = out_elems · kh · kw · c_in/groups, DEPTHWISE_CONV_2D =
out_elems · kh · kw, FULLY_CONNECTED = batch · out · in (its weight operand may be an activation: an attention's
product), BATCH_MATMUL = out_elems · the contracted size (an attention's scores and context: L·L·d per head);
pooling / mean / element-wise ops count one operation per input element (reported as `ops`, not MACs). The
activation arena places every non-constant tensor (16-byte aligned) as TFLite Micro's greedy planner does: largest
first, each in the lowest gap free over its lifetime; it can exceed the largest sum of live tensors at one op when
lifetimes interleave.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgedistill.optional import require
from edgedistill.profile.tflm_planner import Buffer, greedy_arena_bytes

ALIGN = 16
_KIND = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "fc", "BATCH_MATMUL": "fc",
         "MAX_POOL_2D": "pool", "AVERAGE_POOL_2D": "pool", "MEAN": "pool"}


@dataclass(frozen=True)
class OpCost:
    index: int
    op: str
    kind: str
    macs: int
    ops: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    output_shape: list[int]


@dataclass
class ModelCost:
    path: str
    params: int
    weight_bytes: int
    macs: int
    peak_activation_bytes: int
    input_dtype: str
    layers: list[OpCost] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _nbytes(t: dict) -> int:
    return int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize if len(t["shape"]) else np.dtype(t["dtype"]).itemsize


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class _Graph:
    interp: object
    tensors: dict
    ops: list
    const: set
    inputs: set
    outputs: set


def _read(path: Path) -> _Graph:
    """The file's tensors and ops (no delegate: the plain kernels' graph), constants = tensors no op writes."""
    interp_mod = require("ai_edge_litert.interpreter")
    interp = interp_mod.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=interp_mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    ops = [o for o in interp._get_ops_details() if o["op_name"] != "DELEGATE"]
    produced = {i for o in ops for i in o["outputs"]}
    inputs = {d["index"] for d in interp.get_input_details()}
    const = {i for o in ops for i in o["inputs"] if i >= 0 and i not in produced and i not in inputs}
    return _Graph(interp, {t["index"]: t for t in interp.get_tensor_details()}, ops, const, inputs,
                  {d["index"] for d in interp.get_output_details()})


def kernel_scratch(op: str, input_rank: int, output_elems: int, axes: int, quantized: bool = True) -> list[int]:
    """Bytes of each scratch buffer TFLite Micro's kernel for `op` requests from the arena, in request order: MEAN's
    int32 accumulators (one per output element, quantized input only), its input index and its resolved axes (an int
    per input dimension / reduced axis: kernels/reduce_common.cc, PrepareMeanOrSumHelper). The other kernels
    edgedistill writes request none (convolutions and FULLY_CONNECTED only for int4 weights)."""
    if op == "MEAN":
        return ([4 * output_elems] if quantized else []) + [4 * input_rank, 4 * axes]
    return []


def tflite_cost(path: Path) -> ModelCost:
    g = _read(path)
    interp, tensors, ops, const, graph_inputs, graph_outputs = g.interp, g.tensors, g.ops, g.const, g.inputs, g.outputs

    layers = []
    for k, o in enumerate(ops):
        ins = [i for i in o["inputs"] if i >= 0]
        outs = list(o["outputs"])
        name = o["op_name"]
        out_t = tensors[outs[0]]
        out_elems = int(np.prod(out_t["shape"]))
        macs, n_ops = 0, 0
        if name == "CONV_2D":
            kh, kw, cin = tensors[ins[1]]["shape"][1:4]
            macs = out_elems * int(kh) * int(kw) * int(cin)
        elif name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = tensors[ins[1]]["shape"]
            macs = out_elems * int(kh) * int(kw)
        elif name == "FULLY_CONNECTED":
            w = tensors[ins[1]]["shape"]
            macs = int(np.prod(out_t["shape"][:-1])) * int(w[0]) * int(w[1])
        elif name == "BATCH_MATMUL":
            # lhs B×M×K (or B×K×M when adjoint): M·K / M = K, whichever way round and however the batch broadcasts
            lhs = tensors[ins[0]]["shape"]
            macs = out_elems * (int(lhs[-2]) * int(lhs[-1]) // int(out_t["shape"][-2]))
        else:
            n_ops = int(np.prod(tensors[ins[0]]["shape"])) if ins else 0
        layers.append(OpCost(
            index=k, op=name, kind=_KIND.get(name, "other"), macs=macs, ops=n_ops,
            weight_bytes=sum(_nbytes(tensors[i]) for i in ins if i in const),
            input_bytes=sum(_nbytes(tensors[i]) for i in ins if i not in const),
            output_bytes=sum(_nbytes(tensors[i]) for i in outs), output_shape=[int(v) for v in out_t["shape"]]))

    peak = greedy_arena_bytes(planned_buffers(tensors, ops, const, graph_inputs, graph_outputs))
    params = sum(int(np.prod(tensors[i]["shape"])) for i in const)
    return ModelCost(str(path), params, _unique_constant_bytes(interp, const), sum(c.macs for c in layers), peak,
                     np.dtype(tensors[min(graph_inputs)]["dtype"]).name, layers)


def tflite_planned_buffers(path: Path) -> list[Buffer]:
    """The activation tensors of a .tflite file as TFLite Micro's planner sees them (see planned_buffers)."""
    g = _read(path)
    return planned_buffers(g.tensors, g.ops, g.const, g.inputs, g.outputs)


def planned_buffers(tensors: dict, ops: list[dict], const: set[int], graph_inputs: set[int],
                    graph_outputs: set[int]) -> list[Buffer]:
    """The activation tensors TFLite Micro plans, in tensor-index order, with their aligned sizes and lifetimes
    (micro_allocation_info.cc: subgraph inputs from step 0, outputs to the last step), then the kernels' scratch
    buffers (`kernel_scratch`), each live at its op's step only (planned after every tensor, in request order)."""
    first, last = {}, {}
    for i in graph_inputs:
        first[i] = 0
    for k, o in enumerate(ops):
        for i in o["inputs"]:
            if i >= 0 and i not in const:
                last[i] = k
                first.setdefault(i, k)
        for i in o["outputs"]:
            if i not in const:
                first[i] = min(first.get(i, k), k)
    for i in graph_outputs:
        last[i] = len(ops) - 1
    scratch = []
    for k, o in enumerate(ops):
        inp, out = tensors[o["inputs"][0]], tensors[o["outputs"][0]]
        axes = int(np.prod(tensors[o["inputs"][1]]["shape"])) if len(o["inputs"]) > 1 else 0
        quantized = np.dtype(inp["dtype"]) in (np.int8, np.int16)
        scratch += [Buffer(_aligned(b), k, k) for b in kernel_scratch(o["op_name"], len(inp["shape"]),
                                                                       int(np.prod(out["shape"])), axes, quantized)]
    return [Buffer(_aligned(_nbytes(tensors[i])), first[i], last.get(i, first[i])) for i in sorted(first)] + scratch


def _unique_constant_bytes(interp, const: set[int]) -> int:
    """Bytes of constant data in the file: converters store identical constants once, so count each content once."""
    seen: set[bytes] = set()
    total = 0
    for i in const:
        data = np.ascontiguousarray(interp.get_tensor(i))
        key = str(data.dtype).encode() + str(data.shape).encode() + data.tobytes()
        if key not in seen:
            seen.add(key)
            total += data.nbytes
    return total
