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


class MeanTokens(nn.Module):
    """The mean over positions: N×L×D -> N×D (one MEAN; padded positions count, as the network learns)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1)


class FirstToken(nn.Module):
    """The first position's state: N×L×D -> N×D (BERT's [CLS] pooling; one SLICE in a .tflite file, a Gather
    in ONNX; no arithmetic, so the int8 value stays on its grid)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return first_token(x)


def first_token(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0]


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dims: int = 2) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return nn.Sequential(
        conv(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False), bn(cout), nn.ReLU(inplace=True)
    )


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mask_scores(scores: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """`scores` with the masked ones (bool `masked`, broadcast) set to the dtype's lowest finite value rather than
    -inf: a masked key still gets probability 0 beside any unmasked one (exp underflows to 0), and a row whose
    every key is masked (an input of padding only) gets the uniform distribution instead of 0 / 0 = NaN, which is
    what the int8 graph computes there (every score on its grid's lowest code, SOFTMAX of equal values). The
    exported graph's ops are the same (a SELECT_V2 / Where of a constant)."""
    return scores.masked_fill(masked, torch.finfo(scores.dtype).min)


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention over N×L×D token states, with the padding mask of the token ids (id 0 = padding: no
    query attends to a padded key). Written the way an int8 file computes it: the q, k, v and output projections are
    Linears, 1/√d_head is folded into q, and the mask sets a padded key's score to a large negative value
    (mask_scores; Vaswani et al. 2017, "Attention is all you need", sec. 3.2). `forward(x, ids)`: x N×L×D, ids
    N×L -> N×L×D; an input of padding only attends uniformly (mask_scores), finite as in the int8 file.

    `context` given (a causal decoder over a fixed window of L = context tokens): the mask is the causal one instead,
    a constant L×L buffer `future` (True where the key comes after the query, sec. 3.2.3), so position t reads
    positions 0..t only. The padding mask is then not needed: a decoder's padding follows its real tokens, so no
    real query ever sees a padded key, and a row always keeps its own position (never all masked)."""

    def __init__(self, dim: int, heads: int, context: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        future = None if context is None else torch.ones(context, context, dtype=torch.bool).triu(1)
        self.register_buffer("future", future, persistent=False)

    def mask(self, ids: torch.Tensor) -> torch.Tensor:
        """Bool, True where a score is masked: N×1×1×L (padded keys) or 1×1×L×L (future keys)."""
        return (ids == 0)[:, None, None, :] if self.future is None else self.future[None, None]

    def split(self, t: torch.Tensor) -> torch.Tensor:
        n, length, _ = t.shape
        return t.reshape(n, length, self.heads, self.head_dim).transpose(1, 2)  # N×H×L×d

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q = self.split(self.q(x)) * self.head_dim ** -0.5
        scores = q @ self.split(self.k(x)).transpose(-2, -1)  # N×H×L×L
        scores = mask_scores(scores, self.mask(ids))
        ctx = scores.softmax(-1) @ self.split(self.v(x))  # N×H×L×d
        return self.out(ctx.transpose(1, 2).reshape(n, length, dim))
