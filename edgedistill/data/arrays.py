"""Labelled arrays: the one data shape every reader produces and every stage consumes.

Samples are float32 after reading, token ids (an integer N×L array) for text, or, for a memory-mapped x.npy folder
(edgedistill.data.npy_dir), numbers in their stored dtype (uint8 images stay uint8, a quarter of float32's bytes),
converted batch by batch by `model_input` where a model or a teacher reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edgedistill.data.mapped import release_pages, take_rows
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


def is_token_ids(x) -> bool:
    """An integer N×L array (numpy or torch): token ids, which a model embeds rather than reads as numbers."""
    dtype = x.dtype
    integer = (not dtype.is_floating_point and dtype != torch.bool) if isinstance(x, torch.Tensor) \
        else np.issubdtype(dtype, np.integer)
    return x.ndim == 2 and integer


def model_input(x):
    """Samples as a model reads them: float32 (a numpy array or a torch tensor, of any length N×...), token ids
    unchanged. Samples kept in their stored dtype (uint8, int16, float16, float64, bool from a memory-mapped x.npy)
    become float32 with their values unchanged, as `.npz` samples do on reading (no rescaling: the student's
    normaliser standardises them); float32 comes back as the same object, uncopied."""
    if isinstance(x, torch.Tensor):
        return x if x.dtype == torch.float32 or is_token_ids(x) else x.to(torch.float32)
    return x if x.dtype == np.float32 or is_token_ids(x) else np.asarray(x, dtype=np.float32)


def stored_samples(x: np.ndarray) -> bool:
    """Whether `x` holds samples in a stored dtype that `model_input` converts (not float32, not token ids)."""
    return x.dtype != np.float32 and not is_token_ids(x)


@dataclass(frozen=True)
class Split:
    """Samples `x` (N×...: float32, token ids, or a stored dtype, see the module docstring) and optional integer
    labels `y` (N,). `y is None` means unlabeled."""

    x: np.ndarray
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def labeled(self) -> bool:
        return self.y is not None

    def take(self, idx: np.ndarray) -> "Split":
        """The samples at `idx` (indices or a boolean mask): a copy, memory-mapped when `x` is (data.mapped)."""
        return Split(take_rows(self.x, idx), None if self.y is None else self.y[idx])


@dataclass(frozen=True)
class RawDataset:
    """What a reader returns: training samples, the dataset's own test split if it has one, and class names."""

    train: Split
    test: Split | None
    source: str
    class_names: list[str] = field(default_factory=list)
    text: Any = None  # text data: how the texts became token ids (edgedistill.data.text_encode.TextEncoding)
    notes: list[str] = field(default_factory=list)  # one-line advice from the reader (a large .npz), for the user

    @property
    def kind(self) -> str:
        return kind_of(self.train.x)


CHECK_ROWS = 1 << 14  # samples checked at a time: a memory-mapped array is read in pieces, never copied whole ...
CHECK_VALUES = 1 << 24  # ... fewer where they hold more values (the check's mask has one byte a value: 16 MiB)


def check_finite(x: np.ndarray, what: str, where: str) -> None:
    """Raise DataError naming the first samples of `x` (N, ...) that hold NaN or an infinity; `where` says what
    the indices count (positions in the file, or within a split). Integer and bool samples are finite by type."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    bad = np.zeros(len(x), bool)
    rows = max(1, min(CHECK_ROWS, CHECK_VALUES // max(1, int(np.prod(x.shape[1:])))))
    for i in range(0, len(x), rows):
        part = np.asarray(x[i : i + rows])
        bad[i : i + len(part)] = ~np.isfinite(part.reshape(len(part), -1)).all(axis=1)
        release_pages()  # a memory-mapped x: the pages just read leave the resident set
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
    stored = np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_  # a memory-mapped x.npy keeps its dtype
    if x.dtype != np.float32 and not (x.dtype == np.int32 and x.ndim == 2) and not (stored and x.ndim > 2):
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
