"""Label maps: the data's own class labels (1..10, {3, 7, 42}, ...) to the class indices 0..K-1 models use.

A model with K outputs needs labels 0..K-1. Data often carries other integers (1-based classes, sparse codes); read
as-is, labels 1..10 would be 11 classes and a 10-logit teacher would be refused. The map sends the sorted unique
labels to 0..K-1 and is stored with the splits summary (metrics.json, report) and, as class names, with the
student, so a prediction `i` reads back as the data's own label `original[i]`.

`UNLABELED` (-1) marks a sample without a label: it joins the transfer set and never a label map, validation or
test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgedistill.errors import DataError

UNLABELED = -1


@dataclass(frozen=True)
class LabelMap:
    """`original[i]` is the data's label for class index i; `identity` when the data already uses 0..K-1."""

    original: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.original)

    @property
    def identity(self) -> bool:
        return self.original == tuple(range(len(self.original)))

    def apply(self, y: np.ndarray | None, what: str) -> np.ndarray | None:
        """Class indices (int64) for labels `y`; UNLABELED stays UNLABELED. A label outside the map is a DataError."""
        if y is None:
            return None
        orig = np.asarray(y, np.int64)
        if self.identity:
            y, bad = orig, (orig != UNLABELED) & ((orig < 0) | (orig >= self.num_classes))
        else:
            keys = np.asarray(self.original, np.int64)
            pos = np.searchsorted(keys, orig).clip(0, len(keys) - 1)
            bad = (orig != UNLABELED) & (keys[pos] != orig)
            y = np.where(orig == UNLABELED, UNLABELED, pos)
        if bad.any():
            unknown = sorted({int(v) for v in orig[bad]})
            raise DataError(f"{what}: labels {unknown[:10]} are not among the {self.num_classes} classes of the "
                            f"labelled data ({self.describe()}).")
        return y.astype(np.int64)

    def describe(self) -> str:
        if self.identity:
            return f"labels 0..{self.num_classes - 1}"
        shown = ", ".join(f"{o}->{i}" for i, o in enumerate(self.original[:12]))
        return f"labels mapped to class indices: {shown}{', ...' if self.num_classes > 12 else ''}"

    def to_dict(self) -> dict:
        """JSON form: the original label of each class index, and whether the map is the identity."""
        return {"original_labels": list(self.original), "identity": self.identity}


def labelled(y: np.ndarray) -> np.ndarray:
    """Mask of the samples that carry a label (y != UNLABELED)."""
    return np.asarray(y) != UNLABELED


def fit_label_map(ys: list[np.ndarray], class_names: list[str], source: str) -> LabelMap:
    """The map for the labels in `ys` (UNLABELED excluded).

    Labels already 0..K-1 (every index up to the largest present, or covered by `class_names`) keep their values;
    any other set maps its sorted unique values to 0..K-1. Negative labels other than UNLABELED are refused,
    and so is data with no samples, no labelled class or one class only (also one class beside unlabelled samples,
    a {-1, 1} labelling), whatever `class_names` say.
    Raises DataError."""
    parts = [np.asarray(y, np.int64) for y in ys if y is not None]
    values = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    has_unlabelled = bool((values == UNLABELED).any())
    values = values[values != UNLABELED]
    if values.size and values.min() < 0:
        raise DataError(f"{source}: labels range from {int(values.min())} to {int(values.max())}; class labels "
                        f"must be non-negative integers ({UNLABELED} marks an unlabelled sample).")
    if not parts or not sum(len(p) for p in parts):
        raise DataError(f"{source}: the data holds no samples.")
    if values.size == 0:
        raise DataError(f"{source}: no sample has a label ({UNLABELED} marks an unlabelled sample); labelled samples "
                        "are needed for validation and testing.")
    if values.size == 1 and has_unlabelled:
        raise DataError(f"{source}: the labelled samples hold one class (label {int(values[0])}); {UNLABELED} marks "
                        f"an unlabelled sample, so {{-1, {int(values[0])}}} labels are one class plus unlabelled "
                        "samples. Relabel the data with labels 0..K-1.")
    if values.size == 1:  # named classes do not help: the student would learn one answer
        raise DataError(f"{source}: every labelled sample has the same label ({int(values[0])}); a classifier needs at "
                        "least two classes. Check that the labels were read from the right column or file.")
    top = int(values.max())
    if values.size == top + 1 or (class_names and top < len(class_names)):
        return LabelMap(tuple(range(max(top + 1, len(class_names)))))
    return LabelMap(tuple(int(v) for v in values))
