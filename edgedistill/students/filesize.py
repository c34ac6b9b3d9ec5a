"""An upper bound of the int8 .tflite file's size, from the student's graph cost (no export).

A .tflite file is a flatbuffer: the constant data (int8 weights, int32 biases, a few small shape / axis / padding
constants), one table per tensor (shape, type, name, quantization: a float32 scale and an int64 zero point per
channel: 12 B per output channel for the weights and again for the bias, 12 B for each activation tensor), one
table per operator (input / output index vectors, options), and a fixed part (operator codes, signature, metadata).

    bytes <= weight bytes + CONST_BYTES per non-weight op
             + 12 · (bias channels + weight channels + activation tensors)
             + the constant tensors that are no parameter (a causal decoder's L×L mask), each with its tensor table
             + tensor names (each part <= NAME_PART + the longest op path; weights and small constants
               1 part, activations and biases 1 to 3 parts: see _name_parts)
             + PER_TENSOR · tensors + PER_OP · ops + FIXED

Every term counts at least what the converter writes: the tensor count adds two constants per weight op and one
per op reading a shape / axis / padding constant, names take their longest observed form (an activation tensor's
name joins up to three op locations when an activation is fused into its producer); 1-D graphs are exported as
2-D ones of height 1, with the same ops.
PER_TENSOR, PER_OP and FIXED were fitted on exports of every family (4 to 60 ops, 1.6 K to 1 M parameters: residual
93.6 B per tensor + 40.3 B per op + 661 B) and rounded up; tests check the bound against real exports across
families and sizes (issue 22: a 64,523 B estimate for a 64,800 B file must not happen again).
"""

from __future__ import annotations

from edgedistill.students.cost import GraphCost

CONST_BYTES = 48          # a small constant (shape, axis, paddings) with its 16-byte alignment
QUANT_BYTES = 12          # float32 scale + int64 zero point, per channel / per activation tensor
NAME_PART = 80            # 'edgedistill.quantize.graph.QuantGraph/edgedistill.quantize.ops.<Op>_' + ';' + suffix
PER_TENSOR, PER_OP, FIXED = 100, 45, 800
WITH_CONSTANT = ("pad", "mean", "gap", "reshape", "flatten", "transpose")  # ops reading one small constant


def _name_parts(kind: str, fused: bool) -> int:
    """Most op locations the converter joins into the name of an op's output tensor (and of its bias): three for
    an op with a fused activation (the op, its activation, a neighbour's requantization), two for MEAN (with a
    folded reshape), one otherwise (observed on every family's exports; see tests/students/test_filesize.py)."""
    return 3 if fused else (2 if kind in ("mean", "gap") else 1)


def tflite_size_bound(g: GraphCost) -> int:
    """Bytes the int8 .tflite file of a student with graph cost `g` takes at most."""
    ops = len(g.ops)
    constants = 2 * g.layers + sum(1 for o in g.ops if o.kind in WITH_CONSTANT)
    activations = g.tensors
    part = NAME_PART + max((len(o.name) for o in g.ops), default=0)
    # The graph input, each op's output, a weight op's weights (one part) and bias (as many as its output), the
    # small constants (one part each).
    parts = (1 + sum(_name_parts(o.kind, o.fused) * (2 if o.weights else 1) + (1 if o.weights else 0) for o in g.ops)
             + (constants - 2 * g.layers))
    names = parts * part
    # a layer without a bias (a decoder's tied output projection) still has one weight scale per output channel
    quant = QUANT_BYTES * (g.channels + max(g.weight_scales, g.channels) + activations)
    fixed = sum(CONST_BYTES + b + part + PER_TENSOR for b in g.fixed_constants)  # aligned, named, with its table
    return (g.weight_bytes + CONST_BYTES * (ops - g.layers) + quant + names + PER_TENSOR * (constants + activations)
            + PER_OP * ops + FIXED + fixed)
