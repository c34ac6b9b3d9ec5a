"""The integer arithmetic of the int16 kernels (16×8 mode) as LiteRT and TFLite Micro compute them.

* RSQRT int16 (zero points 0). TFLite Micro (tflite-micro's elementwise.cc, RsqrtEvalQuantized with T = int16):
  for v = code > 0, 1/√v as the fixed-point multiplier of GetInvSqrtQuantizedMultiplierExp applied to 1 with 20
  bits of headroom, then times the output multiplier 1 / (√s_in · s_out) (MultiplyByQuantizedMultiplier, gemmlowp
  rounding), clamped; v = 0 gives 32767. LiteRT (tflite/kernels/elementwise.cc; XNNPACK takes no int16, so its
  builtin kernel runs under every LiteRT configuration) computes a 513-entry table instead (LUTPopulate<int16_t>,
  float32: 512 samples of 1/√x over the input grid's range with a midpoint bias correction, the last entry for the
  slope) and interpolates it linearly (LUTLookup: index 256 + (code >> 7), offset code & 127); x <= 0 reads
  32767 · s_out. Measured before this module: LiteRT's answers lie up to 12 int16 steps from 1/√x, TFLite Micro's
  within one.

  Each RSQRT function returns the output code for every input code −32768 … 32767 (index code + 32768) as an int64
  array, computed once per pair of grids.
* SOFTMAX int16 → int16 (input zero point 0, output (1/32768, 0)): both runtimes run
  reference_ops::SoftmaxInt16 (tflite/kernels/internal/reference/softmax.h; tflite-micro's softmax.cc calls it too):
  per row, each difference to the maximum times the fixed-point s_in / (10 / 65535) (MultiplyByQuantizedMultiplier,
  so [−65535, 0] codes span [−10, 0]), plus 32767, saturated to int16, through the exp table; the int32 sum of the
  exps shifted by its leading zeros (headroom_plus_one − 1), rounded by 2^14 and moved by −(2^15 + 2^16) into the
  1/(1 + x) table; each exp times that reciprocal, shifted right by 31 − headroom_plus_one with rounding, clamped
  to [0, 32767]. Both tables are 513-entry interpolated int16 tables onto the output range [−1, 1] (exp over
  [−10, 0], 1/(1 + x) over [0, 1]), but built in different float types: TFLite Micro's softmax_common.cc
  SoftmaxPrepare calls gen_lut<float, int16_t, int16_t> (float32), LiteRT's activations.cc SoftmaxPrepare
  LUTPopulate<int16_t> with double "for backward compatibility". Measured on a file's SOFTMAX: outputs a code apart
  on some rows (tests/quantize/test_int16_attention.py), so QAT builds the runtime's own.
* BATCH_MATMUL int16 × int16 → int16: reference_ops::BatchMatMul<int16_t, int64_t> on both (LiteRT's
  batch_matmul.cc EvalInt16, tflite-micro's batch_matmul.cc): an int64 accumulator and the int64
  MultiplyByQuantizedMultiplier (tflite/kernels/internal/common.cc: the multiplier reduced to 16 bits, one rounding
  shift). The same integers on every runtime; a function here so QAT computes them rather than one float rounding.

References: tflite/kernels/internal/common.h (LUTPopulateInt16, LUTLookup, MultiplyByQuantizedMultiplier),
reference/softmax.h, reference/batch_matmul.h, kernels/activations.cc and kernels/batch_matmul.cc of
google-ai-edge/LiteRT; tensorflow/lite/micro/kernels/elementwise.cc, softmax_common.cc, softmax.cc and
batch_matmul.cc of tensorflow/tflite-micro, whose tensorflow/lite/kernels/internal/common.h holds gen_lut.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from edgedistill.quantize import mcu, softmax_kernels

_F = np.float32
CODES16 = np.arange(-32768, 32768, dtype=np.int64)


def rsqrt16_tflm(s_in: float, s_out: float) -> np.ndarray:
    """TFLite Micro's int16 RSQRT for every input code (module doc); negative codes (refused by the kernel) get
    32767, as zero does."""
    m0, shift = mcu._quantize_multiplier_scalar(1.0 / (math.sqrt(float(_F(s_in))) * float(_F(s_out))))
    data = torch.tensor([softmax_kernels._inv_sqrt_data(v, "double") for v in range(1, 32768)], dtype=torch.int64)
    scaled = mcu.MULTIPLY["double"](data, torch.tensor(m0), torch.tensor(shift - 20)).numpy()
    out = np.full(65536, 32767, np.int64)
    out[32768 + 1:] = np.clip(scaled, -32768, 32767)
    return out


def _round(x: np.ndarray, t=_F) -> np.ndarray:
    """TfLiteRound (std::round): half away from zero, in float32 (`t`: the float type)."""
    return (np.sign(x) * np.floor(np.abs(x) + t(0.5))).astype(t)


def _rsqrt_f32(x: np.ndarray, s_out: np.float32) -> np.ndarray:
    x = np.asarray(x, _F)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (_F(1.0) / np.sqrt(np.where(x > 0, x, _F(1.0)))).astype(_F)
    return np.where(x > 0, y, _F(32767) * s_out).astype(_F)


def lut16(fn, in_min, in_max, out_min, out_max, dtype=_F) -> np.ndarray:
    """The 513 entries (int64) of an int16 lookup table of `fn` (array of `dtype` -> array of `dtype`) sampled
    over [in_min, in_max] onto the output range [out_min, out_max], computed in `dtype` (float32: TFLite Micro's
    gen_lut<float> and LiteRT's LUTPopulateInt16<float>; float64: LiteRT's <double>): 512 samples with a
    midpoint bias correction, the last entry for the slope."""
    t = np.dtype(dtype).type
    in_min, in_max, out_min, out_max = t(in_min), t(in_max), t(out_min), t(out_max)
    step = t((in_max - in_min) / t(512))
    half = t(step / t(2))
    inv = t(t(65536) / t(out_max - out_min))
    i = np.arange(512, dtype=dtype)
    at = (in_min + i * step).astype(dtype)
    val = fn(at)
    mid = fn((at + half).astype(dtype))
    nxt = fn((in_min + (i + t(1)) * step).astype(dtype))
    sample = _round(val * inv, t)
    interp = _round((nxt * inv + sample) / t(2), t)
    bias = _round((interp - _round(mid * inv, t)) / t(2), t)
    lut = np.clip(sample - bias, -32768, 32767)
    last = np.clip(_round(fn(np.array([in_max], dtype)) * inv, t), -32768, 32767)
    return np.concatenate([lut, last]).astype(np.int64)


def lut_int16(fn, s_in: float, s_out: float) -> np.ndarray:
    """LiteRT's LUTPopulateInt16<float> of fn(x, s_out) for zero points 0: the 513 table entries (int64)."""
    s_in, s_out = _F(s_in), _F(s_out)
    return lut16(lambda v: fn(v, s_out), s_in * _F(-32768), s_in * _F(32767), s_out * _F(-32768),
                 s_out * _F(32767))


