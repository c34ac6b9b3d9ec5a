"""Families the field uses for microcontrollers, each with width / depth knobs (and a 1-D variant for signals):

* `resnet8` — MLPerf Tiny's image-classification reference (Banbury et al. 2021; CIFAR-10 ResNet-8): a 3×3
  conv stem, `depth` residual stacks of `width`·2^i channels (16/32/64 at the reference width 16, depth 3; stride 2
  from the second stack, 1×1 projection shortcuts), global average pool, linear. 77,946 parameters at 32×32×3
  with 10 classes (the reference's ~78 K).
* `mobilenetv1` — MLPerf Tiny's visual-wake-words reference (MobileNetV1, Howard et al. 2017): `width` is the
  stem's channel count (32·α; the reference α = 0.25 is width 8), `depth` the number of its five stages
  (1, 2, 2, 6, 2 depthwise-separable blocks of 2/4/8/16/32 × width channels; 5 = the full 13-block network).
* `mbv3` — MobileNetV3-style (Howard et al. 2019): a hardswish stem, then inverted-residual stages of
  `width`·min(2^i, 8) channels, expansion 4; the first stage with a ReLU and squeeze-excite, the second ReLU only,
  the later ones hardswish + squeeze-excite (hardsigmoid gate), as in MobileNetV3-Small; the head pools and
  classifies (no 1×1 head expansion, to stay small).

Layer names (for feature terms): `features.stem`, `features.stack1` ... (resnet8), `features.stage1.block1` ...
(mobilenetv1, mbv3), `head.pool`, `head.flatten`, `head.fc`. Downsampling by 2 happens only while the map is at
least 4 wide, so the families also fit 8×8 or 28×28 inputs. Ops stay in the int8 set (see students.blocks).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from edgedistill.errors import ConfigError
from edgedistill.students.blocks import BasicBlock, DepthwiseSeparable, InvertedResidual, conv_bn
from edgedistill.students.families import STUDENT_FAMILIES, _head, _needs

MOBILENET_STAGES = ((2, 1), (4, 2), (8, 2), (16, 6), (32, 2))  # (channels / width, blocks) per stage


def _max_depth(family: str, depth: int, most: int) -> None:
    if depth > most:
        raise ConfigError(f"Student family {family!r} has at most {most} stages (depth={most}); got depth={depth}.")


def _resnet(input_shape, num_classes: int, width: int, depth: int, dims: int, name: str) -> nn.Module:
    _needs(dims + 1, input_shape, name)
    k = 3 if dims == 2 else 5
    size = min(input_shape[1:])
    blocks = OrderedDict(stem=conv_bn(input_shape[0], width, k, dims=dims, act=nn.ReLU()))
    cin = width
    for i in range(depth):
        cout = width * min(2**i, 8)
        stride = 2 if i > 0 and size >= 4 else 1
        size //= stride
        blocks[f"stack{i + 1}"] = BasicBlock(cin, cout, stride, dims, k)
        cin = cout
    return nn.Sequential(OrderedDict(features=nn.Sequential(blocks), head=_head(cin, num_classes, dims)))


@STUDENT_FAMILIES.register("resnet8", "ResNet-8 (MLPerf Tiny image classification): residual stacks of "
                                      "16/32/64 channels at width 16, depth 3 (images)")
def resnet8(input_shape: tuple[int, ...], num_classes: int, width: int = 16, depth: int = 3) -> nn.Module:
    return _resnet(input_shape, num_classes, width, depth, 2, "resnet8")


@STUDENT_FAMILIES.register("resnet8_1d", "ResNet-8 with 1-D convolutions (kernel 5), for N×C×L signals")
def resnet8_1d(input_shape: tuple[int, ...], num_classes: int, width: int = 16, depth: int = 3) -> nn.Module:
    return _resnet(input_shape, num_classes, width, depth, 1, "resnet8_1d")


@STUDENT_FAMILIES.register("mobilenetv1", "MobileNetV1 (MLPerf Tiny visual wake words): width = 32·α stem "
                                          "channels (8 = α 0.25), depth = stages 1-5 (images)")
def mobilenetv1(input_shape: tuple[int, ...], num_classes: int, width: int = 8, depth: int = 5) -> nn.Module:
    _needs(3, input_shape, "mobilenetv1")
    _max_depth("mobilenetv1", depth, len(MOBILENET_STAGES))
    size = min(input_shape[1:])
    stem_stride = 2 if size >= 16 else 1
    size //= stem_stride
    blocks = OrderedDict(stem=conv_bn(input_shape[0], width, 3, stem_stride, act=nn.ReLU()))
    cin = width
    for i, (mult, n) in enumerate(MOBILENET_STAGES[:depth]):
        stage = OrderedDict()
        for j in range(n):
            stride = 2 if i > 0 and j == 0 and size >= 4 else 1
            size //= stride
            stage[f"block{j + 1}"] = DepthwiseSeparable(cin, width * mult, stride)
            cin = width * mult
        blocks[f"stage{i + 1}"] = nn.Sequential(stage)
    return nn.Sequential(OrderedDict(features=nn.Sequential(blocks), head=_head(cin, num_classes, 2)))


def _mbv3(input_shape, num_classes: int, width: int, depth: int, dims: int, name: str) -> nn.Module:
    _needs(dims + 1, input_shape, name)
    size = min(input_shape[1:])
    stem_stride = 2 if size >= 16 else 1
    size //= stem_stride
    blocks = OrderedDict(stem=conv_bn(input_shape[0], width, 3, stem_stride, dims=dims, act=nn.Hardswish()))
    blocks["stage1"] = nn.Sequential(OrderedDict(block1=InvertedResidual(width, width, 1, se=True, act="relu",
                                                                         dims=dims)))
    cin = width
    for i in range(1, depth):
        cout = width * min(2**i, 8)
        se, act = (False, "relu") if i == 1 else (True, "hardswish")
        stride = 2 if size >= 4 else 1
        size //= stride
        blocks[f"stage{i + 1}"] = nn.Sequential(OrderedDict(
            block1=InvertedResidual(cin, cout, 4, stride, se=se, act=act, dims=dims),
            block2=InvertedResidual(cout, cout, 4, 1, se=se, act=act, dims=dims)))
        cin = cout
    return nn.Sequential(OrderedDict(features=nn.Sequential(blocks), head=_head(cin, num_classes, dims)))


@STUDENT_FAMILIES.register("mbv3", "MobileNetV3-style inverted residuals with squeeze-excite (hardsigmoid) and "
                                   "hardswish (images)")
def mbv3(input_shape: tuple[int, ...], num_classes: int, width: int = 16, depth: int = 3) -> nn.Module:
    return _mbv3(input_shape, num_classes, width, depth, 2, "mbv3")


@STUDENT_FAMILIES.register("mbv3_1d", "MobileNetV3-style inverted residuals, SE and hardswish, 1-D, for N×C×L "
                                      "signals")
def mbv3_1d(input_shape: tuple[int, ...], num_classes: int, width: int = 16, depth: int = 3) -> nn.Module:
    return _mbv3(input_shape, num_classes, width, depth, 1, "mbv3_1d")


# The reference families of each data kind: the default search costs them beside the kind's own families
# (students.search.search_families); they are chosen when they fit the budget like any other candidate.
REFERENCE_FAMILIES = {"image": ("resnet8", "mobilenetv1", "mbv3")}

# Widths and depths `search` enumerates for these families (the others use search.WIDTHS x search.DEPTHS).
SEARCH_GRID = {
    "resnet8": ((4, 6, 8, 12, 16, 24, 32), (1, 2, 3)),
    "resnet8_1d": ((4, 6, 8, 12, 16, 24, 32), (1, 2, 3)),
    "mobilenetv1": ((4, 6, 8, 12, 16, 24, 32), (2, 3, 4, 5)),
    "mbv3": ((4, 6, 8, 12, 16, 24, 32), (2, 3, 4)),
    "mbv3_1d": ((4, 6, 8, 12, 16, 24, 32), (2, 3, 4)),
}
