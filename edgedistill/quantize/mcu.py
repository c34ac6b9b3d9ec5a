"""Microcontroller rounding: the integer arithmetic TFLite Micro's int8 kernels compute.

XNNPACK and torch's fake quantization requantize a conv / fully-connected accumulator as round(acc · M) with
M = s_in · s_w[c] / s_out in floating point, ties to even. TFLite's reference kernels, which TFLite Micro runs,
write M as a 31-bit fixed-point multiplier and a power-of-two shift (`QuantizeMultiplier`) and compute
`MultiplyByQuantizedMultiplier` in integers: M is rounded to 31 bits and the product rounded once or twice, so
codes differ by one wherever acc · M lands near .5, and those ones add up through a network. With
`rounding="tflm"` the QAT forward computes exactly these integers for every conv, depthwise conv and linear output
(the gradient stays the usual straight-through one), so the accuracy QAT reports for a microcontroller is what it
computes there.

The same holds for every other op that leaves its input's grid; with `rounding="tflm"` QAT computes TFLite
Micro's integers for each (measured against the tflite-micro interpreter, logits equal to the QAT model's):

* CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: the accumulator times the per-channel multiplier, rounded twice
  (gemmlowp's SaturatingRoundingDoublingHighMul, ties away from zero, then RoundingDivideByPOT). LiteRT's
  reference kernels (BUILTIN_REF) round FULLY_CONNECTED once ((acc · m0 + 2^(30 − shift)) >> (31 − shift)), so
  they can differ from TFLite Micro by one code at a classifier.
* MEAN: the integer sum of (code − zero point), 1/count folded into the multiplier (reference/reduce.h,
  QuantizedMeanOrSum).
* ADD / SUB: both inputs rescaled to twice the larger input scale with 20 bits of headroom, added, requantized;
  MUL: the product of the zero-point-free codes requantized (reference/integer_ops/add.h, mul.h).
* HARD_SWISH (int16 fixed point, reference/hard_swish.h) and LOGISTIC (gemmlowp's fixed-point logistic on Q4.27,
  reference/integer_ops/logistic.h): each a function of the input code, computed once as a 256-entry table.
* QUANTIZE (int8 -> int8, a concatenation input on another grid): reference/requantize.h.

AVERAGE_POOL already rounds as TFLite does in both modes (quantize/ops.py). One gap remains: where a conv feeds a
concatenation, the converter writes the conv's output directly on the concatenation's grid, while QAT rounds to the
conv's own grid first, so a concatenation can differ by one code.

Reference: tensorflow/lite/kernels/internal/common.h (MultiplyByQuantizedMultiplier) and quantization_util.cc
(QuantizeMultiplier) of tensorflow/tflite-micro; gemmlowp's fixedpoint/fixedpoint.h; the parameters as
tflite-micro's reduce_common.cc, add_common.cc, sub_common.cc, mul_common.cc, hard_swish_common.cc and
logistic_common.cc prepare them.
"""

from __future__ import annotations

import numpy as np
import torch

from edgedistill.quantize import requant_f64


