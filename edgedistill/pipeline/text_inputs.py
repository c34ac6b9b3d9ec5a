"""Stage 1 for text: choose the student's tokenizer, turn the texts into token ids, and give the teachers their view.

The student tokenizes on its own terms (issue #28): UTF-8 bytes (257 ids; a microcontroller needs no tokenizer) or
the teacher's vocabulary cut to the tokens the training texts use. `auto` (`auto_tokenizer`) follows what the texts
are: bytes for single words and short strings, where the evidence is inside the word, and the teacher's vocabulary
for sentences and passages when a teacher carries a tokenizer.json; with the vocabulary the student family is the
bag of embeddings (students/text_families.py), with bytes the textcnn. Class soft targets do
not depend on the tokenizer, so the teacher reads the same samples decoded back to text by the student's tokenizer
(`teacher_view`): it labels exactly what the student sees, truncation included.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edgedistill.config import DistillConfig
from edgedistill.data.arrays import RawDataset
from edgedistill.data.text import TextCorpus
from edgedistill.data.text_encode import encode_corpus
from edgedistill.data.tokenizers import ByteTokenizer, VocabTokenizer
from edgedistill.errors import ConfigError, DataError
from edgedistill.teachers import Teacher

MAX_LENGTH_CAP = 256  # tokens: the longest sequence the data may choose (--max-length sets any)
# `auto` reads words (the teacher's vocabulary) when the median training text has at least this many words.
# Measured at cortex-m4's budget, one seed (docs/text.md): builtin:docs (paragraphs, median 30 words) 76.5 % int8
# with the vocabulary and the bag of embeddings against 56.7 % with bytes and the textcnn (teacher 76.4 %);
# builtin:langid (one word each) 80.7 % with the vocabulary against 85.7 % with bytes (hard labels; teacher 84.7 %).
VOCAB_FROM_WORDS = 3


def _teacher_tokenizer(teachers: tuple[Teacher, ...]) -> Path | None:
    for t in teachers:
        tok = getattr(t, "tokenizer", None)
        if getattr(t, "is_text", False) and tok is not None:
            return Path(tok.path)
    return None


def median_words(texts) -> float:
    """The median number of whitespace-separated words per text (0 for no texts)."""
    return float(np.median([len(t.split()) for t in texts])) if len(texts) else 0.0


def auto_tokenizer(corpus: TextCorpus, has_teacher_tokenizer: bool) -> str:
    """`--tokenizer auto`: "vocab" when a teacher tokenizer exists and the median training text has at least
    VOCAB_FROM_WORDS words (sentences, passages: which words occur decides), else "bytes" (words, names, codes:
    the spelling decides, and nothing needs tokenizing on the device). On every target alike: a microcontroller
    app that runs the cut vocabulary's WordPiece (the report's device steps) reads passages far better than bytes."""
    return "vocab" if has_teacher_tokenizer and median_words(corpus.train.texts) >= VOCAB_FROM_WORDS else "bytes"


def choose_tokenizer(config: DistillConfig, teachers: tuple[Teacher, ...], corpus: TextCorpus):
    """The student's tokenizer (see the module doc). Raises ConfigError for `vocab` without a teacher tokenizer."""
    choice = config.student.tokenizer
    source = _teacher_tokenizer(teachers)
    if choice == "auto":
        choice = auto_tokenizer(corpus, source is not None)
    if choice == "bytes":
        return ByteTokenizer()
    if source is None:
        raise ConfigError("--tokenizer vocab cuts the teacher's vocabulary to the tokens the data uses, but no "
                          "teacher has a tokenizer.json (a transformers folder, or --teacher-tokenizer FILE for an "
                          "ONNX / TFLite teacher). Use --tokenizer bytes, or give the teacher's tokenizer.")
    return VocabTokenizer.fit(source, list(corpus.train.texts), config.student.max_vocab)


def encode_text(config: DistillConfig, corpus: TextCorpus, teachers: tuple[Teacher, ...]) -> RawDataset:
    """Token ids for every split, the sequence length chosen from the data (or --max-length)."""
    if not any(getattr(t, "is_text", False) for t in teachers):
        names = ", ".join(f"{t.name} ({t.format})" for t in teachers)
        raise DataError(f"{corpus.source} holds texts, but the teacher ({names}) takes arrays. Give a text teacher: "
                        "a transformers model folder, or an ONNX / TFLite model with token-id inputs and its "
                        "tokenizer.json (--teacher-tokenizer).")
    tokenizer = choose_tokenizer(config, teachers, corpus)
    raw = encode_corpus(corpus, tokenizer, config.data.max_length, MAX_LENGTH_CAP)
    return replace(raw, text=replace(raw.text, teacher_truncation=teacher_truncation(teachers, raw)))


def teacher_truncation(teachers: tuple[Teacher, ...], raw: RawDataset) -> tuple[dict, ...]:
    """For each text teacher, how many texts of each split it reads cut at its own maximum length: the texts the
    student's ids spell (what the teacher labels), counted in the teacher's tokens; and how many of the transfer
    set's (the training split's) non-special tokens it reads as its unknown token (`unknown_tokens` of
    `teacher_tokens`). Tokenizes; runs no model."""
    texts = {what: raw.text.tokenizer.decode(split.x) for what, split in (("train", raw.train), ("test", raw.test))
             if split is not None}
    out = []
    for t in teachers:
        if getattr(t, "is_text", False):
            unknown, tokens = t.unknown_counts(texts.get("train", []))
            out.append({"teacher": t.name, "max_length": t.max_length, "unknown_tokens": unknown,
                        "teacher_tokens": tokens, "window": _window(t, texts.get("train")),
                        **{what: t.truncation(x).to_dict() for what, x in texts.items()}})
    return tuple(out)


def _window(teacher, texts) -> int | None:
    """The teacher's sequence length for these texts, chosen as the student's is (the 99th percentile of the training
    texts' token counts, edgedistill.data.sequence_length), in its own tokens and at most its max_length: what the
    teacher's latency is timed at (pipeline/measure.py), so each model reads the texts at the length it needs."""
    if not texts:
        return None
    from edgedistill.data.sequence_length import choose_max_length

    return choose_max_length(teacher.tokenizer.counts(list(texts)), cap=int(teacher.max_length), floor=1)


MASKED_BYTE = "\x00"  # what a byte masked by a text view (edgedistill.data.text_augment, mask id 1) decodes to


def teacher_view(splits):
    """For text data: token ids (N×L) -> the texts they spell, for the teachers; None for arrays.

    A byte hidden by a text view (`--augment token_dropout / span_mask`) is left out of the teacher's text: a
    WordPiece teacher reads a word holding a character it does not know as one [UNK] (the built-in langid BERT reads
    'h\x00us' as [UNK], 'hus' as hu ##s), so a NUL would hide the whole word from the teacher instead of one byte
    (measured in docs/text_kd.md: every single-word view became [UNK] and the student learned nothing). Text data
    holds no NUL, so this changes only masked views. A masked vocabulary token decodes to the teacher's [UNK]."""
    if splits.text is None:
        return None
    decode = splits.text.tokenizer.decode
    if splits.text.tokenizer.name != "bytes":
        return lambda ids: decode(np.asarray(ids))
    return lambda ids: [t.replace(MASKED_BYTE, "") for t in decode(np.asarray(ids))]


def teacher_input_tag(spec_input: str, splits) -> str:
    """The logit cache's tag for what the teacher reads: its input mode, and for text the student tokenizer's
    identity (decoding depends on it)."""
    return spec_input if splits.text is None else f"text:{splits.text.tokenizer.identity()}"
