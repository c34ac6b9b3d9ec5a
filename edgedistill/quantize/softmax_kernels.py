"""SOFTMAX (int8 -> int8, output scale 1/256, zero point -128) and RSQRT (int8) as the runtimes compute them.

* Reference kernels (TFLite Micro, LiteRT's BUILTIN_REF; tensorflow/lite/kernels/internal/reference/softmax.h): per
  row, each code's difference to the row's maximum is scaled by a fixed-point multiplier (PreprocessSoftmaxScaling,
  5 integer bits), exponentiated in gemmlowp fixed point, summed with 12 integer bits, and divided by the sum through
  gemmlowp's reciprocal (GetReciprocal); a difference below `diff_min` gives code -128.
* LiteRT's optimized kernel on x86 (optimized_ops.h Softmax with a float table, used when LiteRT is built without
  TFLITE_SOFTMAX_USE_UINT16_LUT, i.e. off aarch64; XNNPACK does not take int8 SOFTMAX): exp(-s·k) for k = 0 … 255
  as a float32 table, the row's table values summed in float32 left to right, each multiplied by
  1 / (sum · 1/256) and rounded half away from zero.
* RSQRT (the same integer algorithm in LiteRT and TFLite Micro, elementwise.cc): GetInvSqrtQuantizedMultiplierExp on
  the code less its zero point, then two MultiplyByQuantizedMultiplier steps; a zero input gives 127. A function of
  the input code, computed once as a 256-entry table.

Vectorized over torch int64 tensors; gemmlowp's int32 semantics (saturating doubling high multiplies, wrap-around
adds) as quantize/mcu.py has them for scalars.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from edgedistill.quantize import mcu

_I32_MAX, _I32_MIN = (1 << 31) - 1, -(1 << 31)


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + (1 << 31), 1 << 32) - (1 << 31)


def _srdhm(a: torch.Tensor, b) -> torch.Tensor:
    b = torch.as_tensor(b, dtype=torch.int64)
    ab = a * b
    nudge = torch.where(ab >= 0, torch.full_like(ab, 1 << 30), torch.full_like(ab, 1 - (1 << 30)))
    out = torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")
    return torch.where((a == _I32_MIN) & (b == _I32_MIN), torch.full_like(out, _I32_MAX), out)


def _rdbpot(x: torch.Tensor, exponent) -> torch.Tensor:
    e = torch.as_tensor(exponent, dtype=torch.int64)
    mask = (torch.ones_like(e) << e) - 1
    threshold = (mask >> 1) + (x < 0).to(torch.int64)
    return (x >> e) + ((x & mask) > threshold).to(torch.int64)


def _sat_shl(x: torch.Tensor, e: int) -> torch.Tensor:
    threshold = (1 << (31 - e)) - 1
    return torch.where(x > threshold, torch.full_like(x, _I32_MAX),
                       torch.where(x < -threshold, torch.full_like(x, _I32_MIN), x << e))


def _one_over_one_plus_x(a: torch.Tensor) -> torch.Tensor:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 (Newton-Raphson, Q0.31), vectorized."""
    s = a + _I32_MAX
    half = torch.div(s + torch.where(s >= 0, 1, -1), 2, rounding_mode="trunc")
    x = _wrap32(1515870810 + _srdhm(half, -1010580540))
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - _srdhm(half, x))
        x = _wrap32(x + _sat_shl(_srdhm(x, one_minus), 2))
    return _sat_shl(x, 1)


def _exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp exp_on_negative_values for FixedPoint<int32, integer_bits> (a <= 0), result Q0.31 (scalar)."""
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = mcu._wrap32((a & (quarter - 1)) - quarter)
    result = mcu._exp_on_interval(mcu._sat_shl(a_mod, integer_bits) if integer_bits else a_mod)
    remainder = mcu._wrap32(a_mod - a)
    for exponent, mult in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
                           (3, 720401), (4, 242)):
        if integer_bits > exponent and remainder & (1 << (frac + exponent)):
            result = mcu._srdhm(result, mult)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)) * (1 << (frac - (36 - integer_bits))):
        result = 0
    return _I32_MAX if a == 0 else result


def softmax_params(s_in: float, beta: float = 1.0) -> tuple[int, int, int]:
    """(input multiplier, left shift, diff_min) of the reference int8 softmax (PreprocessSoftmaxScaling with 5
    integer bits, CalculateInputRadius)."""
    real = min(beta * float(s_in) * (1 << (31 - 5)), (1 << 31) - 1.0)
    m0, shift = mcu._quantize_multiplier_scalar(real)
    radius = math.floor(1.0 * ((1 << 5) - 1) * (1 << (31 - 5)) / (1 << shift))
    return m0, shift, -radius


@functools.lru_cache(maxsize=64)
def _reference_tables(s_in: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For each difference d = 0, -1, … -255 (index -d): exp in Q0.31 and its Rescale<12>; and diff_min."""
    m0, shift, diff_min = softmax_params(s_in)
    exp = []
    for d in range(0, -256, -1):
        scaled = mcu._srdhm(mcu._wrap32(d * (1 << shift)), m0)
        exp.append(_exp_on_negative_values(scaled, 5) if d >= diff_min else 0)
    exp_t = torch.tensor(exp, dtype=torch.int64)
    return exp_t, _rdbpot(exp_t, 12), diff_min


