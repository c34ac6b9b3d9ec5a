"""XNNPACK's int8 arithmetic: what LiteRT computes on a phone, a Linux board or this host (its default CPU delegate).

Torch's fake quantization rounds each op's float result once; XNNPACK's kernels compute in integers and float32 in
their own ways, so a QAT model trained with plain fake quantization drifts from the deployed file by an output step
here and there, and those steps add up through a network. With `rounding="xnnpack"` QAT computes XNNPACK's own
integers for every op that leaves its input's grid (the gradient stays the straight-through one):

* CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (qs8 activations, per-channel qc8w weights): the exact int32
  accumulator, converted to float32, times the float32 scale (s_in · s_w[c]) / s_out, rounded half to even
  ("fp32 requantization"; operators/convolution-nhwc.c init_requantization_scale_qx8_qc8w, the gemm / dwconv
  microkernels' fmagic / lrintf rounding).
* ADD / SUB: both codes times 21-bit integer multipliers (lrintf of s_a / s_out and s_b / s_out scaled by 2^shift,
  shift = 20 − the larger ratio's binary exponent), plus a bias that folds the zero points and 2^(shift − 1), then an
  arithmetic right shift: ties round up (microparams-init.c xnn_init_qs8_add_minmax_scalar_params; SUB is ADD with
  b's scale negated, operators/binary-elementwise-nd.c).
* MUL: the product of the zero-point-free codes, as float32, times the float32 (s_a · s_b) / s_out, half to even
  (qs8-vmul fp32 kernels).
* MEAN: the int32 sum of the raw codes, as float32, times (s_in / s_out) · (1 / n) plus the output zero point less
  n · z_in times that scale, all in float32, half to even (operators/reduce-nd.c, the int32 -> qs8 convert).
* LOGISTIC: a 256-entry table built by XNNPACK's float reference function on the dequantized input code (the
  exponential in double), requantized half to even after adding the zero point (operators/unary-elementwise-nc.c
  init_lut_op_with_config; reference/unary-elementwise.cc SigmoidOp).
* QUANTIZE int8 -> int8: an 8-bit multiplier lrintf(256 · s_in / s_out) and a bias with 0x80, shifted right by 8
  (qs8-vcvt).
* Fused ReLU / ReLU6: the clamp at lrintf(v / s + z) for v = 0 / 6 (xnn_qs8_quantize).
* BATCH_MATMUL of two int8 activations, taken only when the right operand's zero point is 0 (the delegate's
  VisitBatchMatMulNode refuses a nonzero one, as does subgraph/batch-matrix-multiply.c): the qs8 GEMM's exact int32
  accumulator times the float32 s_a · s_b / s_out, half to even (operators/batch-matrix-multiply-nc.c
  xnn_create_batch_matrix_multiply_nc_qs8, fp32 requantization as for FULLY_CONNECTED). With any other zero point
  LiteRT's builtin BATCH_MATMUL runs (gemmlowp's double rounding, quantize/mcu.py matmul_tflm), so in one
  attention the scores can run on XNNPACK and the context on the builtin kernel, or the reverse, as the K and V
  grids fall (measured on ai-edge-litert 2.3: a depth-2 decoder whose second layer's K grid had zero point 0 ran
  that layer's scores in XNNPACK and drifted 4 output steps from QAT computing the builtin kernel).

Ops LiteRT's XNNPACK delegate does not take for int8 run on LiteRT's builtin kernels (measured on ai-edge-litert
2.3: the delegate leaves them out of its partitions): HARD_SWISH, whose builtin kernel computes the reference
fixed-point arithmetic on x86 (quantize/mcu.py hard_swish_table; every code equal on this host; ARM's NEON variant
rounds its shifts half up and was not measured), AVERAGE_POOL_2D (rounded as quantize/ops.py AvgPool does), SOFTMAX and
SELECT_V2 on int8, and FULLY_CONNECTED with a runtime (non-constant) int8 weight (the delegate takes a dynamic filter
in float32 only). Reference: github.com/google/XNNPACK (src/ paths above); the delegate's op coverage,
tflite/delegates/xnnpack/xnnpack_delegate.cc of github.com/google-ai-edge/LiteRT.
"""

from __future__ import annotations

import numpy as np
import torch

from edgedistill.quantize import mcu

F32 = np.float32


def _lrintf(x: float) -> int:
    """C's lrintf in the default rounding mode: nearest, ties to even."""
    return int(np.rint(F32(x)))


def output_range(act: str, s_out: float, zp_out: int) -> tuple[int, int]:
    """The int8 clamp of a fused activation, as XNNPACK quantizes the float bounds (xnn_qs8_quantize)."""
    def q(v: float) -> int:
        return int(np.clip(np.rint(F32(v) / F32(s_out) + F32(zp_out)), -128, 127))
    lo = q(0.0) if act in ("relu", "relu6") else -128
    hi = q(6.0) if act == "relu6" else 127
    return lo, hi


def _round_clamp(y: torch.Tensor, zp: int, lo: int, hi: int) -> torch.Tensor:
    return (torch.round(y) + zp).clamp(lo, hi).to(torch.float32)  # torch.round: half to even, as lrintf


@torch.no_grad()
def requantize(acc: torch.Tensor, s_in: float, s_w: torch.Tensor, s_out: float, zp_out: int, act: str,
               kernel: str = "conv", channel_dim: int = 1) -> torch.Tensor:
    """int8 codes (as float) of a conv / depthwise / fully-connected output from its exact int32 accumulator."""
    scale = (F32(s_in) * s_w.detach().numpy().astype(F32)) / F32(s_out)  # float32, in XNNPACK's order
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    y = acc.to(torch.float32) * torch.from_numpy(scale).view(shape)
    return _round_clamp(y, zp_out, *output_range(act, s_out, zp_out))


