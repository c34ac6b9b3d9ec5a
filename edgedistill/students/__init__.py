"""Student architectures: registered families and the builder that prepends train-split normalisation."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from edgedistill.data.splits import Normalizer
from edgedistill.students.custom import build_custom
from edgedistill.students import reference as _reference  # noqa: F401  (registers resnet8, mobilenetv1, mbv3)
from edgedistill.students.families import CUSTOM, DEFAULT_FAMILY, STUDENT_FAMILIES, StudentArch, family_defaults
from edgedistill.students.layers import Normalize, count_params


def build_student(arch: StudentArch, input_shape: tuple[int, ...], num_classes: int, normalizer: Normalizer) -> nn.Module:
    """Instantiate `arch` for the data, with the train-split normaliser as its first layer.

    A registered family gives `Sequential(normalize, features, head)` (layer names `features.block1` ...); a user's
    factory (`arch.factory`) gives `Sequential(normalize, model)`, so its layers are named `model.<its own name>`
    (e.g. `model.layer1.0.conv1` for feature terms). Raises ConfigError when the family does not fit the data or
    the user's factory fails (see students.custom)."""
    norm = Normalize(normalizer.mean, normalizer.std, ndim=len(input_shape) + 1)
    if arch.factory:
        body = build_custom(arch.factory, dict(arch.kwargs), tuple(input_shape), num_classes)
        return nn.Sequential(OrderedDict(normalize=norm, model=body))
    body = STUDENT_FAMILIES.get(arch.family)(tuple(input_shape), num_classes, width=arch.width, depth=arch.depth)
    return nn.Sequential(OrderedDict(normalize=norm, features=body.features, head=body.head))


__all__ = ["CUSTOM", "DEFAULT_FAMILY", "STUDENT_FAMILIES", "StudentArch", "build_student", "count_params",
           "family_defaults"]
