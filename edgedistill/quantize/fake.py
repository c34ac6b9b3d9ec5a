"""Fake quantization that simulates exactly what int8 TFLite and onnxruntime QDQ kernels compute.

* Activations: per-tensor asymmetric int8 in [-128, 127]; `ActQuant` observes during calibration and freezes a
  range; during QAT training it then tracks the range (an exponential moving average of each batch's min and max,
  Jacob et al. 2018 sec. 3.1; TensorFlow's QAT does the same), so ranges follow the weights as they move instead of
  clipping a layer whose outputs grew. The calibrated clipping is kept in proportion: range = calibrated range ×
  (tracked batch extremes / the mean batch extremes seen at calibration), so `percentile` and `mse` keep clipping
  their tails and a range that did not move stays where calibration put it.
* Weights: per-output-channel symmetric int8 in [-127, 127], zero point 0 (the TFLite int8 spec); the scale
  tracks the weights, s_c = max|w_c| / 127, so no weight is ever clipped.
* Bias: int32 with scale s_in · s_w[c] (the TFLite / ONNX convention), simulated by rounding to that grid.

Rounding is half-to-even, as in torch.fake_quantize_* and ONNX QuantizeLinear. Gradients pass straight through
(Bengio et al. 2013; Jacob et al. 2018) except where a value is clipped.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgedistill.errors import EdgeDistillError
from edgedistill.quantize.ranges import QMAX, QMIN, RANGE_METHODS, SYMMETRIC_INT8, WIDTHS

import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed

_qd = torch.ops.quantized_decomposed
_MAX_SAMPLES = 200_000
INT32_MAX = 2**31 - 1
EMA_DECAY = 0.99     # per training batch: a horizon of ~100 steps
RESCALE_AT = 0.01    # re-derive scale / zero point when the tracked range moved by more than 1 % of its width


class ActQuant(nn.Module):
    """Per-tensor int8 fake quantizer. Modes: "float" (identity), "observe" (record values, identity),
    "quant" (fake-quantize with the frozen scale / zero point), "export" (explicit Q/DQ ops for converters).
    `bits=16`: an int16 activation of TFLite's 16×8 mode instead (symmetric, zero point 0, codes −32768 … 32767,
    scale max|x| / 32767: quantize/ranges.py WIDTHS). `symmetric=True`: int8 with zero point 0 (ranges.symmetric_int8),
    for a tensor a fast kernel takes only without a zero point (the second operand of BATCH_MATMUL on XNNPACK)."""

    def __init__(self, fixed: tuple[float, int] | None = None, bits: int = 8, symmetric: bool = False) -> None:
        super().__init__()
        if symmetric and bits != 8:
            raise ValueError("symmetric=True is an int8 grid; int16 grids are symmetric already")
        self.width = SYMMETRIC_INT8 if symmetric else WIDTHS[bits]
        self.register_buffer("scale", torch.tensor(1.0 if fixed is None else float(fixed[0])))
        self.register_buffer("zero_point", torch.tensor(0 if fixed is None else int(fixed[1]), dtype=torch.int64))
        # [calibrated lo, hi, mean batch extremes at calibration lo, hi, tracked batch extremes lo, hi, the range the
        # scale was derived from lo, hi]
        self.register_buffer("ranges", torch.zeros(8, dtype=torch.float64))
        self.track = False  # QAT training: follow the observed range (see the module doc)
        self.fixed = fixed  # (scale, zero point) the int8 spec prescribes (LOGISTIC: 1/256, -128); never calibrated
        # how far (in the tensor's units) the grid's lowest value lies below the lowest value seen: room for a value
        # that must sit far below every real one (a causal mask's scores, quantize/attention_ops.py)
        self.headroom_below = 0.0
        # in QAT, the least room the grid must keep below the lowest value of a batch (0: no such need); a batch that
        # comes closer to the grid's floor re-derives the grid from it at once (see _follow)
        self.min_room_below = 0.0
        self.name = ""  # the graph value it quantizes, for error messages
        self.mode = "float"
        self._lo, self._hi = np.inf, -np.inf
        self._batch_extremes: list[tuple[float, float]] = []
        self._samples: list[np.ndarray] = []
        self._seen = 0
        self._rng = np.random.default_rng(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "observe":
            self._observe(x.detach())
            return x
        if self.mode == "quant":
            if self.track and self.training and self.fixed is None:
                self._follow(x.detach())
            return _FakeQuant.apply(x, float(self.scale), int(self.zero_point), False, self.width.qmin,
                                    self.width.qmax)
        if self.mode == "export":
            s, z = self.export_params  # Python constants: torch.export cannot trace float(tensor)
            w = self.width
            q = _qd.quantize_per_tensor(x, s, z, w.qmin, w.qmax, w.dtype)
            return _qd.dequantize_per_tensor(q, s, z, w.qmin, w.qmax, w.dtype)
        return x

    @property
    def bits(self) -> int:
        return self.width.bits

    def after_relu(self, x: torch.Tensor) -> torch.Tensor:
        """self(relu(x)). In "quant" mode with the grid starting at 0 (zero point -128, as a ReLU output's range
        does) the clamp at code -128 is the ReLU, so both are one pass with the same values and gradient."""
        if self.mode == "quant" and self.width.bits == 8 and int(self.zero_point) == QMIN:
            if self.track and self.training and self.fixed is None:
                self._follow(torch.relu(x.detach()))
            return _FakeQuant.apply(x, float(self.scale), QMIN, True)
        return self(torch.relu(x))

    @torch.no_grad()
    def _follow(self, x: torch.Tensor) -> None:
        """Update the tracked extremes with this batch; re-derive scale / zero point when they moved enough."""
        if x.numel() == 0:
            return
        # one pass for both extremes; a NaN anywhere makes both NaN and an infinity is an extreme, so finite
        # extremes mean finite values throughout (an isfinite(x).all() pass cost more than the rest of this step)
        lo, hi = (float(v) for v in torch.aminmax(x))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return
        # read once and written back once: Python floats are IEEE doubles, so each formula computes what it did on
        # the float64 buffer's elements, without a tensor op per element
        r = self.ranges.tolist()
        r[4] = EMA_DECAY * r[4] + (1 - EMA_DECAY) * lo
        r[5] = EMA_DECAY * r[5] + (1 - EMA_DECAY) * hi
        if r[3] - r[2] > 0:
            # the calibrated range, stretched as the tracked extremes moved from those seen at calibration
            new_lo = r[0] * (r[4] / r[2]) if r[2] < 0 else r[0]
            new_hi = r[1] * (r[5] / r[3]) if r[3] > 0 else r[1]
            # a grid that must keep room below every value (a causal mask's scores: min_room_below) follows a
            # batch that eats into that room at once: the slow average let QAT at a high learning rate move a row's
            # only visible score onto the grid's lowest code, where it tied with the masked keys and the row
            # attended to the future
            sinking = self.min_room_below > 0 and lo < r[6] - self.headroom_below + self.min_room_below
            if self.min_room_below > 0:  # never re-derived (up) to less room than that below this batch
                new_lo = min(new_lo, lo + self.headroom_below - self.min_room_below)
            if sinking or max(abs(new_lo - r[6]), abs(new_hi - r[7])) > RESCALE_AT * (r[7] - r[6]):
                s, z = self.width.grid(new_lo - self.headroom_below, new_hi)
                self.scale.fill_(s)
                self.zero_point.fill_(z)
                r[6], r[7] = new_lo, new_hi
        self.ranges.copy_(torch.tensor(r, dtype=torch.float64))

    def prepare_export(self) -> None:
        """Cache scale / zero point as Python numbers (torch.export cannot trace float(tensor))."""
        self.export_params = (float(self.scale), int(self.zero_point))

    def _observe(self, x: torch.Tensor) -> None:
        flat = x.flatten().numpy()
        self._lo, self._hi = min(self._lo, float(flat.min())), max(self._hi, float(flat.max()))
        self._batch_extremes.append((float(flat.min()), float(flat.max())))
        if self._seen < _MAX_SAMPLES:
            k = min(len(flat), 4096)
            self._samples.append(self._rng.choice(flat, k, replace=False) if k < len(flat) else flat.copy())
            self._seen += k

    def freeze(self, method: str = "minmax") -> None:
        """Fix scale / zero point from what was observed, then switch to fake quantization. A fixed quantizer
        keeps the spec's values. Raises QuantRangeError when the observed values are not finite."""
        if self.fixed is not None:
            s, z = self.fixed
            self.scale.fill_(s)
            self.zero_point.fill_(z)
            self._samples, self._seen, self.mode = [], 0, "quant"
            return
        if not self._samples:
            raise RuntimeError("ActQuant.freeze() before any calibration data was observed")
        if not (np.isfinite(self._lo) and np.isfinite(self._hi)):
            raise QuantRangeError(f"The activation {self.name or 'of a layer'} took non-finite values (inf / NaN) "
                                  "during calibration, so it has no int8 range; check the model and its inputs.")
        values = np.concatenate(self._samples)
        lo, hi = RANGE_METHODS.get(method)(values, self._lo, self._hi)
        s, z = self.width.grid(lo - self.headroom_below, hi)
        self.scale.fill_(s)
        self.zero_point.fill_(z)
        blo, bhi = np.mean(self._batch_extremes, axis=0)
        self.ranges.copy_(torch.tensor([lo, hi, blo, bhi, blo, bhi, lo, hi], dtype=torch.float64))
        self._batch_extremes = []
        self._samples, self._seen = [], 0
        self.mode = "quant"

    def extra_repr(self) -> str:
        bits = "" if self.width.bits == 8 else f", int{self.width.bits}"
        bits += ", symmetric" if self.width is SYMMETRIC_INT8 else ""
        return f"mode={self.mode}, scale={float(self.scale):.6g}, zero_point={int(self.zero_point)}{bits}"


