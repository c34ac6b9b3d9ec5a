"""Exact cost of a student on its int8 graph, without exporting: MACs, int8 weight bytes, and the tensor arena
TFLite Micro plans for it.

The student is captured as a graph (torch.fx) and rewritten as the graph the int8 exporters write
(`quantize.to_quant_student`: BatchNorm folded into its conv / linear, ReLU / ReLU6 / hardsigmoid fused into their
producer, `Normalize` a depthwise 1×1 conv or folded into the first Linear), then run once on a zero sample
(batch 1) to read the shape of every value; each op is lowered to the file ops the converter writes for it
(students/cost_ops.py, students/cost_text.py: one lowering per op kind). Per op:

* MACs: conv = out_elems · k · c_in/groups (depthwise: out_elems · k), linear = out_elems · in_features, and the
  attention's two products of activations (scores and context: L·L·d per head each): the kernels' arithmetic, the
  rule profile/cost.py applies to a .tflite file. Other ops count no MACs.
* weight bytes: int8 weights + an int32 bias per output channel (BN folding gives every conv a bias), and the
  model's int8 constant tensors (embedding tables, learned positions, LayerNorm's γ and β).
* arena: every activation tensor of the .tflite file with its lifetime [producing op, last reading op], int8
  (1 byte per element), placed by TFLite Micro's greedy planner (profile/tflm_planner.py). Besides the graph's
  values the converter writes the input's layout ops (NCHW -> NHWC: RESHAPE for one channel, TRANSPOSE otherwise; a
  signal N×C×L is first reshaped to N×C×1×L, the exporters carry 1-D graphs as 2-D with height 1) and an explicit
  PAD before a conv whose symmetric torch padding is not TFLite's SAME padding (stride 2 on an even size); a
  flatten right after global average pooling is folded into the MEAN, and one of a 1×1 map into the
  FULLY_CONNECTED reading it (a flatten of a feature map is one RESHAPE: the exporter permutes the next Linear's
  columns to the file's H, W, C order, so no TRANSPOSE). A residual branch's input stays alive until the ADD reads
  it, so the arena exceeds the largest single layer's input + output.
* token ids (text students): the file takes int32 ids (4 bytes each); the embedding, attention and LayerNorm are
  the ops students/cost_text.py lists.
* a float input head (quantize/input_head.py): the file takes float32 samples and starts with a float MUL and ADD
  (its per-channel constants, 4 bytes each) and a QUANTIZE to int8, before the layout ops; its float tensors count
  4 bytes each (in the arena, and as the ops' input / output bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from edgedistill.profile.tflm_planner import Buffer, greedy_arena_bytes, lower_bound_bytes
from edgedistill.students.cost_graph import COST_KIND, TFLITE_OP, FileGraph, OpCost
from edgedistill.students.cost_int16 import INT16_LOWERINGS
from edgedistill.students.cost_ops import LOWERINGS, Step, lower_plain
from edgedistill.students.cost_text import TEXT_LOWERINGS

__all__ = ["GraphCost", "OpCost", "TFLITE_OP", "graph_cost"]


@dataclass(frozen=True)
class GraphCost:
    params: int            # weights + biases after BN folding (the deployed parameters), and int8 constant tensors
    macs: int
    weight_bytes: int      # int8 weights + 4 B per int32 bias + the int8 constant tensors
    arena_bytes: int       # TFLite Micro's greedy planner on the graph's int8 tensors
    arena_lower_bound: int # the largest sum of tensors alive at one op
    layers: int            # ops with weights (conv, depthwise conv, fully connected)
    channels: int          # output channels summed over those ops (one scale each for weights and bias)
    tensors: int           # activation tensors, input included
    ops: tuple[OpCost, ...] = field(default=(), repr=False)
    buffers: tuple[Buffer, ...] = field(default=(), repr=False)  # the planned tensors (creation order), scratch
    weight_scales: int = 0  # per-channel weight scales over the weight ops (= channels unless a layer has no bias)
    fixed_constants: tuple[int, ...] = ()  # bytes of each constant tensor that is no parameter (a causal mask)
    constant_tensors: int = 0  # constant tensors of the file, at most (weights, biases, tables, small operands)
    state_bytes: int = 0  # bytes an app keeps between invocations (the KV-cache step's int8 caches), not planned

    def model_cost(self):
        """The int8 file's per-op cost as profile/cost.py reads it from a .tflite (`ModelCost`), predicted from the
        graph: what `profile.estimate.estimate_latency` needs to estimate a candidate's latency on a target before
        it is trained or exported. Tests check it op by op against the exported files."""
        from edgedistill.profile.cost import ModelCost
        from edgedistill.profile.cost import OpCost as FileOp

        layers = [FileOp(index=k, op=TFLITE_OP.get(o.kind, o.kind.upper()), kind=COST_KIND.get(o.kind, "other"),
                         macs=o.macs, ops=0 if o.macs else o.first_in_elems,
                         weight_bytes=o.weights + 4 * o.biases + o.const_bytes, input_bytes=o.in_elems,
                         output_bytes=o.out_elems, output_shape=[]) for k, o in enumerate(self.ops)]
        return ModelCost("(predicted from the graph)", self.params, self.weight_bytes, self.macs, self.arena_bytes,
                         "int8", layers)


_LOWERINGS = {**LOWERINGS, **TEXT_LOWERINGS}


def _lower_input(fg: FileGraph, q, input_shape: tuple[int, ...]) -> None:
    """The float input head (float MUL and ADD with C float constants each, then QUANTIZE, on the layout as fed) and
    the NCHW -> NHWC layout ops (a signal is carried as N×1×L×C)."""
    n = fg.tensors[q.input_name].elems
    if q.head is not None:
        c = q.head.channels
        fg.emit("input/head_mul", "mul", [q.input_name], "head/mul", n, const=4 * c, itemsize=4)
        fg.emit("input/head_add", "add", ["head/mul"], "head/add", n, const=4 * c, itemsize=4)
        fg.alias[q.input_name] = fg.emit("input/quantize", "quantize", ["head/add"], "head/q", n)
    if len(input_shape) >= 2:
        one_d = len(input_shape) == 2
        layout = ["reshape"] if input_shape[0] == 1 else (["reshape", "transpose"] if one_d else ["transpose"])
        for i, kind in enumerate(layout):
            fg.alias[q.input_name] = fg.emit(f"input/{kind}", kind, [q.input_name], f"input/{i}", n, const=16)


@torch.no_grad()
def graph_cost(model: nn.Module, input_shape: tuple[int, ...], int16: tuple[str, ...] = ()) -> GraphCost:
    """Cost `model` (a float student: Normalize first, or token ids into an embedding) on (1, *input_shape).
    `int16`: op kinds in TFLite's 16×8 form (quant.int16: "attention", "layernorm"; students/cost_int16.py).
    Raises UnsupportedOpError (one paragraph, naming the layer) for a model the int8 pipeline cannot express (or
    whose 16×8 form it cannot write: one head), ConfigError for an `int16` kind the model has no op of."""
    from edgedistill.quantize import to_quant_student

    q = to_quant_student(model, int16=tuple(int16))
    q.set_mode("float")
    # token ids: any valid id gives the shapes (1, not the padding id 0, so no attention row is all masked)
    x = torch.ones(1, *input_shape, dtype=torch.int32) if q.index_input else torch.zeros(1, *input_shape)
    fg = FileGraph()
    fg.input(q.input_name, x.numel(), 4 if q.index_input or q.head is not None else 1)  # int32 ids / float32
    _lower_input(fg, q, input_shape)
    readers: dict[str, list] = {}
    for key, ins, _ in q.steps:
        for i in ins:
            readers.setdefault(i, []).append(q.ops[key])
    env = {q.input_name: x}
    for key, ins, out in q.steps:
        m = q.ops[key]
        env[out] = m(*[env[i] for i in ins])
        lower = INT16_LOWERINGS.get(type(m)) or _LOWERINGS.get(getattr(m, "kind", ""), lower_plain)
        lower(fg, Step(key, m, ins, out, env, q, readers))
    return assemble(fg, q)


def assemble(fg: FileGraph, q, state_bytes: int = 0) -> GraphCost:
    """The GraphCost of a lowered file graph `fg` of the QuantGraph `q` (its output alive to the last op);
    `state_bytes`: what an app keeps between invocations (GraphCost.state_bytes)."""
    buffers = fg.buffers(q.output_name)
    layers = [o for o in fg.ops if o.weights]
    weights, biases = sum(o.weights for o in layers), sum(o.biases for o in layers)
    head = 0 if q.head is None else 2 * q.head.channels  # the head's float constants
    return GraphCost(params=weights + biases + head + fg.learned, macs=sum(o.macs for o in fg.ops),
                     weight_bytes=weights + 4 * biases + 4 * head + fg.learned,
                     arena_bytes=greedy_arena_bytes(buffers),
                     arena_lower_bound=lower_bound_bytes(buffers, max((b.last for b in buffers), default=0) + 1),
                     layers=len(layers), channels=biases, tensors=len(buffers) - len(fg.scratch), ops=tuple(fg.ops),
                     buffers=tuple(buffers), weight_scales=sum(o.out_channels or o.biases for o in layers),
                     fixed_constants=tuple(fg.fixed),
                     constant_tensors=fg.small_constants + sum(1 + (o.biases > 0) for o in layers)
                     + sum(t.constant for t in fg.tensors.values()), state_bytes=state_bytes)
