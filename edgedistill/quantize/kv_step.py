"""The KV-cache decoder step: one token in, its next-token logits and the updated key / value caches out, computed
with the int8 ops (and so the grids) of the full-window QuantGraph it is built from.

Form (batch 1, L the window the model was trained for, H heads of width d, one cache pair per layer):

    inputs   ids      int32 (1, 1)        the token at position `pos`
             pos      int32 (1,)          its position, 0 … L − 1
             k_i, v_i int8  (1, H, L, d)  layer i's keys / values of positions 0 … pos − 1 (slots ≥ pos: anything),
                                          on the grids QAT trained for layer i's K and V projections
    outputs  logits   int8  (1, 1, V)     on the window step's output grid
             k_i, v_i int8  (1, H, L, d)  the caches with slot `pos` holding this token's key / value

Why it equals the window step's row `pos` integer for integer: every op outside attention acts on one position at a
time (embedding, the position table's row, LayerNorm, the linear layers, the adds), so the token's K / V rows are the
window's rows at `pos`; the new row enters its cache by a one-hot select (SELECT_V2 on slot == pos), so the scores are
the same L values in the same order; later slots get the same lowest score code the window's constant causal mask
writes (SELECT_V2 on slot > pos), so SOFTMAX sees the same L inputs and gives them probability code −128 (exactly 0),
and the context's sum over slots is the window's. No scatter / DYNAMIC_UPDATE_SLICE: TFLite Micro lacks it, and the
select needs only EQUAL / GREATER on int32 and SELECT_V2 on int8, which all three runtimes run.

Supported graphs: a causal decoder (students.decoder_family) or any QuantGraph of per-position ops around causal
`Attention`; anything that mixes positions otherwise (pooling, convolution, a padding mask) is refused.
"""

from __future__ import annotations

import torch
from torch import nn

from edgedistill.quantize.attention_ops import Attention, Constant, LayerNorm
from edgedistill.quantize.capture import UnsupportedOpError
from edgedistill.quantize.graph import QuantGraph
from edgedistill.quantize.ops import Activation, Binary, QLayer, SameGrid
from edgedistill.quantize.sequence_ops import Embedding

# ops that act on each position alone, so running them on one token gives that token's row of the window
_PER_POSITION = (Embedding, Binary, LayerNorm, Activation)


def kv_cache_refusal(qmodel: QuantGraph) -> str | None:
    """Why `qmodel` has no KV-cache step (a sentence), or None when it has one."""
    if not qmodel.index_input:
        return "its input is not token ids"
    attn = [op for op in qmodel.stages if isinstance(op, Attention)]
    if not attn:
        return "it has no attention layer (a step without one needs no cache)"
    if any(op.scores.out_q.bits == 16 for op in attn):
        return "its attention computes in int16 (quant.int16); the KV-cache step is written for int8 attention"
    if any(op.future is None for op in attn):
        return "its attention is not causal (a padding mask reads every position of the window)"
    for op in qmodel.stages:
        if isinstance(op, Attention) or isinstance(op, _PER_POSITION):
            continue
        if isinstance(op, QLayer) and op.kind == "linear":
            continue
        if isinstance(op, SameGrid) and op.kind in ("relu", "relu6"):
            continue
        if isinstance(op, Constant) and op.value.dim() == 3 and op.value.shape[0] == 1:
            continue  # learned positions (1, L, D): the step reads row `pos`
        return f"op {op.name!r} ({type(op).__name__} {getattr(op, 'kind', '')}) mixes positions"
    return None


