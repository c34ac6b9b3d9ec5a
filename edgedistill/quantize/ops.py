"""The int8 ops of a quantized graph, each simulating one TFLite int8 kernel (TFLite int8 quantization spec,
https://ai.google.dev/edge/litert/models/quantization_spec) and each knowing the quantizer of its output grid.

* `QLayer`: CONV_2D / DEPTHWISE_CONV_2D / 1-D conv / FULLY_CONNECTED with BN folded, per-channel symmetric int8
  weights, an int32 bias on s_in · s_w and a fused activation (none, ReLU, ReLU6, or hardsigmoid folded into the
  weights: relu6(z + 3) / 6 = clamp(z / 6 + 1/2, 0, 1), the clamp being the saturation of a fixed [0, 1] grid).
* `Binary`: ADD / SUB / MUL. Each input stays on its own grid, the kernel rescales them and requantizes to the
  output's own quantizer (optionally with a fused ReLU / ReLU6).
* `Concat`: CONCATENATION; inputs on their own grids, the output on its own (the converter inserts a requantizing
  QUANTIZE op for an input whose grid differs, which computes the same rounding as the fake quantizer).
* `Mean`: MEAN / global average pooling, requantized to its own quantizer.
* `Activation`: HARD_SWISH and GELU (own quantizer; GELU exact or its tanh form, "gelu_tanh", as LiteRT's table:
  quantize/lut.py), LOGISTIC (the spec's fixed output 1/256, zero point -128).
* `SameGrid`: MAX_POOL, PAD, RESHAPE / flatten, RELU, RELU6 and AVERAGE_POOL keep their input's grid (the spec
  requires AVERAGE_POOL_2D's output to share its input's scale); ops that can leave the grid (averaging, the ReLU6
  bound) round back to it.

Every op is a module whose forward takes the graph values it reads; its `out_q` is the quantizer of what it writes.
In "export" mode each op emits explicit quantize / dequantize ops with those parameters, which the LiteRT converter
folds into int8 kernels, and which the ONNX writer reproduces as QDQ pairs.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.quantize.arithmetic import ARITHMETIC, Arithmetic
from edgedistill.quantize.fake import ActQuant, fake_quant_bias, fake_quant_weight, qdq_weight_export, weight_scale
from edgedistill.quantize.requant_f64 import abs_max

LOGISTIC_GRID = (1.0 / 256.0, -128)   # TFLite int8 spec: LOGISTIC output scale 1/256, zero point -128
UNIT_GRID = (1.0 / 255.0, -128)       # hardsigmoid's [0, 1]: saturation of this grid is the clamp


def _act(kind: str, y: torch.Tensor) -> torch.Tensor:
    if kind == "relu":
        return F.relu(y)
    if kind == "relu6":
        return F.relu6(y)
    return y


class GraphOp(nn.Module):
    """Base: `in_qs` holds the quantizers of the inputs' grids (a list, so they are not registered twice).
    `rounding`: "float" (fake quantization only) or the name of the runtime arithmetic whose integers the "quant"
    forward computes (quantize/arithmetic.py: "tflm", "xnnpack"). `exact_in_training` False: a training forward
    fake-quantizes only, and evaluation still computes the runtime's integers (QuantStudent.before_train_step)."""

    kind = "op"

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name  # the float model's module path or graph node, for messages and exported names
        self._in_qs: list[ActQuant] = []
        self.lifted = False  # export of a 1-D graph as 2-D with height 1 (see QuantGraph.set_mode)
        self.rounding = "float"
        self.exact_in_training = True

    @property
    def exact(self) -> bool:
        """Whether this forward computes the runtime's integers (else torch's fake quantization alone)."""
        return self.rounding != "float" and (self.exact_in_training or not self.training)

    @property
    def arithmetic(self) -> Arithmetic:
        return ARITHMETIC.get(self.rounding)

    @property
    def in_qs(self) -> list[ActQuant]:
        return self._in_qs

    def set_inputs(self, qs: list[ActQuant]) -> None:
        self._in_qs[:] = list(qs)

    @property
    def grid(self) -> ActQuant:
        """The quantizer of this op's output."""
        return self.out_q


