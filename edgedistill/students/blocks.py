"""Graph building blocks of the reference families: a residual block (ResNet), a depthwise-separable block
(MobileNetV1), an inverted residual with squeeze-excite (MobileNetV3). 2-D or 1-D (`dims`).

Only ops of the int8 set are used: conv / depthwise conv (+ BatchNorm, folded at conversion), ADD, MUL, MEAN,
ReLU / ReLU6, HARD_SWISH and hardsigmoid.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def _conv(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv1d


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dims: int = 2,
            act: nn.Module | None = None) -> nn.Sequential:
    """Conv (no bias: BN follows) -> BN -> optional activation, named `conv`, `bn`, `act`."""
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    layers = OrderedDict(conv=_conv(dims)(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
                         bn=bn(cout))
    if act is not None:
        layers["act"] = act
    return nn.Sequential(layers)


class BasicBlock(nn.Module):
    """ResNet v1 basic block (He et al. 2016), as in MLPerf Tiny's ResNet-8: relu(bn(conv(relu(bn(conv x)))) +
    shortcut(x)); the shortcut is the identity, or a 1×1 convolution (with bias, no BN) when the stride or the
    channel count changes. Children: `conv1`, `conv2`, `shortcut`, `relu` (the ReLU after the add)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dims: int = 2, k: int = 3):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, k, stride, dims=dims, act=nn.ReLU())
        self.conv2 = conv_bn(cout, cout, k, dims=dims)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else _conv(dims)(cin, cout, 1, stride=stride))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block (Howard et al. 2017): 3×3 depthwise conv-BN-ReLU, then 1×1 pointwise conv-BN-ReLU.
    Children: `dw`, `pw`."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dims: int = 2):
        super().__init__()
        self.dw = conv_bn(cin, cin, 3, stride, groups=cin, dims=dims, act=nn.ReLU())
        self.pw = conv_bn(cin, cout, 1, dims=dims, act=nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class SqueezeExcite(nn.Module):
    """x · hardsigmoid(W2 relu(W1 mean(x))) (Hu et al. 2018, with MobileNetV3's hardsigmoid gate): MEAN, two
    1×1 convs, ReLU, hardsigmoid, MUL. Children: `pool`, `reduce`, `relu`, `expand`, `gate`."""

    def __init__(self, channels: int, squeeze: int, dims: int = 2):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1)
        self.reduce = _conv(dims)(channels, squeeze, 1)
        self.relu = nn.ReLU()
        self.expand = _conv(dims)(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


def make_divisible(v: float, divisor: int = 4) -> int:
    """Round a channel count to a multiple of `divisor`, never below 90 % of `v` (MobileNet's rule)."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


class InvertedResidual(nn.Module):
    """MobileNetV3 block (Howard et al. 2019): 1×1 expand conv-BN-act, k×k depthwise conv-BN-act, optional
    squeeze-excite, 1×1 project conv-BN (linear); the input is added back when stride 1 and cin == cout.
    `act` is "relu" or "hardswish". Children: `expand` (absent when the ratio is 1), `dw`, `se`, `project`."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int = 1, k: int = 3, se: bool = True,
                 act: str = "hardswish", dims: int = 2):
        super().__init__()
        hidden = cin * expand
        make_act = nn.Hardswish if act == "hardswish" else nn.ReLU
        self.expand = conv_bn(cin, hidden, 1, dims=dims, act=make_act()) if expand != 1 else nn.Identity()
        self.dw = conv_bn(hidden, hidden, k, stride, groups=hidden, dims=dims, act=make_act())
        self.se = SqueezeExcite(hidden, make_divisible(hidden / 4, 8), dims) if se else nn.Identity()
        self.project = conv_bn(hidden, cout, 1, dims=dims)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y
