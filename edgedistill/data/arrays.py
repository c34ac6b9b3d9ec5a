"""In-memory labelled arrays: the one data shape every reader produces and every stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgedistill.errors import DataError

KINDS = ("image", "signal", "features", "text")


def kind_of(x: np.ndarray) -> str:
    """The data kind follows from the array: N×C×H×W image, N×C×L signal, N×F feature vectors (float32), N×L token
    ids (an integer array: text after tokenization, edgedistill.data.text_encode)."""
    if x.ndim == 2 and np.issubdtype(x.dtype, np.integer):
        return "text"
    kinds = {4: "image", 3: "signal", 2: "features"}
    if x.ndim not in kinds:
        raise DataError(
            f"Data of shape {tuple(x.shape)} has rank {x.ndim}; expected N×C×H×W images (rank 4), "
            "N×C×L signals (rank 3) or N×F feature vectors (rank 2)."
        )
    return kinds[x.ndim]


@dataclass(frozen=True)
class Split:
    """Samples `x` (float32, N×...) and optional integer labels `y` (N,). `y is None` means unlabeled."""

    x: np.ndarray
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def labeled(self) -> bool:
        return self.y is not None

    def take(self, idx: np.ndarray) -> "Split":
        return Split(self.x[idx], None if self.y is None else self.y[idx])


@dataclass(frozen=True)
class RawDataset:
    """What a reader returns: training samples, the dataset's own test split if it has one, and class names."""

    train: Split
    test: Split | None
    source: str
    class_names: list[str] = field(default_factory=list)
    text: Any = None  # text data: how the texts became token ids (edgedistill.data.text_encode.TextEncoding)

    @property
    def kind(self) -> str:
        return kind_of(self.train.x)


def check_finite(x: np.ndarray, what: str, where: str) -> None:
    """Raise DataError naming the first samples of `x` (N, ...) that hold NaN or an infinity; `where` says what
    the indices count (positions in the file, or within a split)."""
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if len(x) else np.zeros(0, bool)
    if bad.any():
        first = np.flatnonzero(bad)[:5].tolist()
        raise DataError(
            f"{what}: {int(bad.sum())} sample(s) contain NaN or infinite values (first {where}: {first}). "
            "Clean or drop them before distilling; edgedistill does not impute values."
        )


def validate_split(split: Split, what: str, num_classes: int | None = None, allow_unlabeled: bool = False,
                   positions: str = "indices within this split") -> None:
    """Reject NaN/inf samples, labels that are not integers in range, and mismatched lengths. With
    `allow_unlabeled`, -1 marks a sample without a label (the transfer set only)."""
    x = split.x
    if x.dtype != np.float32 and not (x.dtype == np.int32 and x.ndim == 2):  # float samples, or token ids
        raise DataError(f"{what}: samples must be float32 after reading, got {x.dtype}.")
    if len(split) == 0:
        raise DataError(f"{what}: the split is empty.")
    check_finite(x, what, positions)
    if split.y is None:
        return
    y = split.y
    if y.shape != (len(x),):
        raise DataError(f"{what}: {len(x)} samples but labels of shape {tuple(y.shape)}; expected ({len(x)},).")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels must be integers (class indices), got dtype {y.dtype}.")
    if allow_unlabeled:
        y = y[y != -1]
        if y.size == 0:
            return
    if y.min() < 0 or (num_classes is not None and y.max() >= num_classes):
        hi = f"{num_classes - 1}" if num_classes is not None else "…"
        raise DataError(
            f"{what}: labels range from {int(y.min())} to {int(y.max())} but must lie in 0..{hi} "
            f"(the model has {num_classes} classes)."
        )
