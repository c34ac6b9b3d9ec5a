"""The teacher's own tokenizer with the vocabulary cut to the tokens the data uses (vocabulary pruning).

A teacher's vocabulary (30,522 WordPiece tokens for BERT) makes an embedding table far larger than a small
student; most of those tokens never occur in a task's data. `VocabTokenizer.fit` runs the teacher's tokenizer (a
Hugging Face `tokenizer.json`, read with the `tokenizers` library) over the training texts and keeps the tokens
seen, most frequent first, up to a cap (the vocabulary trimming of Abdaoui et al. 2020, "Load What You Need:
Smaller Versions of Multilingual BERT", and Ushio et al. 2023, "An Efficient Multilingual Language Model
Compression through Vocabulary Trimming"). Student ids: 0 = padding, 1 = unknown (the teacher's unknown token and
every token not kept), 2.. = the kept teacher tokens in order. Texts are encoded WITHOUT the teacher's special
tokens ([CLS] / [SEP]) and without its truncation or padding settings.

The saved form carries the teacher's tokenizer.json content inline, so one file beside the model is enough.
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edgedistill.data.tokenizer_base import TOKENIZERS, StudentTokenizer, check_ids
from edgedistill.data.tokenizer_flash import TokenizerTables, vocab_tables
from edgedistill.errors import ConfigError, ModelLoadError
from edgedistill.optional import require

UNKNOWN_ID = 1
FIRST_KEPT_ID = 2
_BATCH = 4096  # texts per encode_batch call: bounds the memory of the teacher's encodings on large data


def _teacher_tokenizer(spec: dict, source: str) -> Any:
    """A `tokenizers.Tokenizer` from tokenizer.json content, with its truncation and padding switched off (lengths
    are counted before truncation; the student pads itself)."""
    tokenizers = require("tokenizers")
    try:
        tok = tokenizers.Tokenizer.from_str(json.dumps(spec))
    except Exception as exc:  # the Rust side raises a bare Exception for malformed content
        raise ModelLoadError(f"{source} is not a tokenizer.json the `tokenizers` library can read: {exc}.") from None
    tok.no_truncation()
    tok.no_padding()
    return tok


def _unknown_teacher_id(spec: dict, tok: Any) -> int | None:
    """The teacher's unknown-token id (WordPiece / BPE `unk_token`, Unigram `unk_id`), or None if it has none."""
    model = spec.get("model") or {}
    if model.get("unk_id") is not None:
        return int(model["unk_id"])
    unk = model.get("unk_token")
    return tok.token_to_id(unk) if unk is not None else None


