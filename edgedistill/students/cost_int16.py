"""How the 16×8 forms of the text ops (`quant.int16`: quantize/int16_attention.py, quantize/int16_ops.py) become ops of
the .tflite file, in the order the converter writes them (checked against exports in
tests/students/test_graph_cost_int16.py). Their int16 tensors take 2 bytes per value in the arena and as the ops'
input / output bytes; every boundary between int8 and int16 is one QUANTIZE op with a tensor of its own.

* Attention (H ≥ 2 heads of d = D / H on L tokens): the q, k, v projections (int8 FULLY_CONNECTED, all three
  first), then per q and k a QUANTIZE to int16, RESHAPE and TRANSPOSE (k straight to N×H×d×L), RESHAPEs to H×L×d,
  the scores BATCH_MATMUL int16, RESHAPE to 4-D, the padding mask (EQUAL, RESHAPE: shared, as in int8) or a causal
  one (a constant), SELECT_V2 with an int16 scalar (the grid's lowest code), SOFTMAX int16; then v's QUANTIZE,
  RESHAPE and TRANSPOSE, the RESHAPEs to 3-D, the context BATCH_MATMUL int16, RESHAPE to 4-D, QUANTIZE to int8
  *before* the heads merge (TRANSPOSE, RESHAPE) and the int8 output projection.
* LayerNorm: QUANTIZE to int16, MEAN, SUB, MUL (the square), MEAN, RSQRT, MUL (the normalized values) in int16,
  QUANTIZE to int8, then MUL (γ) and ADD (β) in int8 as the int8 LayerNorm does.

TFLite Micro keeps SOFTMAX int16's exp and 1/(1 + x) tables (2 × 513 int16) in its persistent area, not in the file
or the planned arena: profile/tflm_tail.py counts them.
"""

from __future__ import annotations

from edgedistill.profile.cost import kernel_scratch
from edgedistill.quantize.int16_attention import Attention16
from edgedistill.quantize.int16_ops import LayerNorm16
from edgedistill.students.cost_graph import FileGraph, OpCost
from edgedistill.students.cost_ops import Step, layer_cost
from edgedistill.students.cost_text import masked_softmax

INT16 = 2  # bytes per int16 value


def lower_attention16(fg: FileGraph, s: Step) -> None:
    m = s.op
    _, length, dim = s.x.shape
    d, x, out, n = m.head_dim, s.ins[0], s.out, length * dim
    scores_n = m.heads * length * length

    def emit(name: str, kind: str, reads: list[str], elems: int, const: int = 0, macs: int = 0,
             itemsize: int = INT16, cost: OpCost | None = None) -> str:
        return fg.emit(f"{s.key}/{name}", kind, reads, f"{out}/{name}", elems, itemsize=itemsize, const=const,
                       macs=macs, cost=cost)

    def project(layer, name: str) -> str:
        return emit(name, "fc", [x], n, itemsize=1, cost=layer_cost(layer.name, layer, n))

    def heads16(src: str, name: str) -> str:  # QUANTIZE to int16, RESHAPE N×L×H×d, TRANSPOSE
        wide = emit(f"{name}_16", "quantize", [src], n)
        return emit(f"{name}_t", "transpose", [emit(f"{name}_4d", "reshape", [wide], n, 16)], n, 16)

    q, k, v = project(m.q, "q"), project(m.k, "k"), project(m.v, "v")
    q, k = heads16(q, "q"), heads16(k, "k")
    q, k = emit("q_3d", "reshape", [q], n, 12), emit("k_3d", "reshape", [k], n, 12)
    scores = emit("scores", "batch_matmul", [q, k], scores_n, macs=scores_n * d)
    probs = masked_softmax(fg, s, emit("scores_4d", "reshape", [scores], scores_n, 16), length, scores_n, INT16)
    v = heads16(v, "v")
    probs, v = emit("probs_3d", "reshape", [probs], scores_n, 12), emit("v_3d", "reshape", [v], n, 12)
    ctx = emit("context", "batch_matmul", [probs, v], n, macs=n * length)
    ctx = emit("context_8", "quantize", [emit("context_4d", "reshape", [ctx], n, 16)], n, itemsize=1)
    ctx = emit("context_3d", "reshape", [emit("context_t", "transpose", [ctx], n, 16, itemsize=1)], n, 12, itemsize=1)
    fg.emit(f"{s.key}/out", "fc", [ctx], out, n, cost=layer_cost(m.out.name, m.out, n))


def lower_layernorm16(fg: FileGraph, s: Step) -> None:
    m, n = s.op, s.x.numel()
    rows = n // s.x.shape[-1]
    scratch = kernel_scratch("MEAN", s.x.dim(), rows, 1)  # a MEAN over the last axis, int16 input

    def emit(name: str, kind: str, reads: list[str], elems: int, const: int = 0, itemsize: int = INT16) -> str:
        return fg.emit(f"{s.key}/{name}", kind, reads, f"{s.out}/{name}", elems, itemsize=itemsize, const=const,
                       scratch=scratch if kind == "mean" else ())

    x = emit("wide", "quantize", [s.ins[0]], n)
    centred = emit("centre", "sub", [x, emit("mean", "mean", [x], rows, 4)], n)
    variance = emit("variance", "mean", [emit("square", "mul", [centred, centred], n)], rows, 4)
    normalized = emit("normalized", "mul", [centred, emit("rsqrt", "rsqrt", [variance], rows)], n)
    narrow = emit("narrow", "quantize", [normalized], n, itemsize=1)
    gamma = fg.constant(f"{s.out}/gamma", m.gamma.value.numel())
    beta = fg.constant(f"{s.out}/beta", m.beta.value.numel())
    fg.emit(f"{s.key}/beta", "add", [emit("gamma", "mul", [narrow, gamma], n, itemsize=1), beta], s.out, n)


# by the graph op's class: a 16×8 form shares its kind ("attention", "layernorm") with the int8 op it replaces
INT16_LOWERINGS = {Attention16: lower_attention16, LayerNorm16: lower_layernorm16}