class _FakeQuant(torch.autograd.Function):
    """torch.fake_quantize_per_tensor_affine's arithmetic (q = nearbyint(x · (1/s)) + z, clamped to int8, returned
    as (q − z) · s in float32; gradient passed where q was not clamped), in fewer passes over the tensor than the
    built-in kernel on CPU: the QAT step is mostly these passes on a small student. Four float passes forward and
    one backward: the gradient mask is hardtanh's backward (one fused pass, grad where lo < t < hi strictly) on the
    saved unclamped codes, no boolean mask (a float == float comparison and a bool × float product each cost two to
    three float passes on CPU). `relu`: the ReLU's gradient (x > 0) times the quantizer's, from the saved x · (1/s):
    with the grid starting at 0 (lo = 0) and hi = 255 (odd), 0 < x · (1/s) < 255.5 is exactly x > 0 with
    nearbyint(x · (1/s)) <= 255 (255.5 rounds half to even, to 256). One difference from the built-in: a NaN input
    passes its gradient (the built-in's mask blocks it); its output is NaN either way, and a NaN loss stops training
    (distill/trainer.py)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float, zero_point: int, relu: bool = False,
                qmin: int = QMIN, qmax: int = QMAX) -> torch.Tensor:
        inv = float(np.float32(1.0) / np.float32(scale))  # float32 1/s, as the built-in kernel computes it
        lo, hi = qmin - zero_point, qmax - zero_point
        u = x * inv
        if not x.requires_grad:
            return u.round_().clamp_(lo, hi).mul_(scale)  # round: half to even, like nearbyint
        if relu:
            if lo != 0 or hi % 2 == 0:
                raise ValueError(f"the fused ReLU needs the grid [0, odd]; got [{lo}, {hi}]")
            ctx.save_for_backward(u)
            ctx.bounds = (0.0, hi + 0.5)
            return torch.round(u).clamp_(lo, hi).mul_(scale)
        q = u.round_()
        # integer codes: lo - 1 < q < hi + 1 exactly where lo <= q <= hi, i.e. where clamping left q as it was
        ctx.save_for_backward(q)
        ctx.bounds = (lo - 1.0, hi + 1.0)
        return q.clamp(lo, hi).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (saved,) = ctx.saved_tensors
        return torch.ops.aten.hardtanh_backward(grad, saved, *ctx.bounds), None, None, None, None, None


class QuantRangeError(EdgeDistillError):
    """An activation has no usable int8 range (non-finite values during calibration)."""


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric scale max|w_c| / 127 (float32). Never zero nor non-finite: an all-zero row
    (any scale represents it exactly) gets 1 / 127, so its int32 bias grid s_in / 127 stays coarse enough."""
    amax = w.detach().abs().flatten(1).amax(1).float()
    return torch.where(amax > 0, amax / 127.0, torch.full_like(amax, 1.0 / 127.0)).clamp_min(1e-30)


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    scale = weight_scale(w)
    zero = torch.zeros(w.shape[0], dtype=torch.int32)
    # Range -128..127 only for the op's signature; |w / s| <= 127 by construction, so -128 never occurs.
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, QMIN, QMAX)