class QLayer(GraphOp):
    """Conv (1-D / 2-D, depthwise via groups) or linear with folded BN and a fused activation. `trainable_bias`
    False: the layer has no bias of its own (a bias-less layer with nothing folded into it, e.g. a decoder's tied
    output projection): the zero bias is a buffer QAT does not train, so the file holds no bias for it (a trained
    one took V int32 values and V per-channel quantization records: 30 KB of a 255 KB decoder, beyond the search's
    size bound)."""

    def __init__(self, name: str, weight: torch.Tensor, bias: torch.Tensor, kind: str, act: str = "none",
                 stride=1, padding=0, groups: int = 1, trainable_bias: bool = True) -> None:
        super().__init__(name)
        self.weight = nn.Parameter(weight.detach().clone().float())
        if trainable_bias:
            self.bias = nn.Parameter(bias.detach().clone().float())
        else:
            self.register_buffer("bias", bias.detach().clone().float())
        self.kind, self.stride, self.padding, self.groups = kind, stride, padding, groups
        self.act = act  # "none" | "relu" | "relu6" | "hardsigmoid" (weights already scaled by 1/6, bias + 1/2)
        self.out_q = ActQuant(fixed=UNIT_GRID if act == "hardsigmoid" else None)

    @property
    def in_q(self) -> ActQuant:
        return self._in_qs[0]

    @property
    def relu(self) -> bool:
        return self.act == "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.out_q.mode
        w, b = self.weight, self.bias
        if mode == "quant":
            w = fake_quant_weight(w)
            b = fake_quant_bias(b, self.in_q.scale, self.weight)
        elif mode == "export":
            w = qdq_weight_export(self.export_w, self.export_w_scale, self.export_w_zero)
            b = self.export_b
        if self.kind == "linear":
            y = F.linear(x, w, b)
        elif self.kind == "conv1d" and self.lifted:
            y = F.conv2d(x, w.unsqueeze(2), b, (1, _one(self.stride)), (0, _one(self.padding)), 1, self.groups)
        elif self.kind == "conv1d":
            y = F.conv1d(x, w, b, self.stride, self.padding, 1, self.groups)
        else:
            y = F.conv2d(x, w, b, self.stride, self.padding, 1, self.groups)
        if self.act == "hardsigmoid" and mode in ("float", "observe"):
            y = torch.clamp(y, 0.0, 1.0)  # in "quant" / "export" the [0, 1] grid's saturation is the clamp
        out = self.out_q.after_relu(y) if self.act == "relu" else self.out_q(_act(self.act, y))
        if mode == "quant" and self.exact:
            out = out + (self._int_output(x, w, b) - out).detach()  # the runtime's integers, straight-through
        return out

    def _conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(x, w, b)
        conv = F.conv1d if self.kind == "conv1d" else F.conv2d
        return conv(x, w, b, self.stride, self.padding, 1, self.groups)

    @torch.no_grad()
    def _int_output(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The exact int32 accumulator, requantized as the runtime does; returned dequantized. The codes' products
        and sums are integers, exact in float32 while every partial sum stays below 2^24 (bounded by the weights'
        absolute row sums times the largest input code), else computed in float64."""
        s_in, s_w = float(self.in_q.scale), weight_scale(self.weight)
        shape = (-1,) + (1,) * (w.dim() - 1)
        xq, wq = torch.round_(x.detach() / s_in), torch.round(w.detach() / s_w.view(shape))
        products = float(wq.abs().flatten(1).sum(1).max()) * abs_max(xq)
        bias = torch.round(b.detach().double() / (s_in * s_w.double()))
        # output channels: the last dimension of a linear's output (N×F, N×L×F), dimension 1 of a conv's
        channel = x.dim() - 1 if self.kind == "linear" else 1
        shape = [1] * x.dim()
        shape[channel] = -1
        # integers throughout (products and sums of integer codes, exact as above), so no rounding is needed; the
        # bias joins the float32 product when every partial sum, bias included, stays below 2^24
        if products + abs_max(bias) < 2.0 ** 24:
            acc = self._conv(xq, wq, bias.float()).double()
        elif products < 2.0 ** 24:
            acc = self._conv(xq, wq, None).double().add_(bias.view(shape))
        else:
            acc = self._conv(xq.double(), wq.double(), None).add_(bias.view(shape))
        s_out, zp = float(self.out_q.scale), int(self.out_q.zero_point)
        kernel = "linear" if self.kind == "linear" else "depthwise" if self.groups > 1 else "conv"
        code = self.arithmetic.conv(acc, s_in, s_w, s_out, zp, self.act, kernel, channel)
        return (code - zp) * s_out

    def read_flattened(self, flatten: "SameGrid") -> None:
        """This Linear reads a flattened map: in export, take its columns in the H, W, C order the flatten writes."""
        self._flatten = [flatten]
        flatten.channels_last = True

    @torch.no_grad()
    def prepare_export(self) -> None:
        """Freeze weights, weight scales and the int32-grid bias as constants for tracing converters."""
        w = self.weight.detach().clone()
        src = getattr(self, "_flatten", [None])[0]
        if src is not None and len(src.in_shape) >= 2:  # columns C, *S -> *S, C (a pure permutation)
            c, spatial = src.in_shape[0], src.in_shape[1:]
            w = w.view(w.shape[0], c, *spatial).permute(0, *range(2, 2 + len(spatial)), 1).reshape(w.shape[0], -1)
        # the weights on their grid, QAT's codes times the scale: the converter's own rounding (ties away from zero
        # in double) then gives back exactly the codes QAT computed with, a weight within an ulp of a half step too
        consts = {"export_w": fake_quant_weight(w), "export_w_scale": weight_scale(w),
                  "export_w_zero": torch.zeros(w.shape[0], dtype=torch.int64),
                  "export_b": fake_quant_bias(self.bias.detach(), self.in_q.scale, w)}
        for name, value in consts.items():  # buffers, so torch.export lifts them as graph inputs
            self.register_buffer(name, value, persistent=False)


BINARY: dict[str, Callable] = {"add": torch.add, "sub": torch.sub, "mul": torch.mul}


class Binary(GraphOp):
    """ADD / SUB / MUL of two graph values, each on its own grid; output requantized (fused ReLU / ReLU6)."""

    def __init__(self, name: str, op: str, act: str = "none") -> None:
        super().__init__(name)
        self.kind, self.act = op, act
        self.out_q = ActQuant()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = self.out_q(_act(self.act, BINARY[self.kind](a, b)))
        if self.out_q.mode == "quant" and self.exact:
            out = out + (self._int_output(a, b) - out).detach()
        return out

    @torch.no_grad()
    def _int_output(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The kernel's output code for every pair of input codes, computed once per grid as a 256 × 256 table
        (exact: the same integer arithmetic, on all 65,536 pairs), then looked up; returned dequantized."""
        grids = [(float(q.scale), int(q.zero_point)) for q in (*self.in_qs, self.out_q)]
        key = (self.rounding, self.kind, self.act, *grids)
        (sa, za), (sb, zb), (so, zo) = grids
        if getattr(self, "_table_key", None) != key:
            codes = torch.arange(-128, 128, dtype=torch.int64)
            table = self.arithmetic.binary(self.kind, codes[:, None], codes[None, :], *grids, self.act)
            self._table, self._table_key = ((table - zo) * so).reshape(-1), key  # dequantized once per grid
        # the row (a's code + 128) · 256 plus the column (b's code + 128), formed in float32 (integers < 2^16, exact)
        # and looked up by index_select, the fastest gather on CPU
        ra = torch.round_(a.detach() / sa).clamp_(-128 - za, 127 - za).mul_(256)
        rb = torch.round_(b.detach() / sb).clamp_(-128 - zb, 127 - zb)
        flat = torch.add(ra, rb).add_((za + 128) * 256 + zb + 128)
        return self._table.index_select(0, flat.to(torch.int32).view(-1)).view(flat.shape)


class Concat(GraphOp):
    kind = "concat"

    def __init__(self, name: str, dim: int) -> None:
        super().__init__(name)
        self.dim = dim
        self.out_q = ActQuant()

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        dim = _lift_dims((self.dim,), self.lifted)[0]
        out = self.out_q(torch.cat(xs, dim))
        if self.out_q.mode == "quant" and self.exact:
            out = out + (self._int_output(xs, dim) - out).detach()
        return out

    @torch.no_grad()
    def _int_output(self, xs: tuple[torch.Tensor, ...], dim: int) -> torch.Tensor:
        """An input on another grid than the output's is moved by the runtime's QUANTIZE op."""
        so, zo = float(self.out_q.scale), int(self.out_q.zero_point)
        parts = []
        for x, q in zip(xs, self.in_qs):
            s, z = float(q.scale), int(q.zero_point)
            code = (torch.round(x.detach() / s) + z).to(torch.int64)
            parts.append(code if (s, z) == (so, zo) else self.arithmetic.requantize(code, (s, z), (so, zo)))
        return (torch.cat(parts, dim) - zo).to(torch.float32) * so


class Mean(GraphOp):
    """MEAN over `dims` (global average pooling when they are the spatial ones), requantized."""

    kind = "mean"

    def __init__(self, name: str, dims: tuple[int, ...], keepdim: bool) -> None:
        super().__init__(name)
        self.dims, self.keepdim = tuple(dims), keepdim
        self.out_q = ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = _lift_dims(self.dims, self.lifted)
        if self.lifted and 3 in {d % 4 for d in dims}:  # reducing the length reduces the height-1 row with it
            dims = tuple(sorted({d % 4 for d in dims} | {2}))
        spatial = sorted(d % x.dim() for d in dims) == list(range(2, x.dim()))
        if self.out_q.mode == "export" and not self.keepdim and spatial:
            # A MEAN that drops the spatial dims makes the converter TRANSPOSE the NHWC map back first; keep them,
            # then drop them channels-last (1×1: the same values), which it folds away.
            y = x.mean(dim=dims, keepdim=True)
            return self.out_q(y.permute(0, *range(2, y.dim()), 1).flatten(1))
        out = self.out_q(x.mean(dim=dims, keepdim=self.keepdim))
        if self.out_q.mode == "quant" and self.exact:
            out = out + (self._int_output(x, dims) - out).detach()
        return out

    @torch.no_grad()
    def _int_output(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        """The runtime's MEAN from the integer sum of (code − zero point); returned dequantized."""
        q = self.in_qs[0]
        s_in = float(q.scale)
        total = torch.round(x.detach() / s_in).sum(dim=dims, keepdim=self.keepdim).to(torch.int64)
        count = x[0].numel() // max(total[0].numel(), 1)
        s_out, zp = float(self.out_q.scale), int(self.out_q.zero_point)
        return (self.arithmetic.mean(total, count, (s_in, int(q.zero_point)), (s_out, zp)) - zp) * s_out


ACTIVATIONS: dict[str, tuple[Callable, tuple[float, int] | None]] = {
    "hardswish": (F.hardswish, None),
    "gelu": (F.gelu, None),                                    # GELU, approximate=False
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), None),  # GELU, approximate=True
    "sigmoid": (torch.sigmoid, LOGISTIC_GRID),
    "rsqrt": (torch.rsqrt, None),  # a LayerNorm's 1/σ (quantize/attention_ops.py)
}


