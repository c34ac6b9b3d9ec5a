"""Student families: each registers a builder `(input_shape, num_classes, width, depth) -> nn.Module`.

Every student is `Sequential(normalize, features, head)`, with named blocks (`features.block1` ...) so that later
stages can hook layers by name and fuse Conv-BN-ReLU for quantization.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from edgedistill.errors import ConfigError
from edgedistill.registry import Registry
from edgedistill.students.layers import conv_bn_relu

STUDENT_FAMILIES: Registry = Registry("student family")

# Which family fits which data kind when the user does not name one.
DEFAULT_FAMILY = {"image": "cnn", "signal": "conv1d", "features": "mlp", "text": "textcnn"}
# Text by the student's tokenizer: byte ids to convolutions that see spellings, the teacher's word pieces to a bag of
# embeddings (students/text_families.py; measured in docs/text.md)
TEXT_FAMILY = {"bytes": "textcnn", "vocab": "bow"}


def default_family(kind: str, tokenizer: str | None = None) -> str:
    """The family for data of `kind` when the user names none; for text, by the student tokenizer's name."""
    return TEXT_FAMILY.get(tokenizer or "", DEFAULT_FAMILY[kind]) if kind == "text" else DEFAULT_FAMILY[kind]


CUSTOM = "custom"  # the family of a student built by the user's factory


@dataclass(frozen=True)
class StudentArch:
    """A registered family with its knobs, or (family "custom") the user's factory spec and keyword arguments.

    `factory` is 'package.module:function' or an absolute '/path/file.py:function'; `kwargs` is a sorted tuple of
    (name, value) pairs so the architecture stays hashable and serialises to JSON as plain data. `knobs`: the
    family's own knobs besides width / depth (students/knobs.py), sorted (name, value) pairs; empty = defaults."""

    family: str
    width: int = 16
    depth: int = 3
    factory: str | None = None
    kwargs: tuple[tuple[str, Any], ...] = ()
    knobs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def custom(cls, factory: str, kwargs: dict | None = None) -> "StudentArch":
        return cls(CUSTOM, factory=factory, kwargs=tuple(sorted((kwargs or {}).items())))

    def describe(self) -> str:
        if self.factory:
            return f"{self.factory}({', '.join(f'{k}={v!r}' for k, v in self.kwargs)})"
        own = "".join(f", {k}={v}" for k, v in self.knobs)
        return f"{self.family}(width={self.width}, depth={self.depth}{own})"

    def with_knobs(self, **knobs) -> "StudentArch":
        """The same architecture with these family knobs set (others kept)."""
        return replace(self, knobs=tuple(sorted({**dict(self.knobs), **knobs}.items())))

    def to_dict(self) -> dict:
        d = {"family": self.family, "width": self.width, "depth": self.depth}
        if self.knobs:  # absent when default: the files of students without knobs stay as they were
            d["knobs"] = dict(self.knobs)
        return {**d, "factory": self.factory, "kwargs": dict(self.kwargs)} if self.factory else d

    @classmethod
    def from_dict(cls, d: dict) -> "StudentArch":
        """Inverse of to_dict (checkpoints written before factories existed have no factory / kwargs keys)."""
        if d.get("factory"):
            return cls.custom(d["factory"], dict(d.get("kwargs") or {}))
        return cls(d["family"], int(d.get("width", 16)), int(d.get("depth", 3)),
                   knobs=tuple(sorted((d.get("knobs") or {}).items())))


def family_defaults(family: str) -> tuple[int, int]:
    """(width, depth) a family uses when the user names neither: its builder's own defaults."""
    params = inspect.signature(STUDENT_FAMILIES.get(family)).parameters
    return int(params["width"].default), int(params["depth"].default)


def _channels(width: int, depth: int) -> list[int]:
    """Channels double every block, capped at 8× the base width."""
    return [width * min(2**i, 8) for i in range(depth)]


