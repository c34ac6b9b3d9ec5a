"""TFLite's 16×8 mode for the ops where int8 activations lose most: int16 activations, int8 weights, per op.

An int16 region starts and ends on the int8 graph around it:

* `Widen`: int8 → int16, QUANTIZE onto the grid (s_in / 128, 0). The int8 value (c − z) · s_in is then the int16
  code (c − z) · 128, |code| <= 32,640: exact on every runtime (TFLite's requantize multiplies by 128 = 2^30 · 2^8
  / 2^31 exactly), so QAT passes the value through unchanged.
* `Narrow`: int16 → int8, QUANTIZE onto a calibrated int8 grid (the runtimes' Requantize, reference/requantize.h:
  QAT computes it with a runtime arithmetic selected, quantize/mcu.py `requantize_codes`).

The LiteRT converter (litert-converter 0.5, litert-torch 0.10, STATIC QDQ mode) writes no QUANTIZE for a bare
int8 DQ followed by an int16 Q (the int16 tensor silently disappears, or the next op fails verification with mixed
element types), and with one op between the pairs it may instead retype the producer's output (SUB(INT16, INT16)
-> INT8, which no runtime runs as written). Both boundaries therefore export as max(min(x, highest), lowest)
between the pairs: two same-scale ops, MAXIMUM and MINIMUM with constants beyond every grid, pinned to the two
types, so the converter writes the QUANTIZE between them; export/tflite_int16.py `drop_marker_clamps` removes both
(identities) from the file, and the exporter checks that the int16 kernels are there.

* `Op16`: one int16 kernel (MEAN, SUB, MUL, RSQRT) with its own calibrated int16 grid (symmetric, zero point 0).
* `LayerNorm16`: a LayerNorm over the last dimension as the converter writes it, MEAN → SUB → MUL (square) → MEAN
  → RSQRT → MUL (the normalized values), each on an int16 grid, then `Narrow` to int8, MUL (γ) and ADD (β) in
  int8 as the int8 LayerNorm does (quantize/attention_ops.py): the converter refuses an int16 ADD whose operands
  differ in shape (tfl.add's verifier), and an int16 MUL by the γ constant after the normalizing MUL fails its
  verification too ("Operands do not have valid shapes", even with γ expanded to the full shape); the
  LayerNorm's output feeds int8 kernels anyway. TFLite Micro runs int16 RSQRT from the tflite-micro 2026-10 builds on (its
  2026-08 source, elementwise.cc, still refuses int16 in Prepare: a device built from that fails loudly at
  AllocateTensors, never silently).

QAT computes every int16 kernel's integers as the selected runtime does: RSQRT (quantize/int16_kernels.py: LiteRT's
interpolated table, TFLite Micro's fixed point; the two lie up to thousands of codes apart where 1/√x saturates),
SUB / MUL (the int8 kernels' arithmetic with 15 bits of headroom and int16 bounds, quantize/mcu.py binary_tflm) and
MEAN (mean_tflm with int16 bounds); the boundary into int8 (`Narrow`) and the int8 MUL / ADD after it compute the
runtime's int8 integers. Under "float" rounding each is a float result rounded onto its grid (onnxruntime's QDQ
semantics). Measured: the QAT model's logits equal the file's on LiteRT (builtin and reference kernels) and TFLite
Micro to the step (tests/export/test_export_int16.py).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.quantize.attention_ops import layernorm_affine
from edgedistill.quantize.fake import ActQuant
from edgedistill.quantize.mcu import mean_tflm, requantize_codes
from edgedistill.quantize.ops import Binary, GraphOp

INT16_KINDS = ("layernorm", "attention")  # op kinds with a 16×8 form (quantize/builders.py picks it;
# "attention": quantize/int16_attention.py)
WIDEN = 128  # int8 → int16 grid ratio: (c − z) · 128 stays within int16 for every int8 code pair
_BEYOND = 3.0e38  # beyond every grid: each clamp is the identity, its constant lands on the type's extreme code


def _marked(x: torch.Tensor) -> torch.Tensor:
    """x, written so that the converter places a QUANTIZE between two Q/DQ pairs of different types (module doc)."""
    return torch.clamp(torch.clamp(x, min=-_BEYOND), max=_BEYOND)


class Widen(GraphOp):
    """int8 → int16 on the grid (s_in / 128, 0): exact (module doc)."""

    kind = "widen"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.out_q = ActQuant(fixed=(1.0, 0), bits=16)

    def _sync(self) -> None:
        s = float(self.in_qs[0].scale) / WIDEN
        self.out_q.fixed = (s, 0)
        self.out_q.scale.fill_(s)
        self.out_q.zero_point.fill_(0)

    def prepare_export(self) -> None:
        self._sync()  # before out_q caches its parameters (modules() lists a parent before its children)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.out_q.mode
        if mode == "export":
            return self.out_q(_marked(x))
        if mode == "quant":
            self._sync()
        return x  # exact: the int8 value is a code of the int16 grid


class Narrow(GraphOp):
    """int16 → int8 onto a calibrated int8 grid, as the runtime's QUANTIZE (Requantize) computes it."""

    kind = "narrow"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.out_q = ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.out_q.mode == "export":
            return self.out_q(_marked(x))
        out = self.out_q(x)
        if self.out_q.mode == "quant" and self.exact:
            s_in = float(self.in_qs[0].scale)
            so, zo = float(self.out_q.scale), int(self.out_q.zero_point)
            code = torch.round(x.detach() / s_in).clamp(-32768, 32767).to(torch.int64)
            exact = (requantize_codes(code, (s_in, 0), (so, zo)) - zo).to(torch.float32) * so
            out = out + (exact - out).detach()
        return out