def quantize_multiplier(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's QuantizeMultiplier, per element: m = m0 · 2^(shift − 31) with m0 in [2^30, 2^31) (int64 arrays)."""
    m = np.asarray(m, np.float64)
    frac, shift = np.frexp(m)
    m0 = np.floor(frac * (1 << 31) + 0.5).astype(np.int64)  # TfLiteRound: ties away from zero (frac >= 0)
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
    """gemmlowp's SaturatingRoundingDoublingHighMul (ties away from zero) then RoundingDivideByPOT.

    The high mul is (ab + nudge) / 2^31 truncated toward zero, nudge = 2^30 for ab >= 0 and 1 − 2^30 below; for
    ab < 0 truncation adds 2^31 − 1 before an arithmetic shift, so both signs reduce to (ab + 2^30) >> 31 (one
    shift, no branch; gemmlowp's one saturating case, a = b = INT32_MIN, cannot occur: m0 >= 0)."""
    left, exponent = shift.clamp(min=0), (-shift).clamp(min=0)
    high = ((acc << left) * m0 + (1 << 30)) >> 31
    mask = (torch.ones_like(exponent) << exponent) - 1
    return (high >> exponent) + ((high & mask) > (mask >> 1) + (high < 0)).to(high.dtype)


def _ruy_rounding(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """ruy's x86 requantization (kernel_avx2_fma.cc), which LiteRT's optimized FULLY_CONNECTED with a runtime weight
    operand runs: a left shift, (x · m0 + 2^30) >> 31, then a right shift adding half first: both roundings ties
    upward (gemmlowp's round ties away from zero)."""
    left, right = shift.clamp(min=0), (-shift).clamp(min=0)
    scaled = ((acc << left) * m0 + (1 << 30)) >> 31
    nudge = torch.where(right > 0, torch.ones_like(right) << (right - 1).clamp(min=0), torch.zeros_like(right))
    return (scaled + nudge) >> right


MULTIPLY = {"single": _single_rounding, "double": _double_rounding, "ruy": _ruy_rounding}
# Which rounding each TFLite Micro kernel uses (measured against the tflite-micro interpreter: double rounding
# throughout; LiteRT's reference FULLY_CONNECTED alone rounds once).
KERNEL_ROUNDING = {"depthwise": "double", "conv": "double", "linear": "double", "mean": "double",
                   "logistic": "double", "binary": "double"}


# LiteRT's reference kernels (BUILTIN_REF) differ from TFLite Micro's in one place: FULLY_CONNECTED rounds once, and
# at the real multiplier s_in · s_w / s_out in float64 rather than at its 31-bit fixed-point form ("real"). Measured
# on three trained decoders' FULLY_CONNECTED outputs (18.7 M values, 2026-12-07): the real form matched all of them;
# the fixed-point single rounding all but one, a value 4.7e-9 above a tie (acc 56,365, M = 0.0021378515036767,
# acc · M = 120.5000000047: LiteRT wrote 121, m0 = 1,175,296,293 / 2^39 gave 120), which a LayerNorm carried to 2
# output steps and failed parity; TFLite Micro's double rounding missed ~1 in 1,200.
REFERENCE_ROUNDING = {**KERNEL_ROUNDING, "linear": "real"}


def multiply_by_quantized_multiplier(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor,
                                     kernel: str = "conv", rounding: dict = KERNEL_ROUNDING) -> torch.Tensor:
    """The int32 accumulator `acc` (int64 tensor) times the fixed-point multiplier m0 · 2^(shift − 31), as the
    kernel computes it (`rounding`: TFLite Micro's kernels, or REFERENCE_ROUNDING for LiteRT's); m0 / shift
    broadcast against acc (per output channel)."""
    return MULTIPLY[rounding[kernel]](acc, m0, shift)


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
                    kernel: str = "conv", channel_dim: int = 1, rounding: dict = KERNEL_ROUNDING) -> torch.Tensor:
    """int8 codes of a conv / linear output from its exact int32 accumulator (bias included), as float. `acc`: an
    int64 tensor, or a float tensor of integers (then computed in float64 where that is exact: quantize/requant_f64.py;
    the same codes)."""
    real = np.float64(s_in) * s_w.double().numpy() / np.float64(s_out)
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    lo, hi = activation_range(act, s_out, zp_out)
    if rounding[kernel] == "real":  # round(acc · M) at the float64 multiplier, ties away from 0 (REFERENCE_ROUNDING)
        y = acc.double() * torch.from_numpy(real).view(shape)
        return (torch.sign(y) * torch.floor(y.abs() + 0.5) + zp_out).clamp_(lo, hi).to(torch.float32)
    m0, shift = quantize_multiplier(real)
    m0, shift = torch.from_numpy(m0).view(shape), torch.from_numpy(shift).view(shape)
    if acc.is_floating_point() and requant_f64.fits(requant_f64.abs_max(acc), m0, shift, zp_out):
        code = requant_f64.MULTIPLY_F64[rounding[kernel]](acc.double(), m0, shift, zp_out)  # the same integers
        return code.clamp_(lo, hi).to(torch.float32)
    code = multiply_by_quantized_multiplier(acc.to(torch.int64), m0, shift, kernel, rounding) + zp_out
    return code.clamp(lo, hi).to(torch.float32)



# --- MEAN, ADD / SUB / MUL, QUANTIZE, HARD_SWISH and LOGISTIC as TFLite Micro computes them ---------------------
# Scalar helpers follow gemmlowp's int32 / int16 semantics (wrap-around adds, saturating doubling multiplies).

_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


def _round_away(x: float) -> int:
    """TfLiteRound / std::round: half away from zero."""
    return int(np.sign(x) * np.floor(abs(x) + 0.5))


def _quantize_multiplier_scalar(m: float) -> tuple[int, int]:
    if m == 0:
        return 0, 0
    frac, shift = np.frexp(m)
    m0 = _round_away(float(frac) * (1 << 31))
    if m0 == 1 << 31:
        m0, shift = m0 // 2, shift + 1
    return (0, 0) if shift < -31 else (int(m0), int(shift))


def _wrap32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def _srdhm(a: int, b: int, bits: int = 32) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul for int32 (bits=32) or int16 (bits=16)."""
    lo = -(1 << (bits - 1))
    if a == b == lo:
        return -lo - 1
    ab = a * b
    nudge = (1 << (bits - 2)) if ab >= 0 else 1 - (1 << (bits - 2))
    return _trunc_div(ab + nudge, 1 << (bits - 1))


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _rdbpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: a right shift rounding to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _sat_shl(x: int, e: int, bits: int = 32) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0."""
    threshold = (1 << (bits - 1 - e)) - 1
    if x > threshold:
        return (1 << (bits - 1)) - 1
    if x < -threshold:
        return -(1 << (bits - 1))
    return x << e


def _mbqm(x: int, m0: int, shift: int, rounding: str) -> int:
    """MultiplyByQuantizedMultiplier on one int32 (TFLITE_SINGLE_ROUNDING or gemmlowp's double rounding)."""
    if rounding == "single":
        total = 31 - shift
        return (x * m0 + (1 << (total - 1))) >> total
    return _rdbpot(_srdhm(_wrap32(x * (1 << max(shift, 0))), m0), max(-shift, 0))


def _exp_on_interval(a: int) -> int:
    """exp(a) for a in [-1/4, 0), Q0.31."""
    x = _wrap32(a + (1 << 28))
    x2 = _srdhm(x, x)
    x3, x4 = _srdhm(x2, x), _srdhm(x2, x2)
    t = _rdbpot(_wrap32(_srdhm(_wrap32(_rdbpot(x4, 2) + x3), 715827883) + x2), 1)
    return _wrap32(1895147668 + _srdhm(1895147668, _wrap32(x + t)))


def _exp_on_negative_values_q4(a: int) -> int:
    """exp(a) for a <= 0 given in Q4.27, result Q0.31."""
    quarter = 1 << 25
    a_mod = _wrap32((a & (quarter - 1)) - quarter)
    result = _exp_on_interval(_sat_shl(a_mod, 4))
    remainder = _wrap32(a_mod - a)
    for exponent, mult in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
                           (3, 720401)):
        if remainder & (1 << (27 + exponent)):
            result = _srdhm(result, mult)
    return _I32_MAX if a == 0 else result