def _head(cin: int, num_classes: int, dims: int) -> nn.Sequential:
    pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1)
    return nn.Sequential(OrderedDict(pool=pool, flatten=nn.Flatten(), fc=nn.Linear(cin, num_classes)))


def _needs(kind_rank: int, input_shape: tuple[int, ...], family: str) -> None:
    if len(input_shape) != kind_rank:
        kinds = {3: "C×H×W images", 2: "C×L signals", 1: "F-dimensional feature vectors"}
        raise ConfigError(
            f"Student family {family!r} needs {kinds[kind_rank]}, but the data's samples have shape {input_shape}."
        )


def _plain_conv(input_shape: tuple[int, ...], num_classes: int, width: int, depth: int, dims: int) -> nn.Module:
    """Conv-BN-ReLU blocks, each followed by 2× max-pooling while the map is at least 4 wide (2-D or 1-D)."""
    _needs(dims + 1, input_shape, "cnn" if dims == 2 else "conv1d")
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
    blocks, cin, size = OrderedDict(), input_shape[0], min(input_shape[1:])
    for i, cout in enumerate(_channels(width, depth), start=1):
        layers = [conv_bn_relu(cin, cout, k=3 if dims == 2 else 5, dims=dims)]
        if size >= 4:
            layers.append(pool(2))
            size //= 2
        blocks[f"block{i}"] = nn.Sequential(*layers)
        cin = cout
    return nn.Sequential(OrderedDict(features=nn.Sequential(blocks), head=_head(cin, num_classes, dims)))


@STUDENT_FAMILIES.register("cnn", "plain Conv-BN-ReLU blocks with 2×2 max-pooling, global pool, linear (images)")
def plain_cnn(input_shape: tuple[int, ...], num_classes: int, width: int = 16, depth: int = 3) -> nn.Module:
    return _plain_conv(input_shape, num_classes, width, depth, dims=2)


@STUDENT_FAMILIES.register("dscnn", "depthwise-separable conv blocks (DS-CNN / MobileNet-like), images")
def ds_cnn(input_shape: tuple[int, ...], num_classes: int, width: int = 16, depth: int = 3) -> nn.Module:
    _needs(3, input_shape, "dscnn")
    size = min(input_shape[1:])
    blocks = OrderedDict(stem=conv_bn_relu(input_shape[0], width, stride=2 if size >= 16 else 1))
    cin = width
    size = size // 2 if size >= 16 else size
    for i, cout in enumerate(_channels(width, depth), start=1):
        stride = 2 if size >= 4 and i > 1 else 1
        size //= stride
        blocks[f"block{i}"] = nn.Sequential(
            OrderedDict(dw=conv_bn_relu(cin, cin, stride=stride, groups=cin), pw=conv_bn_relu(cin, cout, k=1))
        )
        cin = cout
    return nn.Sequential(OrderedDict(features=nn.Sequential(blocks), head=_head(cin, num_classes, 2)))


@STUDENT_FAMILIES.register("conv1d", "1-D Conv-BN-ReLU blocks with pooling, for N×C×L signals")
def conv1d(input_shape: tuple[int, ...], num_classes: int, width: int = 16, depth: int = 3) -> nn.Module:
    return _plain_conv(input_shape, num_classes, width, depth, dims=1)


@STUDENT_FAMILIES.register("mlp", "fully connected Linear-ReLU layers, for N×F feature vectors")
def mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 16, depth: int = 3) -> nn.Module:
    _needs(1, input_shape, "mlp")
    blocks, cin = OrderedDict(), input_shape[0]
    for i in range(1, depth):
        blocks[f"block{i}"] = nn.Sequential(nn.Linear(cin, width * 4), nn.ReLU(inplace=True))
        cin = width * 4
    head = nn.Sequential(OrderedDict(fc=nn.Linear(cin, num_classes)))
    return nn.Sequential(OrderedDict(features=nn.Sequential(blocks), head=head))
