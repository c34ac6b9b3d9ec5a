"""Microcontroller rounding: the requantization TFLite Micro's (and LiteRT's reference) int8 kernels compute.

XNNPACK and torch's fake quantization requantize a conv / fully-connected accumulator as round(acc · M) with
M = s_in · s_w[c] / s_out in floating point, ties to even. TFLite's reference kernels, which TFLite Micro runs,
write M as a 31-bit fixed-point multiplier and a power-of-two shift (`QuantizeMultiplier`) and compute
`MultiplyByQuantizedMultiplier` in integers: M is rounded to 31 bits and the product rounded once or twice, so
codes differ by one wherever acc · M lands near .5, and those ones add up through a network. With
`rounding="tflm"` the QAT forward computes exactly these integers for every conv, depthwise conv and linear output
(the gradient stays the usual straight-through one), so the accuracy QAT reports for a microcontroller is what it
computes there.

Which rounding each kernel uses was measured layer by layer against the shipped kernels (LiteRT's reference
kernels and tflite-micro agree): CONV_2D and DEPTHWISE_CONV_2D round twice (gemmlowp's
SaturatingRoundingDoublingHighMul, ties away from zero, then RoundingDivideByPOT), FULLY_CONNECTED once
((acc · m0 + 2^(30 − shift)) >> (31 − shift)). Not modelled (they keep torch's rounding): MEAN (LiteRT's reference
MEAN differs from torch by one code on ~1 % of outputs), HARD_SWISH, LOGISTIC, ADD / MUL and AVERAGE_POOL (whose
rounding is already TFLite's, quantize/ops.py).

Reference: tensorflow/lite/kernels/internal/common.h (MultiplyByQuantizedMultiplier) and quantization_util.cc
(QuantizeMultiplier).
"""

from __future__ import annotations

import numpy as np
import torch

ROUNDINGS = ("float", "tflm")


def quantize_multiplier(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's QuantizeMultiplier, per element: m = m0 · 2^(shift − 31) with m0 in [2^30, 2^31) (int64 arrays)."""
    m = np.asarray(m, np.float64)
    frac, shift = np.frexp(m)
    m0 = np.round(frac * (1 << 31)).astype(np.int64)
    carry = m0 == (1 << 31)
    m0[carry] //= 2
    shift = shift.astype(np.int64) + carry
    tiny = shift < -31
    m0[tiny], shift[tiny] = 0, 0
    m0[m == 0], shift[m == 0] = 0, 0
    return m0, shift


def _single_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(acc · m0 + 2^(30 − shift)) >> (31 − shift): one rounding, ties up (TFLITE_SINGLE_ROUNDING)."""
    total = 31 - shift
    return (acc * m0 + (torch.ones_like(total) << (total - 1))) >> total


def _double_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """gemmlowp's SaturatingRoundingDoublingHighMul (ties away from zero) then RoundingDivideByPOT."""
    ab = acc * (torch.ones_like(shift) << shift.clamp(min=0)) * m0
    nudge = torch.where(ab >= 0, torch.full_like(ab, 1 << 30), torch.full_like(ab, 1 - (1 << 30)))
    high = torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")
    exponent = (-shift).clamp(min=0)
    mask = (torch.ones_like(exponent) << exponent) - 1
    threshold = (mask >> 1) + (high < 0).to(high.dtype)
    return (high >> exponent) + ((high & mask) > threshold).to(high.dtype)


MULTIPLY = {"single": _single_rounding, "double": _double_rounding}
# Which rounding each kernel uses in the shipped LiteRT reference kernels and tflite-micro: measured layer by layer,
# bit for bit (CONV_2D and DEPTHWISE_CONV_2D: double rounding; FULLY_CONNECTED: single rounding).
KERNEL_ROUNDING = {"depthwise": "double", "conv": "double", "linear": "single"}


def multiply_by_quantized_multiplier(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor,
                                     kernel: str = "conv") -> torch.Tensor:
    """The int32 accumulator `acc` (int64 tensor) times the fixed-point multiplier m0 · 2^(shift − 31), as the
    kernel computes it; m0 / shift broadcast against acc (per output channel)."""
    return MULTIPLY[KERNEL_ROUNDING[kernel]](acc, m0, shift)


def activation_range(act: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 clamp a fused activation becomes (TFLite's CalculateActivationRangeQuantized)."""
    lo, hi = -128, 127
    if act in ("relu", "relu6"):
        lo = max(lo, zero_point)
    if act == "relu6":
        hi = min(hi, zero_point + int(np.round(6.0 / scale)))
    return lo, hi


@torch.no_grad()
def requantize_tflm(acc: torch.Tensor, s_in: float, s_w: torch.Tensor, s_out: float, zp_out: int, act: str,
                    kernel: str = "conv", channel_dim: int = 1) -> torch.Tensor:
    """int8 codes of a conv / linear output from its exact int32 accumulator (bias included), as float."""
    m0, shift = quantize_multiplier(np.float64(s_in) * s_w.double().numpy() / np.float64(s_out))
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    m0, shift = torch.from_numpy(m0).view(shape), torch.from_numpy(shift).view(shape)
    code = multiply_by_quantized_multiplier(acc.to(torch.int64), m0, shift, kernel) + zp_out
    lo, hi = activation_range(act, s_out, zp_out)
    return code.clamp(lo, hi).to(torch.float32)

