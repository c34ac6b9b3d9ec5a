"""What every student tokenizer shares: the encoded form, the JSON file beside the model, the identity, the registry.

A student tokenizer turns strings into the int32 token ids the student reads: a row per text, left-aligned,
0 = padding after the last token. Its saved form is one self-contained JSON file (`{"tokenizer": NAME,
"format_version": 1, ...}`) written beside the model files, so a device app or a later run reproduces the exact
inputs the model was trained on.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from edgedistill.errors import ConfigError, ModelLoadError
from edgedistill.registry import Registry
from edgedistill.util import write_json

FORMAT_VERSION = 1
TOKENIZERS: Registry[type["StudentTokenizer"]] = Registry("tokenizer")


@dataclass(frozen=True)
class EncodedTexts:
    """`ids`: int32 (N, max_length), row i holds text i's first `max_length` token ids, then 0 (padding).
    `lengths`: int64 (N,), each text's token count BEFORE truncation (so `lengths > max_length` marks the
    truncated ones)."""

    ids: np.ndarray
    lengths: np.ndarray

    @property
    def max_length(self) -> int:
        return int(self.ids.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class StudentTokenizer(ABC):
    """Base class: subclasses give `token_ids` (untruncated ids per text), `decode`, `vocab_size`, `to_dict` /
    `_from_dict`, `device_steps` and `device_bytes`; encoding to a padded array, saving, loading and identity are
    shared."""

    name: ClassVar[str]
    pad_id: ClassVar[int] = 0

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, padding included: the student's embedding table has this many rows."""

    @abstractmethod
    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's token ids (integer array, no padding, no truncation)."""

    @abstractmethod
    def decode(self, ids: Any) -> list[str]:
        """Texts for a (N, T) (or (T,)) array of ids; padding is ignored."""

    @abstractmethod
    def device_steps(self, max_length: int | None = None) -> str:
        """What a device app must do to turn a string into the model's int32 input of shape [1, max_length]."""

    @abstractmethod
    def device_bytes(self) -> int:
        """Bytes of the tables a device tokenizer reads (0 where it needs none): they sit in flash beside the model
        file, so every flash figure (the search's fit, the gate's flash check, the report) counts model file + this
        (edgedistill.budget.flash_use). An estimate of compact C tables, not the size of the saved JSON file;
        edgedistill.data.tokenizer_flash states the serialisation."""

    @abstractmethod
    def _payload(self) -> dict:
        """The subclass's own JSON-able fields (to_dict adds the name and the format version)."""

    @classmethod
    @abstractmethod
    def _from_payload(cls, d: dict) -> "StudentTokenizer":
        """Rebuild from `_payload()`'s dict; raise KeyError / TypeError / ValueError on a malformed one."""

    def encode(self, texts: Sequence[str], max_length: int) -> EncodedTexts:
        """Token ids as int32 (len(texts), max_length), left-aligned, 0 after the text; lengths as int64 (N,),
        counted before truncation. Raises ConfigError for max_length < 1."""
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
            raise ConfigError(f"The sequence length must be a positive number of tokens, got {max_length!r}.")
        texts = [texts] if isinstance(texts, str) else list(texts)
        rows = self.token_ids(texts)
        ids = np.zeros((len(rows), int(max_length)), np.int32)
        lengths = np.zeros(len(rows), np.int64)
        for i, row in enumerate(rows):
            lengths[i] = len(row)
            ids[i, : min(len(row), max_length)] = row[:max_length]
        return EncodedTexts(ids, lengths)

    def to_dict(self) -> dict:
        """JSON-able form: {"tokenizer": name, "format_version": 1, ...the tokenizer's own fields}."""
        return {"tokenizer": self.name, "format_version": FORMAT_VERSION, **self._payload()}

    @classmethod
    def from_dict(cls, d: dict, source: str = "the tokenizer description") -> "StudentTokenizer":
        """Rebuild any registered tokenizer from `to_dict()`'s form (called on a subclass, the kind must match).
        Raises ModelLoadError for an unknown kind, another format version or missing fields."""
        if not isinstance(d, dict) or "tokenizer" not in d:
            raise ModelLoadError(f"{source} is not a student tokenizer: expected a JSON object with a "
                                 f"\"tokenizer\" field ({', '.join(TOKENIZERS.names())}).")
        _register_builtin_tokenizers()
        kind = d["tokenizer"]
        if not isinstance(kind, str) or kind not in TOKENIZERS:
            raise ModelLoadError(f"{source} names the tokenizer {kind!r}, which this edgedistill does not know; "
                                 f"known: {', '.join(TOKENIZERS.names())}.")
        klass = TOKENIZERS.get(kind)
        if not issubclass(klass, cls):
            raise ModelLoadError(f"{source} holds a {kind!r} tokenizer, not a {cls.name!r} one.")
        if d.get("format_version") != FORMAT_VERSION:
            raise ModelLoadError(f"{source} has tokenizer format version {d.get('format_version')!r}; this "
                                 f"edgedistill reads version {FORMAT_VERSION}.")
        try:
            return klass._from_payload(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{source}: the {kind!r} tokenizer description is incomplete or malformed "
                                 f"({type(exc).__name__}: {exc}).") from None

    def identity(self) -> str:
        """`NAME-<16 hex digits>`: a hash of the canonical JSON form; it changes whenever the tokenizer does (for
        cache keys of encoded data)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return f"{self.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"

    def save(self, path: Path) -> Path:
        """Write the JSON form to `path` atomically (edgedistill.util.write_json: never half-written)."""
        write_json(Path(path), self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "StudentTokenizer":
        """Read a file written by `save`. Raises ModelLoadError for a missing, unreadable or foreign file."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(f"Tokenizer file {path} does not exist.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"Cannot read the tokenizer file {path}: {exc}.") from None
        return cls.from_dict(d, source=str(path))


def _register_builtin_tokenizers() -> None:
    """Import the modules that register the built-in tokenizers: a fresh process that imports only this module
    (`StudentTokenizer.load(...)`) would otherwise find the registry empty. Imported here, not at the top, because
    those modules import this one; neither imports the `tokenizers` library."""
    import edgedistill.data.tokenizers  # noqa: F401  (registers "bytes" and "vocab")


def check_ids(ids: Any, vocab_size: int) -> np.ndarray:
    """`ids` as an int64 (N, T) array (a (T,) row becomes (1, T)); ValueError for ids outside 0..vocab_size-1."""
    arr = np.asarray(ids.detach().cpu() if hasattr(ids, "detach") else ids)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"token ids must be an integer (N, T) array, got {arr.dtype} of shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise ValueError(f"token ids must lie in 0..{vocab_size - 1}, got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)