def _one_over_one_plus_x(a: int) -> int:
    """1 / (1 + a) for a in (0, 1), Q0.31, by Newton-Raphson as gemmlowp computes it."""
    s = a + _I32_MAX
    half = _trunc_div(s + (1 if s >= 0 else -1), 2)
    x = _wrap32(1515870810 + _srdhm(half, -1010580540))
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - _srdhm(half, x))
        x = _wrap32(x + _sat_shl(_srdhm(x, one_minus), 2))
    return _sat_shl(x, 1)


def _logistic_q4(a: int) -> int:
    if a == 0:
        return 1 << 30
    pos = _one_over_one_plus_x(_exp_on_negative_values_q4(-abs(a)))
    return pos if a > 0 else _wrap32(_I32_MAX - pos)


def logistic_table(s_in: float, zp_in: int, rounding: str = KERNEL_ROUNDING["logistic"]) -> np.ndarray:
    """LOGISTIC's int8 output code (scale 1/256, zero point -128) for each input code -128..127 (index code + 128)."""
    frac, left_shift = np.frexp(float(s_in) * float(1 << 27))  # logistic_common.cc: frexp, no QuantizeMultiplier
    m0, left_shift = _round_away(float(frac) * (1 << 31)), int(left_shift)
    radius = int(np.floor(15.0 * (1 << 27) / 2.0 ** left_shift))
    out = np.empty(256, np.int64)
    for code in range(-128, 128):
        x = code - zp_in
        if x <= -radius:
            out[code + 128] = -128
        elif x >= radius:
            out[code + 128] = 127
        else:
            q0 = _logistic_q4(_mbqm(x, m0, left_shift, rounding))
            out[code + 128] = min(max(_rdbpot(q0, 23) - 128, -128), 127)
    return out


def _downscale_to_int16(m: int) -> int:
    return 32767 if m >= _I32_MAX - (1 << 15) else (m + (1 << 15)) >> 16


def _wrap16(x: int) -> int:
    return (x + (1 << 15)) % (1 << 16) - (1 << 15)


