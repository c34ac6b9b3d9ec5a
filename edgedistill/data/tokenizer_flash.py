"""The flash a device tokenizer's tables take: what `StudentTokenizer.device_bytes()` counts for the teacher's
vocabulary (`--tokenizer vocab`), as an estimate of compact C tables, not the size of tokenizer.json.

To reproduce the training inputs exactly, a device app runs the TEACHER's tokenizer algorithm over the teacher's
FULL vocabulary and only then maps teacher ids to student ids (0 pad, 1 unknown, 2.. kept); the kept tokens alone
are not enough. WordPiece's greedy longest match shows why: say training kept `play` and `##er` (seen in "play" and
"worker") but never saw "player", which the teacher's vocabulary holds as one token. On the device, "player" must
become the teacher's `player` -> student id 1 (unknown), as training would have encoded it; a tokenizer that knew only
the kept tokens would match `play` + `##er` instead and feed the model ids it never saw for that word. BPE's merges
pass through intermediate tokens that were never kept, and Unigram's best segmentation weighs every piece's score,
so all three need the whole table.

Serialisation counted (bytes, all little-endian, no padding between entries):

- strings: every token of the teacher's vocabulary (added tokens such as [CLS] included), as its UTF-8 bytes in
  tokenizer.json's spelling (`##ing`, byte-level `Ġthe`) plus one length byte (two for a token of 256 bytes or more);
- merges (BPE): each merge as two ids of `id_width` bytes (the ids of its left and right parts);
- scores (Unigram): one float32 log-probability per piece;
- id map: one student id of `student_id_width` bytes per teacher id (teacher id -> student id by direct indexing).

An id is 2 bytes (uint16) while the vocabulary has at most 65,536 entries, else 4. Not counted: the tokenizer's
code, the Unicode tables a normalizer uses (lower-casing, accent stripping: firmware libraries), any index a faster
lookup would add (a hash of the strings): the figure is a floor for the tables, not an upper bound of an app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

_UINT16_IDS = 1 << 16


def id_width(count: int) -> int:
    """Bytes per id for a table of `count` ids: 2 (uint16) up to 65,536 ids, else 4 (uint32)."""
    return 2 if count <= _UINT16_IDS else 4


def string_bytes(tokens: Iterable[str]) -> int:
    """Each token's UTF-8 bytes plus its length prefix: one byte, two for a token of 256 bytes or more."""
    total = 0
    for t in tokens:
        n = len(t.encode("utf-8"))
        total += n + (1 if n < 256 else 2)
    return total


@dataclass(frozen=True)
class TokenizerTables:
    """The tables a device tokenizer reads, in bytes (module doc: how each is serialised). `total` is what flash
    holds beside the model file."""

    strings: int = 0
    merges: int = 0
    scores: int = 0
    id_map: int = 0

    @property
    def total(self) -> int:
        return self.strings + self.merges + self.scores + self.id_map


def vocab_tables(spec: dict, vocab: dict[str, int], student_vocab_size: int) -> TokenizerTables:
    """The tables of the teacher's tokenizer (`spec`: tokenizer.json's content; `vocab`: its token -> id over the
    whole vocabulary, added tokens included) mapped to a student vocabulary of `student_vocab_size` ids. The model
    type (spec["model"]["type"]: WordPiece, BPE, Unigram, WordLevel) decides which tables there are; a model with no
    "type" is read as its fields say (merges -> BPE, a list vocabulary -> Unigram)."""
    model = spec.get("model") or {}
    kind = model.get("type") or ("BPE" if "merges" in model else "Unigram" if isinstance(model.get("vocab"), list)
                                 else "WordPiece")
    n_teacher = max(len(vocab), max(vocab.values(), default=-1) + 1)
    merges = len(model.get("merges") or ()) * 2 * id_width(n_teacher) if kind == "BPE" else 0
    scores = len(model.get("vocab") or ()) * 4 if kind == "Unigram" else 0
    return TokenizerTables(strings=string_bytes(vocab), merges=merges, scores=scores,
                           id_map=n_teacher * id_width(student_vocab_size))