OPS16: dict[str, Callable] = {
    "mean": lambda x: x.mean(-1, keepdim=True),
    "sub": torch.sub,
    "mul": torch.mul,
    "rsqrt": torch.rsqrt,
}


class Op16(GraphOp):
    """One int16 kernel (`kind`: a key of OPS16) onto its own int16 grid (module doc)."""

    def __init__(self, name: str, kind: str) -> None:
        super().__init__(name)
        self.kind = kind
        self.out_q = ActQuant(bits=16)
        self._table: tuple | None = None

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = self.out_q(OPS16[self.kind](*xs))
        if self.out_q.mode == "quant" and self.exact and self.kind in EXACT:
            out = out + (EXACT[self.kind](self, *xs) - out).detach()
        return out

    @torch.no_grad()
    def _binary_output(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The runtime's int16 SUB / MUL from the input codes (quantize/mcu.py binary_tflm, bits=16)."""
        grids = [(float(q.scale), 0) for q in (*self.in_qs, self.out_q)]
        ca, cb = (torch.round(v.detach() / g[0]).clamp_(-32768, 32767).long() for v, g in zip((a, b), grids))
        return self.arithmetic.binary16(self.kind, ca, cb, *grids) * grids[2][0]

    @torch.no_grad()
    def _rsqrt_output(self, x: torch.Tensor) -> torch.Tensor:
        """The runtime's int16 RSQRT (quantize/int16_kernels.py), a table of all input codes per pair of grids."""
        s_in, s_out = float(self.in_qs[0].scale), float(self.out_q.scale)
        key = (self.rounding, s_in, s_out)
        if self._table is None or self._table[0] != key:
            codes = self.arithmetic.rsqrt16(s_in, s_out)
            self._table = (key, torch.from_numpy((codes * s_out).astype("float32")))
        code = torch.round(x.detach() / s_in).clamp_(-32768, 32767).long() + 32768
        return self._table[1][code]


    @torch.no_grad()
    def _mean_output(self, x: torch.Tensor) -> torch.Tensor:
        """MEAN int16 over the last dimension from the integer sum of the codes (reduce_common.cc, LiteRT's
        reduce.cc: the int8 kernels' arithmetic with int16 bounds, quantize/mcu.py mean_tflm)."""
        s_in, s_out = float(self.in_qs[0].scale), float(self.out_q.scale)
        total = torch.round(x.detach() / s_in).clamp_(-32768, 32767).sum(-1, keepdim=True).long()
        return mean_tflm(total, x.shape[-1], s_in, s_out, 0, bits=16) * s_out


# the kernels whose integers QAT computes, in the graph's runtime arithmetic
EXACT = {"rsqrt": Op16._rsqrt_output, "sub": Op16._binary_output, "mul": Op16._binary_output,
         "mean": Op16._mean_output}


class LayerNorm16(GraphOp):
    """nn.LayerNorm over the last dimension with int16 activations inside (module doc). Input and output int8."""

    kind = "layernorm"

    def __init__(self, name: str, m: nn.LayerNorm) -> None:
        super().__init__(name)
        self.eps, self.gamma, self.beta = layernorm_affine(name, m)
        self.widen = Widen(f"{name}.widen")
        self.mu, self.var = Op16(f"{name}.mean", "mean"), Op16(f"{name}.variance", "mean")
        self.diff, self.square = Op16(f"{name}.centre", "sub"), Op16(f"{name}.square", "mul")
        self.rsqrt = Op16(f"{name}.rsqrt", "rsqrt")
        self.scaled = Op16(f"{name}.normalized", "mul")
        self.mu.set_inputs([self.widen.out_q])
        self.var.set_inputs([self.square.out_q])
        self.diff.set_inputs([self.widen.out_q, self.mu.out_q])
        self.square.set_inputs([self.diff.out_q, self.diff.out_q])
        self.rsqrt.set_inputs([self.var.out_q])
        self.scaled.set_inputs([self.diff.out_q, self.rsqrt.out_q])
        self.narrow = Narrow(f"{name}.narrow")
        self.times_gamma, self.plus_beta = Binary(f"{name}.gamma", "mul"), Binary(f"{name}.beta", "add")
        self.narrow.set_inputs([self.scaled.out_q])
        self.times_gamma.set_inputs([self.narrow.out_q, self.gamma.out_q])
        self.plus_beta.set_inputs([self.times_gamma.out_q, self.beta.out_q])

    @property
    def out_q(self) -> ActQuant:
        return self.plus_beta.out_q

    def set_inputs(self, qs: list) -> None:
        super().set_inputs(qs)
        self.widen.set_inputs([qs[0]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.out_q.mode
        if mode == "float":
            return F.layer_norm(x, x.shape[-1:], self.gamma.value, self.beta.value, self.eps)
        x = self.widen(x)
        d = self.diff(x, self.mu(x))
        var = self.var(self.square(d, d))
        if mode == "observe":  # calibration sees the float LayerNorm's 1/√(σ² + ε) ...
            r = self.rsqrt.out_q(torch.rsqrt(var + self.eps))
        elif mode == "export":  # ... the kernels compute RSQRT of the int16 variance
            r = self.rsqrt(var)
        else:  # (a zero variance: the top code either way; the clamp keeps the gradient finite)
            r = self.rsqrt(var.clamp_min(1e-12))
        y = self.narrow(self.scaled(d, r))
        return self.plus_beta(self.times_gamma(y, self.gamma()), self.beta())
