"""Small building blocks shared by student families and built-in teachers."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std with per-channel constants, stored as buffers so they travel with the weights.

    Models take data exactly as the reader produced it; the train-split statistics live inside the model, so an
    exported file needs no separate preprocessing step on the device.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], ndim: int):
        super().__init__()
        shape = (1, -1) + (1,) * (ndim - 2)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).reshape(shape))
        self.register_buffer("inv_std", 1.0 / torch.tensor(list(std), dtype=torch.float32).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class TokenEmbedding(nn.Embedding):
    """An embedding whose output is channels-first, N×D×L, ready for 1-D convolutions (the int8 graph writes it as
    a GATHER_ND whose N×L×D output is already the converter's NHWC layout: no TRANSPOSE)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids.long()).transpose(1, 2)


class GlobalMaxPool(nn.Module):
    """Max over every position: N×C×L -> N×C×1 (N×C×H×W -> N×C×1×1), as one full-size max-pooling window, which
    every converter and runtime has (litert-torch has no adaptive max pooling)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool1d(x, x.shape[-1]) if x.dim() == 3 else F.max_pool2d(x, tuple(x.shape[2:]))


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dims: int = 2) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return nn.Sequential(
        conv(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False), bn(cout), nn.ReLU(inplace=True)
    )


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