@TOKENIZERS.register("vocab", "the teacher's tokenizer, vocabulary cut to the tokens the training texts use")
class VocabTokenizer(StudentTokenizer):
    """The teacher's tokenizer with a pruned vocabulary. `teacher_ids[i]` is the teacher id of student id i + 2;
    vocab_size = 2 + len(teacher_ids). Build it with `fit`."""

    name = "vocab"
    unknown_id = UNKNOWN_ID  # the id of every token outside the kept vocabulary (text_encode counts them)

    def __init__(self, teacher_spec: dict, teacher_ids: Sequence[int], source: str = "the teacher tokenizer"):
        self._spec = teacher_spec
        self._teacher = _teacher_tokenizer(teacher_spec, source)
        self.teacher_ids = tuple(int(t) for t in teacher_ids)
        self.teacher_unknown_id = _unknown_teacher_id(teacher_spec, self._teacher)
        size = self._teacher.get_vocab_size(with_added_tokens=True)
        if any(not 0 <= t < size for t in self.teacher_ids) or len(set(self.teacher_ids)) != len(self.teacher_ids):
            raise ValueError(f"teacher_ids must be distinct ids of the teacher's {size} tokens")
        self._to_student = np.full(size, UNKNOWN_ID, np.int32)
        self._to_student[list(self.teacher_ids)] = np.arange(FIRST_KEPT_ID, self.vocab_size, dtype=np.int32)
        self._to_teacher = np.asarray(self.teacher_ids, np.int64)

    @classmethod
    def fit(cls, tokenizer_json: Path, texts: Iterable[str], max_vocab: int | None = None) -> "VocabTokenizer":
        """Keep the teacher tokens seen in `texts` by descending count (ties: lower teacher id first), at most
        `max_vocab - 2` of them so that vocab_size <= max_vocab (the embedding table's rows, padding and unknown
        included); None keeps every token seen. The teacher's unknown token is never kept: it maps to 1.
        Raises ModelLoadError (missing or unreadable tokenizer.json), ConfigError (max_vocab < 3),
        MissingDependencyError (no `tokenizers` package)."""
        if max_vocab is not None and (isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < 3):
            raise ConfigError(f"The student vocabulary cap must be at least 3 (padding, unknown and one token), got "
                              f"{max_vocab!r}.")
        path = Path(tokenizer_json)
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(f"The teacher tokenizer {path} does not exist.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"Cannot read the teacher tokenizer {path} as tokenizer.json: {exc}.") from None
        if not isinstance(spec, dict):
            raise ModelLoadError(f"{path} is not a tokenizer.json (its JSON is not an object).")
        tok = _teacher_tokenizer(spec, str(path))
        counts = np.zeros(tok.get_vocab_size(with_added_tokens=True), np.int64)
        stream = iter(texts)
        while batch := list(islice(stream, _BATCH)):
            encodings = tok.encode_batch(batch, add_special_tokens=False)
            flat = np.fromiter((i for e in encodings for i in e.ids), np.int64)
            counts += np.bincount(flat, minlength=counts.size)
        unknown = _unknown_teacher_id(spec, tok)
        if unknown is not None:
            counts[unknown] = 0
        seen = np.flatnonzero(counts)
        order = seen[np.lexsort((seen, -counts[seen]))]
        if max_vocab is not None:
            order = order[: max_vocab - FIRST_KEPT_ID]
        return cls(spec, order.tolist(), source=str(path))

    @property
    def vocab_size(self) -> int:
        return FIRST_KEPT_ID + len(self.teacher_ids)

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Student ids (int32) per text: teacher tokenization without special tokens, mapped to the kept ids. A text
        the tokenizer reduces to nothing (zero-width or control characters only) is one unknown id: a sequence of
        padding alone leaves attention nothing to attend to and its softmax undefined."""
        out: list[np.ndarray] = []
        for start in range(0, len(texts), _BATCH):
            encodings = self._teacher.encode_batch(list(texts[start:start + _BATCH]), add_special_tokens=False)
            out.extend(self._to_student[np.asarray(e.ids, np.int64)] if e.ids else np.array([UNKNOWN_ID], np.int32)
                       for e in encodings)
        return out

    def teacher_token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The teacher's own ids (int64) per text, as `token_ids` tokenizes them before the mapping to student ids:
        one teacher id per student id, position for position (a causal-LM teacher reads these)."""
        out: list[np.ndarray] = []
        for start in range(0, len(texts), _BATCH):
            encodings = self._teacher.encode_batch(list(texts[start:start + _BATCH]), add_special_tokens=False)
            out.extend(np.asarray(e.ids, np.int64) for e in encodings)
        return out

    def decode(self, ids: Any) -> list[str]:
        """Texts for an (N, T) or (T,) student id array: padding skipped, unknown (1) back to the teacher's
        unknown token (dropped if it has none), decoded by the teacher's decoder with special tokens kept, so the
        teacher re-tokenizes what the student saw. Raises ValueError for ids outside 0..vocab_size-1."""
        rows = []
        for row in check_ids(ids, self.vocab_size):
            row = row[row != self.pad_id]
            if self.teacher_unknown_id is None:
                row = row[row != UNKNOWN_ID]
            rows.append([self.teacher_unknown_id if s == UNKNOWN_ID else int(self._to_teacher[s - FIRST_KEPT_ID])
                         for s in row])
        return self._teacher.decode_batch(rows, skip_special_tokens=False)

    def tokens(self) -> list[str]:
        """The student vocabulary as strings: "[PAD]", the teacher's unknown token (or "[UNK]"), the kept tokens."""
        unk = self._teacher.id_to_token(self.teacher_unknown_id) if self.teacher_unknown_id is not None else None
        return ["[PAD]", unk or "[UNK]", *(self._teacher.id_to_token(t) for t in self.teacher_ids)]

    def device_steps(self, max_length: int | None = None, keep: str = "first") -> str:
        """What a device app does to a string (`keep`: "first" ids for a classifier; "last" for a causal LM, whose
        input is the most recent context)."""
        t = str(max_length) if max_length else "T (the model's sequence length)"
        parts = {k: (self._spec.get(k) or {}).get("type", "none") for k in ("normalizer", "pre_tokenizer", "model")}
        return (f"Run the teacher's tokenizer on the string: the `teacher_tokenizer` object of this tokenizer file is "
                f"a Hugging Face tokenizer.json (model {parts['model']}, normalizer {parts['normalizer']}, "
                f"pre-tokenizer {parts['pre_tokenizer']}); add no special tokens ([CLS] / [SEP]), truncate and pad "
                f"nothing. Map each teacher id t to the student id 2 + i where teacher_ids[i] == t, and every other id "
                f"to 1 (unknown; {len(self.teacher_ids)} of the teacher's "
                f"{self._teacher.get_vocab_size(with_added_tokens=True)} tokens are kept); a string that gives no "
                f"ids at all is the single id 1. Keep the {keep} {t} ids, "
                f"fill the rest with 0 (padding) and pass an int32 tensor of shape [1, {max_length or 'T'}].")

    def device_tables(self) -> TokenizerTables:
        """The tables a device app needs to encode as training did: the teacher's whole vocabulary as strings, its
        merges (BPE) or scores (Unigram), and the teacher -> student id map (edgedistill.data.tokenizer_flash says
        how each is counted, and why the kept tokens alone would not reproduce the training inputs)."""
        return vocab_tables(self._spec, self._teacher.get_vocab(with_added_tokens=True), self.vocab_size)

    def device_bytes(self) -> int:
        """`device_tables().total`: the flash the tokenizer's tables take beside the model file."""
        return self.device_tables().total

    def _payload(self) -> dict:
        return {"vocab_size": self.vocab_size, "teacher_ids": list(self.teacher_ids),
                "teacher_unknown_id": self.teacher_unknown_id, "teacher_tokenizer": self._spec}

    @classmethod
    def _from_payload(cls, d: dict) -> "VocabTokenizer":
        tok = cls(d["teacher_tokenizer"], d["teacher_ids"], source="the inline teacher tokenizer")
        if d.get("vocab_size", tok.vocab_size) != tok.vocab_size:
            raise ValueError(f"vocab_size {d['vocab_size']} but {len(tok.teacher_ids)} teacher ids")
        return tok