def hard_swish_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """HARD_SWISH's int8 output code for each input code -128..127 (index code + 128)."""
    f32 = np.float32
    hires = f32(1.0 / 128.0) * f32(s_in)
    out_m, out_e = _quantize_multiplier_scalar(float(f32(hires / f32(s_out))))
    relu_m, relu_e = _quantize_multiplier_scalar(float(f32(hires / f32(3.0 / 32768.0))))
    out_m16, relu_m16 = _downscale_to_int16(out_m), _downscale_to_int16(relu_m)
    table = np.empty(256, np.int64)
    for code in range(-128, 128):
        v = _wrap16(code - zp_in)
        hi = _wrap16(v * (1 << 7))
        pre = _srdhm(hi, out_m16, 16)
        r = hi
        if relu_e > 0:
            r = max(min(r * (1 << (relu_e - 1)), 32767), -32768)
        r = _srdhm(r, relu_m16, 16)
        if relu_e > 0:
            r = max(min(r * 2, 32767), -32768)
        if relu_e < 0:
            r = _rdbpot(r, -relu_e)
        r = _wrap16((r + (1 << 15)) >> 1)
        prod = 32767 if r == pre == -32768 else _wrap16(_trunc_div(r * pre, 1 << 15))
        o = _wrap16(_rdbpot(prod, -out_e) + zp_out)
        table[code + 128] = min(max(o, -128), 127)
    return table


@torch.no_grad()
def matmul_multiplier(s_a: float, s_b: float, s_out: float, product: str = "float32") -> float:
    """The real multiplier of BATCH_MATMUL and of a per-tensor FULLY_CONNECTED (a runtime weight operand).
    `product` "float32": LiteRT's GetQuantizedConvolutionMultipler (tflite/kernels/kernel_util.cc, its builtin and
    reference kernels) multiplies the two input scales in float32, then divides by the output scale in double;
    "double": TFLite Micro (the tflite-micro interpreter installed here) forms the whole quotient in double, measured:
    on a trained decoder whose one-head attention separates the two, its logits match the double form on every test
    window and the float32 form leaves two windows 2 steps away. Forming LiteRT's in double gave a 31-bit multiplier
    29 units lower (m0 1,152,961,282 for 1,152,961,311), which wrote code 83 where LiteRT wrote 84 (accumulator
    21,456) and failed parity by 2 steps."""
    if product == "double":
        return float(s_a) * float(s_b) / float(s_out)
    return float(np.float32(s_a) * np.float32(s_b)) / float(np.float32(s_out))


def matmul_tflm(acc: torch.Tensor, multiplier: float, zp_out: int, batched: bool = True,
                rounding: str = "double") -> torch.Tensor:
    """int8 codes (as float) of a matmul of two activations from its exact accumulator of zero-point-free codes:
    MultiplyByQuantizedMultiplier with the per-tensor multiplier s_a · s_b / s_out (`matmul_multiplier`; reference
    batch_matmul.h, fully_connected.h), `rounding` "double" (TFLite Micro), "single" or "ruy" (LiteRT's optimized kernels).
    `batched`: BATCH_MATMUL, else FULLY_CONNECTED with a runtime weight operand (the same arithmetic here). `acc`:
    int64, or a float tensor of integers (computed as requantize_tflm says)."""
    m0, shift = _multiplier(float(multiplier))
    if acc.is_floating_point() and requant_f64.fits(requant_f64.abs_max(acc), m0, shift, zp_out):
        code = requant_f64.MULTIPLY_F64[rounding](acc.double(), m0, shift, zp_out)  # the same integers
        return code.clamp_(-128, 127).to(torch.float32)
    code = MULTIPLY[rounding](acc.to(torch.int64), m0.expand_as(acc), shift.expand_as(acc)) + zp_out
    return code.clamp(-128, 127).to(torch.float32)


def mean_tflm(shifted_sum: torch.Tensor, count: int, s_in: float, s_out: float, zp_out: int,
              bits: int = 8) -> torch.Tensor:
    """MEAN's int8 (`bits` 16: int16) codes from the sums of (code − zero point) over `count` elements (int64
    tensor), as float."""
    m0, shift = _quantize_multiplier_scalar(float(s_in) / float(s_out))
    sh = min(int(count).bit_length() - 1, 32, 31 + shift)
    m0, shift = (m0 << sh) // count, shift - sh
    mult = torch.full_like(shifted_sum, m0)
    sft = torch.full_like(shifted_sum, shift)
    code = multiply_by_quantized_multiplier(shifted_sum, mult, sft, "mean") + zp_out
    lo, hi = (-32768, 32767) if bits == 16 else (-128, 127)
    return code.clamp(lo, hi).to(torch.float32)


