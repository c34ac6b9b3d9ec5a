"""Text read -> the arrays every stage carries: the student's token ids (int32, N×L, 0 = padding) and labels.

The sequence length L is chosen from the training texts' token counts (a high percentile, capped) unless given, and
the truncation this costs is counted per split. Labels become class indices: string labels in sorted order (their
strings name the classes), integer labels as they are (the label map of edgedistill.data.labels applies later, as
for arrays); a sample without a label gets -1 and joins the transfer set only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgedistill.data.arrays import RawDataset, Split
from edgedistill.data.labels import UNLABELED
from edgedistill.data.sequence_length import TruncationStats, choose_max_length
from edgedistill.data.text import TextCorpus, TextSplit
from edgedistill.data.tokenizer_base import StudentTokenizer
from edgedistill.errors import DataError

PERCENTILE = 99.0  # the sequence length holds this share of the training texts whole
UNKNOWN_WARN = 0.05  # warn when more of the test split's tokens than this are unknown to the student's vocabulary


@dataclass(frozen=True)
class TextEncoding:
    """How texts became the student's input: its tokenizer, the sequence length, truncation per split."""

    tokenizer: StudentTokenizer
    max_length: int
    chosen: str  # "data" (a percentile of the training texts' token counts) or "given" (--max-length)
    truncation: dict = field(default_factory=dict)  # split -> TruncationStats.to_dict()
    unknown: dict = field(default_factory=dict)  # split -> share of its tokens outside the student's vocabulary
    provenance: dict = field(default_factory=dict)  # what made the texts (TextCorpus.provenance)
    corpus_warnings: tuple[str, ...] = ()  # the reader's warnings about the texts (TextCorpus.warnings)

    def summary(self) -> dict:
        return {"tokenizer": self.tokenizer.name, "vocab_size": self.tokenizer.vocab_size,
                "max_length": self.max_length, "max_length_from": self.chosen, "truncation": self.truncation,
                "unknown_tokens": self.unknown, "device_steps": self.tokenizer.device_steps(self.max_length),
                **({"provenance": self.provenance} if self.provenance else {})}

    def warnings(self) -> list[str]:
        """What the run's report must say about the texts: the reader's warnings, then unknown_warning's."""
        return [*self.corpus_warnings, *filter(None, [self.unknown_warning()])]

    def unknown_warning(self, limit: float = UNKNOWN_WARN) -> str | None:
        """A warning when more than `limit` of the test split's tokens are unknown to the student's vocabulary."""
        share = self.unknown.get("test")
        if share is None or share <= limit:
            return None
        return (f"{100 * share:.1f} % of the test split's tokens are outside the student's vocabulary (the "
                f"teacher's, cut to the {self.tokenizer.vocab_size - 2:,} tokens the training texts use) and read as "
                f"unknown by the student and the teacher alike, which costs both accuracy. More training text, a "
                f"larger student.max_vocab, or --tokenizer bytes (no unknown tokens) avoids it.")


def _labels(split: TextSplit, names: list[str] | None) -> np.ndarray | None:
    if split.labels is None:
        return None
    if names is None:  # integer labels
        return np.array([UNLABELED if v is None else int(v) for v in split.labels], np.int64)
    index = {n: i for i, n in enumerate(names)}
    return np.array([UNLABELED if v is None else index[str(v)] for v in split.labels], np.int64)


def _class_names(corpus: TextCorpus) -> list[str] | None:
    """Sorted distinct string labels (train and test), or None for integer labels."""
    labels = [v for s in (corpus.train, corpus.test) if s is not None and s.labels is not None
              for v in s.labels if v is not None]
    if not labels or all(isinstance(v, int) for v in labels):
        return None
    return sorted({str(v) for v in labels})


def _check_test_classes(corpus: TextCorpus) -> None:
    """Refuse test labels that no training text has: the class count would silently grow past the teacher's."""
    if corpus.test is None or corpus.test.labels is None or corpus.train.labels is None:
        return
    seen = {v for v in corpus.train.labels if v is not None}
    unseen = sorted({v for v in corpus.test.labels if v is not None and v not in seen}, key=str)
    if unseen:
        shown = ", ".join(map(repr, unseen[:10])) + (f" and {len(unseen) - 10} more" if len(unseen) > 10 else "")
        raise DataError(f"{corpus.source}: the test split has labels that no training text has: {shown}. A class "
                        "must be learnt before it is tested: add training texts of those classes, or drop those "
                        "test texts.")


def _padded(ids: list[np.ndarray], length: int) -> np.ndarray:
    """N×length int32: each text's first `length` ids, then 0 (padding)."""
    out = np.zeros((len(ids), length), np.int32)
    for i, t in enumerate(ids):
        t = t[:length]
        out[i, : len(t)] = t
    return out


def encode_corpus(corpus: TextCorpus, tokenizer: StudentTokenizer, max_length: int | None = None,
                  cap: int | None = None) -> RawDataset:
    """Token ids (int32, N×L) and labels for every split of `corpus`; L = `max_length`, else chosen from the
    training texts (PERCENTILE, at most `cap`). The result's `text` records the encoding."""
    if len(corpus.train) == 0:
        raise DataError(f"{corpus.source}: no training texts.")
    tokens = {what: tokenizer.token_ids(list(split.texts)) for what, split in
              (("train", corpus.train), ("test", corpus.test)) if split is not None}
    counts = {what: np.array([len(t) for t in ids], np.int64) for what, ids in tokens.items()}
    chosen = "given" if max_length else "data"
    length = int(max_length) if max_length else choose_max_length(counts["train"], PERCENTILE, cap)
    _check_test_classes(corpus)
    names = _class_names(corpus)
    splits, truncation = {}, {}
    for what, split in (("train", corpus.train), ("test", corpus.test)):
        if split is None:
            continue
        truncation[what] = TruncationStats.measure(counts[what], length, PERCENTILE if chosen == "data" and
                                                   what == "train" else None).to_dict()
        splits[what] = Split(_padded(tokens[what], length), _labels(split, names))
    unknown_id = getattr(tokenizer, "unknown_id", None)
    unknown = {} if unknown_id is None else {
        what: float(np.mean(np.concatenate(ids) == unknown_id)) if sum(map(len, ids)) else 0.0
        for what, ids in tokens.items()}
    class_names = names if names is not None else list(corpus.class_names)
    encoding = TextEncoding(tokenizer, length, chosen, truncation, unknown, dict(corpus.provenance),
                            tuple(corpus.warnings))
    return RawDataset(splits["train"], splits.get("test"), corpus.source, class_names, text=encoding)
