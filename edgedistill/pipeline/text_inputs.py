"""Stage 1 for text: choose the student's tokenizer, turn the texts into token ids, and give the teachers their view.

The student tokenizes on its own terms (issue #28): UTF-8 bytes (257 ids; a microcontroller needs no tokenizer) or
the teacher's vocabulary cut to the tokens the training texts use. `auto` takes bytes on a target that runs TFLite
Micro, or when no teacher carries a tokenizer.json, and the teacher's vocabulary otherwise. Class soft targets do
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


def _teacher_tokenizer(teachers: tuple[Teacher, ...]) -> Path | None:
    for t in teachers:
        tok = getattr(t, "tokenizer", None)
        if getattr(t, "is_text", False) and tok is not None:
            return Path(tok.path)
    return None


def choose_tokenizer(config: DistillConfig, teachers: tuple[Teacher, ...], corpus: TextCorpus, target_runtime):
    """The student's tokenizer (see the module doc). Raises ConfigError for `vocab` without a teacher tokenizer."""
    choice = config.student.tokenizer
    source = _teacher_tokenizer(teachers)
    if choice == "auto":
        choice = "bytes" if target_runtime == "tflm" or source is None else "vocab"
    if choice == "bytes":
        return ByteTokenizer()
    if source is None:
        raise ConfigError("--tokenizer vocab cuts the teacher's vocabulary to the tokens the data uses, but no "
                          "teacher has a tokenizer.json (a transformers folder, or --teacher-tokenizer FILE for an "
                          "ONNX / TFLite teacher). Use --tokenizer bytes, or give the teacher's tokenizer.")
    return VocabTokenizer.fit(source, list(corpus.train.texts), config.student.max_vocab)


def encode_text(config: DistillConfig, corpus: TextCorpus, teachers: tuple[Teacher, ...],
                target_runtime: str | None) -> RawDataset:
    """Token ids for every split, the sequence length chosen from the data (or --max-length)."""
    if not any(getattr(t, "is_text", False) for t in teachers):
        names = ", ".join(f"{t.name} ({t.format})" for t in teachers)
        raise DataError(f"{corpus.source} holds texts, but the teacher ({names}) takes arrays. Give a text teacher: "
                        "a transformers model folder, or an ONNX / TFLite model with token-id inputs and its "
                        "tokenizer.json (--teacher-tokenizer).")
    tokenizer = choose_tokenizer(config, teachers, corpus, target_runtime)
    raw = encode_corpus(corpus, tokenizer, config.data.max_length, MAX_LENGTH_CAP)
    return replace(raw, text=replace(raw.text, teacher_truncation=teacher_truncation(teachers, raw)))


def teacher_truncation(teachers: tuple[Teacher, ...], raw: RawDataset) -> tuple[dict, ...]:
    """For each text teacher, how many texts of each split it reads cut at its own maximum length: the texts the
    student's ids spell (what the teacher labels), counted in the teacher's tokens. Tokenizes; runs no model."""
    texts = {what: raw.text.tokenizer.decode(split.x) for what, split in (("train", raw.train), ("test", raw.test))
             if split is not None}
    return tuple({"teacher": t.name, "max_length": t.max_length,
                  **{what: t.truncation(x).to_dict() for what, x in texts.items()}}
                 for t in teachers if getattr(t, "is_text", False))


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
