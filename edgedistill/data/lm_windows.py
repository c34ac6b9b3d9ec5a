"""Causal language modelling data: documents -> fixed-length token windows, split by document.

A causal LM student reads a fixed context window of L token ids and predicts, at every position t, the token that
follows it. Each document is tokenized once (the student tokenizer's `token_ids`, no padding, no truncation) and cut
into non-overlapping windows of L *predicted positions*:

    document tokens d_0 .. d_{n-1}   (n >= 2; a shorter document has nothing to predict and is dropped)
    window w (w = 0, 1, ...):  ids[t]     = d_{wL + t}         for wL + t     <= n - 2, else 0 (padding)
                               targets[t] = d_{wL + t + 1}     for wL + t + 1 <= n - 1, else IGNORE

so every token after a document's first is a target exactly once (a perplexity over the windows counts each token
once), a window never mixes two documents, and the padding after a document's end sits *after* its real tokens,
where a causal mask keeps it from changing any real position. The first window of a document predicts its second
token from one token of context, as a decoder without a beginning-of-text token does; a window's first position
sees no context from the window before it (the fixed-window model a device runs, not a sliding one).

The split is drawn over documents, never over windows (a document's windows all land in one split, so no test text
was seen in training, even in part): a seeded permutation of the documents that have a window (numpy's
`default_rng(seed).permutation`), the first `round(test_fraction · D)` of it to test, the next
`round(val_fraction · D)` to validation, the rest to train; a non-zero fraction gets at least one document. With
`test_documents` given (a corpus that ships its own test file), those are the test split and validation is drawn
from the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgedistill.data.tokenizer_base import StudentTokenizer
from edgedistill.errors import ConfigError, DataError

IGNORE = -1  # the target of a position with no next token (padding after a document's end)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TokenWindows:
    """One split's windows. `ids`: int32 (W, L), the tokens the model reads, 0 (padding) after a document's end.
    `targets`: int64 (W, L), the next token of each position, IGNORE (-1) where there is none. `doc`: int64 (W,),
    the index (in the corpus's order) of the document each window came from."""

    ids: np.ndarray
    targets: np.ndarray
    doc: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def tokens(self) -> int:
        """The number of predicted positions (targets that are not IGNORE)."""
        return int((self.targets != IGNORE).sum())

    @property
    def documents(self) -> np.ndarray:
        """The sorted indices of the documents this split holds."""
        return np.unique(self.doc)


@dataclass(frozen=True)
class LMSplits:
    """Train / validation / test windows of one corpus. `dropped`: indices of the documents with fewer than two
    tokens (nothing to predict), in no split. `context`: L; `seed`: the split's seed."""

    train: TokenWindows
    val: TokenWindows
    test: TokenWindows
    context: int
    seed: int
    dropped: tuple[int, ...]

    def split(self, name: str) -> TokenWindows:
        return getattr(self, name)

    def sizes(self) -> dict:
        """{split: {"documents", "windows", "tokens"}} for reports."""
        return {s: {"documents": int(self.split(s).documents.size), "windows": len(self.split(s)),
                    "tokens": self.split(s).tokens} for s in SPLITS}


def document_windows(tokens: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """One document's token ids (n,) -> (ids int32 (W, L), targets int64 (W, L)) as in the module doc; W = ⌈(n − 1)
    / L⌉ (0 for n < 2)."""
    tokens = np.asarray(tokens, np.int64)
    predicted = max(len(tokens) - 1, 0)
    count = -(-predicted // context)
    ids = np.zeros((count, context), np.int32)
    targets = np.full((count, context), IGNORE, np.int64)
    flat_ids, flat_targets = ids.reshape(-1), targets.reshape(-1)
    flat_ids[:predicted] = tokens[:-1] if predicted else []
    flat_targets[:predicted] = tokens[1:]
    return ids, targets


def split_documents(count: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Positions 0..count-1 assigned to {"train", "val", "test"} (sorted int64 arrays) by a seeded permutation (module
    doc). Raises ConfigError for fractions outside [0, 1) or summing to 1 or more, DataError when the documents
    are too few to give every split that is asked for a document and train at least one."""
    for name, f in (("validation", val_fraction), ("test", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ConfigError(f"The {name} fraction must lie in [0, 1), got {f!r}.")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(f"The validation and test fractions ({val_fraction:g} + {test_fraction:g}) leave no "
                          "documents to train on; their sum must stay below 1.")
    n_test = max(int(round(test_fraction * count)), 1 if test_fraction > 0 else 0)
    n_val = max(int(round(val_fraction * count)), 1 if val_fraction > 0 else 0)
    if n_test + n_val >= count:
        raise DataError(f"The corpus has {count} document(s) with at least two tokens; a split by document needs "
                        f"{n_test + n_val + 1} or more (test {n_test}, validation {n_val}, train at least 1). Give "
                        "more documents (one a line, or one a file), or smaller fractions.")
    order = np.random.default_rng(seed).permutation(count)
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {k: np.sort(v).astype(np.int64) for k, v in parts.items()}


def _windows_of(per_doc: dict[int, tuple[np.ndarray, np.ndarray]], docs: np.ndarray, context: int) -> TokenWindows:
    chosen = [(d, *per_doc[int(d)]) for d in docs]
    if not chosen:
        return TokenWindows(np.zeros((0, context), np.int32), np.zeros((0, context), np.int64),
                            np.zeros(0, np.int64))
    return TokenWindows(np.concatenate([c[1] for c in chosen]), np.concatenate([c[2] for c in chosen]),
                        np.concatenate([np.full(len(c[1]), c[0], np.int64) for c in chosen]))


def lm_windows(documents: Sequence[str], tokenizer: StudentTokenizer, context: int, *, val_fraction: float = 0.1,
               test_fraction: float = 0.1, seed: int = 0,
               test_documents: Sequence[str] | None = None) -> LMSplits:
    """Tokenize `documents` and cut them into windows of `context` positions, split by document (module doc).

    Document indices in the result count `documents` first, then `test_documents` (when given: the test split is
    exactly those, `test_fraction` is not used, and validation is drawn from `documents`). Raises ConfigError for a
    context below 1, DataError when the tokenizer gives the padding id 0 to a real token (it would be read as
    padding) or when too few documents have two tokens or more (split_documents)."""
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1:
        raise ConfigError(f"The context window must be a positive number of tokens, got {context!r}.")
    docs = list(documents) + list(test_documents or [])
    rows = tokenizer.token_ids(docs)
    per_doc: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    dropped = []
    for i, row in enumerate(rows):
        if np.any(np.asarray(row) == tokenizer.pad_id):
            raise DataError(f"The tokenizer {tokenizer.name!r} gives document {i} the padding id "
                            f"{tokenizer.pad_id} for a real token; a causal LM would read it as padding. Use a "
                            "student tokenizer whose real tokens have ids from 1.")
        if len(row) < 2:
            dropped.append(i)
        else:
            per_doc[i] = document_windows(row, int(context))
    kept = np.array(sorted(per_doc), np.int64)
    if test_documents is None:
        parts = {k: kept[v] for k, v in split_documents(len(kept), val_fraction, test_fraction, seed).items()}
    else:
        own = kept[kept < len(documents)]
        test = kept[kept >= len(documents)]
        if test.size == 0:
            raise DataError("None of the test documents has two tokens or more: the test split would be empty.")
        parts = {k: own[v] for k, v in split_documents(len(own), val_fraction, 0.0, seed).items()}
        parts["test"] = test
    return LMSplits(*(_windows_of(per_doc, parts[s], int(context)) for s in SPLITS), context=int(context),
                    seed=int(seed), dropped=tuple(dropped))