def qdq_weight_export(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """Explicit per-channel Q/DQ ops (int8, -127..127) that converters fold into int8 weights."""
    q = _qd.quantize_per_channel(w, scale, zero, 0, -127, 127, torch.int8)
    return _qd.dequantize_per_channel(q, scale, zero, 0, -127, 127, torch.int8)


def fake_quant_bias(b: torch.Tensor, input_scale: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Round the bias to the int32 grid s_in · s_w[c] (saturating at the int32 range, as the exporters do);
    straight-through gradient."""
    step = float(input_scale) * weight_scale(w)
    return b + (torch.clamp(torch.round(b / step), -INT32_MAX, INT32_MAX) * step - b).detach()


def int32_bias(b: torch.Tensor, input_scale: float, w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The int32 bias and its per-channel scale s_in · s_w[c] an exporter writes (same rounding as QAT)."""
    scale = (np.float32(input_scale) * weight_scale(w).numpy()).astype(np.float32)
    q = np.clip(np.round(b.detach().numpy().astype(np.float64) / scale), -INT32_MAX, INT32_MAX).astype(np.int32)
    return q, scale


def int8_weights(w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The exact int8 weights and per-channel scales an exporter writes."""
    scale = weight_scale(w)
    shape = (-1,) + (1,) * (w.dim() - 1)
    # QAT's codes (fake_quant_weight: nearbyint(w · (1/s))), which w / s can round otherwise at a half step
    q = torch.clamp(torch.round(fake_quant_weight(w.detach()) / scale.view(shape)), -127, 127).to(torch.int8)
    return q.numpy(), scale.numpy()