@torch.no_grad()
def batch_matmul(acc: torch.Tensor, grid_a: tuple[float, int], grid_b: tuple[float, int],
                 grid_out: tuple[float, int]) -> torch.Tensor:
    """int8 codes (as float) of XNNPACK's qs8 BATCH_MATMUL (right operand's zero point 0) from the exact
    accumulator of the zero-point-free codes (int64 or a float tensor of integers): float32(acc) times the float32
    (s_a · s_b) / s_out, half to even, plus the output zero point, clamped. Raises ValueError for a right operand
    with a nonzero zero point (XNNPACK refuses it; LiteRT's builtin kernel runs it)."""
    (sa, _), (sb, zb), (so, zo) = grid_a, grid_b, grid_out
    if zb != 0:
        raise ValueError(f"XNNPACK's qs8 BATCH_MATMUL takes a right operand with zero point 0, not {zb}")
    scale = F32(F32(sa) * F32(sb)) / F32(so)  # float32, in the subgraph's order
    return _round_clamp(acc.to(torch.float32) * float(scale), zo, -128, 127)


def add_params(s_a: float, s_b: float, s_out: float) -> tuple[int, int, int]:
    """(a multiplier, b multiplier, shift) of XNNPACK's qs8 ADD; a negative scale (SUB's b) negates its multiplier."""
    ra, rb = F32(s_a) / F32(s_out), F32(s_b) / F32(s_out)
    exponent = int(np.frexp(max(abs(ra), abs(rb)))[1]) - 1  # the float's unbiased exponent
    shift = 20 - exponent
    ma, mb = (_lrintf(float(np.ldexp(abs(r), shift))) for r in (ra, rb))
    return (-ma if ra < 0 else ma), (-mb if rb < 0 else mb), shift


@torch.no_grad()
def binary(kind: str, a: torch.Tensor, b: torch.Tensor, grid_a: tuple[float, int], grid_b: tuple[float, int],
           grid_out: tuple[float, int], act: str = "none") -> torch.Tensor:
    """int8 codes (as float) of ADD / SUB / MUL from the input codes `a`, `b` (int64 tensors, broadcasting)."""
    (sa, za), (sb, zb), (so, zo) = grid_a, grid_b, grid_out
    lo, hi = output_range(act, so, zo)
    if kind == "mul":
        scale = F32(F32(sa) * F32(sb)) / F32(so)
        return _round_clamp(((a - za) * (b - zb)).to(torch.float32) * float(scale), zo, lo, hi)
    ma, mb, shift = add_params(sa, -sb if kind == "sub" else sb, so)
    bias = (1 << (shift - 1)) - ma * za - mb * zb
    acc = bias + a * ma + b * mb
    return ((acc >> shift) + zo).clamp(lo, hi).to(torch.float32)


@torch.no_grad()
def mean(shifted_sum: torch.Tensor, count: int, grid_in: tuple[float, int],
         grid_out: tuple[float, int]) -> torch.Tensor:
    """MEAN's int8 codes (as float) from the sums of (code − zero point) over `count` elements (int64 tensor)."""
    (si, zi), (so, zo) = grid_in, grid_out
    inv = F32(F32(si) / F32(so)) * (F32(1.0) / F32(count))
    zp = F32(zo) - F32(F32(count) * F32(zi)) * inv
    raw_sum = (shifted_sum + count * zi).to(torch.float32)  # XNNPACK sums the raw codes
    y = raw_sum * float(inv) + float(zp)
    return torch.round(y).clamp(-128, 127).to(torch.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64))
    y = (e / (1.0 + e)).astype(F32)
    return np.where(x > 100, F32(1), np.where(x < -100, F32(0), y))


def table(kind: str, grid_in: tuple[float, int], grid_out: tuple[float, int]) -> np.ndarray:
    """The op's int8 output code for each input code -128..127 (index code + 128): XNNPACK's lookup table for
    LOGISTIC, LiteRT's builtin (reference) kernel for HARD_SWISH, which the delegate does not take."""
    (si, zi), (so, zo) = grid_in, grid_out
    if kind == "hardswish":
        return mcu.hard_swish_table(si, zi, so, zo)
    if kind == "rsqrt":  # not delegated either: LiteRT's builtin integer kernel
        from edgedistill.quantize.softmax_kernels import rsqrt_table

        return rsqrt_table(si, zi, so, zo)
    x = (np.arange(-128, 128, dtype=F32) - F32(zi)) * F32(si)
    y = _sigmoid(x).astype(F32)
    code = np.rint(y * (F32(1.0) / F32(so)) + F32(zo))
    return np.clip(np.nan_to_num(code), -128, 127).astype(np.int64)


@torch.no_grad()
def quantize(y: torch.Tensor, s: float, zp: int) -> torch.Tensor:
    """QUANTIZE float32 -> int8 (a float input head's output): y times the float32 1 / s, half to even, plus the
    zero point, clamped (f32-qs8-vcvt fmagic kernels); codes as float."""
    return _round_clamp(y.float() * float(F32(1.0) / F32(s)), zp, -128, 127)


@torch.no_grad()
def requantize_codes(code: torch.Tensor, grid_in: tuple[float, int], grid_out: tuple[float, int]) -> torch.Tensor:
    """int8 codes moved from one grid to another as XNNPACK's QUANTIZE (qs8 -> qs8 convert) does; int64."""
    (si, zi), (so, zo) = grid_in, grid_out
    m = _lrintf(256.0 * float(F32(si) / F32(so)))
    bias = (zo << 8) - m * zi + 0x80
    return ((bias + code * m) >> 8).clamp(-128, 127)
