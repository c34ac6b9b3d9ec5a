"""Which integer arithmetic QAT computes: one entry per runtime family that runs an int8 file.

The int8 ops (quantize/ops.py) fake-quantize their float result ("float": one rounding, what onnxruntime's QDQ
reference computes) and, with an integer arithmetic selected, replace the forward value by the codes that runtime's
kernels compute, with a straight-through gradient. Each entry gives the same five pieces of arithmetic:

* `conv(acc, s_in, s_w, s_out, zp_out, act, kernel)`: a conv / depthwise / fully-connected output from its exact
  int32 accumulator (int64 tensor, bias included);
* `binary(kind, a, b, grid_a, grid_b, grid_out, act)`: ADD / SUB / MUL from the input codes;
* `mean(shifted_sum, count, grid_in, grid_out)`: MEAN from the sums of (code − zero point);
* `table(kind, grid_in, grid_out)`: HARD_SWISH / LOGISTIC / GELU as the 256 output codes of the input codes;
* `requantize(code, grid_in, grid_out)`: QUANTIZE int8 -> int8 (a concatenation input on another grid);
* `quantize(y, scale, zero_point)`: QUANTIZE float32 -> int8 (a float input head's output);
* `matmul(acc, grid_a, grid_b, grid_out, batched)`: a matmul of two activations (attention) from its exact
  accumulator of zero-point-free codes, as BATCH_MATMUL or (`batched` False) FULLY_CONNECTED with a runtime weight
  operand; which kernel runs may depend on the grids (XNNPACK takes BATCH_MATMUL only with b's zero point 0);
* `softmax(codes, s_in)`: SOFTMAX over the last dimension onto the fixed 1/256 grid;
* `rsqrt16(s_in, s_out)`: RSQRT int16 (16×8 mode, zero points 0) as the output code of each of the 65,536 input codes
  (quantize/int16_kernels.py);
* `binary16(kind, a, b, grid_a, grid_b, grid_out)`: SUB / MUL int16 from the input codes (XNNPACK takes no int16:
  LiteRT's builtin kernels run them under every LiteRT arithmetic);
* `softmax16(codes, s_in)`: SOFTMAX int16 -> int16 onto (1/32768, 0): the reference kernel on every runtime, its
  exp and 1/(1 + x) tables built in float32 (TFLite Micro) or float64 (LiteRT) (quantize/int16_kernels.py);
* `matmul16(acc, multiplier)`: BATCH_MATMUL int16 x int16 -> int16 from its exact int64 accumulator (the same
  reference kernel everywhere);
* `matmul_multiplier(s_a, s_b, s_out)`: how the runtime forms a matmul's real multiplier (mcu.matmul_multiplier:
  the scales' product in float32 on LiteRT, the whole quotient in double on TFLite Micro).

Codes come back as float tensors (int64 for `requantize`, a NumPy int64 array for `table`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from edgedistill.quantize import int16_kernels, lut, mcu, softmax_kernels, xnnpack
from edgedistill.registry import Registry


@dataclass(frozen=True)
class Arithmetic:
    conv: Callable
    binary: Callable
    mean: Callable
    table: Callable
    requantize: Callable
    quantize: Callable
    matmul: Callable
    softmax: Callable
    rsqrt16: Callable
    binary16: Callable
    softmax16: Callable
    matmul16: Callable
    matmul_multiplier: Callable = mcu.matmul_multiplier  # (s_a, s_b, s_out) -> the runtime's real multiplier


ARITHMETIC: Registry[Arithmetic] = Registry("integer arithmetic")


# GELU: LiteRT's builtin lookup table under every LiteRT arithmetic (XNNPACK does not take int8 GELU); TFLite Micro
# has no GELU kernel, so "tflm" never meets one in a file it runs (students/activations.py substitutes)
LUT_TABLES = {"gelu": functools.partial(lut.gelu_table, approximate=False),
              "gelu_tanh": functools.partial(lut.gelu_table, approximate=True)}


def _lut(table: Callable) -> Callable:
    def pick(kind: str, grid_in: tuple[float, int], grid_out: tuple[float, int]):
        if kind in LUT_TABLES:
            return LUT_TABLES[kind](*grid_in, *grid_out)
        return table(kind, grid_in, grid_out)
    return pick


def _tflm_table(kind: str, grid_in: tuple[float, int], grid_out: tuple[float, int]):
    if kind == "sigmoid":
        return mcu.logistic_table(*grid_in)
    if kind == "rsqrt":
        return softmax_kernels.rsqrt_table(*grid_in, *grid_out)
    return mcu.hard_swish_table(*grid_in, *grid_out)


def _tflm_mean(total, count: int, grid_in: tuple[float, int], grid_out: tuple[float, int]):
    return mcu.mean_tflm(total, count, grid_in[0], *grid_out)


def _fixed_point_matmul(rounding: str = "double", fully_connected: str | None = None, product: str = "float32"):
    """A matmul requantized by MultiplyByQuantizedMultiplier with s_a · s_b / s_out (`product`: how the runtime
    forms it, mcu.matmul_multiplier): `rounding` for BATCH_MATMUL (LiteRT's builtin BATCH_MATMUL int8 is its
    reference kernel in every build: gemmlowp's double rounding), and `fully_connected` (default: the same) for
    FULLY_CONNECTED with a runtime weight operand (LiteRT's reference kernel rounds once, the optimized one through
    ruy)."""
    def matmul(acc, grid_a: tuple[float, int], grid_b: tuple[float, int], grid_out: tuple[float, int],
               batched: bool = True):
        multiplier = mcu.matmul_multiplier(grid_a[0], grid_b[0], grid_out[0], product)
        return mcu.matmul_tflm(acc, multiplier, grid_out[1], batched,
                               rounding if batched else (fully_connected or rounding))
    return matmul


def _xnnpack_matmul(acc, grid_a: tuple[float, int], grid_b: tuple[float, int], grid_out: tuple[float, int],
                    batched: bool = True):
    """LiteRT with XNNPACK: BATCH_MATMUL whose right operand has zero point 0 is delegated (fp32 requantization,
    quantize/xnnpack.py batch_matmul); any other BATCH_MATMUL, and every FULLY_CONNECTED with a runtime weight, runs
    on LiteRT's builtin kernels (double rounding; ruy)."""
    if batched and grid_b[1] == 0:
        return xnnpack.batch_matmul(acc, grid_a, grid_b, grid_out)
    return _LITERT_BUILTIN_MATMUL(acc, grid_a, grid_b, grid_out, batched)


_LITERT_BUILTIN_MATMUL = _fixed_point_matmul("double", "ruy")


# LiteRT's int16 SUB / MUL (kernels/sub.cc, mul.cc): multipliers formed in double (SUB) and float32 (MUL)
LITERT_BINARY16 = functools.partial(mcu.binary_tflm, bits=16, mul_float32=True, sub_float32=False)

# int8 SUB forms its multipliers in double on both LiteRT (kernels/sub.cc) and the TFLite Micro interpreter measured
# here (quantize/mcu.py binary_tflm); the int16 kernels keep what their own measurement found
ARITHMETIC.register("tflm", "TFLite Micro (and LiteRT's reference kernels): fixed-point multipliers, gemmlowp "
                            "rounding (quantize/mcu.py)")(Arithmetic(
    conv=mcu.requantize_tflm,
    binary=functools.partial(mcu.binary_tflm, sub_float32=False),
    mean=_tflm_mean,
    table=_lut(_tflm_table),
    requantize=mcu.requantize_codes,
    quantize=mcu.quantize,
    matmul=_fixed_point_matmul(product="double"),
    softmax=softmax_kernels.softmax_reference,
    rsqrt16=int16_kernels.rsqrt16_tflm,
    binary16=functools.partial(mcu.binary_tflm, bits=16),
    softmax16=int16_kernels.softmax16_tflm,
    matmul16=int16_kernels.matmul16,
    matmul_multiplier=functools.partial(mcu.matmul_multiplier, product="double")))

ARITHMETIC.register("reference", "LiteRT's reference kernels (BUILTIN_REF): TFLite Micro's arithmetic, except that "
                                 "FULLY_CONNECTED rounds once at the float64 multiplier, MUL forms its multiplier "
                                 "in float32, and a matmul's multiplier takes its scales' product in float32 "
                                 "(mcu.matmul_multiplier)")(Arithmetic(
    conv=functools.partial(mcu.requantize_tflm, rounding=mcu.REFERENCE_ROUNDING),
    binary=functools.partial(mcu.binary_tflm, mul_float32=True, sub_float32=False),
    mean=_tflm_mean,
    table=_lut(_tflm_table),
    requantize=mcu.requantize_codes,
    quantize=mcu.quantize,
    matmul=_fixed_point_matmul("double", "single"),
    softmax=softmax_kernels.softmax_reference,
    rsqrt16=int16_kernels.rsqrt16_litert,
    binary16=LITERT_BINARY16,
    softmax16=int16_kernels.softmax16_litert,
    matmul16=int16_kernels.matmul16))

ARITHMETIC.register("xnnpack", "LiteRT's XNNPACK delegate: float32 requantization, integer ADD, lookup tables, "
                               "and LiteRT's builtin kernels for the ops it leaves (quantize/xnnpack.py)")(Arithmetic(
    conv=xnnpack.requantize,
    binary=xnnpack.binary,
    mean=xnnpack.mean,
    table=_lut(xnnpack.table),
    requantize=xnnpack.requantize_codes,
    quantize=xnnpack.quantize,
    matmul=_xnnpack_matmul,
    softmax=softmax_kernels.softmax_litert,
    rsqrt16=int16_kernels.rsqrt16_litert,  # XNNPACK takes no int16: LiteRT's builtin kernels run
    binary16=LITERT_BINARY16,
    softmax16=int16_kernels.softmax16_litert,
    matmul16=int16_kernels.matmul16))

ROUNDINGS = ("float", *ARITHMETIC.names())  # "float": torch's fake quantization only (onnxruntime's QDQ reference)
