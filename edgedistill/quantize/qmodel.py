"""The int8-simulating student: the float student rewritten as a chain of quantized stages.

Conversion folds each BatchNorm into the conv/linear before it (y = γ(Wx + b − μ)/σ + β  →  W' = γW/σ,
b' = γ(b − μ)/σ + β; Jacob et al. 2018 sec. 3.2), turns the input normalisation into a depthwise 1×1 conv (so the
deployed file takes raw samples and a device app only quantizes them), and places an activation quantizer after
every op whose output leaves the int8 grid. Max-pooling and flattening keep their input's grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.errors import EdgeDistillError
from edgedistill.quantize.fake import ActQuant, fake_quant_bias, fake_quant_weight, qdq_weight_export, weight_scale
from edgedistill.students.layers import Normalize


class UnsupportedOpError(EdgeDistillError):
    """A layer the int8 pipeline (and so the TFLite / TFLite Micro kernels) cannot express."""


class QLayer(nn.Module):
    """Conv or linear with folded BN, optional fused ReLU, fake-quantized weights and bias."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, relu: bool, kind: str, stride=1, padding=0,
                 groups=1, name: str = ""):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())
        self.relu, self.kind, self.stride, self.padding, self.groups, self.name = relu, kind, stride, padding, groups, name
        self._in_q: list[ActQuant] = []  # set by the converter; a list so the previous stage's quantizer
        self.out_q = ActQuant()          # is not registered here a second time

    @property
    def in_q(self) -> ActQuant:
        return self._in_q[0]

    def set_input_quantizer(self, q: ActQuant) -> None:
        self._in_q[:] = [q]

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
        elif self.kind == "conv1d":
            y = F.conv1d(x, w, b, self.stride, self.padding, 1, self.groups)
        else:
            y = F.conv2d(x, w, b, self.stride, self.padding, 1, self.groups)
        return self.out_q(F.relu(y) if self.relu else y)


    @torch.no_grad()
    def prepare_export(self) -> None:
        """Freeze weights, weight scales and the int32-grid bias as constants for tracing converters."""
        w = self.weight.detach().clone()
        consts = {"export_w": w, "export_w_scale": weight_scale(w),
                  "export_w_zero": torch.zeros(w.shape[0], dtype=torch.int64),
                  "export_b": fake_quant_bias(self.bias.detach(), self.in_q.scale, w)}
        for name, value in consts.items():  # buffers, so torch.export lifts them as graph inputs
            self.register_buffer(name, value, persistent=False)


class SameGrid(nn.Module):
    """Max-pool / flatten: the output stays on the input's int8 grid (no requantization)."""

    def __init__(self, op: nn.Module, in_q: ActQuant):
        super().__init__()
        self.op = op
        self.in_q = [in_q]  # a list, so the shared quantizer is not registered twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.op(x)
        return self.in_q[0](y) if self.in_q[0].mode == "export" else y  # explicit Q/DQ for converters


class GlobalAvg(nn.Module):
    def __init__(self, dims: int):
        super().__init__()
        self.dims = dims
        self.out_q = ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_q(x.mean(dim=tuple(range(2, 2 + self.dims)), keepdim=True))


class QuantStudent(nn.Module):
    """input quantizer → stages. `set_mode("observe"|"quant"|"export"|"float")` switches every quantizer."""

    def __init__(self, stages: list[nn.Module], input_q: ActQuant):
        super().__init__()
        self.input_q = input_q
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.input_q(x))

    def quantizers(self) -> list[ActQuant]:
        return [m for m in self.modules() if isinstance(m, ActQuant)]

    def set_mode(self, mode: str) -> None:
        for q in self.quantizers():
            q.mode = mode
        if mode == "export":
            for m in self.modules():
                if hasattr(m, "prepare_export"):
                    m.prepare_export()

    @property
    def output_q(self) -> ActQuant:
        return [q for q in self.quantizers()][-1]


@dataclass
class _Leaf:
    name: str
    module: nn.Module


def _leaves(model: nn.Module) -> list[_Leaf]:
    out = []
    for name, m in model.named_modules():
        if len(list(m.children())) == 0 or isinstance(m, Normalize):
            if not any(name.startswith(o.name + ".") for o in out if isinstance(o.module, Normalize)):
                out.append(_Leaf(name, m))
    return out


