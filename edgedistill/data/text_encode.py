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
from edgedistill.data.text_records import LABEL_FIELD_OPTION
from edgedistill.data.tokenizer_base import StudentTokenizer
from edgedistill.errors import DataError

PERCENTILE = 99.0  # the sequence length holds this share of the training texts whole
UNKNOWN_WARN = 0.05  # warn when more of the test split's tokens than this are unknown to the student's vocabulary
# warn when a teacher reads more of the texts than this cut at its own maximum length: the student's own length
# leaves 1 % of the training texts cut by design (PERCENTILE), so a few % more is the teacher's limit showing
TEACHER_TRUNCATION_WARN = 0.02
# warn when a teacher reads more than this share of the transfer set's (non-special) tokens as its unknown token:
# texts in a script its vocabulary lacks (CJK without spaces, emoji, punctuation only) then look alike to it, and
# its soft targets are near-constant
TEACHER_UNKNOWN_WARN = 0.5


@dataclass(frozen=True)
class TextEncoding:
    """How texts became the student's input: its tokenizer, the sequence length, truncation per split."""

    tokenizer: StudentTokenizer
    max_length: int
    chosen: str  # "data" (a percentile of the training texts' token counts) or "given" (--max-length)
    truncation: dict = field(default_factory=dict)  # split -> TruncationStats.to_dict()
    unknown: dict = field(default_factory=dict)  # split -> share of its tokens outside the student's vocabulary
    # one entry per text teacher: {"teacher": name, "max_length": its limit, split: TruncationStats.to_dict()}, what
    # the teacher reads cut of the texts the student's ids spell (in the teacher's own tokens)
    teacher_truncation: tuple[dict, ...] = ()
    provenance: dict = field(default_factory=dict)  # what made the texts (TextCorpus.provenance)
    corpus_warnings: tuple[str, ...] = ()  # the reader's warnings about the texts (TextCorpus.warnings)

    def summary(self) -> dict:
        return {"tokenizer": self.tokenizer.name, "vocab_size": self.tokenizer.vocab_size,
                "max_length": self.max_length, "max_length_from": self.chosen, "truncation": self.truncation,
                "teacher_truncation": list(self.teacher_truncation), "unknown_tokens": self.unknown,
                "device_steps": self.tokenizer.device_steps(self.max_length),
                **({"provenance": self.provenance} if self.provenance else {})}

    def teacher_truncation_warning(self, limit: float = TEACHER_TRUNCATION_WARN) -> str | None:
        """One warning naming every teacher that reads more than `limit` of the texts (train and test together) cut
        at its own maximum length, or None."""
        cut = []
        for t in self.teacher_truncation:
            n = sum(t[s]["samples"] for s in self.truncation if s in t)
            k = sum(t[s]["samples_truncated"] for s in self.truncation if s in t)
            if n and k / n > limit:
                cut.append(f"{t['teacher']!r} reads at most {t['max_length']:,} tokens and {k:,} of the {n:,} texts "
                           f"({100 * k / n:.1f} %) are longer in its tokenizer")
        if not cut:
            return None
        return (f"Teacher {'; teacher '.join(cut)}: it labels only their beginnings (its max_position_embeddings or "
                "its tokenizer's model_max_length), so its soft targets miss what the rest of those texts says, while "
                f"the student reads {self.max_length:,} of its own tokens. A teacher that reads longer texts avoids "
                "it; a smaller --max-length makes the student read no more than the teacher does.")

    def teacher_unknown_warning(self, limit: float = TEACHER_UNKNOWN_WARN) -> str | None:
        """One line naming every text teacher that reads more than `limit` of the transfer set's non-special tokens
        as its unknown token ([UNK]), or None."""
        unread = [f"{t['teacher']!r} reads {100 * t['unknown_tokens'] / t['teacher_tokens']:.1f} % of the transfer "
                  f"set's tokens ({t['unknown_tokens']:,} of {t['teacher_tokens']:,}, special tokens left out) as "
                  "its unknown token" for t in self.teacher_truncation
                  if t.get("teacher_tokens") and t["unknown_tokens"] / t["teacher_tokens"] > limit]
        if not unread:
            return None
        return (f"Teacher {'; teacher '.join(unread)}: its vocabulary does not cover these texts (another script, "
                "emoji, punctuation only?), they look alike to it, and its soft targets are near-constant, so they "
                "teach the student little. A teacher whose vocabulary covers the texts avoids it.")

    def warnings(self) -> list[str]:
        """What the run's report must say about the texts: the reader's warnings, then unknown_warning's,
        teacher_truncation_warning's and teacher_unknown_warning's."""
        return [*self.corpus_warnings, *filter(None, [self.unknown_warning(), self.teacher_truncation_warning(),
                                                      self.teacher_unknown_warning()])]

    def unknown_warning(self, limit: float = UNKNOWN_WARN) -> str | None:
        """A warning when more than `limit` of the test split's tokens are unknown to the student's vocabulary."""
        share = self.unknown.get("test")
        if share is None or share <= limit:
            return None
        return (f"{100 * share:.1f} % of the test split's tokens are outside the student's vocabulary (the "
                f"teacher's, cut to the {self.tokenizer.vocab_size - 2:,} tokens the training texts use) and read as "
                f"unknown by the student and the teacher alike, which costs both accuracy. More training text, a "
                f"larger student.max_vocab, or --tokenizer bytes (no unknown tokens) avoids it.")


