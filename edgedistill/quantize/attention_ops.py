"""The int8 ops of transformer students, each written as the TFLite kernels the converter makes of it.

* `Constant`: a parameter used as an operand (learned positions), an int8 constant tensor on its own per-tensor grid.
* `Attention` (students.layers.MaskedSelfAttention): q, k, v projections (FULLY_CONNECTED on N×L×D, 1/√d folded
  into q), heads split by RESHAPE + TRANSPOSE, scores Q·Kᵀ by BATCH_MATMUL of two int8 activations requantized to
  their own grid (K and V on grids with zero point 0, which XNNPACK's delegate needs to take BATCH_MATMUL; a
  nonzero one leaves it to LiteRT's built-in kernel), the padding mask by SELECT_V2 (a padded key's score becomes
  the grid's lowest code; the condition is NOT_EQUAL on the int32 token ids), a causal decoder's constant mask by
  an int8 ADD of a constant that computes the same codes in the TFLite file (`causal_mask_constant`; the ONNX
  file's Where of a constant condition), SOFTMAX onto the int8 spec's fixed output grid (scale 1/256, zero point
  −128), the context by a second BATCH_MATMUL, heads merged, the output projection.
* `LayerNorm`: the form the converter writes for int8, one kernel per step, each on its own grid: MEAN → SUB
  (x − μ) → MUL (the square) → MEAN (the variance) → RSQRT → MUL → MUL (γ, a constant) → ADD (β, a constant); ε is
  below the variance's int8 step and is left out (Ba et al. 2016, "Layer normalization").

Every intermediate tensor gets its own quantizer (calibrated, then tracked in QAT like every activation), so the
QAT forward fake-quantizes exactly the tensors the file holds in int8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.quantize.fake import ActQuant, _qd
from edgedistill.quantize.ops import Activation, Binary, GraphOp, Mean, QLayer
from edgedistill.students.layers import mask_scores

PROBS_GRID = (1.0 / 256.0, -128)  # TFLite int8 spec: SOFTMAX output scale 1/256, zero point -128
# A causal decoder's masked score is its grid's lowest value, so a masked key keeps probability exp(low − max) in
# int8; unless that rounds to SOFTMAX's code -128 (below half a step, 1/512) the key's value leaks into the
# context and a logit at position t depends on later tokens. The scores grid therefore reaches this far below the
# lowest score seen: every row's maximum lies at least 8 above the masked value, exp(-8) = 3.4e-4 < 1/512 with
# margin for the kernels' exp approximations. (Measured before: logits at t moved by up to 1.3 when later tokens
# changed.) The cost is resolution: a score range of width w is spread over w + 8.
CAUSAL_HEADROOM = 8.0
# In QAT the scores move; the grid re-derives from a batch whose lowest score comes within this of its floor
# (exp(-7) = 9.1e-4, under SOFTMAX's half step 1/512 with margin for the kernels' exp approximations): a
# high learning rate moved a row's only visible score to the floor in 3 steps, and the row attended to the future.
CAUSAL_MIN_ROOM = 7.0


def _mode(q: ActQuant) -> str:
    return q.mode


class Constant(GraphOp):
    """A model parameter read as a tensor (e.g. learned position embeddings), on its own int8 grid."""

    kind = "constant"

    def __init__(self, name: str, value: torch.Tensor) -> None:
        super().__init__(name)
        self.value = nn.Parameter(value.detach().clone().float())
        self.out_q = ActQuant()

    def forward(self) -> torch.Tensor:
        if self.out_q.mode == "export":  # on its grid: the converter's rounding gives back QAT's codes
            return self.out_q(self.export_value)
        return self.out_q(self.value)

    @torch.no_grad()
    def prepare_export(self) -> None:
        self.register_buffer("export_value", self.on_grid(), persistent=False)

    @torch.no_grad()
    def codes(self) -> torch.Tensor:
        """The int8 codes (as float) QAT computes the value with (the fake quantizer's rounding, ties to even)."""
        s, z = float(self.out_q.scale), int(self.out_q.zero_point)
        return torch.round(self.on_grid() / s) + z

    @torch.no_grad()
    def on_grid(self) -> torch.Tensor:
        s, z = float(self.out_q.scale), int(self.out_q.zero_point)
        w = self.out_q.width
        return torch.fake_quantize_per_tensor_affine(self.value.detach(), s, z, w.qmin, w.qmax)


class MatMul(GraphOp):
    """a @ b of two int8 activations, each on its own grid, requantized to its own. The converter writes
    BATCH_MATMUL, or FULLY_CONNECTED with a runtime weight operand when the batch is one matrix (`batched` False:
    attention with one head); the runtimes requantize the two differently."""

    kind = "matmul"

    def __init__(self, name: str, batched: bool = True) -> None:
        super().__init__(name)
        self.batched = batched
        self.out_q = ActQuant()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = self.out_q(a @ b)
        if self.out_q.mode == "quant" and self.exact:
            out = out + (self._int_output(a, b) - out).detach()
        return out

    @torch.no_grad()
    def _int_output(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        (sa, za), (sb, zb) = ((float(q.scale), int(q.zero_point)) for q in self.in_qs)
        so, zo = float(self.out_q.scale), int(self.out_q.zero_point)
        # the codes less their zero points, |c| <= 255: sums of K products stay below 2^24, so the product is exact
        # in float32 while K <= 258 (in float64 otherwise). Each operand lies on its own grid (within a few float32
        # ulps of c · s: it is an int8 op's output), so v / s rounds to c in float32 as in float64.
        exact32 = a.shape[-1] * 255 * 255 < 2 ** 24
        ca, cb = (torch.round_((v.detach() if exact32 else v.detach().double()) / s) for v, s in ((a, sa), (b, sb)))
        acc = (ca @ cb).double()
        code = self.arithmetic.matmul(acc, (sa, za), (sb, zb), (so, zo), self.batched)
        return (code - zo) * so


class Softmax(GraphOp):
    """SOFTMAX over the last dimension onto the int8 spec's fixed grid (1/256, -128)."""

    kind = "softmax"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.out_q = ActQuant(fixed=PROBS_GRID)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.out_q(x.softmax(-1))
        if self.out_q.mode == "quant" and self.exact:
            q = self.in_qs[0]
            codes = torch.round(x.detach() / float(q.scale)) + int(q.zero_point)
            exact = (self.arithmetic.softmax(codes.clamp(-128, 127), float(q.scale)) - PROBS_GRID[1]) * PROBS_GRID[0]
            out = out + (exact - out).detach()
        return out


class Attention(GraphOp):
    """MaskedSelfAttention as int8 kernels (module doc). Inputs: the token states (N×L×D) and the token ids."""

    kind = "attention"

    def __init__(self, name: str, m) -> None:
        super().__init__(name)
        self.heads, self.head_dim = m.heads, m.head_dim
        future = getattr(m, "future", None)  # a causal decoder's constant mask (students.layers)
        self.register_buffer("future", None if future is None else future.clone(), persistent=False)
        scale = m.head_dim ** -0.5
        self.q = QLayer(f"{name}.q", m.q.weight * scale, m.q.bias * scale, "linear")
        self.k = QLayer(f"{name}.k", m.k.weight, m.k.bias, "linear")
        self.v = QLayer(f"{name}.v", m.v.weight, m.v.bias, "linear")
        # K and V are each BATCH_MATMUL's second operand (Q·Kᵀ, probabilities·V): zero point 0 lets XNNPACK run both
        # matmuls (quantize/ranges.symmetric_int8)
        self.k.out_q, self.v.out_q = ActQuant(symmetric=True), ActQuant(symmetric=True)
        self.out = QLayer(f"{name}.out", m.out.weight, m.out.bias, "linear")
        batched = m.heads > 1  # one head: the converter writes FULLY_CONNECTED
        self.scores, self.context = MatMul(f"{name}.scores", batched), MatMul(f"{name}.context", batched)
        if self.future is not None:  # see CAUSAL_HEADROOM
            self.scores.out_q.headroom_below = CAUSAL_HEADROOM
            self.scores.out_q.min_room_below = CAUSAL_MIN_ROOM
        self.softmax = Softmax(f"{name}.softmax")
        self.scores.set_inputs([self.q.out_q, self.k.out_q])
        self.softmax.set_inputs([self.scores.out_q])
        self.context.set_inputs([self.softmax.out_q, self.v.out_q])
        self.out.set_inputs([self.context.out_q])

    @property
    def out_q(self) -> ActQuant:
        return self.out.out_q

    def set_inputs(self, qs: list) -> None:
        super().set_inputs(qs)
        for layer in (self.q, self.k, self.v):
            layer.set_inputs([qs[0]])

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        n, length, _ = t.shape
        return t.reshape(n, length, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        scores = self.masked(self.scores(q, k.transpose(-2, -1)), ids)
        ctx = self.context(self.softmax(scores), v)
        return self.out(ctx.transpose(1, 2).reshape(n, length, dim))

    def masked(self, scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The scores with each masked key's set to the scores grid's lowest code (SELECT_V2; the lowest float in
        float, students.layers.mask_scores)."""
        pad = (ids == 0)[:, None, None, :] if self.future is None else self.future[None, None]
        grid = self.scores.out_q
        if grid.mode in ("float", "observe"):  # calibration observed the unmasked scores above
            return mask_scores(scores, pad)  # as the float student: an all-padded row stays finite
        if grid.mode == "export" and self._mask_by_add:
            return grid(scores + self.export_mask)  # int8 ADD of a constant: the same codes (causal_mask_constant)
        # the grid's lowest code, as the file's SELECT_V2 writes it
        s, z = grid.export_params if grid.mode == "export" else (float(grid.scale), int(grid.zero_point))
        scores = torch.where(pad, torch.full((), (grid.width.qmin - z) * s, dtype=scores.dtype), scores)
        return grid(scores) if grid.mode == "export" else scores  # the SELECT_V2's output on the scores' grid

    @property
    def _mask_by_add(self) -> bool:
        """A constant (causal) mask on int8 scores (int16 scores keep SELECT_V2: quantize/int16_attention.py)."""
        return self.future is not None and self.scores.out_q.bits == 8

    @torch.no_grad()
    def prepare_export(self) -> None:
        """A causal decoder's mask as the Q/DQ'd constant the TFLite file adds to the scores (causal_mask_constant)."""
        if self._mask_by_add:
            mask, (ms, mz) = causal_mask_constant(self.future, float(self.scores.out_q.scale))
            q = _qd.quantize_per_tensor(mask[None, None], ms, mz, -128, 127, torch.int8)
            self.register_buffer("export_mask", _qd.dequantize_per_tensor(q, ms, mz, -128, 127, torch.int8),
                                 persistent=False)


def causal_mask_constant(future: torch.Tensor, scale: float) -> tuple[torch.Tensor, tuple[float, int]]:
    """The L×L float constant (0 where a key is visible, −256 · `scale` where the bool `future` masks it) and its
    int8 grid (256 · scale / 255, zero point 127: codes 127 and −128). Its int8 ADD to scores on a grid of scale
    `scale`, the output on that same grid, computes the codes that SELECT_V2 of the grid's lowest code does: a
    visible score's code unchanged (the mask's code is its zero point, so only the score's rescaling by 1 is rounded,
    exactly, in TFLite's ADD with its 20 bits of headroom and in XNNPACK's), a masked one at least 255 codes lower,
    saturated to −128. ADD runs inside LiteRT's XNNPACK delegate and SELECT_V2 does not: it ran on LiteRT's
    built-in kernel between the delegate's partitions (8 % of the int8 window step). Every arithmetic's codes are
    checked against the select in tests/export/test_attention_kernels.py."""
    big = 256.0 * scale
    return torch.where(future, torch.tensor(-big), torch.tensor(0.0)), (big / 255.0, 127)


def layernorm_affine(name: str, m: nn.LayerNorm) -> tuple[float, Constant, Constant]:
    """(eps, γ, β) of an nn.LayerNorm over its last dimension, γ / β as int8 constants (ones / zeros when the module
    has none). Raises ValueError for a LayerNorm over more than one dimension."""
    if len(m.normalized_shape) != 1:
        raise ValueError("LayerNorm over one (the last) dimension only")
    width = m.normalized_shape[0]
    gamma = Constant(f"{name}.weight", m.weight if m.weight is not None else torch.ones(width))
    beta = Constant(f"{name}.bias", m.bias if m.bias is not None else torch.zeros(width))
    return float(m.eps), gamma, beta


class LayerNorm(GraphOp):
    """nn.LayerNorm over the last dimension as the converter's int8 kernels (module doc): each step an int8 op of
    quantize/ops.py with its runtime arithmetic."""

    kind = "layernorm"

    def __init__(self, name: str, m: nn.LayerNorm) -> None:
        super().__init__(name)
        self.eps, self.gamma, self.beta = layernorm_affine(name, m)
        self.mu, self.var = Mean(f"{name}.mean", (-1,), True), Mean(f"{name}.variance", (-1,), True)
        self.diff, self.square = Binary(f"{name}.centre", "sub"), Binary(f"{name}.square", "mul")
        self.rsqrt = Activation(f"{name}.rsqrt", "rsqrt")
        self.scaled, self.times_gamma = Binary(f"{name}.normalized", "mul"), Binary(f"{name}.gamma", "mul")
        self.plus_beta = Binary(f"{name}.beta", "add")
        self.diff.set_inputs([None, self.mu.out_q])
        self.square.set_inputs([self.diff.out_q, self.diff.out_q])
        self.var.set_inputs([self.square.out_q])
        self.rsqrt.set_inputs([self.var.out_q])
        self.scaled.set_inputs([self.diff.out_q, self.rsqrt.out_q])
        self.times_gamma.set_inputs([self.scaled.out_q, self.gamma.out_q])
        self.plus_beta.set_inputs([self.times_gamma.out_q, self.beta.out_q])

    @property
    def out_q(self) -> ActQuant:
        return self.plus_beta.out_q

    def set_inputs(self, qs: list) -> None:
        super().set_inputs(qs)
        self.mu.set_inputs([qs[0]])
        self.diff.set_inputs([qs[0], self.mu.out_q])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.out_q.mode == "float":
            return F.layer_norm(x, x.shape[-1:], self.gamma.value, self.beta.value, self.eps)
        d = self.diff(x, self.mu(x))
        var = self.var(self.square(d, d))
        if self.out_q.mode == "observe":  # calibration sees the float LayerNorm's 1/√(σ² + ε) ...
            r = self.rsqrt.out_q(torch.rsqrt(var + self.eps))
        elif self.out_q.mode == "export":  # ... the int8 kernels compute RSQRT of the int8 variance
            r = self.rsqrt(var)
        else:  # (a zero variance: code 127 either way; the clamp keeps its gradient finite)
            r = self.rsqrt(var.clamp_min(1e-12))
        return self.plus_beta(self.times_gamma(self.scaled(d, r), self.gamma()), self.beta())