def _multiplier(m: float) -> tuple[torch.Tensor, torch.Tensor]:
    m0, shift = _quantize_multiplier_scalar(m)
    return torch.tensor(m0, dtype=torch.int64), torch.tensor(shift, dtype=torch.int64)


@torch.no_grad()
def binary_tflm(kind: str, a: torch.Tensor, b: torch.Tensor, grid_a: tuple[float, int], grid_b: tuple[float, int],
                grid_out: tuple[float, int], act: str = "none", mul_float32: bool = False, bits: int = 8,
                sub_float32: bool = True) -> torch.Tensor:
    """int8 codes of ADD / SUB / MUL as TFLite Micro computes them from the input codes `a`, `b` (int64 tensors,
    broadcasting): ADD / SUB rescale both inputs to twice the larger input scale with 20 bits of headroom, add, and
    requantize (add_common.cc, sub_common.cc; SUB's multipliers in float32 unless `sub_float32` is False); MUL
    requantizes the product of the zero-point-free codes (mul_common.cc). Returned as float. `mul_float32`: MUL's
    multiplier s_a · s_b / s_out formed in float32, as LiteRT's kernels/mul.cc does (`input1->params.scale *
    input2->params.scale / output->params.scale`, floats; TFLite Micro casts each scale to double first): on a
    product near a rounding tie the two differ by one code (seen in a decoder's LayerNorm gamma MUL on LiteRT's
    reference kernels).
    `bits=16`: the int16 kernels (16×8 mode): 15 bits of headroom instead of 20 (add_common.cc, sub_common.cc and
    LiteRT's sub.cc: 65535 << 15 still fits int32), codes clamped to int16. `sub_float32` False: SUB's multipliers
    formed in double, as LiteRT's sub.cc does; the int8 arithmetic of TFLite Micro passes it too: sub_common.cc's
    source divides the float32 scales, but the tflite-micro interpreter measured here (PyPI 0.dev20261023) matched
    the double multipliers on every int8 SUB of four depth-2 decoders' LayerNorms (20 SUBs, its own input codes fed
    in), where the float32 ones missed a code on near-ties in two of them."""
    (sa, za), (sb, zb), (so, zo) = grid_a, grid_b, grid_out
    left = 15 if bits == 16 else 20
    mul = MULTIPLY[KERNEL_ROUNDING["binary"]]
    if kind == "mul":
        f = np.float32
        m = float(f(sa) * f(sb) / f(so)) if mul_float32 else float(sa) * float(sb) / float(so)
        code = mul((a - za) * (b - zb), *_multiplier(m))
    else:
        if kind == "sub" and sub_float32:
            f = np.float32
            twice = f(2) * max(f(sa), f(sb))
            ma, mb, mo = float(f(sa) / twice), float(f(sb) / twice), float(twice / (f(1 << left) * f(so)))
        else:
            twice = 2 * max(float(sa), float(sb))
            ma, mb, mo = float(sa) / twice, float(sb) / twice, twice / ((1 << left) * float(so))
        xa = mul((a - za) * (1 << left), *_multiplier(ma))
        xb = mul((b - zb) * (1 << left), *_multiplier(mb))
        code = mul(xa - xb if kind == "sub" else xa + xb, *_multiplier(mo))
    lo, hi = activation_range(act, so, zo) if bits == 8 else (-32768, 32767)
    return (code + zo).clamp(lo, hi).to(torch.float32)


@torch.no_grad()
def quantize(y: torch.Tensor, s: float, zp: int) -> torch.Tensor:
    """QUANTIZE float32 -> int8 as TFLite Micro's (and LiteRT's reference) kernel computes it: TfLiteRound(y / s)
    (float32 division, half away from zero) plus the zero point, clamped (reference/quantize.h AffineQuantize);
    codes as float."""
    v = y.float() / np.float32(s)
    return (torch.sign(v) * torch.floor(v.abs() + 0.5) + zp).clamp(-128, 127)


@torch.no_grad()
def requantize_codes(code: torch.Tensor, grid_in: tuple[float, int], grid_out: tuple[float, int]) -> torch.Tensor:
    """int8 codes moved from one grid to another as TFLite Micro's QUANTIZE (int8 -> int8) does it: the code less
    its zero point times the fixed-point s_in / s_out, plus the output zero point (quantize_common.cc,
    reference/requantize.h). `code`: an int64 tensor; returns int64."""
    (si, zi), (so, zo) = grid_in, grid_out
    out = MULTIPLY[KERNEL_ROUNDING["binary"]](code - zi, *_multiplier(float(si) / float(so))) + zo
    return out.clamp(-128, 127)
