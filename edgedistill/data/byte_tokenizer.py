"""The byte-level student tokenizer: UTF-8 bytes as tokens, nothing to store and nothing to run on the device.

Byte b becomes id b + 1 (1..256), 0 is padding, so the vocabulary has 257 ids (the byte-level input of ByT5, Xue
et al. 2022, "ByT5: Towards a token-free future with pre-trained byte-to-byte models", without its special ids).
The string is encoded as it is: no Unicode normalisation, no lower-casing, so a device that sends the UTF-8 bytes
it has feeds the model exactly what it was trained on.
"""

from __future__ import annotations

import codecs
from typing import Any, Sequence

import numpy as np

from edgedistill.data.tokenizer_base import TOKENIZERS, StudentTokenizer, check_ids

_OFFSET = 1  # id = byte + 1; id 0 is padding


@TOKENIZERS.register("bytes", "UTF-8 bytes, id = byte + 1 (257 ids); needs no tokenizer on a microcontroller")
class ByteTokenizer(StudentTokenizer):
    """UTF-8 bytes, id = byte + 1, 0 = padding; vocab_size 257. The default on microcontroller targets."""

    name = "bytes"

    @property
    def vocab_size(self) -> int:
        return 256 + _OFFSET

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's UTF-8 bytes + 1, as int32 arrays (strings with lone surrogates raise UnicodeEncodeError:
        the text readers refuse them first)."""
        return [np.frombuffer(t.encode("utf-8"), np.uint8).astype(np.int32) + _OFFSET for t in texts]

    def decode(self, ids: Any) -> list[str]:
        """Texts of an (N, T) or (T,) id array (numpy or torch); padding (0) is skipped. Exactly inverts encode()
        on untruncated texts; a multi-byte character cut by truncation is dropped, and invalid UTF-8 (ids that
        encode() cannot produce) decodes to U+FFFD. Raises ValueError for ids outside 0..256."""
        out = []
        for row in check_ids(ids, self.vocab_size):
            data = (row[row != self.pad_id] - _OFFSET).astype(np.uint8).tobytes()
            # final=False holds back an incomplete sequence at the end: a character cut by truncation
            out.append(codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False))
        return out

    def device_steps(self, max_length: int | None = None) -> str:
        t = str(max_length) if max_length else "T (the model's sequence length)"
        return (f"Encode the string as UTF-8 bytes, as they are (no Unicode normalisation, no lower-casing). Keep "
                f"the first {t} bytes; the token id of byte b is b + 1 (1..256); fill the positions after the last "
                f"byte with 0 (padding). Pass the ids as an int32 tensor of shape [1, {max_length or 'T'}]. No "
                "vocabulary or tokenizer library is needed on the device.")

    def device_bytes(self) -> int:
        """0: the id of a byte is the byte + 1, computed; no table to store."""
        return 0

    def _payload(self) -> dict:
        return {"vocab_size": self.vocab_size, "byte_offset": _OFFSET}

    @classmethod
    def _from_payload(cls, d: dict) -> "ByteTokenizer":
        if d.get("byte_offset", _OFFSET) != _OFFSET or d.get("vocab_size", 257) != 257:
            raise ValueError(f"byte_offset {d.get('byte_offset')!r} / vocab_size {d.get('vocab_size')!r}; "
                             f"expected {_OFFSET} / 257")
        return cls()
