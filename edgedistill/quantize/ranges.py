"""Calibration: choose an activation's [lo, hi] range from observed values, then int8 scale and zero point.

Methods register by name (`--calibration minmax|percentile|mse`):

* minmax:     [min x, max x] over the calibration set (Jacob et al. 2018, "Quantization and Training of Neural
              Networks for Efficient Integer-Arithmetic-Only Inference", CVPR).
* percentile: clip at the 0.01st / 99.99th percentiles (McKinstry et al. 2019; Wu et al. 2020, "Integer
              Quantization for Deep Learning Inference", arXiv:2004.09602, sec. 4.1).
* mse:        the clipping range that minimises the mean squared quantization error of the observed values
              (Banner et al. 2019, "Post-training 4-bit quantization"; Wu et al. 2020 sec. 4.1), searched on a grid
              of shrink factors of the min/max range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from edgedistill.registry import Registry

QMIN, QMAX = -128, 127
RANGE_METHODS: Registry = Registry("calibration method")


def scale_zero_point(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 parameters for a range that always contains 0 (so 0 is exactly representable):
    scale = (hi - lo) / 255, zero_point = round(-128 - lo / scale), clamped to [-128, 127].
    The scale is never zero or non-finite: a range narrower than 1e-8 (a tensor that was 0 everywhere, e.g. a dead
    channel) becomes [lo, lo + 1], whose grid still holds 0 exactly; a non-finite bound raises ValueError."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"no int8 range for non-finite bounds [{lo}, {hi}]")
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1.0
    scale = float(np.float32((hi - lo) / (QMAX - QMIN)))
    zp = int(np.clip(np.round(QMIN - lo / scale), QMIN, QMAX))
    return scale, zp


def symmetric_int16(lo: float, hi: float) -> tuple[float, int]:
    """TFLite 16×8 mode's activation grid: symmetric, zero point 0, scale = max(|lo|, |hi|) / 32767 (float32; at
    least 1e-8 / 32767, and ValueError for a non-finite bound as for int8)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"no int16 range for non-finite bounds [{lo}, {hi}]")
    amax = max(abs(float(lo)), abs(float(hi)), 1e-8)
    return float(np.float32(amax / 32767.0)), 0


def symmetric_int8(lo: float, hi: float) -> tuple[float, int]:
    """An int8 activation grid with zero point 0, scale = max(|lo|, |hi|) / 127 (float32; at least 1e-8 / 127, and
    ValueError for a non-finite bound as for `scale_zero_point`). For the second operand of an int8 BATCH_MATMUL:
    XNNPACK's TFLite delegate takes that operand only with zero point 0 (a nonzero one leaves the op to LiteRT's
    built-in kernel, measured 10x slower: docs/lm.md). Codes stay in [-128, 127], as the kernel writing the tensor
    clamps them."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"no int8 range for non-finite bounds [{lo}, {hi}]")
    amax = max(abs(float(lo)), abs(float(hi)), 1e-8)
    return float(np.float32(amax / 127.0)), 0


@dataclass(frozen=True)
class Width:
    """An activation width: its code range, torch dtype (of the Q/DQ ops an exporter writes) and grid rule."""

    bits: int
    qmin: int
    qmax: int
    dtype: torch.dtype
    grid: Callable[[float, float], tuple[float, int]]


# int8: TFLite's int8 spec (asymmetric); int16: its 16×8 mode (activations int16 with zero point 0, weights int8)
WIDTHS = {8: Width(8, QMIN, QMAX, torch.int8, scale_zero_point),
          16: Width(16, -32768, 32767, torch.int16, symmetric_int16)}
SYMMETRIC_INT8 = Width(8, QMIN, QMAX, torch.int8, symmetric_int8)  # int8 with zero point 0 (symmetric_int8)


def quantize_dequantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return (np.clip(np.round(x / scale) + zp, QMIN, QMAX) - zp) * scale


@RANGE_METHODS.register("minmax", "the observed minimum and maximum")
def minmax(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    return lo, hi


@RANGE_METHODS.register("percentile", "clip at the 0.01% / 99.99% percentiles of the observed values")
def percentile(values: np.ndarray, lo: float, hi: float, pct: float = 99.99) -> tuple[float, float]:
    return float(np.percentile(values, 100 - pct)), float(np.percentile(values, pct))


@RANGE_METHODS.register("mse", "the clipping range with the least quantization MSE on observed values")
def mse(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    best, best_err = (lo, hi), np.inf
    for f in np.linspace(0.3, 1.0, 36):
        cand_lo, cand_hi = lo * f, hi * f
        s, z = scale_zero_point(cand_lo, cand_hi)
        err = float(np.mean((quantize_dequantize(values, s, z) - values) ** 2))
        if err < best_err:
            best, best_err = (cand_lo, cand_hi), err
    return best
