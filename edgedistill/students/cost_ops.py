"""How each op of the int8 graph becomes ops of the .tflite file (images, signals, feature vectors); the text ops
are in students/cost_text.py. One lowering per op kind (`LOWERINGS`); an op kind without one is one file op that
reads the op's inputs (ADD, MUL, PAD, HARD_SWISH, LOGISTIC, CONCATENATION, ...).

* conv / depthwise conv / fully connected: MACs = out_elems · k · c_in/groups (depthwise: out_elems · k), linear =
  out_elems · in_features; int8 weights and an int32 bias per output channel. The converter writes a convolution of
  a single input channel as DEPTHWISE_CONV_2D, and an explicit PAD before a conv whose symmetric torch padding is
  not TFLite's SAME padding (stride 2 on an even size).
* flatten / reshape: one RESHAPE, except where the converter writes none: after a MEAN (it writes the flat [N, C]
  itself), and before a FULLY_CONNECTED when every position dimension is 1 (the kernel flattens its input).
* pooling: a 1-D map of a graph that is not carried as 2-D is first RESHAPEd to N×1×L×C.
* MEAN: one int32 axis operand per reduced axis of the file's tensor (a 1-D map is carried as N×1×L×C, so reducing
  its length reduces the height-1 axis too), and the scratch buffers TFLite Micro's kernel requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from edgedistill.profile.cost import kernel_scratch
from edgedistill.students.cost_graph import FileGraph, OpCost

# int32 operands beside the tensor data (4-D file layout): RESHAPE's new shape, TRANSPOSE's permutation, PAD's 4 × 2
# paddings.
CONST_BYTES = {"reshape": 16, "transpose": 16, "pad": 32, "first": 24}  # first: SLICE's begin and size, int32[3]


@dataclass(frozen=True)
class Step:
    """One op of the quantized graph with its values: `env` maps value names to the float forward's tensors (batch
    1), `readers` each value to the ops that read it."""

    key: str
    op: nn.Module
    ins: tuple[str, ...]
    out: str
    env: dict
    graph: nn.Module  # the QuantGraph
    readers: dict

    @property
    def x(self) -> torch.Tensor:
        return self.env[self.ins[0]]

    @property
    def y(self) -> torch.Tensor:
        return self.env[self.out]


def layer_cost(name: str, layer, out_elems: int) -> OpCost:
    """A conv / linear QLayer writing `out_elems` outputs: its file op, MACs, weights and biases."""
    w = layer.weight
    per_out = w.shape[1] if layer.kind == "linear" else w.shape[1] * math.prod(w.shape[2:])
    # the converter writes a convolution of a single input channel as DEPTHWISE_CONV_2D (depth multiplier = C_out)
    kind = "fc" if layer.kind == "linear" else ("depthwise" if layer.groups > 1 or w.shape[1] == 1 else "conv")
    # a FULLY_CONNECTED whose bias stays all zero is written without one: a Linear with no bias of its own (a
    # decoder's tied output embedding), whose zero bias QAT does not train (QLayer trainable_bias); a bias QAT trains
    # counts even while it is zero (a user's zero-initialised Linear: the file holds it once trained)
    trained = isinstance(layer.bias, torch.nn.Parameter)
    biases = 0 if layer.kind == "linear" and not trained and not bool(layer.bias.detach().any()) \
        else int(layer.bias.numel())
    return OpCost(name, kind, out_elems * per_out, w.numel(), biases, out_elems, fused=layer.act != "none",
                  out_channels=int(w.shape[0]))


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


def lower_layer(fg: FileGraph, s: Step) -> None:
    reads = list(s.ins)
    pad = _pad_elems(s.op, s.x)
    if pad:
        reads = [fg.emit(f"{s.key}/pad", "pad", reads, f"{s.out}/pad", pad, const=CONST_BYTES["pad"])]
    fg.emit(s.key, "layer", reads, s.out, s.y.numel(), cost=layer_cost(s.key, s.op, s.y.numel()))


def _file_rank(s: Step, t: torch.Tensor) -> int:
    """Rank of a value in the file: a 1-D map (N×C×L) of a 1-D graph is carried as N×1×L×C."""
    return t.dim() + (1 if s.graph.one_d and t.dim() == 3 else 0)


def lower_reshape(fg: FileGraph, s: Step) -> None:
    from edgedistill.quantize.ops import Mean, QLayer

    readers = s.readers.get(s.ins[0], [])
    after_mean = len(readers) == 1 and isinstance(_producer(s), Mean)
    into_fc = (s.y.dim() == 2 and math.prod(s.x.shape[2:]) == 1
               and all(isinstance(r, QLayer) and r.kind == "linear" for r in s.readers.get(s.out, [None])))
    if after_mean or into_fc:  # MEAN writes the flat [N, C] itself; FULLY_CONNECTED flattens N×1×1×C itself
        fg.alias[s.out] = fg.src(s.ins[0])
        return
    fg.emit(s.key, s.op.kind, list(s.ins), s.out, s.y.numel(), const=4 * _file_rank(s, s.y))


def lower_mean(fg: FileGraph, s: Step) -> None:
    dims = {d % s.x.dim() for d in s.op.dims}
    lifted = s.graph.one_d and s.x.dim() == 3 and s.x.dim() - 1 in dims  # the height-1 axis is reduced with the length
    axes = len(dims) + lifted
    fg.emit(s.key, "mean", list(s.ins), s.out, s.y.numel(), const=4 * axes,
            scratch=kernel_scratch("MEAN", _file_rank(s, s.x), s.y.numel(), axes))


def lower_pool(fg: FileGraph, s: Step) -> None:
    """MAX_POOL_2D / AVERAGE_POOL_2D; a 1-D map of a graph not carried as 2-D (no 1-D conv or pooling: e.g. global
    max pooling of channels-first embeddings) is first RESHAPEd to N×1×L×C."""
    reads = list(s.ins)
    if s.x.dim() == 3 and not s.graph.one_d:
        reads = [fg.emit(f"{s.key}/map", "reshape", reads, f"{s.out}/map", s.x.numel(), const=16)]
    fg.emit(s.key, s.op.kind, reads, s.out, s.y.numel())


def lower_plain(fg: FileGraph, s: Step) -> None:
    """One file op reading the graph op's inputs (its kind names the TFLite op: cost_graph.TFLITE_OP)."""
    kind = getattr(s.op, "kind", type(s.op).__name__.lower())
    fg.emit(s.key, kind, list(s.ins), s.out, s.y.numel(), const=CONST_BYTES.get(kind, 0),
            cost=OpCost(s.key, kind, fused=getattr(s.op, "act", "none") != "none"))


def _producer(s: Step):
    return next((s.graph.ops[k] for k, _, out in s.graph.steps if out == s.ins[0]), None)


LOWERINGS: dict[str, Callable[[FileGraph, Step], None]] = {
    "linear": lower_layer, "conv1d": lower_layer, "conv2d": lower_layer, "flatten": lower_reshape,
    "reshape": lower_reshape, "mean": lower_mean, "maxpool": lower_pool, "avgpool": lower_pool,
}
