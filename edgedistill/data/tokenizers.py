"""The student's tokenizers, registered by name, and the choice of sequence length.

- "bytes" (ByteTokenizer): UTF-8 bytes, id = byte + 1, 257 ids; nothing to run on a microcontroller.
- "vocab" (VocabTokenizer): the teacher's tokenizer.json with the vocabulary cut to the tokens the data uses.

Every tokenizer encodes to `EncodedTexts` (int32 ids N x T, 0 = padding after the text, left-aligned; int64 token
counts before truncation), decodes, saves to one self-contained JSON file (`save` / `load_tokenizer`), has an
`identity()` for cache keys and says in `device_steps()` what a device app must do before invoking the model.
Importing this module does not import the `tokenizers` library; only a VocabTokenizer does.
"""

from __future__ import annotations

from pathlib import Path

from edgedistill.data.byte_tokenizer import ByteTokenizer
from edgedistill.data.sequence_length import TruncationStats, choose_max_length
from edgedistill.data.tokenizer_base import TOKENIZERS, EncodedTexts, StudentTokenizer
from edgedistill.data.vocab_tokenizer import VocabTokenizer


def load_tokenizer(path: Path) -> StudentTokenizer:
    """Any student tokenizer saved with `save(path)`. Raises ModelLoadError for a missing, unreadable, foreign
    or newer-format file."""
    return StudentTokenizer.load(path)


def tokenizer_from_dict(d: dict) -> StudentTokenizer:
    """Any student tokenizer from its `to_dict()` form. Raises ModelLoadError."""
    return StudentTokenizer.from_dict(d)


__all__ = [
    "TOKENIZERS",
    "ByteTokenizer",
    "EncodedTexts",
    "StudentTokenizer",
    "TruncationStats",
    "VocabTokenizer",
    "choose_max_length",
    "load_tokenizer",
    "tokenizer_from_dict",
]