def _clz32(x: torch.Tensor) -> torch.Tensor:
    """Leading zeros of 0 <= x < 2^32 (int64) as a 32-bit word: 32 − bit length, the bit length being frexp's
    exponent (x = m · 2^e, 1/2 <= m < 1; exact: x is an integer below 2^53; 0 gives 0)."""
    return 32 - torch.frexp(x.double()).exponent.to(torch.int64)


@torch.no_grad()
def softmax_reference(codes: torch.Tensor, s_in: float) -> torch.Tensor:
    """int8 SOFTMAX codes (as float) over the last dimension, as the reference kernels compute them."""
    exp, acc, diff_min = _reference_tables(s_in)
    # both tables hold 0 where d < diff_min, so a key below the radius adds nothing to the sum and, its exp_in
    # being 0, comes out as code -128 below without a mask; codes lie in [-128, 127], so 0 <= max - code <= 255
    codes = codes.to(torch.float32)
    idx = (codes.amax(-1, keepdim=True) - codes).to(torch.int32)
    flat = idx.view(-1) if idx.is_contiguous() else idx.reshape(-1)
    exp_in = exp.index_select(0, flat).view(idx.shape)
    total = acc.index_select(0, flat).view(idx.shape).sum(-1, keepdim=True)
    headroom = _clz32(total)
    bits_over_unit = 12 - headroom
    shifted = torch.remainder(total << headroom, 1 << 32) - (1 << 31)
    scale = _one_over_one_plus_x(shifted)
    # scale > 0 and exp_in >= 0: gemmlowp's high multiply is (a·b + 2^30) >> 31 and the rounding shift by
    # e = bits_over_unit + 23 (>= 23: the row's maximum alone adds 2^19 to the sum) is (x + 2^(e − 1)) >> e
    e = bits_over_unit + 31 - 8
    out = ((exp_in * scale + (1 << 30)) >> 31).add_(torch.ones_like(e) << (e - 1)).bitwise_right_shift_(e)
    return out.sub_(128).clamp_(max=127).to(torch.float32)


@torch.no_grad()
def softmax_litert(codes: torch.Tensor, s_in: float, s_out: float = 1.0 / 256.0, zp_out: int = -128) -> torch.Tensor:
    """int8 SOFTMAX codes (as float) over the last dimension, as LiteRT's optimized float-table kernel computes them."""
    f32 = np.float32
    k = np.arange(256, dtype=f32)
    arg = f32(-float(f32(s_in))) * k  # float32 products, as the kernel's scale * val
    table = torch.from_numpy(np.exp(arg.astype(np.float64)).astype(f32))  # expf, correctly rounded to float32
    codes = codes.to(torch.int64)
    vals = table[(codes.amax(-1, keepdim=True) - codes)]
    total = torch.zeros(vals.shape[:-1], dtype=torch.float32)
    for j in range(vals.shape[-1]):  # float32 adds left to right, as the kernel's loop
        total = total + vals[..., j]
    inv = (torch.ones_like(total) / (total * f32(s_out))).unsqueeze(-1)
    scaled = vals * inv
    out = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5) + zp_out  # std::round: half away from zero
    return out.clamp(-128, 127)


def _inv_sqrt_multiplier_exp(value: int) -> tuple[int, int]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp with reverse_shift = -1 (kReverseShift): (multiplier, shift)."""
    if value <= 1:
        return _I32_MAX, 0
    shift = 11
    while value >= (1 << 29):
        value //= 4
        shift += 1
    max_left_shift_bits = (32 - value.bit_length()) - 1
    pairs = max_left_shift_bits // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    x_in = value >> 1  # F3 raw
    half_in = mcu._rdbpot(x_in, 1)
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28  # F3 one
    for _ in range(5):
        x3 = mcu._sat_shl(mcu._srdhm(mcu._srdhm(x, x), x), 6)  # F9 -> Rescale<3>
        t = mcu._wrap32(mcu._srdhm(half_three, x) - mcu._srdhm(half_in, x3))  # F6
        x = mcu._sat_shl(t, 3)
    x = mcu._srdhm(x, 1518500250)
    if shift < 0:
        x <<= -shift
        shift = 0
    return x, -shift


@functools.lru_cache(maxsize=None)
def _inv_sqrt_data(value: int, rounding: str) -> int:
    """The kernel's first step for one positive input (code − zero point, 1 … 255): 1/√value as a fixed-point
    multiplier applied to 1. It depends on the value alone, not on either grid, so it is computed once per value:
    QAT's tracked ranges move the grids nearly every step, and each new grid rebuilds the table."""
    inv_m, inv_shift = _inv_sqrt_multiplier_exp(value)
    return mcu._mbqm(1, inv_m, inv_shift + 20, rounding)


def rsqrt_table(s_in: float, zp_in: int, s_out: float, zp_out: int, rounding: str = "double") -> np.ndarray:
    """RSQRT's int8 output code for each input code -128..127 (index code + 128); codes below the zero point (a
    negative input, refused by the kernel) are given 127."""
    m0, shift = mcu._quantize_multiplier_scalar(1.0 / (math.sqrt(float(np.float32(s_in))) * float(np.float32(s_out))))
    out = np.empty(256, np.int64)
    for code in range(-128, 128):
        value = code - zp_in
        if value <= 0:
            out[code + 128] = 127
            continue
        data = _inv_sqrt_data(value, rounding)
        out[code + 128] = min(max(mcu._mbqm(data, m0, shift - 20, rounding) + zp_out, -128), 127)
    return out