class KVCacheStep(nn.Module):
    """One cached decoder step over the ops of `qmodel` (shared, not copied; module doc for the tensors). The mode
    and rounding are the graph's ("quant": QAT's arithmetic; "export": Q/DQ for converters). Raises
    UnsupportedOpError (kv_cache_refusal's reason) for a graph without a cached form."""

    def __init__(self, qmodel: QuantGraph):
        super().__init__()
        why = kv_cache_refusal(qmodel)
        if why:
            raise UnsupportedOpError(f"This student has no KV-cache decoder step: {why}.")
        self.qgraph = qmodel  # not `graph`: torch.export unlifts into a GraphModule, whose `graph` it would shadow
        self.attention = [k for k, _, _ in qmodel.steps if isinstance(qmodel.ops[k], Attention)]
        first = qmodel.ops[self.attention[0]]
        self.context = int(first.future.shape[-1])
        self.register_buffer("slots", torch.arange(self.context, dtype=torch.int32), persistent=False)

    def cache_shapes(self) -> list[tuple[int, int, int, int]]:
        """(1, H, L, d) of each cache input, in input order (k_0, v_0, k_1, v_1, …)."""
        out = []
        for key in self.attention:
            op = self.qgraph.ops[key]
            out += [(1, op.heads, self.context, op.head_dim)] * 2
        return out

    def cache_grids(self) -> list:
        """The ActQuant of each cache input (layer i's K projection, then its V projection)."""
        return [g for key in self.attention for g in (self.qgraph.ops[key].k.out_q, self.qgraph.ops[key].v.out_q)]

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, *caches: torch.Tensor):
        g = self.qgraph
        pos = pos.reshape(1).to(torch.int32)
        env = {g.input_name: ids}
        new_caches, n = [], 0
        for key, ins, out in g.steps:
            op = g.ops[key]
            if isinstance(op, Attention):
                env[out], k, v = self._attention(op, env[ins[0]], pos, caches[n], caches[n + 1])
                new_caches += [k, v]
                n += 2
            elif isinstance(op, Constant):
                env[out] = op()[0][pos].unsqueeze(0)  # GATHER_ND of row `pos`: the table's codes, its grid
            else:
                env[out] = op(*[env[i] for i in ins])
        return (env[g.output_name], *new_caches)

    @staticmethod
    def _matmul(mm, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """mm(a, b) for (1, H, m, k) @ (1, H, k, n). One head (`mm.batched` False): as 2-D matrices, which the
        converter writes as FULLY_CONNECTED with a runtime weight, the window step's kernel (4-D operands with one
        query row would become BATCH_MATMUL, whose requantization differs on LiteRT: measured 6-7 output steps)."""
        if mm.batched:
            return mm(a, b)
        return mm(a.reshape(a.shape[-2], a.shape[-1]), b.reshape(b.shape[-2], b.shape[-1])).reshape(
            1, 1, a.shape[-2], b.shape[-1])

    def _attention(self, op: Attention, x: torch.Tensor, pos: torch.Tensor, k_cache: torch.Tensor,
                   v_cache: torch.Tensor):
        k_grid, v_grid = op.k.out_q, op.v.out_q
        k_cache, v_cache = k_grid(k_cache), v_grid(v_cache)  # the int8 inputs on the K / V grids
        q, k, v = op._split(op.q(x)), op._split(op.k(x)), op._split(op.v(x))  # (1, H, 1, d)
        here = (self.slots == pos).reshape(1, 1, -1, 1)
        keys = torch.where(here, k, k_cache)  # slot `pos` takes the new row (SELECT_V2, same grid)
        values = torch.where(here, v, v_cache)
        if k_grid.mode == "export":  # the select's int8 output on the cache's grid
            keys, values = k_grid(keys), v_grid(values)
        scores = self._matmul(op.scores, q, keys.transpose(-2, -1))  # (1, H, 1, L)
        later = (self.slots > pos).reshape(1, 1, 1, -1)
        grid = op.scores.out_q
        if grid.mode in ("float", "observe"):
            scores = scores.masked_fill(later, float("-inf"))
        else:  # the window's masked value: the scores grid's lowest code
            s, z = grid.export_params if grid.mode == "export" else (float(grid.scale), int(grid.zero_point))
            scores = torch.where(later, torch.full((), (-128 - z) * s, dtype=scores.dtype), scores)
            if grid.mode == "export":
                scores = grid(scores)
        ctx = self._matmul(op.context, op.softmax(scores), values)
        return op.out(ctx.transpose(1, 2).reshape(1, 1, -1)), keys, values