def lut_lookup_int16(lut: np.ndarray, codes: np.ndarray = CODES16) -> np.ndarray:
    """LiteRT's LUTLookup(int16) of `codes` (int64) in a 513-entry table: linear interpolation, wrapped to int16."""
    index = 256 + (codes >> 7)
    offset = codes & 0x7F
    base, slope = lut[index], lut[index + 1] - lut[index]
    out = base + ((slope * offset + 64) >> 7)
    return (out + 32768) % 65536 - 32768


def rsqrt16_litert(s_in: float, s_out: float) -> np.ndarray:
    """LiteRT's int16 RSQRT (table and interpolation) for every input code (module doc)."""
    return lut_lookup_int16(lut_int16(_rsqrt_f32, s_in, s_out))


# --- SOFTMAX int16 -> int16 and BATCH_MATMUL int16 x int16 (the attention's 16×8 kernels) -----------------------

def _exp64(v: np.ndarray) -> np.ndarray:
    return np.exp(v)


def _exp32(v: np.ndarray) -> np.ndarray:
    return np.exp(v.astype(np.float64)).astype(_F)  # expf, correctly rounded to float32


@functools.lru_cache(maxsize=2)
def softmax16_tables(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(exp table over [-10, 0], 1/(1 + x) table over [0, 1]), both onto [-1, 1]: TFLite Micro's gen_lut<float>
    (`dtype` "float32", softmax_common.cc) or LiteRT's LUTPopulate<int16_t> in double ("float64", activations.cc
    SoftmaxPrepare, with its input / output ranges formed from scales and zero points as it forms them)."""
    if dtype == "float32":
        return (lut16(_exp32, -10.0, 0.0, -1.0, 1.0),
                lut16(lambda v: (_F(1) / (_F(1) + v)).astype(_F), 0.0, 1.0, -1.0, 1.0))
    rng = 65535.0  # int16 max − min
    out_min, out_max = (2.0 / rng) * -32768.0, (2.0 / rng) * 32767.0
    return (lut16(_exp64, (10.0 / rng) * (-32768.0 - 32767.0), (10.0 / rng) * 0.0, out_min, out_max, np.float64),
            lut16(lambda v: 1.0 / (1.0 + v), (1.0 / rng) * 0.0, (1.0 / rng) * 65535.0, out_min, out_max,
                  np.float64))


def _lookup(lut: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """lut_lookup_int16 on an int64 tensor."""
    t = torch.from_numpy(lut)
    index = 256 + (x >> 7)
    base = t[index]
    out = base + (((t[index + 1] - base) * (x & 0x7F) + 64) >> 7)
    return (out + 32768) % 65536 - 32768


@torch.no_grad()
def softmax16(codes: torch.Tensor, s_in: float, dtype: str) -> torch.Tensor:
    """SOFTMAX int16 -> int16 (input zero point 0, output grid 1/32768, 0) over the last dimension, as
    reference_ops::SoftmaxInt16 computes it (both runtimes; LiteRT's builtin kernel runs the reference one): each
    difference to the row's maximum times the fixed-point s_in / (10 / 65535) (MultiplyByQuantizedMultiplier), moved
    to [-32768, 32767] and looked up in the exp table; the sum's reciprocal from the 1/(1 + x) table after
    normalizing the sum by its leading zeros; each exp times it, shifted back and clamped to [0, 32767]. `codes`:
    int16 codes as an int64 (or integer-valued float) tensor; `dtype`: the tables' float type
    (softmax16_tables). Returns the output codes as float."""
    exp_lut, recip_lut = softmax16_tables(dtype)
    codes = codes.to(torch.int64)
    m0, shift = mcu._multiplier(float(_F(s_in)) / (10.0 / 65535.0))
    diff = codes - codes.amax(-1, keepdim=True)
    scaled = mcu.MULTIPLY["double"](diff, m0.expand_as(diff), shift.expand_as(diff))
    exp = _lookup(exp_lut, (scaled + 32767).clamp(-32768, 32767))
    total = exp.sum(-1, keepdim=True)
    headroom = softmax_kernels._clz32(total)  # headroom_plus_one: the sum is positive (the maximum's exp alone is ~32767)
    shifted = ((total << (headroom - 1)) + (1 << 13)) >> 14
    recip = _lookup(recip_lut, (shifted - (1 << 15) - (1 << 16)).clamp(-32768, 32767))
    right = 31 - headroom
    out = (exp * recip + (torch.ones_like(right) << (right - 1))) >> right
    return out.clamp(0, 32767).to(torch.float32)


def softmax16_tflm(codes: torch.Tensor, s_in: float) -> torch.Tensor:
    return softmax16(codes, s_in, "float32")


def softmax16_litert(codes: torch.Tensor, s_in: float) -> torch.Tensor:
    return softmax16(codes, s_in, "float64")


@torch.no_grad()
def matmul16(acc: torch.Tensor, multiplier: float) -> torch.Tensor:
    """BATCH_MATMUL int16 x int16 -> int16 (zero points 0) from its exact int64 accumulator, as
    reference_ops::BatchMatMul<int16_t, int64_t> requantizes it on both runtimes (LiteRT's batch_matmul.cc:
    "optimized_ops not yet implemented for int16_t"; tflite-micro's batch_matmul.cc): MultiplyByQuantizedMultiplier's
    int64 form, the multiplier reduced to 16 bits ((m0 + 2^15) >> 16, 0x7FFF at the top) and one rounding shift by
    15 − shift. Returns the output codes as float."""
    m0, shift = mcu._quantize_multiplier_scalar(float(multiplier))
    reduced = (m0 + (1 << 15)) >> 16 if m0 < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    out = (acc.to(torch.int64) * reduced + (1 << (total - 1))) >> total
    return out.clamp(-32768, 32767).to(torch.float32)
