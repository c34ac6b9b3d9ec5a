"""TFLite's MultiplyByQuantizedMultiplier computed in float64, bit for bit the integers of quantize/mcu.py.

QAT computes the runtime's requantization of every int32 accumulator on every step. In int64 tensors that is about
a dozen passes (shift, multiply, add, shift, mask, compare, ...), each one a separate kernel on CPU; the same
integers come out of two or three float64 passes wherever float64 represents every intermediate value exactly:

* the high multiply (acc · 2^left · m0 + 2^30) >> 31 is floor(y + 1/2) with y = acc · m0 · 2^(left − 31), the exact
  integer product acc · 2^left · m0 scaled by a power of two;
* a following rounding right shift by e folds into the same floor (floor(floor(u) + k) / 2^e floored is
  floor((u + k) / 2^e) for integers k): gemmlowp's RoundingDivideByPOT (ties away from zero) becomes
  floor(y · 2^−e + 1/2 ± 2^−(e+1)), the sign that of acc; ruy's (ties upward) floor(y · 2^−e + 1/2 + 2^−(e+1));
* TFLITE_SINGLE_ROUNDING, (acc · m0 + 2^(30 − shift)) >> (31 − shift), is floor(acc · m0 · 2^(shift − 31) + 1/2);
* an integer `offset` (the output zero point) joins the constant before the floor.

`fits` is the guard: every sum, counted in units of its lowest bit 2^−(31+e), stays below 2^53. A 96-wide int8
layer's accumulator is below 96 · 127 · 255 + |bias| ≈ 3.1 · 10^6 < 2^22, m0 < 2^31 and e <= 14 for multipliers above
2^−15, so the guard holds for the layers QAT meets; where it does not, callers use mcu's int64 forms.
"""

from __future__ import annotations

import torch


def fits(acc_bound: float, m0: torch.Tensor, shift: torch.Tensor, offset: int = 0) -> bool:
    """Whether the float64 forms below are exact for every |acc| <= `acc_bound`: each sums acc · m0 · 2^(left−31−e)
    (its lowest bit 2^−(31+e)) and a constant below |offset| + 1, so the sum, in units of its lowest bit,
    acc_bound · m0 · 2^left + (|offset| + 2) · 2^(31+e), must stay below 2^53."""
    if not m0.numel():
        return True
    left, e = shift.clamp(min=0).double(), (-shift).clamp(min=0).double()
    units = acc_bound * m0.double() * torch.exp2(left) + (abs(offset) + 2) * torch.exp2(31 + e)
    return float(units.max()) < 2.0 ** 53


def _powers(m0: torch.Tensor, shift: torch.Tensor, left: torch.Tensor, right: torch.Tensor):
    return m0.double() * torch.exp2(left.double() - 31 - right.double()), right.double()


def double_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """gemmlowp's SaturatingRoundingDoublingHighMul then RoundingDivideByPOT (mcu._double_rounding), plus the integer
    `offset`; float64 in and out (acc: integers, m0 / shift broadcasting against it).

    With y = acc · m0 · 2^(left − 31), the high multiply is h = floor(y + 1/2) and the rounding shift by e >= 1, ties
    away from zero, is floor((h + 2^(e−1) − [h < 0]) / 2^e). For an integer k, floor((floor(u) + k) / 2^e) equals
    floor((u + k) / 2^e), so the two roundings are one: floor(y · 2^−e + 1/2 ± 2^−(e+1)), + for acc >= 0 and − below
    (where −1/2 <= y < 0, h = 0 and both signs give 0). A shift by e = 0 leaves h: the ± term is 0 there. Every
    sum is exact in float64 where `fits` says so."""
    e = (-shift).clamp(min=0)
    a, right = _powers(m0, shift, shift.clamp(min=0), e)
    half_step = torch.where(e > 0, torch.exp2(-right - 1), torch.zeros_like(right))
    out = torch.addcmul(torch.full((), 0.5 + offset, dtype=torch.float64), acc, a)
    return out.addcmul_(acc.clamp(-1, 1), half_step).floor_()  # the sign of an integer (torch.sign is slower)


def single_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """(acc · m0 + 2^(30 − shift)) >> (31 − shift) (mcu._single_rounding) plus `offset`: floor(acc · m0 ·
    2^(shift − 31) + 1/2), float64 in and out."""
    a, _ = _powers(m0, shift, shift, torch.zeros_like(shift))
    return torch.addcmul(torch.full((), 0.5 + offset, dtype=torch.float64), acc, a).floor_()


def ruy_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """ruy's x86 requantization (mcu._ruy_rounding) plus `offset`: both roundings ties upward, so (nested floors, as
    in double_rounding) floor(y · 2^−e + 1/2 + 2^−(e+1)) for e >= 1 and floor(y + 1/2) for e = 0; float64."""
    e = (-shift).clamp(min=0)
    a, right = _powers(m0, shift, shift.clamp(min=0), e)
    k = 0.5 + offset + torch.where(e > 0, torch.exp2(-right - 1), torch.zeros_like(right))
    return torch.addcmul(k, acc, a).floor_()


MULTIPLY_F64 = {"single": single_rounding, "double": double_rounding, "ruy": ruy_rounding}


def abs_max(t: torch.Tensor) -> float:
    """max |t| in one pass without a temporary (0 for an empty tensor)."""
    if not t.numel():
        return 0.0
    lo, hi = torch.aminmax(t)
    return max(-float(lo), float(hi))