def _labels(split: TextSplit, names: list[str] | None, where: str) -> np.ndarray | None:
    if split.labels is None:
        return None
    if names is None:  # integer labels, none negative: the label map (data/labels.py) takes them as they are
        text = next((v for v in split.labels if isinstance(v, str)), None)
        if text is not None:
            raise DataError(f"{where}: the label {text!r} is a string, but the labels of --data are integers; a "
                            "transfer set's labels must be of the same kind (or empty: unlabelled texts).")
        return np.array([UNLABELED if v is None else int(v) for v in split.labels], np.int64)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(v) for v in split.labels if v is not None and str(v) not in index})
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise DataError(f"{where}: the labels {shown} are not among the data's classes "
                        f"({', '.join(map(repr, names[:12]))}{', ...' if len(names) > 12 else ''}); a transfer set's "
                        "labels must name the classes of --data (or be empty: unlabelled texts).")
    return np.array([UNLABELED if v is None else index[str(v)] for v in split.labels], np.int64)


def _class_names(corpus: TextCorpus) -> list[str] | None:
    """Sorted distinct string labels (train and test), or None for integer labels. Integer labels with a negative
    one among them are names too (sorted as numbers: -1, 1 for a sentiment file): a text marks an unlabelled sample
    with a null / empty label, so -1 is a class here, not the arrays' marker of an unlabelled sample."""
    labels = [v for s in (corpus.train, corpus.test) if s is not None and s.labels is not None
              for v in s.labels if v is not None]
    if not labels:
        return None
    if all(isinstance(v, int) for v in labels):
        return [str(v) for v in sorted(set(labels))] if min(labels) < 0 else None
    return sorted({str(v) for v in labels})


def _label_source(corpus: TextCorpus) -> str:
    return f"the field `{corpus.label_field}`" if corpus.label_field else "the class folders"


def check_labels(corpus: TextCorpus) -> None:
    """Refuse, in the text data's own terms (its label field, its lines), texts that cannot train and test a
    classifier: no labelled training text, an unlabelled test file, or a single class. Raises DataError."""
    fields = f" Its lines have the fields {', '.join(corpus.fields)}." if corpus.fields else ""
    hint = f"Name the field that holds the labels with {LABEL_FIELD_OPTION}" if corpus.label_field else \
        "Put the labelled texts in one sub-folder per class"
    if corpus.train.num_labelled == 0:
        raise DataError(f"{corpus.source}: none of its {len(corpus.train):,} training texts has a label in "
                        f"{_label_source(corpus)}; labelled texts are needed for validation and testing.{fields} "
                        f"{hint}, or give these texts as --transfer (unlabelled texts carry the teacher's soft "
                        "targets) beside labelled --data.")
    if corpus.test is not None and corpus.test.num_labelled == 0:
        raise DataError(f"{corpus.source}: none of the test file's {len(corpus.test):,} texts has a label in "
                        f"{_label_source(corpus)}; the test split scores every model and must be labelled. Label "
                        "the test texts, or remove the test file (a share of the training texts is then held out).")
    labels = {v for s in (corpus.train, corpus.test) if s is not None and s.labels is not None
              for v in s.labels if v is not None}
    if len(labels) != 1:
        return
    (only,) = labels
    if corpus.label_field:
        raise DataError(f"{corpus.source}: every labelled text has the same label, {only!r}, in "
                        f"{_label_source(corpus)}; a classifier needs at least two classes. Check that this field "
                        f"holds each text's class, or name the one that does with {LABEL_FIELD_OPTION}.")
    name = corpus.class_names[only] if isinstance(only, int) and only < len(corpus.class_names) else only
    raise DataError(f"{corpus.source}: every labelled text is in the class folder {name!r}; a classifier needs at "
                    "least two classes: add a sub-folder of .txt files for each other class.")


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
                  cap: int | None = None, classes: list[str] | None = None) -> RawDataset:
    """Token ids (int32, N×L) and labels for every split of `corpus`; L = `max_length`, else chosen from the
    training texts (PERCENTILE, at most `cap`). The result's `text` records the encoding.

    `classes`: for a --transfer set, the class names of the data it joins (RawDataset.class_names), which its
    labels are indexed by; empty: that data has integer labels, taken as they are. None: the corpus is the data
    itself (checked by check_labels). Raises DataError for labels that cannot train a classifier, test labels no
    training text has, or transfer labels that are not the data's classes."""
    if len(corpus.train) == 0:
        raise DataError(f"{corpus.source}: no training texts.")
    if classes is None:
        check_labels(corpus)
    tokens = {what: tokenizer.token_ids(list(split.texts)) for what, split in
              (("train", corpus.train), ("test", corpus.test)) if split is not None}
    counts = {what: np.array([len(t) for t in ids], np.int64) for what, ids in tokens.items()}
    chosen = "given" if max_length else "data"
    length = int(max_length) if max_length else choose_max_length(counts["train"], PERCENTILE, cap)
    _check_test_classes(corpus)
    names = _class_names(corpus) if classes is None else list(classes) or None
    splits, truncation = {}, {}
    for what, split in (("train", corpus.train), ("test", corpus.test)):
        if split is None:
            continue
        truncation[what] = TruncationStats.measure(counts[what], length, PERCENTILE if chosen == "data" and
                                                   what == "train" else None).to_dict()
        splits[what] = Split(_padded(tokens[what], length), _labels(split, names, corpus.source))
    unknown_id = getattr(tokenizer, "unknown_id", None)
    unknown = {} if unknown_id is None else {
        what: float(np.mean(np.concatenate(ids) == unknown_id)) if sum(map(len, ids)) else 0.0
        for what, ids in tokens.items()}
    class_names = names if names is not None else list(corpus.class_names)
    encoding = TextEncoding(tokenizer, length, chosen, truncation, unknown, provenance=dict(corpus.provenance),
                            corpus_warnings=tuple(corpus.warnings))
    return RawDataset(splits["train"], splits.get("test"), corpus.source, class_names, text=encoding)
