"""Seeded train / val / test splits, the transfer set, and normalisation statistics computed on train only.

Samples kept in their stored dtype (a memory-mapped x.npy folder, edgedistill.data.npy_dir) stay so in the train
and transfer splits, which the trainer reads batch by batch; the validation and test splits, which every stage
scores whole and the runtimes read as they are, become float32 here (`model_input`). Cut from a memory-mapped array,
every split is itself a memory-mapped copy, and float32 conversions too (edgedistill.data.mapped): resident memory
stays flat in the number of samples."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgedistill.data.arrays import (RawDataset, Split, check_finite, kind_of, model_input, stored_samples,
                                     validate_split)
from edgedistill.data.mapped import as_float32, concat_rows, is_mapped, release_pages, take_rows
from edgedistill.data.labels import UNLABELED, LabelMap, fit_label_map, labelled
from edgedistill.errors import DataError


@dataclass(frozen=True)
class Normalizer:
    """Per-channel (per-feature for vectors) standardisation: (x - mean) / std, statistics from train only."""

    mean: list[float]
    std: list[float]
    axis_kind: str  # "channel" or "feature"

    @classmethod
    def fit(cls, x: np.ndarray) -> "Normalizer":
        """Statistics of `x` (N×F or N×C×...). A constant column / channel (std at float32 round-off level of its
        mean, or below 1e-6) gets std 1: it carries no information, and a tiny std would put a huge multiplier
        (and a huge quantization scale) into the student's first layer. std is always finite and positive.
        Samples in a stored dtype (uint8 ...) or memory-mapped are summed in pieces (two passes, float64), never
        converted whole (np.std of the whole array would hold a float64 copy of it)."""
        axes = (0,) if x.ndim == 2 else tuple(i for i in range(x.ndim) if i != 1)
        if stored_samples(x) or is_mapped(x):
            mean, std = _chunked_moments(x, axes)
        else:
            mean = x.mean(axis=axes, dtype=np.float64)
            std = x.std(axis=axes, dtype=np.float64)
        flat = ~np.isfinite(std) | (std <= np.maximum(1e-6, 1e-6 * np.abs(mean)))
        std = np.where(flat, 1.0, std)
        return cls(mean.tolist(), std.tolist(), "feature" if x.ndim == 2 else "channel")

    def _shape(self, ndim: int) -> tuple[int, ...]:
        return (1, -1) + (1,) * (ndim - 2)

    def apply(self, x: np.ndarray) -> np.ndarray:
        m = np.asarray(self.mean, np.float32).reshape(self._shape(x.ndim))
        s = np.asarray(self.std, np.float32).reshape(self._shape(x.ndim))
        return ((x - m) / s).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


MOMENT_ROWS = 4096  # samples per piece when computing statistics of samples in a stored dtype ...
MOMENT_BYTES = 32 << 20  # ... fewer where 4,096 of them in float64 pass this (a 3x64x64 image: 1,365 a piece)


def _chunked_moments(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std of `x` over `axes`, in float64, up to MOMENT_ROWS samples (and
    MOMENT_BYTES of float64) at a time: two passes, the mean, then the squared deviations from it, as np.std computes
    them. The byte cap keeps the transient float64 piece small for large samples (4,096 images of 3x64x64 were 384
    MiB, the largest allocation of a run on them)."""
    count = len(x) * int(np.prod([x.shape[a] for a in axes if a != 0]))
    rows = max(1, min(MOMENT_ROWS, MOMENT_BYTES // max(1, 8 * int(np.prod(x.shape[1:])))))
    total = 0.0
    for i in range(0, len(x), rows):
        total = total + np.asarray(x[i : i + rows]).sum(axis=axes, dtype=np.float64)
        release_pages()  # a memory-mapped x: the pages just read leave the resident set (data.mapped)
    mean = total / count
    shape = [1] * x.ndim
    shape[1] = -1
    m = mean.reshape(shape)
    sq = 0.0
    for i in range(0, len(x), rows):
        sq = sq + ((np.asarray(x[i : i + rows], np.float64) - m) ** 2).sum(axis=axes)
        release_pages()
    return mean, np.sqrt(sq / count)


@dataclass(frozen=True)
class DataSplits:
    """Raw (un-normalised) splits plus the normaliser; `transfer` is what the student distills on.

    Labels are class indices 0..num_classes-1 (`label_map` says which data label each index stands for). Only
    `transfer` may hold unlabelled samples (y == UNLABELED, -1); `transfer.y is None` when none is labelled."""

    train: Split
    val: Split
    test: Split
    transfer: Split
    normalizer: Normalizer
    num_classes: int
    class_names: list[str]
    source: str
    label_map: LabelMap | None = None
    text: Any = None  # text data: the student's tokenizer, sequence length, truncation (data/text_encode.py)

    @property
    def vocab_size(self) -> int | None:
        """The student's vocabulary for text data (embedding rows), None for arrays."""
        return None if self.text is None else self.text.tokenizer.vocab_size

    @property
    def kind(self) -> str:
        return kind_of(self.train.x)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.x.shape[1:])

    def summary(self) -> dict:
        t = self.transfer
        n_lab = 0 if t.y is None else int(labelled(t.y).sum())
        lmap = self.label_map or LabelMap(tuple(range(self.num_classes)))
        return {
            "source": self.source,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "sizes": {k: len(getattr(self, k)) for k in ("train", "val", "test", "transfer")},
            "transfer_labeled": self.transfer.labeled,
            "transfer_counts": {"labelled": n_lab, "unlabelled": len(t) - n_lab},
            "label_map": lmap.to_dict(),
            "normalizer": self.normalizer.to_dict(),
            **({"text": self.text.summary()} if self.text is not None else {}),
        }


VAL_SCORED_MAX = 10_000  # validation samples scored at each evaluation point and by each tuning trial


def scored_subset(n: int, seed: int, cap: int = VAL_SCORED_MAX) -> np.ndarray | None:
    """Sorted indices of at most `cap` of n validation samples, a seeded draw, for the scoring repeated at every
    evaluation point (keep-best, tuning); None when n <= cap (all are scored). On large data this keeps evaluation
    from dominating training: the validation split of 600,000 samples is 60,000, and a 300-step run would spend
    longer scoring it than training. The test split is always scored whole."""
    if n <= cap:
        return None
    return np.sort(np.random.default_rng(seed + 29).permutation(n)[:cap])


def _permutation(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def _split_labelled(split: Split, lmap: LabelMap, what: str) -> tuple[Split, Split | None]:
    """(labelled part with class indices, unlabelled part or None) of a split whose labels are data labels."""
    y = lmap.apply(split.y, what)
    keep = labelled(y)
    if keep.all():
        return Split(split.x, y), None
    rest = Split(take_rows(split.x, ~keep), np.full(int((~keep).sum()), UNLABELED, np.int64))
    return Split(take_rows(split.x, keep), y[keep]), rest


def _concat(parts: list[Split]) -> Split:
    """One split from several; a part without labels contributes UNLABELED; all unlabelled -> y None. A single
    labelled part is returned as it is (no copy of its samples)."""
    parts = [p for p in parts if p is not None and len(p)]
    if len(parts) == 1 and parts[0].y is not None and labelled(parts[0].y).any() and parts[0].x.flags.c_contiguous:
        return Split(_canonical(parts[0].x), parts[0].y)
    y = np.concatenate([p.y if p.y is not None else np.full(len(p), UNLABELED, np.int64) for p in parts])
    return Split(concat_rows([p.x for p in parts]), y if labelled(y).any() else None)


def _float32(split: Split) -> Split:
    """The split's samples as float32: memory-mapped samples into a memory-mapped copy (data.mapped), others in
    memory."""
    if not stored_samples(split.x):
        return split
    return Split(as_float32(split.x) if is_mapped(split.x) else model_input(split.x), split.y)


def _canonical(x: np.ndarray) -> np.ndarray:
    """A view of C-contiguous `x` with the strides np.concatenate would give it. Fancy indexing may leave a size-1
    axis (one channel) with another stride, which torch keeps, and a convolution then takes another code path whose
    float rounding differs: the view keeps training bit-identical to a copy, without the copy."""
    strides = np.cumprod((1,) + x.shape[:0:-1])[::-1] * x.itemsize
    return np.lib.stride_tricks.as_strided(x, x.shape, tuple(int(v) for v in strides))


def _class_names(raw: RawDataset, lmap: LabelMap) -> list[str]:
    if len(raw.class_names) == lmap.num_classes:
        return list(raw.class_names)
    if raw.class_names:  # the data named its classes, but not all of them: refuse rather than drop the names
        raise DataError(f"{raw.source}: {len(raw.class_names)} class names ({', '.join(map(str, raw.class_names[:5]))}"
                        f"{', ...' if len(raw.class_names) > 5 else ''}) for {lmap.num_classes} classes in the labels; "
                        "give one name per class, in class-index order, or none.")
    return [str(o) for o in lmap.original]


def make_splits(
    raw: RawDataset,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    transfer: Split | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
) -> DataSplits:
    """Split `raw` reproducibly. The dataset's own test split is used when it has one; otherwise `test_fraction`
    of the labelled samples is held out. `transfer` (labelled or not) replaces train as the distillation set.
    `max_train` / `max_test`: keep at most that many training / test samples (seeded subsets; validation is not cut).

    Labels that are not 0..K-1 are mapped (see edgedistill.data.labels); samples labelled UNLABELED (-1) in the
    main data (or its test arrays) join the transfer set and never the train / val / test splits."""
    if not raw.train.labeled:
        raise DataError(
            f"{raw.source}: the main data has no labels `y`. Labelled data is needed for validation and testing; "
            "pass unlabeled samples as the transfer set instead."
        )
    if raw.test is not None and raw.test.y is None:
        raise DataError(f"{raw.source}: the test split has no labels.")
    # before any shuffling, so the indices are the user's: positions in the file (or in the folder's read order)
    check_finite(raw.train.x, raw.source, "sample positions in the data, counting from 0")
    if raw.test is not None:
        check_finite(raw.test.x, f"{raw.source} (test arrays)", "sample positions in the test arrays, from 0")
    lmap = fit_label_map([raw.train.y, raw.test.y if raw.test else None], raw.class_names, raw.source)
    train, pool = _split_labelled(raw.train, lmap, f"{raw.source} (train)")
    test, test_pool = (None, None) if raw.test is None else _split_labelled(raw.test, lmap, f"{raw.source} (test)")
    n = len(train)
    perm = _permutation(n, seed)
    n_test = 0 if test is not None else int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    if n - n_test - n_val < 2 or n_val < 1:
        raise DataError(f"{raw.source}: {n} labelled samples are too few for the requested val/test fractions.")
    test = test if test is not None else train.take(perm[:n_test])
    val = train.take(perm[n_test : n_test + n_val])
    tr_idx = perm[n_test + n_val :]
    if max_train is not None:
        tr_idx = tr_idx[:max_train]
    tr = train.take(np.sort(tr_idx))
    if max_test is not None and len(test) > max_test:  # a seeded subset, in the data's order
        test = test.take(np.sort(np.random.default_rng(seed + 1).permutation(len(test))[:max_test]))
    val, test = _float32(val), _float32(test)  # scored whole, read by the runtimes: float32 (module docstring)

    num_classes = lmap.num_classes
    for split, what in ((tr, "train split"), (val, "validation split"), (test, "test split")):
        validate_split(split, what, num_classes)
    if test.x.shape[1:] != tr.x.shape[1:]:
        raise DataError(f"{raw.source}: test samples have shape {test.x.shape[1:]}, train {tr.x.shape[1:]}.")
    if transfer is not None:
        transfer = Split(transfer.x, lmap.apply(transfer.y, "transfer set"))
        validate_split(transfer, "transfer set", num_classes, allow_unlabeled=True,
                       positions="sample positions in the transfer data, counting from 0")
        if transfer.x.shape[1:] != tr.x.shape[1:]:
            raise DataError(
                f"Transfer set samples have shape {tuple(transfer.x.shape[1:])} but the labelled data has "
                f"{tuple(tr.x.shape[1:])}; they must match."
            )
    transfer = _concat([transfer if transfer is not None else tr, pool, test_pool])
    validate_split(transfer, "transfer set", num_classes, allow_unlabeled=True)
    return DataSplits(
        train=tr,
        val=val,
        test=test,
        transfer=transfer,
        normalizer=Normalizer.fit(tr.x) if raw.text is None else Normalizer([0.0], [1.0], "feature"),  # ids: none
        num_classes=num_classes,
        class_names=_class_names(raw, lmap),
        source=raw.source,
        label_map=lmap,
        text=raw.text,
    )
