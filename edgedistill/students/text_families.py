"""Student families for token ids (text): each builder takes `vocab_size` beside the usual knobs.

* `textcnn`: a token embedding (width = the embedding size), `depth` depthwise-separable 1-D convolution blocks
  (a depthwise kernel-5 conv, a pointwise conv, each with BatchNorm and ReLU; 2× max pooling between blocks while
  the sequence is at least 16 long), global max pooling over positions and a linear classifier (Kim 2014,
  "Convolutional Neural Networks for Sentence Classification", with MobileNet's separable convolutions, Howard et
  al. 2017). Every op runs on TFLite Micro in int8: the microcontroller choice. The padding id 0 embeds to zeros
  and max pooling sees the padded positions too (the network learns to ignore them; no mask is needed).
* `transformer`: a token embedding plus learned positions, `depth` post-LayerNorm encoder layers (multi-head self
  attention with the padding mask, a ReLU feed-forward of 2 × width, residual adds; BERT's layout, Devlin et al.
  2019), the mean over positions and a linear classifier; width / 32 heads (at least 1). ReLU, not GELU: TFLite
  Micro has no GELU kernel, and ReLU fuses into the feed-forward's FULLY_CONNECTED.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.errors import ConfigError
from edgedistill.students.families import STUDENT_FAMILIES
from edgedistill.students.layers import GlobalMaxPool, MaskedSelfAttention, TokenEmbedding, conv_bn_relu


# the widths x depths the search costs (students.search.grid): the textcnn from 8 to 128 embedding channels, the
# transformer from one head of 16 to four heads of 32
TEXT_SEARCH_GRID = {"textcnn": ((8, 12, 16, 24, 32, 48, 64, 96, 128), (1, 2, 3)),
                    "transformer": ((16, 32, 48, 64, 96, 128), (1, 2, 3, 4))}


def _sequence_length(input_shape: tuple[int, ...], family: str) -> int:
    if len(input_shape) != 1:
        raise ConfigError(f"Student family {family!r} reads token ids (samples of shape (L,)), but the data's samples "
                          f"have shape {input_shape}.")
    return int(input_shape[0])


@STUDENT_FAMILIES.register("textcnn", "token embedding, depthwise-separable 1-D conv blocks, global max pooling, "
                                      "linear (text; runs on microcontrollers)")
def textcnn(input_shape: tuple[int, ...], num_classes: int, width: int = 32, depth: int = 2,
            vocab_size: int = 257) -> nn.Module:
    length = _sequence_length(input_shape, "textcnn")
    blocks: OrderedDict = OrderedDict(embed=TokenEmbedding(vocab_size, width, padding_idx=0))
    cin = width
    for i in range(1, depth + 1):
        cout = width * min(2 ** (i - 1), 4)
        layers = [conv_bn_relu(cin, cin, k=5, groups=cin, dims=1), conv_bn_relu(cin, cout, k=1, dims=1)]
        if i < depth and length >= 16:
            layers.append(nn.MaxPool1d(2))
            length //= 2
        blocks[f"block{i}"] = nn.Sequential(*layers)
        cin = cout
    head = nn.Sequential(OrderedDict(pool=GlobalMaxPool(), flatten=nn.Flatten(), fc=nn.Linear(cin, num_classes)))
    return nn.Sequential(OrderedDict(features=nn.Sequential(blocks), head=head))


class EncoderLayer(nn.Module):
    """Post-LN encoder layer: x = LN(x + attention(x)); x = LN(x + W2 relu(W1 x))."""

    def __init__(self, width: int, heads: int, ffn: int):
        super().__init__()
        self.attn, self.norm1 = MaskedSelfAttention(width, heads), nn.LayerNorm(width)
        self.ff1, self.ff2, self.norm2 = nn.Linear(width, ffn), nn.Linear(ffn, width), nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, ids))
        return self.norm2(x + self.ff2(F.relu(self.ff1(x))))


class TextTransformer(nn.Module):
    """ids N×L -> logits N×K (see the module doc)."""

    def __init__(self, length: int, vocab_size: int, width: int, depth: int, heads: int, ffn: int, num_classes: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(1, length, width) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(width, heads, ffn) for _ in range(depth))
        self.head = nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.pos
        for layer in self.layers:
            x = layer(x, ids)
        return self.head(x.mean(1))


@STUDENT_FAMILIES.register("transformer", "token + position embedding, post-LN encoder layers (masked multi-head "
                                          "attention, ReLU feed-forward), mean pooling, linear (text)")
def transformer(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2,
                vocab_size: int = 257) -> nn.Module:
    length = _sequence_length(input_shape, "transformer")
    if length < 2:
        raise ConfigError("The transformer student needs sequences of at least 2 tokens (the sequence length is 1): "
                          "attention over one token is a no-op, and the converter then writes ONE_HOT, which TFLite "
                          "Micro lacks. Give --max-length 2 or more, or use the textcnn student for one-token "
                          "inputs.")
    heads = max(1, width // 32)
    if width % heads:
        raise ConfigError(f"transformer width {width} must be a multiple of its {heads} heads (width / 32).")
    return TextTransformer(length, vocab_size, width, depth, heads, 2 * width, num_classes)
