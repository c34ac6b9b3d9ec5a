"""The integer arithmetic of the int16 kernels whose results differ between runtimes by more than a 16-bit step.

* RSQRT int16 (zero points 0). TFLite Micro (tflite-micro's elementwise.cc, RsqrtEvalQuantized with T = int16):
  for v = code > 0, 1/√v as the fixed-point multiplier of GetInvSqrtQuantizedMultiplierExp applied to 1 with 20
  bits of headroom, then times the output multiplier 1 / (√s_in · s_out) (MultiplyByQuantizedMultiplier, gemmlowp
  rounding), clamped; v = 0 gives 32767. LiteRT (tflite/kernels/elementwise.cc; XNNPACK takes no int16, so its
  builtin kernel runs under every LiteRT configuration) computes a 513-entry table instead (LUTPopulate<int16_t>,
  float32: 512 samples of 1/√x over the input grid's range with a midpoint bias correction, the last entry for the
  slope) and interpolates it linearly (LUTLookup: index 256 + (code >> 7), offset code & 127); x <= 0 reads
  32767 · s_out. Measured before this module: LiteRT's answers lie up to 12 int16 steps from 1/√x, TFLite Micro's
  within one.

Each function returns the output code for every input code −32768 … 32767 (index code + 32768) as an int64 array,
computed once per pair of grids.

References: tflite/kernels/internal/common.h (LUTPopulateInt16, LUTLookup) of google-ai-edge/LiteRT;
tensorflow/lite/micro/kernels/elementwise.cc of tensorflow/tflite-micro.
"""

from __future__ import annotations

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


def _round(x: np.ndarray) -> np.ndarray:
    """TfLiteRound (std::round): half away from zero, in float32."""
    return (np.sign(x) * np.floor(np.abs(x) + _F(0.5))).astype(_F)


def _rsqrt_f32(x: np.ndarray, s_out: np.float32) -> np.ndarray:
    x = np.asarray(x, _F)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (_F(1.0) / np.sqrt(np.where(x > 0, x, _F(1.0)))).astype(_F)
    return np.where(x > 0, y, _F(32767) * s_out).astype(_F)


def lut_int16(fn, s_in: float, s_out: float) -> np.ndarray:
    """LiteRT's LUTPopulateInt16<float> for zero points 0: the 513 table entries (int64)."""
    s_in, s_out = _F(s_in), _F(s_out)
    in_min, in_max = s_in * _F(-32768), s_in * _F(32767)
    out_min, out_max = s_out * _F(-32768), s_out * _F(32767)
    step = (in_max - in_min) / _F(512)
    half = step / _F(2)
    inv = _F(65536) / (out_max - out_min)
    i = np.arange(512, dtype=_F)
    at = (in_min + i * step).astype(_F)
    val = fn(at, s_out)
    mid = fn((at + half).astype(_F), s_out)
    nxt = fn((in_min + (i + _F(1)) * step).astype(_F), s_out)
    sample = _round(val * inv)
    interp = _round((nxt * inv + sample) / _F(2))
    bias = _round((interp - _round(mid * inv)) / _F(2))
    lut = np.clip(sample - bias, -32768, 32767)
    last = np.clip(_round(fn(np.array([in_max], _F), s_out) * inv), -32768, 32767)
    return np.concatenate([lut, last]).astype(np.int64)


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
