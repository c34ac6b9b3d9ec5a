"""Text teachers: `logits(texts) -> torch.Tensor (N, K)` over Python strings, tokenized by the teacher's own tokenizer.

Class soft targets do not depend on how the student tokenizes, so the pipeline hands a text teacher strings
(decoded from the student's tokens) and caches its logits under `identity()`, which covers the model's files and
the tokenizer file. The tokenizer is a Hugging Face `tokenizer.json` read with the `tokenizers` library: special
tokens as its post-processor adds them, truncation at the model's maximum positions, padding to the batch's
longest sequence (or to a model's fixed sequence length), and the attention mask that hides the padding.

Formats: `TransformersTeacher` (teachers/text_transformers.py) and `OnnxTextTeacher` / `TFLiteTextTeacher`
(teachers/text_runtime.py).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from edgedistill.data.sequence_length import TruncationStats
from edgedistill.errors import DataError, ModelLoadError
from edgedistill.optional import require
from edgedistill.teachers.base import Teacher
from edgedistill.teachers.contract import OutputInfo, resolve_contract, to_logits

DEFAULT_MAX_LENGTH = 512  # BERT's positions: the fallback when neither model nor tokenizer states a maximum
_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<PAD>")


@dataclass(frozen=True)
class Encoded:
    """A tokenized batch: int64 arrays N×T (T: the longest sequence, or the model's fixed length)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray  # 1 = token, 0 = padding
    token_type_ids: np.ndarray
    truncated: int  # how many texts lost tokens to truncation


@dataclass(frozen=True)
class TextFeatures:
    """What feature terms read from a text teacher, for one batch of N texts padded to T tokens.

    hidden_states: the embedding output and every layer's output, each float32 N×T×H (the cosine loss between
        hidden states of DistilBERT, Sanh et al. 2019).
    attentions: every layer's attention probabilities (softmax over the keys), each float32 N×heads×T×T (the
        last-layer self-attention transfer of MiniLM, Wang et al. 2020).
    attention_mask: int64 N×T, 1 = token, 0 = padding (padded positions must be left out of both losses)."""

    hidden_states: tuple[torch.Tensor, ...]
    attentions: tuple[torch.Tensor, ...]
    attention_mask: torch.Tensor


class TextTokenizer:
    """A `tokenizer.json` as the teacher's model needs it: `encode(texts) -> Encoded`."""

    def __init__(self, path: Path, max_length: int, pad_id: int | None = None):
        tokenizers = require("tokenizers")
        try:
            self.tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception for unreadable JSON or unknown models
            raise ModelLoadError(f"{path} is not a readable tokenizer.json: {str(exc).splitlines()[0]}") from None
        self.path, self.max_length = path, int(max_length)
        self.pad_id = pad_id if pad_id is not None else self._pad_id()
        self.tok.no_padding()
        self._whole = type(self.tok).from_str(self.tok.to_str())  # the same tokenizer, never truncating: counts
        self._whole.no_truncation()
        self.tok.enable_truncation(self.max_length)

    def _pad_id(self) -> int:
        padding = self.tok.padding
        if padding is not None:
            return int(padding["pad_id"])
        ids = [self.tok.token_to_id(t) for t in _PAD_TOKENS]
        return next((i for i in ids if i is not None), 0)  # padded positions are masked: any id will do

    def counts(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's token count before truncation, special tokens included (int64, N): above max_length, the
        model reads the text cut."""
        return np.array([len(e.ids) for e in self._whole.encode_batch(list(texts))], np.int64)

    def unknown_id(self) -> int | None:
        """The id of the tokenizer's unknown token ([UNK], <unk>), None when it has none (a byte-level BPE reads
        every text)."""
        name = getattr(self.tok.model, "unk_token", None)
        for token in ([name] if name else []) + ["[UNK]", "<unk>", "<UNK>"]:
            if (i := self.tok.token_to_id(token)) is not None:
                return int(i)
        return None

    def unknown_counts(self, texts: Sequence[str]) -> tuple[int, int]:
        """(unknown, tokens): of the texts' tokens that are not special (the [CLS] / [SEP] the template adds are
        left out), how many are the unknown token; untruncated."""
        unk = self.unknown_id()
        encs = self._whole.encode_batch(list(texts))
        tokens = sum(len(e.ids) - sum(e.special_tokens_mask) for e in encs)
        unknown = 0 if unk is None else sum(i == unk and not s for e in encs
                                            for i, s in zip(e.ids, e.special_tokens_mask))
        return int(unknown), int(tokens)

    def encode(self, texts: Sequence[str], length: int | None = None) -> Encoded:
        """Tokenize with special tokens, truncate at max_length, pad to `length` or to the longest sequence."""
        encs = self.tok.encode_batch(list(texts))
        t = length or max((len(e.ids) for e in encs), default=1)
        ids = np.full((len(encs), t), self.pad_id, np.int64)
        mask = np.zeros((len(encs), t), np.int64)
        types = np.zeros((len(encs), t), np.int64)
        for i, e in enumerate(encs):
            n = min(len(e.ids), t)
            ids[i, :n], mask[i, :n], types[i, :n] = e.ids[:n], e.attention_mask[:n], e.type_ids[:n]
        return Encoded(ids, mask, types, sum(bool(e.overflowing) for e in encs))


def tokenizer_max_length(path: Path) -> int | None:
    """The maximum the tokenizer files state: tokenizer.json's truncation, or tokenizer_config.json's
    model_max_length beside it (transformers writes 1e30 there for 'no limit', which is ignored)."""
    found = []
    try:
        trunc = json.loads(path.read_text(encoding="utf-8")).get("truncation")
        if isinstance(trunc, dict) and trunc.get("max_length"):
            found.append(int(trunc["max_length"]))
    except (OSError, ValueError, AttributeError):
        pass  # unreadable: TextTokenizer says so in its own words
    cfg = path.with_name("tokenizer_config.json")
    try:
        m = json.loads(cfg.read_text(encoding="utf-8")).get("model_max_length") if cfg.is_file() else None
        if isinstance(m, (int, float)) and 0 < m < 1e6:
            found.append(int(m))
    except (OSError, ValueError, AttributeError):
        pass
    return min(found) if found else None


def check_texts(texts: Sequence[str], who: str) -> list[str]:
    """Texts as a list of str; an array batch or a bare string is the caller's mistake, said in one line."""
    if isinstance(texts, (str, bytes, np.ndarray, torch.Tensor)):
        raise DataError(f"Teacher {who} is a text teacher: it takes a sequence of strings, not "
                        f"{type(texts).__name__}. Array data needs an array teacher.")
    out = list(texts)
    bad = next((t for t in out if not isinstance(t, str)), None)
    if bad is not None:
        raise DataError(f"Teacher {who} is a text teacher and got a {type(bad).__name__} among its texts.")
    return out


