"""Student architectures: registered families and the builder that prepends train-split normalisation."""

from __future__ import annotations

import inspect
from collections import OrderedDict

from torch import nn

from edgedistill.data.splits import Normalizer
from edgedistill.errors import ConfigError
from edgedistill.students.custom import build_custom
from edgedistill.students import reference as _reference  # noqa: F401  (registers resnet8, mobilenetv1, mbv3)
from edgedistill.students import text_families as _text  # noqa: F401  (registers textcnn)
from edgedistill.students import decoder_family as _decoder  # noqa: F401  (registers decoder)
from edgedistill.students.families import (CUSTOM, DEFAULT_FAMILY, STUDENT_FAMILIES, StudentArch, default_family,
                                          family_defaults)
from edgedistill.students.layers import Normalize, count_params


def build_student(arch: StudentArch, input_shape: tuple[int, ...], num_classes: int, normalizer: Normalizer | None,
                  vocab_size: int | None = None) -> nn.Module:
    """Instantiate `arch` for the data, with the train-split normaliser as its first layer.

    A registered family gives `Sequential(normalize, features, head)` (layer names `features.block1` ...); a user's
    factory (`arch.factory`) gives `Sequential(normalize, model)`, so its layers are named `model.<its own name>`
    (e.g. `model.layer1.0.conv1` for feature terms). For text (`vocab_size` given: samples are L token ids) there is
    no normaliser: a family is called with `vocab_size`, a factory gets it when it names the parameter. Raises
    ConfigError when the family does not fit the data or the user's factory fails (see students.custom)."""
    text = vocab_size is not None
    extra = {"vocab_size": int(vocab_size)} if text else {}
    if arch.factory:
        body = build_custom(arch.factory, dict(arch.kwargs), tuple(input_shape), num_classes, extra)
        if text:
            return nn.Sequential(OrderedDict(model=body))
        return nn.Sequential(OrderedDict(normalize=_normalize(normalizer, input_shape), model=body))
    builder = STUDENT_FAMILIES.get(arch.family)
    takes_ids = "vocab_size" in inspect.signature(builder).parameters
    if takes_ids != text:
        texts = ", ".join(n for n in STUDENT_FAMILIES.names() if "vocab_size" in
                          inspect.signature(STUDENT_FAMILIES.get(n)).parameters)
        raise ConfigError(f"Student family {arch.family!r} " + (
            f"reads token ids (text), but the data are not text. Text families: {texts}." if takes_ids else
            f"does not read token ids; the data are text. Text families: {texts}, or your own factory."))
    body = builder(tuple(input_shape), num_classes, width=arch.width, depth=arch.depth, **dict(arch.knobs), **extra)
    if text:  # a Sequential(features, head) family, or one with a forward of its own (the transformer)
        return nn.Sequential(OrderedDict(features=body.features, head=body.head)) \
            if isinstance(body, nn.Sequential) else body
    return nn.Sequential(OrderedDict(normalize=_normalize(normalizer, input_shape), features=body.features,
                                     head=body.head))


def _normalize(normalizer: Normalizer, input_shape: tuple[int, ...]) -> Normalize:
    return Normalize(normalizer.mean, normalizer.std, ndim=len(input_shape) + 1)


__all__ = ["CUSTOM", "DEFAULT_FAMILY", "STUDENT_FAMILIES", "StudentArch", "build_student", "count_params",
           "default_family", "family_defaults"]