class Activation(GraphOp):
    """HARD_SWISH / GELU (calibrated output) or LOGISTIC (the spec's fixed output grid): `kind` is a key of
    ACTIVATIONS. The runtime computes each as a function of the input code (a 256-entry table)."""

    def __init__(self, name: str, kind: str) -> None:
        super().__init__(name)
        self.kind = kind
        self.out_q = ActQuant(fixed=ACTIVATIONS[kind][1])
        self._tables: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.out_q(ACTIVATIONS[self.kind][0](x))
        if self.out_q.mode == "quant" and self.exact:
            out = out + (self._int_output(x) - out).detach()
        return out

    @torch.no_grad()
    def _int_output(self, x: torch.Tensor) -> torch.Tensor:
        """The kernel's output code for each input code (the input is on its producer's grid), dequantized."""
        q_in = self.in_qs[0]
        s_in, zp_in = float(q_in.scale), int(q_in.zero_point)
        s_out, zp_out = float(self.out_q.scale), int(self.out_q.zero_point)
        key = (self.rounding, s_in, zp_in, s_out, zp_out)
        if key not in self._tables:
            table = self.arithmetic.table(self.kind, (s_in, zp_in), (s_out, zp_out))
            self._tables = {key: torch.from_numpy(table).float()}
        code_in = (torch.round(x.detach() / s_in) + zp_in).clamp(-128, 127).long() + 128
        return (self._tables[key][code_in] - zp_out) * s_out