class TextTeacher(Teacher):
    """A teacher that maps a sequence of N strings to float32 N×K class logits with its own tokenizer.

    Subclasses implement `_forward(encoded) -> list of raw outputs` (float, N×...); this class tokenizes, batches
    (`batch_size` texts at a time, each batch padded to its longest), settles the output contract and caches the
    tokenizer file in the identity (a changed vocabulary changes the logits, so it must change the cache key)."""

    is_text = True
    batch_size = 64
    fixed_length: int | None = None  # a model with a static sequence dimension is padded to it
    class_names: list[str] | None = None  # the model's own names for its outputs, in output order, when it has them
    class_order: tuple[int, ...] | None = None  # output columns in the data's class order (match_classes)

    def __init__(self, name: str, model_files: list[Path], tokenizer: Path, max_length: int, pad_id: int | None = None):
        self.tokenizer = TextTokenizer(tokenizer, max_length, pad_id)
        self.truncated = 0  # texts truncated so far (a report may show it)
        super().__init__(name, [*model_files, tokenizer])

    @property
    def max_length(self) -> int:
        """Maximum tokens per text, special tokens included; longer texts are truncated."""
        return self.tokenizer.max_length

    def recipe(self) -> str:
        return f"max_length={self.max_length}"

    def truncation(self, texts: Sequence[str]) -> TruncationStats:
        """How many of `texts` this teacher reads cut at its max_length, in its own tokenizer's tokens (special
        tokens included). Tokenizes only; the model does not run."""
        return TruncationStats.measure(self.tokenizer.counts(check_texts(texts, repr(self.name))), self.max_length)

    def unknown_counts(self, texts: Sequence[str]) -> tuple[int, int]:
        """(unknown, tokens): how many of the texts' non-special tokens this teacher's tokenizer reads as its
        unknown token. Tokenizes only."""
        return self.tokenizer.unknown_counts(check_texts(texts, repr(self.name)))

    @abstractmethod
    def _forward(self, enc: Encoded) -> list[np.ndarray | torch.Tensor]:
        """Every raw output of the model for one tokenized batch, float."""

    def encode(self, texts: Sequence[str]) -> Encoded:
        enc = self.tokenizer.encode(texts, self.fixed_length)
        self.truncated += enc.truncated
        return enc

    def raw_outputs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Every raw output (float32 numpy) for N texts, batch by batch."""
        texts = check_texts(texts, repr(self.name))
        parts = []
        for i in range(0, len(texts), self.batch_size):
            outs = self._forward(self.encode(texts[i : i + self.batch_size]))
            parts.append([np.asarray(o.detach().float().cpu().numpy() if isinstance(o, torch.Tensor) else o,
                                     np.float32) for o in outs])
        if not parts:
            raise DataError(f"Teacher {self.name!r} was given no texts.")
        return [np.concatenate(col) for col in zip(*parts)]

    def bind(self, num_classes: int, sample: Sequence[str]):
        """Settle which output holds the class scores and whether they are probabilities, on a few texts."""
        raw = self.raw_outputs(sample)
        infos = self.output_infos() or [OutputInfo(f"output{i}", (None, *o.shape[1:])) for i, o in enumerate(raw)]
        self.contract = resolve_contract(infos, raw, num_classes, self.requested_output, "as-is", repr(self.name))
        return self.contract

    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """Class logits, float32 N×K, for N texts (probability outputs become log-probabilities)."""
        c = self.contract
        raw = self.raw_outputs(texts)
        out = raw[c.index]
        if c.kind == "probabilities":
            out = to_logits(out, c, c.outputs[c.index].quant_step if c.outputs else None)
        out = np.asarray(out).reshape(len(out), -1)
        if self.class_order is not None:
            out = out[:, list(self.class_order)]
        return torch.from_numpy(np.ascontiguousarray(out, np.float32))

    def match_classes(self, data_names: Sequence[str]) -> bool:
        """Put the outputs in the data's class order when the model names its classes (`class_names`) and the data
        names the same set in another order. Returns True when it reordered. Raises DataError when both name their
        classes, as many, but with different names: the soft targets would otherwise go to the wrong classes."""
        names = self.class_names
        if not names or len(names) != len(data_names) or list(names) == list(data_names):
            return False
        if sorted(names) != sorted(data_names):
            raise DataError(
                f"Teacher {self.name!r} names its {len(names)} classes {', '.join(map(repr, names))} (config.json's "
                f"id2label), but the data's labels are {', '.join(map(repr, data_names))}; without one name per class "
                "the teacher's scores cannot be matched to the data's classes. Rename the data's labels to the "
                "teacher's names (or give the teacher the data's names in its id2label).")
        self.class_order = tuple(list(names).index(n) for n in data_names)
        return True

    def identity(self) -> str:
        order = "" if self.class_order is None else "|classes=" + ",".join(map(str, self.class_order))
        return super().identity() + order

    def _feed(self, x):  # the array path of Teacher; text teachers never take arrays
        raise DataError(f"Teacher {self.name!r} is a text teacher: it takes strings, not an array batch.")

