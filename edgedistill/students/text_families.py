"""Student families for token ids (text): each builder takes `vocab_size` beside the usual knobs.

* `textcnn`: a token embedding (width = the embedding size), `depth` depthwise-separable 1-D convolution blocks
  (a depthwise kernel-5 conv, a pointwise conv, each with BatchNorm and ReLU; 2× max pooling between blocks while
  the sequence is at least 16 long), global max pooling over positions and a linear classifier (Kim 2014,
  "Convolutional Neural Networks for Sentence Classification", with MobileNet's separable convolutions, Howard et
  al. 2017). Every op runs on TFLite Micro in int8: the microcontroller choice. The padding id 0 embeds to zeros
  and max pooling sees the padded positions too (the network learns to ignore them; no mask is needed).
* `transformer`: a token embedding plus learned positions, `depth` post-LayerNorm encoder layers (multi-head self
  attention with the padding mask, a feed-forward of `ffn` units, residual adds; BERT's layout, Devlin et al.
  2019), a pooling over positions and a linear classifier. Knobs (students/knobs.py): `heads` (default width / 32,
  at least 1; must divide width), `ffn` (default 2 × width), `activation` of the feed-forward (relu, the default:
  it fuses into the FULLY_CONNECTED and runs everywhere; gelu, BERT's, exact erf form: an int8 GELU op, which
  LiteRT runs and TFLite Micro lacks, so a microcontroller target builds hardswish instead, see
  students/activations.py; hardswish: one HARD_SWISH op, on every runtime), `pool` (mean over positions, the
  default, or first: the first token's state, BERT's [CLS] position, one SLICE).
* `bow`: a bag of embeddings (fastText's classifier, Joulin et al. 2017, "Bag of Tricks for Efficient Text
  Classification"): a token embedding (width = the embedding size), the mean over positions (the padding id 0 embeds
  to zeros, so padded positions add nothing; the mean divides by the padded length L, a scale the next layer
  absorbs) and `depth` linear layers (depth − 1 hidden ReLU layers of `width` units, then the classifier). GATHER_ND,
  MEAN and FULLY_CONNECTED: every op runs on TFLite Micro in int8, and the cost is the table plus a few hundred MACs.
  Over the teacher's vocabulary it is the text student for passages, where the evidence is which words occur: on
  builtin:docs (paragraphs) it reached 75.6 % from hard labels alone where the textcnn reached 51 % over the same
  ids and 62–65 % over bytes (teacher 76.4 %); on builtin:langid (single words) bytes win (docs/text.md).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.errors import ConfigError
from edgedistill.students.families import STUDENT_FAMILIES
from edgedistill.students.layers import (FirstToken, GlobalMaxPool, MaskedSelfAttention, MeanTokens, TokenEmbedding,
                                         conv_bn_relu)


# the widths x depths the search costs (students.search.grid): the textcnn from 8 to 128 embedding channels, the
# transformer from one head of 16 to four heads of 32
TEXT_SEARCH_GRID = {"textcnn": ((8, 12, 16, 24, 32, 48, 64, 96, 128), (1, 2, 3)),
                    "bow": ((8, 12, 16, 24, 32, 48, 64, 96, 128), (1, 2)),
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


# The bow table starts small (BERT's N(0, 0.02)) and learns at 10x the run's learning rate: each row moves only
# through the mean over L positions, and from the default N(0, 1) at the default lr the docs student reached
# 63.4 % after 816 steps where this reached 76.4 % (hard labels, one seed; docs/text.md)
BOW_INIT_STD, BOW_LR_SCALE = 0.02, 10.0


@STUDENT_FAMILIES.register("bow", "bag of embeddings: token embedding, mean over positions, linear layers "
                                  "(fastText's classifier; text over the teacher's vocabulary; runs on "
                                  "microcontrollers)")
def bow(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 1,
        vocab_size: int = 257) -> nn.Module:
    _sequence_length(input_shape, "bow")
    if depth < 1:
        raise ConfigError(f"bow depth counts its linear layers (the classifier included), so it is at least 1, not "
                          f"{depth}.")
    embed = nn.Embedding(vocab_size, width, padding_idx=0)
    with torch.no_grad():  # fastText's recipe: a small table that learns fast (measured in docs/text.md)
        embed.weight.normal_(0.0, BOW_INIT_STD)
        embed.weight[0].zero_()
    embed.lr_scale = BOW_LR_SCALE  # distill.optim.lr_groups
    features = nn.Sequential(OrderedDict(embed=embed, pool=MeanTokens()))
    head: OrderedDict = OrderedDict()
    for i in range(1, depth):
        head[f"fc{i}"], head[f"relu{i}"] = nn.Linear(width, width), nn.ReLU()
    head["fc"] = nn.Linear(width, num_classes)
    return nn.Sequential(OrderedDict(features=features, head=nn.Sequential(head)))


# the feed-forward's activation and the pooling over positions, by knob value (parameter-free modules)
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "hardswish": nn.Hardswish}
POOLS = {"mean": MeanTokens, "first": FirstToken}


class EncoderLayer(nn.Module):
    """Post-LN encoder layer: x = LN(x + attention(x)); x = LN(x + W2 act(W1 x))."""

    def __init__(self, width: int, heads: int, ffn: int, activation: str = "relu"):
        super().__init__()
        self.attn, self.norm1 = MaskedSelfAttention(width, heads), nn.LayerNorm(width)
        self.ff1, self.ff2, self.norm2 = nn.Linear(width, ffn), nn.Linear(ffn, width), nn.LayerNorm(width)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, ids))
        return self.norm2(x + self.ff2(self.act(self.ff1(x))))


class TextTransformer(nn.Module):
    """ids N×L -> logits N×K (see the module doc)."""

    def __init__(self, length: int, vocab_size: int, width: int, depth: int, heads: int, ffn: int, num_classes: int,
                 activation: str = "relu", pool: str = "mean"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(1, length, width) * 0.02)
        self.layers = nn.ModuleList(EncoderLayer(width, heads, ffn, activation) for _ in range(depth))
        self.pool = POOLS[pool]()
        self.head = nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.pos
        for layer in self.layers:
            x = layer(x, ids)
        return self.head(self.pool(x))


@STUDENT_FAMILIES.register("transformer", "token + position embedding, post-LN encoder layers (masked multi-head "
                                          "attention, ReLU / GELU / hardswish feed-forward), mean or first-token "
                                          "pooling, linear (text)")
def transformer(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2,
                vocab_size: int = 257, heads: int | None = None, ffn: int | None = None, activation: str = "relu",
                pool: str = "mean") -> nn.Module:
    length = _sequence_length(input_shape, "transformer")
    if length < 2:
        raise ConfigError("The transformer student needs sequences of at least 2 tokens (the sequence length is 1): "
                          "attention over one token is a no-op, and the converter then writes ONE_HOT, which TFLite "
                          "Micro lacks. Give --max-length 2 or more, or use the textcnn student for one-token "
                          "inputs.")
    given = heads is not None
    heads = heads if given else max(1, width // 32)
    if width % heads:
        raise ConfigError(f"transformer width {width} must be a multiple of its {heads} heads "
                          f"({'heads=' + str(heads) if given else 'width / 32'}): choose heads that divide the width "
                          f"(e.g. {', '.join(str(h) for h in range(1, min(width, 8) + 1) if width % h == 0)}) or "
                          "another width.")
    for name, value, choices in (("activation", activation, ACTIVATIONS), ("pool", pool, POOLS)):
        if value not in choices:
            raise ConfigError(f"transformer {name} must be one of {', '.join(choices)}, not {value!r}.")
    return TextTransformer(length, vocab_size, width, depth, heads, ffn or 2 * width, num_classes, activation, pool)
