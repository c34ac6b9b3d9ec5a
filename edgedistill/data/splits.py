"""Seeded train / val / test splits, the transfer set, and normalisation statistics computed on train only."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgedistill.data.arrays import RawDataset, Split, kind_of, validate_split
from edgedistill.errors import DataError


@dataclass(frozen=True)
class Normalizer:
    """Per-channel (per-feature for vectors) standardisation: (x - mean) / std, statistics from train only."""

    mean: list[float]
    std: list[float]
    axis_kind: str  # "channel" or "feature"

    @classmethod
    def fit(cls, x: np.ndarray) -> "Normalizer":
        axes = (0,) if x.ndim == 2 else tuple(i for i in range(x.ndim) if i != 1)
        mean = x.mean(axis=axes, dtype=np.float64)
        std = np.maximum(x.std(axis=axes, dtype=np.float64), 1e-6)
        return cls(mean.tolist(), std.tolist(), "feature" if x.ndim == 2 else "channel")

    def _shape(self, ndim: int) -> tuple[int, ...]:
        return (1, -1) + (1,) * (ndim - 2)

    def apply(self, x: np.ndarray) -> np.ndarray:
        m = np.asarray(self.mean, np.float32).reshape(self._shape(x.ndim))
        s = np.asarray(self.std, np.float32).reshape(self._shape(x.ndim))
        return ((x - m) / s).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DataSplits:
    """Raw (un-normalised) splits plus the normaliser; `transfer` is what the student distills on."""

    train: Split
    val: Split
    test: Split
    transfer: Split
    normalizer: Normalizer
    num_classes: int
    class_names: list[str]
    source: str

    @property
    def kind(self) -> str:
        return kind_of(self.train.x)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.x.shape[1:])

    def summary(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "sizes": {k: len(getattr(self, k)) for k in ("train", "val", "test", "transfer")},
            "transfer_labeled": self.transfer.labeled,
            "normalizer": self.normalizer.to_dict(),
        }


def _permutation(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def make_splits(
    raw: RawDataset,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    transfer: Split | None = None,
    max_train: int | None = None,
) -> DataSplits:
    """Split `raw` reproducibly. The dataset's own test split is used when it has one; otherwise `test_fraction`
    of the labelled samples is held out. `transfer` (labelled or not) replaces train as the distillation set."""
    if not raw.train.labeled:
        raise DataError(
            f"{raw.source}: the main data has no labels `y`. Labelled data is needed for validation and testing; "
            "pass unlabeled samples as the transfer set instead."
        )
    train = raw.train
    n = len(train)
    perm = _permutation(n, seed)
    n_test = 0 if raw.test is not None else int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    if n - n_test - n_val < 2 or n_val < 1:
        raise DataError(f"{raw.source}: {n} labelled samples are too few for the requested val/test fractions.")
    test = raw.test if raw.test is not None else train.take(perm[:n_test])
    val = train.take(perm[n_test : n_test + n_val])
    tr_idx = perm[n_test + n_val :]
    if max_train is not None:
        tr_idx = tr_idx[:max_train]
    tr = train.take(np.sort(tr_idx))

    num_classes = int(max(tr.y.max(), val.y.max(), test.y.max() if test.y is not None else 0)) + 1
    num_classes = max(num_classes, len(raw.class_names))
    if test.y is None:
        raise DataError(f"{raw.source}: the test split has no labels.")
    for split, what in ((tr, "train split"), (val, "validation split"), (test, "test split")):
        validate_split(split, what, num_classes)
    if test.x.shape[1:] != tr.x.shape[1:]:
        raise DataError(f"{raw.source}: test samples have shape {test.x.shape[1:]}, train {tr.x.shape[1:]}.")
    if transfer is not None:
        validate_split(transfer, "transfer set", num_classes)
        if transfer.x.shape[1:] != tr.x.shape[1:]:
            raise DataError(
                f"Transfer set samples have shape {tuple(transfer.x.shape[1:])} but the labelled data has "
                f"{tuple(tr.x.shape[1:])}; they must match."
            )
    names = raw.class_names or [str(i) for i in range(num_classes)]
    return DataSplits(
        train=tr,
        val=val,
        test=test,
        transfer=transfer if transfer is not None else tr,
        normalizer=Normalizer.fit(tr.x),
        num_classes=num_classes,
        class_names=names,
        source=raw.source,
    )
