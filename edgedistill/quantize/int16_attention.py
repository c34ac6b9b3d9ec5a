"""Attention with its scores, SOFTMAX and context in TFLite's 16×8 mode (`quant.int16 = ["attention"]`).

Inside each MaskedSelfAttention (students.layers) of an int8 student:

* the q, k and v projections stay int8 FULLY_CONNECTED (int8 in, int8 out), their heads split in int8; then each is
  widened to int16 (`Widen`, quantize/int16_ops.py: exact, the int8 code (c − z) becomes the int16 code
  (c − z) · 128);
* the scores Q·Kᵀ: BATCH_MATMUL int16 × int16 → int16 on a calibrated symmetric int16 grid (`MatMul16`);
* the padding / causal mask: SELECT_V2 of the int16 scores, a masked score set to the grid's lowest code −32768;
* SOFTMAX int16 → int16 onto the grid (1/32768, 0) (`Softmax16`): the only output grid LiteRT and TFLite Micro take
  for int16 input (softmax.cc / softmax_common.cc: output zero point 0 and scale 1/32768 within 0.1 %, input zero
  point 0);
* the context probabilities · V: BATCH_MATMUL int16 × int16 → int16 (`MatMul16`), then `Narrow` to int8 before
  the heads are merged and the int8 output projection.

The int8 attention (quantize/attention_ops.py) puts SOFTMAX's input on 256 codes and its output on 1/256, so a
probability below 1/512 is 0 and a score range of width w moves in steps of w / 255; here both have 65,536 codes.

The mask. SoftmaxInt16 (tflite/kernels/internal/reference/softmax.h) maps the difference to the row's maximum onto
[-10, 0] before its exp table, and saturates below: a masked key's exp is the table's first entry, exp(−10) · 32768
≈ 1 code, not 0. So a masked key keeps probability ≈ 1/32768 (its value leaks into the context by that weight,
the same on every runtime and in QAT), provided its score lies at least 10 below the row's maximum: the scores grid
gets `MASK_HEADROOM` = 10 below the lowest score seen (quantize/fake.py headroom_below), so −32768 · s is at least
10 under every row's maximum. (The int8 attention reaches an exact 0 for a causal mask, CAUSAL_HEADROOM; int16
cannot, at any headroom.)

One head is refused (ValueError): the converter then writes the matmuls as FULLY_CONNECTED with a runtime weight
operand, and the 16×8 FULLY_CONNECTED takes int8 weights only.

QAT computes the kernels' integers as the selected runtime does (quantize/int16_kernels.py): SOFTMAX through
reference_ops::SoftmaxInt16 with TFLite Micro's float32 tables or LiteRT's float64 ones (they differ by a code on
some inputs), the BATCH_MATMULs through reference_ops::BatchMatMul<int16_t, int64_t> (both runtimes), the int16 →
int8 QUANTIZE as Narrow does. References: LiteRT tflite/kernels/activations.cc (SoftmaxPrepare, int16),
tflite/kernels/batch_matmul.cc, tflite/kernels/internal/common.h (LUTPopulate, LUTLookup,
MultiplyByQuantizedMultiplier for int64); tflite-micro tensorflow/lite/micro/kernels/softmax_common.cc (gen_lut
<float>), softmax.cc, batch_matmul.cc.
"""

from __future__ import annotations

import torch

from edgedistill.quantize.attention_ops import Attention
from edgedistill.quantize.fake import ActQuant
from edgedistill.quantize.int16_ops import Narrow, Widen
from edgedistill.quantize.ops import GraphOp

PROBS16_GRID = (1.0 / 32768.0, 0)  # SOFTMAX int16's only output grid (module doc)
MASK_HEADROOM = 10.0  # SoftmaxInt16's exp table spans [-10, 0] (module doc)


def _codes16(v: torch.Tensor, q: ActQuant) -> torch.Tensor:
    """The int16 codes (int64) of a value on q's symmetric grid."""
    return torch.round(v.detach().double() / float(q.scale)).clamp_(-32768, 32767).to(torch.int64)


class MatMul16(GraphOp):
    """a @ b of two int16 activations (zero points 0) onto its own calibrated int16 grid: BATCH_MATMUL int16."""

    kind = "matmul16"
    int16_kernel = "BATCH_MATMUL"  # what the exporter must find in the file (export/tflite_int16.py)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.out_q = ActQuant(bits=16)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = self.out_q(a @ b)
        if self.out_q.mode == "quant" and self.exact:
            out = out + (self._int_output(a, b) - out).detach()
        return out

    @torch.no_grad()
    def _int_output(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        qa, qb = self.in_qs
        # |code| <= 32768: a sum of K products stays below 2^53 while K < 2^23, exact in float64
        acc = (_codes16(a, qa).double() @ _codes16(b, qb).double()).to(torch.int64)
        so = float(self.out_q.scale)
        multiplier = self.arithmetic.matmul_multiplier(float(qa.scale), float(qb.scale), so)  # as the runtime
        return self.arithmetic.matmul16(acc, multiplier) * so


class Softmax16(GraphOp):
    """SOFTMAX int16 → int16 over the last dimension onto (1/32768, 0) (module doc)."""

    kind = "softmax16"
    int16_kernel = "SOFTMAX"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.out_q = ActQuant(fixed=PROBS16_GRID, bits=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.out_q(x.softmax(-1))
        if self.out_q.mode == "quant" and self.exact:
            q = self.in_qs[0]
            exact = self.arithmetic.softmax16(_codes16(x, q), float(q.scale)) * PROBS16_GRID[0]
            out = out + (exact - out).detach()
        return out


class Attention16(Attention):
    """MaskedSelfAttention with int16 scores, SOFTMAX and context (module doc). Inputs: the token states (N×L×D,
    int8) and the token ids; output int8. Raises ValueError for one head."""

    def __init__(self, name: str, m) -> None:
        if m.heads < 2:
            raise ValueError(f"{name}: int16 attention needs two or more heads; with one the converter writes the "
                             "matmuls as FULLY_CONNECTED, whose 16×8 kernel takes int8 weights only. Give the student "
                             "two or more heads (--student transformer:width=W,depth=D,heads=2; the search gives "
                             "widths below 64 one head), or drop \"attention\" from quant.int16")
        super().__init__(name, m)
        self.wide_q, self.wide_k, self.wide_v = (Widen(f"{name}.widen_{t}") for t in "qkv")
        self.scores, self.context = MatMul16(f"{name}.scores"), MatMul16(f"{name}.context")
        self.scores.out_q.headroom_below = MASK_HEADROOM
        self.softmax = Softmax16(f"{name}.softmax")
        self.narrow = Narrow(f"{name}.narrow")
        for wide, layer in ((self.wide_q, self.q), (self.wide_k, self.k), (self.wide_v, self.v)):
            wide.set_inputs([layer.out_q])
        self.scores.set_inputs([self.wide_q.out_q, self.wide_k.out_q])
        self.softmax.set_inputs([self.scores.out_q])
        self.context.set_inputs([self.softmax.out_q, self.wide_v.out_q])
        self.narrow.set_inputs([self.context.out_q])
        self.out.set_inputs([self.narrow.out_q])

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        scores = self.scores(self.wide_q(q), self.wide_k(k.transpose(-2, -1)))
        scores = self.masked(scores, ids)
        ctx = self.narrow(self.context(self.softmax(scores), self.wide_v(v)))
        return self.out(ctx.transpose(1, 2).reshape(n, length, dim))
