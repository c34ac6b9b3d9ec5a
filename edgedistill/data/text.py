"""Text data before tokenization: what every text reader returns.

A text sample is a Python string; its label is the data's own label (a string or an integer) or None for an
unlabelled sample, which joins the transfer set only (as y = -1 does for arrays). The student's tokenizer
(edgedistill.data.tokenizers) turns texts into the int32 token ids the rest of the pipeline carries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TextSplit:
    """`texts[i]` with label `labels[i]` (str, int or None = unlabelled). `labels is None`: no sample is labelled."""

    texts: tuple[str, ...]
    labels: tuple[str | int | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labelled(self) -> int:
        """How many samples carry a label."""
        return 0 if self.labels is None else sum(label is not None for label in self.labels)


@dataclass(frozen=True)
class TextCorpus:
    """A text data set as read: training texts, the data's own test split if it has one, class names (empty: the
    sorted distinct labels name the classes), what made the texts where a reader knows it (`provenance`, e.g. the
    versions of the packages a built-in corpus is read from; recorded in the run's data summary) and the reader's
    warnings about them (each one paragraph; the run's report repeats them). `label_field`: the JSON field / CSV
    column the labels were read from (None: labels from class folders or a built-in); `fields`: the fields the file
    has, for messages."""

    train: TextSplit
    test: TextSplit | None
    source: str
    class_names: list[str] = field(default_factory=list)
    label_field: str | None = None
    fields: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def digest(self) -> str:
        """SHA-256 (hex) of the texts and labels of both splits, in order: equal digests, the same corpus."""
        splits = [[list(s.texts), None if s.labels is None else list(s.labels)] if s is not None else None
                  for s in (self.train, self.test)]
        return hashlib.sha256(json.dumps(splits, ensure_ascii=False).encode("utf-8")).hexdigest()
