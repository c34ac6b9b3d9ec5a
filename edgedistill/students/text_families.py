"""Student families for token ids (text): each builder takes `vocab_size` beside the usual knobs.

* `textcnn`: a token embedding (width = the embedding size), `depth` depthwise-separable 1-D convolution blocks
  (a depthwise kernel-5 conv, a pointwise conv, each with BatchNorm and ReLU; 2× max pooling between blocks while
  the sequence is at least 16 long), global max pooling over positions and a linear classifier (Kim 2014,
  "Convolutional Neural Networks for Sentence Classification", with MobileNet's separable convolutions, Howard et
  al. 2017). Every op runs on TFLite Micro in int8: the microcontroller choice. The padding id 0 embeds to zeros
  and max pooling sees the padded positions too (the network learns to ignore them; no mask is needed).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from edgedistill.errors import ConfigError
from edgedistill.students.families import STUDENT_FAMILIES
from edgedistill.students.layers import GlobalMaxPool, TokenEmbedding, conv_bn_relu


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
