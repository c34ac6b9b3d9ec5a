"""A float input head for raw-range inputs: the per-channel standardisation in float32, then QUANTIZE to int8.

An int8 input tensor has one scale. When the channels' ranges differ by orders of magnitude (raw clinical
measurements from 0.01 to 4,000, an accelerometer in g beside a gyroscope in degrees per second), one scale wide
enough for the largest channel leaves the smallest a handful of codes, or none: the student cannot see them, QAT
collapses, and folding 1/σ into the first layer gives weight scales so large that XNNPACK refuses the file
(requantization scale >= 256). The head keeps the file self-contained and its input raw: the model takes float32
samples, computes (x − μ) / σ per channel as a float MUL and ADD, and a QUANTIZE op puts the result on the int8
grid the rest of the graph starts from. LiteRT (XNNPACK and its builtin kernels) and TFLite Micro all run float MUL,
ADD and QUANTIZE; a device app passes the raw floats and nothing else.

`needs_head(mean, std)` decides: the head is used when some non-constant channel would get fewer than
`MIN_CODES` of the 256 codes of the one input scale that covers every channel's μ ± 3σ. A constant channel (σ at
the Normalizer's floor) carries nothing and is mapped to 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MIN_CODES = 16          # codes a channel's ±3σ spread must span on the shared input grid, else the float head
CONSTANT_INV_STD = 0.99e6  # Normalizer floors σ at 1e-6: a channel at the floor was constant in the training data


def channel_codes(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """For each channel, how many of the 256 int8 codes its μ ± 3σ spans when one scale covers every channel's."""
    mean, std = np.asarray(mean, np.float64).ravel(), np.asarray(std, np.float64).ravel()
    lo, hi = float((mean - 3 * std).min()), float((mean + 3 * std).max())
    return 255.0 * 6.0 * std / max(hi - lo, 1e-30)


def needs_head(mean, inv_std) -> bool:
    """True when one int8 input scale cannot carry every non-constant channel (see the module doc)."""
    inv = np.asarray(inv_std, np.float64).ravel()
    live = inv < CONSTANT_INV_STD
    if live.sum() < 2:
        return False
    codes = channel_codes(np.asarray(mean, np.float64).ravel()[live], 1.0 / inv[live])
    return bool(codes.min() < MIN_CODES)


class InputHead(nn.Module):
    """y = x · a + b per channel (a = 1/σ, b = −μ/σ; a constant channel gets a = b = 0), in float32 in every mode;
    the graph's input quantizer then puts y on the int8 grid. Buffers are shaped for broadcasting over N×C×...
    (images, signals) or N×F (feature vectors)."""

    def __init__(self, mean: torch.Tensor, inv_std: torch.Tensor) -> None:
        super().__init__()
        inv = inv_std.detach().clone().float()
        inv[inv >= CONSTANT_INV_STD] = 0.0
        self.register_buffer("a", inv)
        self.register_buffer("b", -mean.detach().float() * inv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.a + self.b

    @property
    def channels(self) -> int:
        return int(self.a.numel())
