"""The `decoder` student family: a tiny causal language model over a fixed context window.

ids N×L (int32, 0 = padding after a document's end) -> logits N×L×V: the logits at position t score the token that
follows position t, computed from positions 0..t only. GPT-2's layout (Radford et al. 2019, "Language Models are
Unsupervised Multitask Learners"): a token embedding plus learned positions, `depth` pre-LayerNorm decoder layers
(x = x + attention(LN(x)) with the causal mask; x = x + W2 relu(W1 LN(x))), a final LayerNorm, and the output
projection tied to the token embedding (logits = h Eᵀ, Press & Wolf 2017, "Using the Output Embedding to Improve
Language Models"), which halves the parameters of a small-vocabulary model. ReLU, not GELU: TFLite Micro has no
GELU kernel, and ReLU fuses into the feed-forward's FULLY_CONNECTED (as in the `transformer` family).

The causal mask is a constant L×L tensor (students.layers.MaskedSelfAttention with `context`), which the int8 file
adds to the scores as an int8 constant (quantize/attention_ops.causal_mask_constant); the model is exported for exactly its context window. The tie holds in
the float model; the int8 file stores the table twice (the gather's and the FULLY_CONNECTED's per-row scales
differ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.errors import ConfigError
from edgedistill.students.families import STUDENT_FAMILIES
from edgedistill.students.layers import MaskedSelfAttention

# what `build --task causal-lm` searches (students/search.py): widths x depths, heads width / 32 (at least 1); the
# largest, (256, 4), is ~3.1 M parameters plus 256 per vocabulary entry, past issue #29's 1 M target, so a device
# budget or half the teacher's parameters decides
DECODER_SEARCH_GRID = {"decoder": ((16, 24, 32, 48, 64, 96, 128, 192, 256), (1, 2, 3, 4))}


class DecoderLayer(nn.Module):
    """Pre-LN decoder layer: x = x + attention(LN(x)); x = x + W2 relu(W1 LN(x))."""

    def __init__(self, width: int, heads: int, ffn: int, context: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(width), MaskedSelfAttention(width, heads, context=context)
        self.norm2, self.ff1, self.ff2 = nn.LayerNorm(width), nn.Linear(width, ffn), nn.Linear(ffn, width)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), ids)
        return x + self.ff2(F.relu(self.ff1(self.norm2(x))))


class DecoderLM(nn.Module):
    """ids N×L -> next-token logits N×L×V (module doc). `embed.weight` is `head.weight` (tied)."""

    def __init__(self, context: int, vocab_size: int, width: int, depth: int, heads: int, ffn: int):
        super().__init__()
        self.context, self.vocab_size = context, vocab_size
        self.embed = nn.Embedding(vocab_size, width)
        self.pos = nn.Parameter(torch.randn(1, context, width) * 0.02)
        self.layers = nn.ModuleList(DecoderLayer(width, heads, ffn, context) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)
        self.head.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=0.02)  # GPT-2's initialisation: unit-variance rows would saturate

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.pos
        for layer in self.layers:
            x = layer(x, ids)
        return self.head(self.norm(x))


@STUDENT_FAMILIES.register("decoder", "causal LM: token + position embedding, pre-LN decoder layers (causal "
                                      "multi-head attention, ReLU feed-forward), tied output embedding (text)")
def decoder(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2,
            vocab_size: int = 257, heads: int | None = None, ffn: int | None = None) -> nn.Module:
    """A DecoderLM for windows of input_shape = (L,) token ids over `vocab_size` ids. `num_classes` must equal
    `vocab_size` (a causal LM scores every token of the vocabulary); heads default to width / 32 (at least 1), the
    feed-forward to 4 × width (GPT-2's ratio). Raises ConfigError for any other shape, a width that the heads do
    not divide, or a classification task."""
    if len(input_shape) != 1 or input_shape[0] < 2:
        raise ConfigError(f"The decoder student reads windows of L >= 2 token ids (samples of shape (L,)), but the "
                          f"data's samples have shape {tuple(input_shape)}.")
    if num_classes != vocab_size:
        raise ConfigError(f"The decoder student is a causal language model: it scores the {vocab_size} tokens of "
                          f"its vocabulary at every position, not {num_classes} classes. For text classification "
                          "use the textcnn or transformer student.")
    heads = heads or max(1, width // 32)
    if width % heads:
        raise ConfigError(f"decoder width {width} must be a multiple of its {heads} heads.")
    return DecoderLM(int(input_shape[0]), int(vocab_size), int(width), int(depth), int(heads),
                     int(ffn or 4 * width))
