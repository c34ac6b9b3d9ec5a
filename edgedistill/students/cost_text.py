"""How the text ops of the int8 graph (quantize/sequence_ops.py, quantize/attention_ops.py) become ops of the
.tflite file, in the order the converter writes them (checked against exports in tests/students/test_graph_cost.py).

* Embedding: RESHAPE of the int32 ids (N×L -> N×L×1, int32) and GATHER_ND from the int8 table (a constant: its
  bytes are the op's weight bytes, its elements the op's `ops`, as profile/cost.py counts an op's first input); a
  1-D conv student's embedding then RESHAPEs N×L×D to the N×1×L×D map its convolutions read.
* Constant (learned positions, LayerNorm's γ and β): an int8 constant tensor, no op.
* Attention (H heads of d = D / H on L tokens): the q, k, v projections (FULLY_CONNECTED on N×L×D), the scores Q·Kᵀ
  and the context P·V (L·L·d MACs per head each), the padding mask (EQUAL of the ids with 0, RESHAPE to
  N×1×1×L; computed once and shared by every attention layer) and SELECT_V2 of the scores' lowest code at padded
  keys, or a causal decoder's constant L×L mask ADDed to int8 scores (the condition of a SELECT_V2 on int16 ones),
  SOFTMAX, and the output projection. With H > 1 the heads are split by RESHAPE + TRANSPOSE and the products are
  BATCH_MATMULs on H×L×d; with one head the converter writes each product as a FULLY_CONNECTED whose weight operand
  is the other activation (K as L×D; V transposed to D×L) and keeps the context N×1×L×D until after the output
  projection.
* LayerNorm: MEAN, SUB, MUL (the square), MEAN, RSQRT, MUL, MUL (γ), ADD (β); each MEAN reduces one axis.
"""

from __future__ import annotations

from edgedistill.profile.cost import kernel_scratch
from edgedistill.students.cost_graph import FileGraph, OpCost
from edgedistill.students.cost_ops import Step, layer_cost


def lower_embedding(fg: FileGraph, s: Step) -> None:
    m, length = s.op, s.x.numel()
    idx = fg.emit(f"{s.key}/indices", "reshape", list(s.ins), f"{s.out}/indices", length, itemsize=4, const=12)
    table = fg.constant(f"{s.key}/table", m.weight.numel())
    lifted = m.channels_first and s.graph.one_d  # N×L×D is the NHWC map N×1×L×D: a RESHAPE, no TRANSPOSE
    gathered = fg.emit(s.key, "gather_nd", [table, idx], f"{s.out}/gathered" if lifted else s.out, s.y.numel())
    if lifted:
        fg.emit(f"{s.key}/map", "reshape", [gathered], s.out, s.y.numel(), const=16)


def lower_constant(fg: FileGraph, s: Step) -> None:
    fg.constant(s.out, s.y.numel())


def _padding_mask(fg: FileGraph, s: Step, ids: str, length: int) -> str:
    """EQUAL(ids, 0) reshaped to N×1×1×L: written once, before the first SELECT_V2, and read by every attention."""
    if ids not in fg.shared:
        eq = fg.emit(f"{s.key}/padding", "equal", [ids], f"{ids}/padding", length, const=4)  # an int32 scalar 0
        fg.shared[ids] = fg.emit(f"{s.key}/padding_mask", "reshape", [eq], f"{ids}/padding_mask", length, const=16)
    return fg.shared[ids]


def masked_softmax(fg: FileGraph, s: Step, scores: str, length: int, n: int, itemsize: int = 1) -> str:
    """The mask, SELECT_V2 (a scalar of the scores' type, `itemsize` bytes: their lowest code) and SOFTMAX of
    `scores` (n elements, 4-D). A causal decoder's mask is a constant L×L bool tensor read by the SELECT_V2 itself
    (int16 scores; int8 ones: causal_softmax), no op computes it; a padding mask is computed from the ids."""
    if s.op.future is not None:
        mask = fg.constant(f"{s.key}/causal", length * length, learned=False)
    else:
        mask = _padding_mask(fg, s, s.ins[1], length)
    masked = fg.emit(f"{s.key}/mask", "select", [mask, scores], f"{s.out}/masked", n, itemsize=itemsize,
                     const=itemsize)
    return fg.emit(f"{s.key}/softmax", "softmax", [masked], f"{s.out}/probs", n, itemsize=itemsize)


def causal_softmax(fg: FileGraph, s: Step, scores: str, length: int, n: int) -> str:
    """A causal decoder's int8 mask: the constant L×L tensor ADDed to the scores (the converter broadcasts it, so
    the scores are not reshaped to 4-D first, as they are for a SELECT_V2), then SOFTMAX."""
    mask = fg.constant(f"{s.key}/causal", length * length, learned=False)
    masked = fg.emit(f"{s.key}/mask", "add", [scores, mask], f"{s.out}/masked", n)
    return fg.emit(f"{s.key}/softmax", "softmax", [masked], f"{s.out}/probs", n)