def _fold_bn(w: torch.Tensor, b: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm):
    b = torch.zeros(w.shape[0]) if b is None else b
    inv = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return w * inv.view(shape), (b - bn.running_mean) * inv + bn.bias


SUPPORTED = "Conv1d/Conv2d (+BatchNorm, +ReLU), Linear (+ReLU), MaxPool, global average pool, Flatten, Normalize"


@torch.no_grad()
def to_quant_student(model: nn.Module) -> QuantStudent:
    """Rewrite a float student (a Sequential of the registered families) as a QuantStudent. The input model is
    not modified. Raises UnsupportedOpError naming the first layer it cannot express in int8."""
    leaves = _leaves(model)
    input_q = ActQuant()
    current = input_q
    stages: list[nn.Module] = []
    pending_norm: Normalize | None = None  # per-feature normalisation, folded into the next Linear
    i = 0
    while i < len(leaves):
        leaf, m = leaves[i], leaves[i].module
        nxt = lambda k: leaves[i + k].module if i + k < len(leaves) else None  # noqa: E731
        if isinstance(m, Normalize):
            c = m.mean.shape[1]
            dims = m.mean.dim() - 2
            if dims == 0:
                if not isinstance(nxt(1), nn.Linear):
                    raise UnsupportedOpError(f"Layer {leaf.name!r}: per-feature normalisation must be followed by a "
                                             "Linear layer to be folded into it for int8 export.")
                pending_norm = m  # exact: W' = W·diag(1/σ), b' = b − W·(μ/σ)
                i += 1
                continue
            w = m.inv_std.reshape(c, 1, *([1] * dims))
            b = (-m.mean * m.inv_std).reshape(c)
            layer = QLayer(w, b, False, "conv2d" if dims == 2 else "conv1d", groups=c, name=leaf.name)
            i += 1
        elif isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            if isinstance(m, (nn.Conv2d, nn.Conv1d)) and (m.dilation not in ((1, 1), (1,)) or m.padding_mode != "zeros"):
                raise UnsupportedOpError(f"Layer {leaf.name!r} ({type(m).__name__}): dilation / non-zero padding mode "
                                         "is not supported in int8 export.")
            w, b = m.weight.detach(), None if m.bias is None else m.bias.detach()
            if pending_norm is not None:
                inv, mean = pending_norm.inv_std.reshape(-1), pending_norm.mean.reshape(-1)
                b = (torch.zeros(w.shape[0]) if b is None else b) - w @ (mean * inv)
                w = w * inv.reshape(1, -1)
                pending_norm = None
            step = 1
            if isinstance(nxt(1), nn.modules.batchnorm._BatchNorm):
                w, b = _fold_bn(w, b, nxt(1))
                step += 1
            b = torch.zeros(w.shape[0]) if b is None else b
            relu = isinstance(nxt(step), nn.ReLU)
            step += int(relu)
            kind = {nn.Conv2d: "conv2d", nn.Conv1d: "conv1d", nn.Linear: "linear"}[type(m)]
            extra = {} if kind == "linear" else dict(stride=m.stride, padding=m.padding, groups=m.groups)
            layer = QLayer(w, b, relu, kind, name=leaf.name, **extra)
            i += step
        elif isinstance(m, (nn.MaxPool2d, nn.MaxPool1d, nn.Flatten)):
            stages.append(SameGrid(m, current))
            i += 1
            continue
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool1d)) and m.output_size in (1, (1, 1)):
            g = GlobalAvg(2 if isinstance(m, nn.AdaptiveAvgPool2d) else 1)
            stages.append(g)
            current = g.out_q
            i += 1
            continue
        elif isinstance(m, nn.Dropout) or isinstance(m, nn.Identity):
            i += 1
            continue
        else:
            raise UnsupportedOpError(
                f"Layer {leaf.name!r} is a {type(m).__name__}, which the int8 pipeline cannot express "
                f"(TFLite int8 / TFLite Micro kernels). Supported: {SUPPORTED}."
            )
        layer.set_input_quantizer(current)
        stages.append(layer)
        current = layer.out_q
    return QuantStudent(stages, input_q)
