"""Int8 ops that LiteRT computes as a 256-entry lookup table of a float function: GELU.

LiteRT's int8 GELU (tflite/kernels/activations.cc GeluPrepare / GeluEval) fills a table once per tensor pair with
`LUTPopulate` (tflite/kernels/internal/common.h, detail::LUTPopulateInt8) and then only looks codes up:

    for each input code q in -128..127:
        x = s_in · (q − z_in)                         float32
        y = f(x)                                      float32 (below)
        code = clamp(int(TfLiteRound(y · (1 / s_out)) + z_out), -128, 127)

with TfLiteRound = std::round (ties away from zero) and 1 / s_out computed once in float32. `f` is the op's
`approximate` option (tflite/kernels/internal/reference/gelu.h):

    GeluTransform(x)            = 0.5f · x · erfcf(x · (float)(−1/√2))                    (exact: erf written via
                                                                                             erfc for large −x)
    GeluTransformApproximate(x) = 0.5f · x · (1 + tanhf(√(2/π) · (x + 0.044715f · x · x · x)))   (Hendrycks & Gimpel
                                                                                             2016, the tanh form)

Which kernel runs it: LiteRT's XNNPACK delegate takes GELU for float32 tensors only (xnnpack_delegate.cc checks
CheckTensorFloatType for GELU, as for HARD_SWISH), so an int8 GELU stays on LiteRT's builtin kernel, the same table
under XNNPACK and under the reference resolver (BUILTIN_REF). TFLite Micro registers no GELU kernel
(tflite-micro #3218); a TFLite Micro target gets a substitute activation (students/activations.py). litert-torch
writes `F.gelu(x)` as GELU with approximate=False and `F.gelu(x, approximate="tanh")` as approximate=True, and the
converter folds the Q/DQ pair around it into an int8 GELU (measured with litert-torch 0.10 / ai-edge-litert 2.3).

float32 erfcf / tanhf come from the C math library (ctypes), as the kernel calls them on this host; where it cannot
be loaded they are the float64 functions rounded to float32, which changes a code only where y / s_out lands
within an ulp of a half.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from typing import Callable

import numpy as np

F32 = np.float32
SQRT1_2 = F32(-0.70710678118654752440)        # (float)(-M_SQRT1_2)
SQRT_2_OVER_PI = F32(1.12837916709551257390 * 0.70710678118654752440)  # (float)(M_2_SQRTPI · M_SQRT1_2)
CUBIC = F32(0.044715)


@functools.lru_cache(maxsize=1)
def _libm() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("m")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if lib is not None:
        for fn in (lib.erfcf, lib.tanhf):
            fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return lib


def _float_fn(name: str, fallback: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    def apply(x: np.ndarray) -> np.ndarray:
        lib = _libm()
        fn = getattr(lib, name) if lib is not None else None
        vals = [fn(float(v)) if fn is not None else fallback(float(v)) for v in np.asarray(x, F32).ravel()]
        return np.asarray(vals, np.float64).astype(F32).reshape(np.shape(x))
    return apply


erfcf = _float_fn("erfcf", math.erfc)
tanhf = _float_fn("tanhf", math.tanh)


def gelu_f32(x: np.ndarray, approximate: bool = False) -> np.ndarray:
    """LiteRT's GeluTransform / GeluTransformApproximate on float32 `x` (any shape), float32 out, in the kernel's
    order of float32 operations."""
    x = np.asarray(x, F32)
    half_x = F32(0.5) * x
    if not approximate:
        return (half_x * erfcf(x * SQRT1_2)).astype(F32)
    inner = x + ((CUBIC * x) * x) * x
    return (half_x * (F32(1.0) + tanhf(SQRT_2_OVER_PI * inner))).astype(F32)


def lut_populate(fn: Callable[[np.ndarray], np.ndarray], s_in: float, zp_in: int, s_out: float,
                 zp_out: int) -> np.ndarray:
    """detail::LUTPopulateInt8: the int8 output code (int64) of `fn` for each input code -128..127 (index
    code + 128). `fn` maps a float32 array to float32."""
    codes = np.arange(-128, 128, dtype=np.int64)
    x = F32(s_in) * (codes - zp_in).astype(F32)
    y = (np.asarray(fn(x), F32) * (F32(1.0) / F32(s_out))).astype(np.float64)  # the float32 product, exactly
    rounded = np.sign(y) * np.floor(np.abs(y) + 0.5)  # std::round: ties away from zero
    rounded = np.nan_to_num(rounded, nan=0.0, posinf=2.0 ** 31 - 1, neginf=-(2.0 ** 31))
    return np.clip(rounded.astype(np.float64) + zp_out, -128, 127).astype(np.int64)


def gelu_table(s_in: float, zp_in: int, s_out: float, zp_out: int, approximate: bool = False) -> np.ndarray:
    """LiteRT's int8 GELU table (int64 codes, index input code + 128); `approximate`: the op's tanh form."""
    return lut_populate(functools.partial(gelu_f32, approximate=approximate), s_in, zp_in, s_out, zp_out)