def lower_attention(fg: FileGraph, s: Step) -> None:
    m = s.op
    _, length, dim = s.x.shape
    heads, d = m.heads, m.head_dim
    x, out, n = s.ins[0], s.out, length * dim
    key = s.key

    def emit(name: str, kind: str, reads: list[str], elems: int, const: int = 0, macs: int = 0,
             cost: OpCost | None = None) -> str:
        return fg.emit(f"{key}/{name}", kind, reads, f"{out}/{name}", elems, const=const, macs=macs, cost=cost)

    def project(layer, src: str, name: str) -> str:
        return emit(name, "fc", [src], n, cost=layer_cost(layer.name, layer, n))

    def softmax(scores: str) -> str:
        if m.future is not None:
            return causal_softmax(fg, s, scores, length, scores_n)
        return masked_softmax(fg, s, emit("scores_4d", "reshape", [scores], scores_n, 16), length, scores_n)

    scores_n = heads * length * length
    if heads == 1:  # FULLY_CONNECTED with an activation as the weight operand
        q, k, v = (project(layer, x, name) for layer, name in ((m.q, "q"), (m.k, "k"), (m.v, "v")))
        k2 = emit("k_2d", "reshape", [k], n, 8)
        scores = emit("scores", "matmul_fc", [q, k2], scores_n, macs=scores_n * d)
        probs = softmax(scores)
        vt = emit("v_t", "transpose", [emit("v_2d", "reshape", [v], n, 8)], n, 8)
        ctx = emit("context", "matmul_fc", [probs, vt], n, macs=n * length)
        y = emit("out_4d", "fc", [ctx], n, cost=layer_cost(m.out.name, m.out, n))
        fg.emit(f"{key}/out", "reshape", [y], out, n, const=12)
        return
    q = emit("q_t", "transpose", [emit("q_4d", "reshape", [project(m.q, x, "q")], n, 16)], n, 16)
    k = emit("k_4d", "reshape", [project(m.k, x, "k")], n, 16)
    v = emit("v_t", "transpose", [emit("v_4d", "reshape", [project(m.v, x, "v")], n, 16)], n, 16)
    k = emit("k_t", "transpose", [k], n, 16)  # N×L×H×d -> N×H×d×L in one permutation
    q, k = emit("q_3d", "reshape", [q], n, 12), emit("k_3d", "reshape", [k], n, 12)
    scores = emit("scores", "batch_matmul", [q, k], scores_n, macs=scores_n * d)
    probs = softmax(scores)
    probs, v = emit("probs_3d", "reshape", [probs], scores_n, 12), emit("v_3d", "reshape", [v], n, 12)
    ctx = emit("context", "batch_matmul", [probs, v], n, macs=n * length)
    ctx = emit("context_t", "transpose", [emit("context_4d", "reshape", [ctx], n, 16)], n, 16)
    ctx = emit("context_3d", "reshape", [ctx], n, 12)
    fg.emit(f"{key}/out", "fc", [ctx], out, n, cost=layer_cost(m.out.name, m.out, n))


def lower_layernorm(fg: FileGraph, s: Step) -> None:
    m, x, n = s.op, s.ins[0], s.x.numel()
    rows = n // s.x.shape[-1]
    scratch = kernel_scratch("MEAN", s.x.dim(), rows, 1)  # a MEAN over the last axis

    def emit(name: str, kind: str, reads: list[str], elems: int, const: int = 0, mean: bool = False) -> str:
        return fg.emit(f"{s.key}/{name}", kind, reads, f"{s.out}/{name}", elems, const=const,
                       scratch=scratch if mean else ())

    centred = emit("centre", "sub", [x, emit("mean", "mean", [x], rows, 4, mean=True)], n)
    variance = emit("variance", "mean", [emit("square", "mul", [centred, centred], n)], rows, 4, mean=True)
    rstd = emit("rsqrt", "rsqrt", [variance], rows)
    gamma = fg.constant(f"{s.out}/gamma", m.gamma.value.numel())
    beta = fg.constant(f"{s.out}/beta", m.beta.value.numel())
    scaled = emit("gamma", "mul", [emit("normalized", "mul", [centred, rstd], n), gamma], n)
    fg.emit(f"{s.key}/beta", "add", [scaled, beta], s.out, n)


TEXT_LOWERINGS = {"embedding": lower_embedding, "constant": lower_constant, "attention": lower_attention,
                  "layernorm": lower_layernorm}
