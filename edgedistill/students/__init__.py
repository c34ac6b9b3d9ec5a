"""Student architectures: registered families and the builder that prepends train-split normalisation."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from edgedistill.data.splits import Normalizer
from edgedistill.students.families import DEFAULT_FAMILY, STUDENT_FAMILIES, StudentArch
from edgedistill.students.layers import Normalize, count_params


def build_student(arch: StudentArch, input_shape: tuple[int, ...], num_classes: int, normalizer: Normalizer) -> nn.Module:
    """Instantiate `arch` for the data, with the train-split normaliser as its first layer."""
    body = STUDENT_FAMILIES.get(arch.family)(tuple(input_shape), num_classes, width=arch.width, depth=arch.depth)
    norm = Normalize(normalizer.mean, normalizer.std, ndim=len(input_shape) + 1)
    return nn.Sequential(OrderedDict(normalize=norm, features=body.features, head=body.head))


__all__ = ["DEFAULT_FAMILY", "STUDENT_FAMILIES", "StudentArch", "build_student", "count_params"]
