"""Exact cost of a student on its int8 graph, without exporting: MACs, int8 weight bytes, and the tensor arena
TFLite Micro plans for it.

The student is captured as a graph (torch.fx) and rewritten as the graph the int8 exporters write
(`quantize.to_quant_student`: BatchNorm folded into its conv / linear, ReLU / ReLU6 / hardsigmoid fused into their
producer, `Normalize` a depthwise 1×1 conv or folded into the first Linear), then run once on a zero sample
(batch 1) to read the shape of every value. Per op:

* MACs: conv = out_elems · k · c_in/groups (depthwise: out_elems · k), linear = out_elems · in_features: the
  kernels' arithmetic, the rule profile/cost.py applies to a .tflite file. Other ops count no MACs.
* weight bytes: int8 weights + an int32 bias per output channel (BN folding gives every conv a bias).
* arena: every activation tensor of the .tflite file with its lifetime [producing op, last reading op], int8
  (1 byte per element), placed by TFLite Micro's greedy planner (profile/tflm_planner.py). Besides the graph's values the
  converter writes the input's layout ops (NCHW -> NHWC: RESHAPE for one channel, TRANSPOSE otherwise; a signal
  N×C×L is first reshaped to N×C×1×L, the exporters carry 1-D graphs as 2-D with height 1) and an
  explicit PAD before a conv whose symmetric torch padding is not TFLite's SAME padding (stride 2 on an even size);
  a flatten right after global average pooling is folded into the MEAN (a flatten of a feature map is one RESHAPE:
  the exporter permutes the next Linear's columns to the file's H, W, C order, so no TRANSPOSE). A residual branch's input stays alive until
  the ADD reads it, so the arena exceeds the largest single layer's input + output.
* a float input head (quantize/input_head.py): the file takes float32 samples and starts with a float MUL and ADD
  (its per-channel constants, 4 bytes each) and a QUANTIZE to int8, before the layout ops; its float tensors count
  4 bytes each (in the arena, and as the ops' input / output bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from edgedistill.profile.tflm_planner import Buffer, align, greedy_arena_bytes, lower_bound_bytes


@dataclass(frozen=True)
class OpCost:
    """One op of the int8 graph (as written to .tflite): its kind, MACs, weights and output elements."""

    name: str
    kind: str
    macs: int = 0
    weights: int = 0  # int8 weight elements
    biases: int = 0   # int32 bias elements (= output channels of a conv / linear)
    out_elems: int = 0
    fused: bool = False  # an activation fused into this op's output (conv / linear / ADD / SUB / MUL + ReLU ...)
    in_elems: int = 0     # int8 activation elements the op reads (all its inputs)
    first_in_elems: int = 0  # elements of its first input (the "ops" of an op without MACs, as profile/cost.py counts)
    const_bytes: int = 0  # int32 shape / permutation / axis / padding operands the file holds (layers: 0, see weights)


@dataclass(frozen=True)
class GraphCost:
    params: int            # weights + biases after BN folding (the deployed parameters)
    macs: int
    weight_bytes: int      # int8 weights + 4 B per int32 bias
    arena_bytes: int       # TFLite Micro's greedy planner on the graph's int8 tensors
    arena_lower_bound: int # the largest sum of tensors alive at one op
    layers: int            # ops with weights (conv, depthwise conv, fully connected)
    channels: int          # output channels summed over those ops (one scale each for weights and bias)
    tensors: int           # activation tensors, input included
    ops: tuple[OpCost, ...] = field(default=(), repr=False)
    buffers: tuple[Buffer, ...] = field(default=(), repr=False)  # the planned tensors, in creation order

    def model_cost(self):
        """The int8 file's per-op cost as profile/cost.py reads it from a .tflite (`ModelCost`), predicted from the
        graph: what `profile.estimate.estimate_latency` needs to estimate a candidate's latency on a target before
        it is trained or exported. Tests check it op by op against the exported files."""
        from edgedistill.profile.cost import ModelCost
        from edgedistill.profile.cost import OpCost as FileOp

        layers = [FileOp(index=k, op=TFLITE_OP.get(o.kind, o.kind.upper()), kind=_COST_KIND.get(o.kind, "other"),
                         macs=o.macs, ops=0 if o.macs else o.first_in_elems,
                         weight_bytes=o.weights + 4 * o.biases + o.const_bytes, input_bytes=o.in_elems,
                         output_bytes=o.out_elems, output_shape=[]) for k, o in enumerate(self.ops)]
        return ModelCost("(predicted from the graph)", self.params, self.weight_bytes, self.macs, self.arena_bytes,
                         "int8", layers)


# int32 operands beside the tensor data (4-D file layout): RESHAPE's new shape, TRANSPOSE's permutation, MEAN's two
# spatial axes, PAD's 4 × 2 paddings. A flatten's RESHAPE has a 2-D shape (see `graph_cost`).
_CONST_BYTES = {"reshape": 16, "transpose": 16, "mean": 8, "pad": 32}
_FLAT_RESHAPE_BYTES = 8

# the TFLite builtin each graph op kind becomes, and the cost class profile/estimate.py gives it
TFLITE_OP = {"conv": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D", "fc": "FULLY_CONNECTED", "maxpool": "MAX_POOL_2D",
             "avgpool": "AVERAGE_POOL_2D", "mean": "MEAN", "add": "ADD", "sub": "SUB", "mul": "MUL", "pad": "PAD",
             "reshape": "RESHAPE", "flatten": "RESHAPE", "transpose": "TRANSPOSE", "hardswish": "HARD_SWISH",
             "sigmoid": "LOGISTIC", "concat": "CONCATENATION", "relu": "RELU", "relu6": "RELU6",
             "quantize": "QUANTIZE"}
_COST_KIND = {"conv": "conv", "depthwise": "depthwise", "fc": "fc", "maxpool": "pool", "avgpool": "pool",
              "mean": "pool"}


def _same_padding(n: int, k: int, s: int, p: int) -> bool:
    """True when torch's symmetric padding `p` equals TFLite's padding for this dim (VALID when p == 0, SAME)."""
    if p == 0:
        return True
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2 == p and total - total // 2 == p and (n + 2 * p - k) // s + 1 == out


def _pad_elems(layer, x: torch.Tensor) -> int:
    """Elements of the explicit PAD output the converter writes before this conv (0 when none is needed)."""
    if layer.kind == "linear":
        return 0
    k, spatial = layer.weight.shape[2:], x.shape[2:]
    as_tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * len(k)  # noqa: E731
    stride, pad = as_tuple(layer.stride), as_tuple(layer.padding)
    if all(_same_padding(n, kk, s, p) for n, kk, s, p in zip(spatial, k, stride, pad)):
        return 0
    return x.shape[1] * math.prod(n + 2 * p for n, p in zip(spatial, pad))


def _layer_cost(name: str, layer, y: torch.Tensor) -> OpCost:
    w = layer.weight
    per_out = w.shape[1] if layer.kind == "linear" else w.shape[1] * math.prod(w.shape[2:])
    # the converter writes a convolution of a single input channel as DEPTHWISE_CONV_2D (depth multiplier = C_out)
    kind = "fc" if layer.kind == "linear" else ("depthwise" if layer.groups > 1 or w.shape[1] == 1 else "conv")
    return OpCost(name, kind, y.numel() * per_out, w.numel(), int(layer.bias.numel()), y.numel(),
                  fused=layer.act != "none")


@torch.no_grad()
def graph_cost(model: nn.Module, input_shape: tuple[int, ...]) -> GraphCost:
    """Cost `model` (a float student, Normalize first) on (1, *input_shape). Raises UnsupportedOpError (one
    paragraph, naming the layer) for a model the int8 pipeline cannot express."""
    from edgedistill.quantize import to_quant_student
    from edgedistill.quantize.ops import Mean, QLayer

    q = to_quant_student(model)
    q.set_mode("float")
    x = torch.zeros(1, *input_shape)
    env = {q.input_name: x}
    floats = 4 if q.head is not None else 1  # a float input head: the input and the head's tensors are float32
    sizes: dict[str, int] = {q.input_name: x.numel() * floats}  # tensor -> bytes, in creation order
    counts: dict[str, int] = {q.input_name: x.numel()}  # tensor -> elements
    first: dict[str, int] = {q.input_name: 0}
    last: dict[str, int] = {}
    ops: list[OpCost] = []

    def op(name: str, kind: str, reads: list[str], out: str, elems: int, cost: OpCost | None = None,
           const: int | None = None, itemsize: int = 1) -> None:
        k = len(ops)
        for r in reads:
            last[r] = k
        sizes[out], counts[out], first[out] = elems * itemsize, elems, k
        cost = cost or OpCost(name, kind, out_elems=elems * itemsize)
        ops.append(replace(cost, in_elems=sum(sizes[r] for r in reads), first_in_elems=counts[reads[0]] if reads else 0,
                           const_bytes=_CONST_BYTES.get(cost.kind, 0) if const is None else const))

    alias: dict[str, str] = {}
    src = lambda v: alias.get(v, v)  # noqa: E731
    if q.head is not None:  # float MUL and ADD (C float constants each), then QUANTIZE, on the layout as fed
        n, c = x.numel(), q.head.channels
        op("input/head_mul", "mul", [q.input_name], "head/mul", n, const=4 * c, itemsize=4)
        op("input/head_add", "add", ["head/mul"], "head/add", n, const=4 * c, itemsize=4)
        op("input/quantize", "quantize", ["head/add"], "head/q", n)
        alias[q.input_name] = "head/q"
    if len(input_shape) >= 2:  # NCHW -> NHWC at the input (a signal is carried as N×1×L×C)
        one_d = len(input_shape) == 2
        layout = ["reshape"] if input_shape[0] == 1 else (["reshape", "transpose"] if one_d else ["transpose"])
        last_name = src(q.input_name)
        for i, kind in enumerate(layout):
            op(f"input/{kind}", kind, [last_name], f"input/{i}", x.numel())
            last_name = f"input/{i}"
        alias[q.input_name] = last_name
    readers: dict[str, int] = {}
    for _, ins, _ in q.steps:
        for i in ins:
            readers[i] = readers.get(i, 0) + 1
    for key, ins, out in q.steps:
        m = q.ops[key]
        y = m(*[env[i] for i in ins])
        env[out] = y
        reads = [src(i) for i in ins]
        if isinstance(m, QLayer):
            pad = _pad_elems(m, env[ins[0]])
            if pad:
                op(f"{key}/pad", "pad", reads, f"{out}/pad", pad)
                reads = [f"{out}/pad"]
            op(key, "layer", reads, out, y.numel(), _layer_cost(key, m, y))
        elif getattr(m, "kind", "") in ("flatten", "reshape") and len(ins) == 1 and \
                isinstance(_producer(q, ins[0]), Mean) and readers.get(ins[0]) == 1:
            alias[out] = src(ins[0])  # MEAN writes the flat [1, C] tensor itself
        else:
            kind = getattr(m, "kind", type(m).__name__.lower())
            flat = kind in ("flatten", "reshape") and y.dim() == 2  # a RESHAPE to [N, features]: a 2-D shape operand
            op(key, kind, reads, out, y.numel(), OpCost(key, kind, out_elems=y.numel(),
                                                        fused=getattr(m, "act", "none") != "none"),
               const=_FLAT_RESHAPE_BYTES if flat else _CONST_BYTES.get("reshape") if kind == "flatten" else None)
    end = src(q.output_name)
    last[end] = len(ops) - 1
    buffers = [Buffer(align(sizes[t]), first[t], max(last.get(t, first[t]), first[t])) for t in sizes]
    layers = [o for o in ops if o.weights]
    weights, biases = sum(o.weights for o in layers), sum(o.biases for o in layers)
    head = 0 if q.head is None else 2 * q.head.channels  # the head's float constants
    return GraphCost(params=weights + biases + head, macs=sum(o.macs for o in ops),
                     weight_bytes=weights + 4 * biases + 4 * head,
                     arena_bytes=greedy_arena_bytes(buffers),
                     arena_lower_bound=lower_bound_bytes(buffers, max((b.last for b in buffers), default=0) + 1),
                     layers=len(layers), channels=biases, tensors=len(buffers), ops=tuple(ops),
                     buffers=tuple(buffers))


def _producer(q, value: str) -> nn.Module | None:
    return next((q.ops[k] for k, _, out in q.steps if out == value), None)
