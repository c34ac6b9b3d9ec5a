"""Exact cost of a decoder's KV-cache step (quantize/kv_step.py, `--kv-cache`) on its int8 graph, without exporting:
what `students.cost.graph_cost` gives for the full-window step, for the file an app ships with `--kv-cache`.

The step reads one token id (int32 (1, 1)), its position (int32 (1,)) and the int8 key / value caches (1, H, L, d)
of every layer, and writes the logits (1, 1, V) and the updated caches. The ops outside attention are the window
step's on one position (students/cost_ops.py, students/cost_text.py), and the learned positions a RESHAPE of `pos`
and a GATHER_ND of its row. Each attention, in the order the converter writes it (checked against exported files in
tests/students/test_graph_cost_kv.py):

* the q, k and v projections (FULLY_CONNECTED on 1×D; k and v RESHAPEd to 1×H×1×d);
* the new row into each cache: EQUAL(slots, pos), RESHAPEd to 1×1×L×1, then SELECT_V2 of the row and the cache
  input (written once, by the first attention, and read by every layer's selects, as the converter shares it);
* the scores: with H > 1 the keys TRANSPOSEd to 1×H×d×L, q and keys RESHAPEd to 3-D, BATCH_MATMUL (H·L·d MACs)
  and a RESHAPE to 1×H×1×L; with one head the keys RESHAPEd to L×d and a FULLY_CONNECTED with them as its runtime
  weights (L·d MACs), RESHAPEd to 1×1×1×L;
* the slots after `pos` masked: GREATER(slots, pos), RESHAPEd to 1×1×1×L (shared as the EQUAL is), SELECT_V2 with
  the scores' lowest code (an int8 scalar), SOFTMAX;
* the context: with H > 1 the probabilities and values RESHAPEd to 3-D, BATCH_MATMUL, a RESHAPE to 1×1×D; with one
  head the values RESHAPEd to L×d and TRANSPOSEd to d×L, a FULLY_CONNECTED with them as weights (1×d, no RESHAPE);
* the output projection.

Every input (ids, pos, caches, in that order) is alive from the first op to its last reader; the logits and every
updated cache to the last op. The arena, MACs, weights and per-op rows then follow as for the window step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgedistill.students.cost_graph import FileGraph
from edgedistill.students.cost_ops import LOWERINGS, Step, layer_cost, lower_plain
from edgedistill.students.cost_text import TEXT_LOWERINGS

_LOWERINGS = {**LOWERINGS, **TEXT_LOWERINGS}
POS = "kv/pos"  # the position input's tensor


@torch.no_grad()
def kv_graph_cost(model: nn.Module, context: int):
    """The GraphCost (students.cost.GraphCost) of `model`'s KV-cache step for its `context` window (module doc);
    its `state_bytes` are the caches' bytes, which the app keeps between steps (the gate's RAM row adds them).
    Raises UnsupportedOpError (quantize/kv_step.kv_cache_refusal's reason) for a model without one, e.g. one whose
    attention is not causal."""
    from edgedistill.quantize import to_quant_student
    from edgedistill.quantize.attention_ops import Attention, Constant
    from edgedistill.quantize.kv_step import KVCacheStep
    from edgedistill.students.cost import assemble

    q = to_quant_student(model)
    q.set_mode("float")
    step = KVCacheStep(q)
    fg = FileGraph()
    fg.input(q.input_name, 1, 4)
    fg.input(POS, 1, 4)
    caches = [f"kv/cache_{i}" for i in range(len(step.cache_shapes()))]
    for name, shape in zip(caches, step.cache_shapes()):
        fg.input(name, math.prod(shape), 1)
    readers: dict[str, list] = {}
    for key, ins, _ in q.steps:
        for i in ins:
            readers.setdefault(i, []).append(q.ops[key])
    pos = torch.zeros(1, dtype=torch.int32)
    env, outputs = {q.input_name: torch.ones(1, 1, dtype=torch.int32)}, []
    for key, ins, out in q.steps:
        m = q.ops[key]
        s = Step(key, m, ins, out, env, q, readers)
        if isinstance(m, Attention):
            kc, vc = (torch.zeros(sh) for sh in step.cache_shapes()[len(outputs):len(outputs) + 2])
            env[out] = step._attention(m, env[ins[0]], pos, kc, vc)[0]
            outputs += _lower_kv_attention(fg, s, context, caches[len(outputs)], caches[len(outputs) + 1])
        elif isinstance(m, Constant):
            env[out] = m()[0][pos].unsqueeze(0)
            _lower_position_row(fg, s, context)
        else:
            env[out] = m(*[env[i] for i in ins])
            _LOWERINGS.get(getattr(m, "kind", ""), lower_plain)(fg, s)
    for name in outputs:  # the updated caches are outputs too: alive to the last op
        fg.tensors[name].last = len(fg.ops) - 1
    return assemble(fg, q, state_bytes=sum(math.prod(shape) for shape in step.cache_shapes()))


def _lower_position_row(fg: FileGraph, s: Step, context: int) -> None:
    """Row `pos` of the learned positions (1, L, D): RESHAPE of `pos` to 1×1, GATHER_ND from the L×D table."""
    table = fg.constant(f"{s.out}/table", s.op.value.numel())
    idx = fg.emit(f"{s.key}/index", "reshape", [POS], f"{s.out}/index", 1, itemsize=4, const=8)
    fg.emit(s.key, "gather_nd", [table, idx], s.out, s.y.numel())


def _slots_mask(fg: FileGraph, s: Step, kind: str, shape_const: int, context: int) -> str:
    """EQUAL / GREATER of the slot indices (an int32 L constant) and `pos`, RESHAPEd to 4-D: written by the first
    attention, read by every layer (FileGraph.shared)."""
    if kind not in fg.shared:
        slots = "kv/slots"
        if slots not in fg.tensors:
            fg.constant(slots, context, learned=False, itemsize=4)
        reads = [POS, slots] if kind == "equal" else [slots, POS]  # the converter's operand order
        cmp = fg.emit(f"{s.key}/{kind}", kind, reads, f"kv/{kind}", context)
        fg.shared[kind] = fg.emit(f"{s.key}/{kind}_4d", "reshape", [cmp], f"kv/{kind}_4d", context, const=shape_const)
    return fg.shared[kind]


def _lower_kv_attention(fg: FileGraph, s: Step, context: int, k_cache: str, v_cache: str) -> list[str]:
    """One attention of the KV-cache step (module doc); returns its updated key and value caches' tensors."""
    m, key, out = s.op, s.key, s.out
    heads, d = m.heads, m.head_dim
    dim, length, cache_n = heads * d, context, heads * context * d

    def emit(name: str, kind: str, reads: list[str], elems: int, const: int = 0, macs: int = 0, cost=None) -> str:
        return fg.emit(f"{key}/{name}", kind, reads, f"{out}/{name}", elems, const=const, macs=macs, cost=cost)

    x = s.ins[0]
    q = emit("q", "fc", [x], dim, cost=layer_cost(m.q.name, m.q, dim))
    k = emit("k_4d", "reshape", [emit("k", "fc", [x], dim, cost=layer_cost(m.k.name, m.k, dim))], dim, 16)
    v = emit("v_4d", "reshape", [emit("v", "fc", [x], dim, cost=layer_cost(m.v.name, m.v, dim))], dim, 16)
    here = _slots_mask(fg, s, "equal", 16, context)
    keys = emit("keys", "select", [here, k, k_cache], cache_n)
    values = emit("values", "select", [here, v, v_cache], cache_n)
    scores_n = heads * length
    if heads == 1:
        k2 = emit("keys_2d", "reshape", [keys], cache_n, 8)
        scores = emit("scores_4d", "reshape", [emit("scores", "matmul_fc", [q, k2], scores_n, macs=scores_n * d)],
                      scores_n, 16)
    else:
        kt = emit("keys_t", "transpose", [keys], cache_n, 16)
        q3, k3 = emit("q_3d", "reshape", [q], dim, 12), emit("keys_3d", "reshape", [kt], cache_n, 12)
        scores = emit("scores_4d", "reshape", [emit("scores", "batch_matmul", [q3, k3], scores_n,
                                                    macs=scores_n * d)], scores_n, 16)
    later = _slots_mask(fg, s, "greater", 16, context)
    masked = emit("masked", "select", [later, scores], scores_n, const=1)
    probs = emit("probs", "softmax", [masked], scores_n)
    if heads == 1:
        vt = emit("values_t", "transpose", [emit("values_2d", "reshape", [values], cache_n, 8)], cache_n, 8)
        ctx = emit("context", "matmul_fc", [probs, vt], dim, macs=dim * length)
    else:
        p3, v3 = emit("probs_3d", "reshape", [probs], scores_n, 12), emit("values_3d", "reshape", [values], cache_n, 12)
        ctx = emit("context_3d", "reshape", [emit("context", "batch_matmul", [p3, v3], dim, macs=dim * length)],
                   dim, 12)
    fg.emit(f"{key}/out", "fc", [ctx], out, dim, cost=layer_cost(m.out.name, m.out, dim))
    return [keys, values]
