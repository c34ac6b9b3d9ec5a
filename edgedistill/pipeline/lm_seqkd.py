"""Sequence-level knowledge distillation for a causal LM (Kim & Rush 2016, "Sequence-Level Knowledge Distillation",
arXiv:1606.07947): the teacher's own continuations of training prompts become extra training text for the student.

Token-level KD matches the teacher's next-token distribution on real text; sequence-level KD also trains the student
on the sequences the teacher itself would produce (the mode of its sequence distribution, approximated as in the
paper by a search over it: here greedy decoding, beam size 1), so the student sees where the teacher goes, not only
where the data went. Kim & Rush found the two complementary; here the generated windows are added to the training
windows and trained on with the run's objective (token-level KD on the teacher's top-k there too, plus the
next-token loss on the generated tokens).

`--seq-kd N` draws N prompts, seeded: a training document (never a validation or test one) and an offset in it,
P = max(1, L // 4) of its teacher tokens; the teacher extends each greedily (argmax of its own next-token logits,
the prompt read once, then one token a step through the teacher's key/value cache) to L + 1 tokens, and the result is decoded to text: one extra document
each, windowed and tokenized as the corpus is (pipeline/lm_teacher.py then gives the teacher's top-k on them). The
no-teacher twin never trains on them: it would learn from the teacher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from edgedistill.data.lm_windows import LMSplits, TokenWindows, document_windows
from edgedistill.data.vocab_tokenizer import VocabTokenizer
from edgedistill.errors import DataError
from edgedistill.teachers.causal_lm import CausalLMTeacher

BATCH = 64  # prompts decoded together


@dataclass(frozen=True)
class Continuations:
    """The teacher's continuations: `texts` (prompt + continuation, decoded), their student windows (`doc`: the
    index each text takes after the corpus's documents), the prompt length in teacher tokens and the seconds spent."""

    texts: list[str]
    windows: TokenWindows
    prompt_tokens: int
    seconds: float

    def record(self) -> dict:
        """metrics.json's `sequence_kd`."""
        return {"paper": "Kim & Rush 2016 (arXiv:1606.07947)", "continuations": len(self.texts),
                "prompt_tokens": self.prompt_tokens, "decoding": "greedy (beam size 1)",
                "windows": len(self.windows), "tokens": self.windows.tokens, "seconds": self.seconds}


def greedy_continue(teacher: CausalLMTeacher, prompts: np.ndarray, total: int) -> np.ndarray:
    """Teacher ids int64 (N, P) -> (N, total): each row extended by the argmax of the teacher's next-token logits at
    its last position, one token a step, until `total` tokens (CausalLMTeacher.greedy: through its key/value
    cache)."""
    return teacher.greedy(prompts, total)


def _prompts(teacher_ids: list[np.ndarray], train_docs: np.ndarray, count: int, length: int,
             seed: int) -> np.ndarray:
    """`count` prompts of `length` teacher tokens from the training documents, seeded: a document that has that
    many tokens, then an offset in it. Raises DataError when no training document is that long."""
    long_enough = [int(d) for d in train_docs if len(teacher_ids[int(d)]) >= length]
    if not long_enough:
        raise DataError(f"--seq-kd needs prompts of {length} tokens (a quarter of the window) from the training "
                        "documents, and none has that many tokens. Give longer documents, a shorter "
                        "--max-length, or leave --seq-kd out.")
    rng = np.random.default_rng(seed)
    docs = rng.choice(long_enough, size=count, replace=True)
    starts = [int(rng.integers(0, len(teacher_ids[d]) - length + 1)) for d in docs]
    return np.stack([teacher_ids[d][s:s + length] for d, s in zip(docs, starts)])


def teacher_continuations(teacher: CausalLMTeacher, tokenizer: VocabTokenizer, documents: list[str],
                          splits: LMSplits, count: int, seed: int, progress=None) -> Continuations:
    """`count` greedy teacher continuations of seeded training prompts (module doc), as extra training windows
    numbered after `documents` (every document of the corpus, in index order)."""
    from tokenizers import Tokenizer

    t0 = time.perf_counter()
    context = splits.context
    length = max(1, context // 4)
    ids = tokenizer.teacher_token_ids(documents)
    prompts = _prompts(ids, splits.train.documents, count, length, seed)
    rows = []
    for s in range(0, len(prompts), BATCH):
        rows.append(greedy_continue(teacher, prompts[s:s + BATCH], context + 1))
        if progress:
            progress(len(prompts[s:s + BATCH]))
    decoder = Tokenizer.from_file(str(teacher.tokenizer))
    texts = decoder.decode_batch([r.tolist() for r in np.concatenate(rows)], skip_special_tokens=True)
    parts = [document_windows(t, context) for t in tokenizer.token_ids(texts)]
    doc = np.concatenate([np.full(len(w), len(documents) + j, np.int64) for j, (w, _) in enumerate(parts)])
    windows = TokenWindows(np.concatenate([w for w, _ in parts]), np.concatenate([t for _, t in parts]), doc)
    return Continuations(texts, windows, length, time.perf_counter() - t0)


def concat(a: TokenWindows, b: TokenWindows | None) -> TokenWindows:
    """The windows of `a` then those of `b` (None: `a`)."""
    if b is None:
        return a
    return TokenWindows(np.concatenate([a.ids, b.ids]), np.concatenate([a.targets, b.targets]),
                        np.concatenate([a.doc, b.doc]))