class SameGrid(GraphOp):
    """An op whose output stays on its input's grid. `fn` is a module (MaxPool, AvgPool, Flatten, a Lambda);
    `requant`: the op can leave the grid (averaging, the ReLU6 bound), so "quant" mode rounds back to it."""

    def __init__(self, name: str, kind: str, fn: nn.Module, requant: bool = False) -> None:
        super().__init__(name)
        self.kind, self.fn, self.requant = kind, fn, requant

    channels_last = False  # a flatten feeding a Linear: exported in the file's H, W, C order (see QLayer)
    in_shape: tuple[int, ...] = ()

    @property
    def grid(self) -> ActQuant:
        return self._in_qs[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2 and not self.lifted:
            self.in_shape = tuple(x.shape[1:])  # C, *spatial: for the Linear's column order in export
        if self.channels_last and self._in_qs[0].mode == "export" and x.dim() > 2:
            # The converter keeps maps NHWC; flattening in C, H, W order would need a TRANSPOSE. Flatten in H, W, C
            # order instead (the Linear's columns are permuted to match in QLayer.prepare_export).
            y = x.permute(0, *range(2, x.dim()), 1).flatten(1)
            return self._in_qs[0](y)
        y = self.fn.lifted_call(x) if self.lifted else self.fn(x)
        q = self._in_qs[0]
        if q.mode == "export" or (q.mode == "quant" and self.requant):
            return q(y)  # explicit Q/DQ for converters; rounding back to the grid in QAT
        return y


class AvgPool(SameGrid):
    """AVERAGE_POOL_2D (and its 1-D form): the output on the input's grid, as the int8 spec requires. The kernel
    averages the raw int8 values and rounds half away from zero ((sum ± n/2) / n, TFLite's reference kernel); QAT
    rounds the same way (ties are common: an average of n values lands on k/n), with a straight-through gradient."""

    def __init__(self, name: str, fn: nn.Module) -> None:
        super().__init__(name, "avgpool", fn, requant=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self._in_qs[0]
        if q.mode != "quant":
            return super().forward(x)
        s, z = float(q.scale), int(q.zero_point)
        y = self.fn(x)
        raw = self.fn(torch.round(x.detach() / s) + z)  # the int8 codes' average, k / n exactly
        code = torch.clamp(torch.sign(raw) * torch.floor(raw.abs() + 0.5), -128, 127)
        return y + ((code - z) * s - y).detach()


class Lambda(nn.Module):
    """A parameter-free tensor function with fixed arguments (pad, reshape, relu ...), as a module."""

    def __init__(self, kind: str, fn: Callable, **kwargs) -> None:
        super().__init__()
        self.kind, self._fn, self.kwargs = kind, fn, kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x, **self.kwargs)

    def lifted_call(self, x: torch.Tensor) -> torch.Tensor:
        """The same op on a 1-D map carried as N×C×1×L (1-D pools become 2-D pools of height 1)."""
        if self._fn is global_max_pool:
            return global_max_pool(x)
        if self._fn in LIFT_2D:
            kw = self.kwargs
            return LIFT_2D[self._fn](x, (1, _one(kw["kernel_size"])), (1, _one(kw["stride"])),
                                     (0, _one(kw["padding"])))
        return self._fn(x, **self.kwargs)

    def extra_repr(self) -> str:
        return f"{self.kind}, {self.kwargs}"


LIFT_2D = {F.max_pool1d: F.max_pool2d, F.avg_pool1d: F.avg_pool2d}


def global_max_pool(x: torch.Tensor) -> torch.Tensor:
    """Max over every position (N×C×L or N×C×H×W -> N×C×1[×1]) as one full-size MAX_POOL_2D window (the converter
    has no adaptive max pooling)."""
    return F.max_pool1d(x, x.shape[-1]) if x.dim() == 3 else F.max_pool2d(x, tuple(x.shape[2:]))


def _one(v) -> int:
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def _lift_dims(dims: tuple[int, ...], lifted: bool) -> tuple[int, ...]:
    """A 1-D map's dimensions on its N×C×1×L form (the length moves from 2 to 3; negative ones stay)."""
    return tuple(d + 1 if lifted and d >= 2 else d for d in dims)


def reshape_to(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Reshape keeping the batch dimension: `shape` excludes it."""
    return x.reshape(x.shape[0], *shape)
