"""TFLite's MultiplyByQuantizedMultiplier computed in float64, bit for bit the integers of quantize/mcu.py.

QAT computes the runtime's requantization of every int32 accumulator on every step. In int64 tensors that is about
a dozen passes (shift, multiply, add, shift, mask, compare, ...), each one a separate kernel on CPU; the same
integers come out of fewer float64 passes wherever every intermediate value is an integer below 2^53, where float64
arithmetic is exact:

* the high multiply (acc · 2^left · m0 + 2^30) >> 31 is floor(acc · A + 1/2) with A = m0 · 2^(left − 31): acc · A is
  the exact integer product acc · 2^left · m0 (< 2^53 by the guard below) scaled by a power of two, so exact, and
  adding 1/2 and flooring are exact;
* a rounding right shift by e (gemmlowp RoundingDivideByPOT: to nearest, ties away from zero) is
  trunc(x + copysign(1/2, x)) with x = high · 2^−e, exact for |x| < 2^52; ruy's (ties upward) is floor(x + 1/2);
* TFLITE_SINGLE_ROUNDING, (acc · m0 + 2^(30 − shift)) >> (31 − shift), is floor(acc · m0 · 2^(shift − 31) + 1/2).

`fits(acc_bound, m0, shift)` is the guard: |acc| · m0 · 2^max(shift, 0) < 2^52 (one bit of margin for the + 1/2).
A 96-wide int8 layer's accumulator is below 96 · 127 · 255 + |bias| ≈ 3.1 · 10^6 < 2^22 and m0 < 2^31, so the guard
holds for the layers QAT meets; where it does not, callers use the int64 form.
"""

from __future__ import annotations

import torch

EXACT_BELOW = 2.0 ** 52


def fits(acc_bound: float, m0: torch.Tensor, shift: torch.Tensor) -> bool:
    """Whether every product |acc| · 2^max(shift, 0) · m0 stays below 2^52 (`acc_bound` ≥ max |acc|)."""
    worst = float((m0.double() * torch.exp2(shift.clamp(min=0).double())).max()) if m0.numel() else 0.0
    return acc_bound * worst < EXACT_BELOW


def _high(acc: torch.Tensor, m0: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """(acc · 2^left · m0 + 2^30) >> 31 as float64: floor(acc · A + 1/2)."""
    a = m0.double() * torch.exp2(left.double() - 31)
    return torch.addcmul(torch.full((), 0.5, dtype=torch.float64), acc, a).floor_()


def double_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """gemmlowp's SaturatingRoundingDoublingHighMul then RoundingDivideByPOT (mcu._double_rounding), float64 in and
    out (acc: integers, m0 / shift broadcasting against it).

    The rounding shift of the integer h by e >= 1, ties away from zero, is floor((h + δ) · 2^−e + 1/2) with δ = 0
    for h >= 0 and −1/2 for h < 0 (a negative tie then falls just below the half; nothing else moves, h being an
    integer); δ is clamp(h, −1/2, 0). A shift by e = 0 leaves h: δ's lower bound is 0 there and 1/2 is not added."""
    e = (-shift).clamp(min=0)
    h = _high(acc, m0, shift.clamp(min=0))
    shifting = (e > 0).double()
    delta = torch.clamp(h, min=-0.5 * shifting, max=torch.zeros((), dtype=torch.float64))
    return torch.addcmul(0.5 * shifting, h.add_(delta), torch.exp2(-e.double())).floor_()


def single_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(acc · m0 + 2^(30 − shift)) >> (31 − shift) (mcu._single_rounding), float64 in and out."""
    return _high(acc, m0, shift)


def ruy_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """ruy's x86 requantization (mcu._ruy_rounding): both roundings ties upward, float64 in and out."""
    x = _high(acc, m0, shift.clamp(min=0)).mul_(torch.exp2(-(-shift).clamp(min=0).double()))
    return x.add_(0.5).floor_()


MULTIPLY_F64 = {"single": single_rounding, "double": double_rounding, "ruy": ruy_rounding}


def abs_max(t: torch.Tensor) -> float:
    """max |t| in one pass without a temporary (0 for an empty tensor)."""
    if not t.numel():
        return 0.0
    lo, hi = torch.aminmax(t)
    return max(-float(lo), float(hi))
