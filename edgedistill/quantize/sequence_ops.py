"""The int8 ops of sequence (text) students, each simulating the TFLite kernel the converter writes for it.

* `Embedding`: a token-embedding lookup, GATHER_ND from an int8 table (TFLite's GATHER / GATHER_ND keep their input's
  quantization: the output holds the table's codes on the table's grid). The table is quantized per tensor,
  symmetric (zero point 0, codes −127 … 127, scale max|W| / 127, following the weights as they train), since a
  gather's output has one scale. The model's input is then int32 token ids, which the device app passes as they
  come from its tokenizer; no input quantization. Written in the file as `table[ids]`: the converter's
  negative-index wrap-around before the gather is removed after conversion (export/tflite_fixups.py).

The table's codes are QAT's (`table_codes`: torch's fake quantization, nearbyint(w · (1/s)) with 1/s in float32,
ties to even), and every exporter writes exactly those: the TFLite route hands the converter the table already on
its grid (codes · s), so the converter's own rounding (double division, ties away from zero: MLIR's
UniformQuantizedValueConverter) cannot pick another code for a weight within a float32 ulp of a half step. A large
vocabulary table holds such weights (1 in 63,360 of a 1,980-token table moved a logit by 2-3 output steps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.quantize.fake import ActQuant
from edgedistill.quantize.ops import GraphOp

_qd = torch.ops.quantized_decomposed


def table_scale(w: torch.Tensor) -> float:
    """Per-tensor symmetric int8 scale of an embedding table: max|W| / 127 (1 / 127 for an all-zero table)."""
    amax = float(w.detach().abs().max()) if w.numel() else 0.0
    return max(amax, 1e-30) / 127.0 if amax > 0 else 1.0 / 127.0


def table_codes(w: torch.Tensor, s: float) -> torch.Tensor:
    """The int8 codes (as float, −127 … 127) of table `w` (V×D float32) on scale `s` that QAT computes with."""
    return torch.round(torch.fake_quantize_per_tensor_affine(w.detach(), s, 0, -127, 127) / s)


class Embedding(GraphOp):
    """Token ids (N×L, int) -> embeddings N×L×D, or N×D×L (`channels_first`, for a 1-D conv student), on the
    table's int8 grid."""

    kind = "embedding"

    def __init__(self, name: str, weight: torch.Tensor, channels_first: bool = False) -> None:
        super().__init__(name)
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.channels_first = channels_first
        s = table_scale(self.weight)
        self.out_q = ActQuant(fixed=(s, 0))  # the table's grid; kept equal to the table's scale in every mode

    def _sync_grid(self) -> float:
        s = table_scale(self.weight)
        self.out_q.fixed = (s, 0)
        self.out_q.scale.fill_(s)
        self.out_q.zero_point.fill_(0)
        return s

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mode = self.out_q.mode
        if mode == "export":
            s = self.export_s
            # the full int8 range in the Q/DQ pair (the codes stay within ±127): the gather's output type then equals
            # the table's and the converter adds no requantizing QUANTIZE of the whole table
            w = _qd.dequantize_per_tensor(_qd.quantize_per_tensor(self.export_w, s, 0, -128, 127, torch.int8),
                                          s, 0, -128, 127, torch.int8)
            y = self.out_q(w[ids])  # GATHER_ND on the int8 table, its output on the table's grid
            if self.channels_first:  # N×L×D as the NHWC map N×1×L×D: the converter folds this into a RESHAPE
                y = y.unsqueeze(1).permute(0, 3, 1, 2)
                return y if self.lifted else y.squeeze(2)
            return y
        w = self.weight
        if mode in ("quant", "observe"):
            s = self._sync_grid()
            if mode == "quant":
                w = torch.fake_quantize_per_tensor_affine(w, s, 0, -127, 127)
        y = F.embedding(ids.long(), w)
        if self.channels_first:
            y = y.transpose(1, 2)
            return y.unsqueeze(2) if self.lifted else y
        return y

    @torch.no_grad()
    def prepare_export(self) -> None:
        self.export_s = self._sync_grid()
        # on the grid: the converter's rounding of codes · s gives back QAT's codes (module doc)
        on_grid = torch.fake_quantize_per_tensor_affine(self.weight.detach(), self.export_s, 0, -127, 127)
        self.register_buffer("export_w", on_grid, persistent=False)
