"""An upper bound of TFLite Micro's runtime memory for a student (the arena's "tail"), from its graph cost (no export).

TFLite Micro's arena holds the planned activation tensors (the "head", predicted exactly by students/cost.py) and,
from its other end, the runtime's persistent structures (the "tail"); the RAM figure a build reports for a `tflm`
target and the gate judges is their sum, read from TFLite Micro's recording allocator (profile/tflm_arena.py,
profile/ram.py). Its recorded parts (the tflite-micro build the lock pins, on this 64-bit host, which is the figure
the gate reads) are:

* a TfLiteEvalTensor per tensor of the file, constants included: 24 B each;
* a NodeAndRegistration per op: 64 B each;
* the kernels' persistent buffers: each op's OpData (its multipliers, shifts, options); a convolution's or
  FULLY_CONNECTED's per-channel multiplier and shift (8 B per output channel); BATCH_MATMUL's transposed right-hand
  operand (its bytes: the kernel transposes it into a buffer of its own); SOFTMAX int16's exp and 1/(1 + x)
  tables (2 × 513 int16 = 2,052 B, quant.int16's attention);
* the input's and output's persistent TfLiteTensor with its quantization, and unrecorded interpreter structures.

    tail <= FIXED + 24 · tensors + (64 + OP_STATE) · ops + (WEIGHT_OP_STATE − OP_STATE) · weight ops
            + 8 · output channels of the weight ops + Σ BATCH_MATMUL (right-hand operand bytes + 16)
            + SOFTMAX16 · int16 SOFTMAX ops

`tensors` is the graph cost's count of the file's tensors, at most what the converter writes (it shares some equal
shape constants). FIXED, OP_STATE and WEIGHT_OP_STATE were fitted on exports of every family, int8 and with
quant.int16 (2 to 107 ops; residual 681 B + 121 B per weight op + 48 B per other op) and rounded up; tests check the
bound against TFLite Micro's recording allocator (tests/students/test_tflm_tail.py): at least the measured tail,
and at most 30 % above it (measured: 5 – 29 %, the most on the smallest files).
"""

from __future__ import annotations

EVAL_TENSOR, NODE = 24, 64  # sizeof(TfLiteEvalTensor), sizeof(NodeAndRegistration) on the 64-bit host
FIXED = 1024          # input / output TfLiteTensor + quantization (192 B) and the interpreter's own structures
OP_STATE = 64         # an op's OpData and builtin options, at most (an ADD's, a MEAN's, a QUANTIZE's ...)
WEIGHT_OP_STATE = 144 # a convolution's or FULLY_CONNECTED's OpData
PER_CHANNEL = 8       # int32 multiplier + int32 shift per output channel
ALIGN = 16            # a persistent buffer's alignment
SOFTMAX16 = 2 * 513 * 2 + 64  # SOFTMAX int16's two lookup tables and its params


def tflm_tail_bound(g) -> int:
    """Bytes of TFLite Micro's runtime memory (the arena's tail) for the int8 file of graph cost `g`
    (students.cost.GraphCost), at most."""
    ops = list(g.ops)
    weight_ops = [o for o in ops if o.weights]
    matmul_rhs = sum(o.operand_bytes[-1] + ALIGN for o in ops if o.kind == "batch_matmul" and o.operand_bytes)
    softmax16 = sum(1 for o in ops if o.kind == "softmax" and o.out_itemsize == 2)
    return (FIXED + EVAL_TENSOR * (g.tensors + g.constant_tensors) + (NODE + OP_STATE) * len(ops)
            + (WEIGHT_OP_STATE - OP_STATE) * len(weight_ops)
            + PER_CHANNEL * sum(o.out_channels or o.biases for o in weight_ops) + matmul_rhs + SOFTMAX16 * softmax16)
