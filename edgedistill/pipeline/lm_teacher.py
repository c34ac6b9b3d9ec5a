"""Stage 2 for a causal LM: the teacher's next-token distributions, on the student's vocabulary, cached on disk.

The teacher reads its own token ids for each window (the same text, position for position: the student vocabulary
maps teacher tokens one to one, edgedistill.data.vocab_tokenizer), so it sees every real token, also those the
student knows only as "unknown". Its logits over its V_T tokens are then coarsened to the student's V_S outcomes:

    s[0] = PAD_LOGIT                         padding never follows a real token
    s[1] = logsumexp_{j not kept} t_j        "unknown": every teacher token outside the student vocabulary
    s[i] = t_{teacher_ids[i - 2]}            a kept token, i >= 2

so softmax(s) over the student's vocabulary is exactly the teacher's distribution with the tokens the student
cannot name merged into its unknown id (the coarsening of edgedistill.distill.lm_losses, one level earlier), and
teacher and student perplexities are measured over the same outcomes. The training windows keep only the top-k
of s per position and the tail's log mass at each temperature the run may train with (lm_losses.TopKLogits: k + |T|
numbers; the tail at a T cannot be recovered from the top-k at another, so the set is fixed when the cache is
written: the automatic choice's grid and a fixed --temperature, lm_train.cache_temperatures); the storage is
reported. The test windows keep the scores of every predicted position (edgedistill.lm_metrics.token_scores: the
nll and the rank of the true next token), for the teacher's own perplexity and accuracy: computed batch by batch, so
no (W, L, V_S) array of the whole test split is ever held or written.

Cache key: the teacher's files, the student tokenizer, the training and test windows, k, the temperature set and
CACHE_FORMAT (an entry written for one temperature by an earlier version has another key, and an entry whose tail
columns do not match the set is recomputed, never read as another T's).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgedistill.data.lm_windows import LMSplits, TokenWindows, document_windows
from edgedistill.data.vocab_tokenizer import FIRST_KEPT_ID, UNKNOWN_ID, VocabTokenizer
from edgedistill.distill.lm_losses import TopKLogits, top_k_logits
from edgedistill.lm_metrics import TokenScores, concat_scores, token_scores
from edgedistill.teachers.cache import array_digest, default_cache_dir
from edgedistill.teachers.causal_lm import CausalLMTeacher

CACHE_FORMAT = "lm-topk-3"  # 3: test scores, not test logits; 2: the tail at a set of temperatures (1: one T)
PAD_LOGIT = -1.0e4  # finite: an exact zero probability that keeps 0 · log 0 terms at 0 (not NaN) in the KD loss


@dataclass(frozen=True)
class LMTeacherOutputs:
    """`train`: top-k per position of the training windows (N, L, k); `test_scores`: the teacher's TokenScores of
    the test windows' predicted positions (over the student's V_S outcomes); `bytes_per_position`: what a cached
    training position costs; `seconds`: teacher time (0 on a cache hit); `cached`: whether the cache answered."""

    train: TopKLogits
    test_scores: TokenScores
    bytes_per_position: int
    seconds: float
    cached: bool


def student_vocabulary_logits(teacher_logits: torch.Tensor, tokenizer: VocabTokenizer) -> torch.Tensor:
    """Teacher logits float (..., V_T) -> logits float32 (..., V_S) over the student's vocabulary (module doc)."""
    t = teacher_logits.float()
    kept = torch.as_tensor(tokenizer.teacher_ids, dtype=torch.long)
    rest = t.index_fill(-1, kept, float("-inf"))
    out = torch.empty(*t.shape[:-1], tokenizer.vocab_size, dtype=torch.float32)
    out[..., 0] = PAD_LOGIT
    out[..., UNKNOWN_ID] = torch.logsumexp(rest, dim=-1) if len(kept) < t.shape[-1] else PAD_LOGIT
    out[..., FIRST_KEPT_ID:] = t.index_select(-1, kept)
    return out


def teacher_windows(windows: TokenWindows, teacher_ids: list[np.ndarray], context: int) -> np.ndarray:
    """The teacher's ids (int64, (W, L)) for a split's windows, cut from each document's teacher tokens exactly as
    data.lm_windows cut the student's (a document's windows are consecutive, in order)."""
    rows, seen = [], set()
    for d in windows.doc.tolist():
        if d not in seen:
            seen.add(d)
            rows.append(document_windows(teacher_ids[d], context)[0].astype(np.int64))
    out = np.concatenate(rows) if rows else np.zeros((0, context), np.int64)
    if out.shape != windows.ids.shape:
        raise RuntimeError(f"teacher windows {out.shape} do not align with the student's {windows.ids.shape}")
    return out


LOGITS_PER_BATCH = 16_000_000  # teacher logits held at once (64 MB of float32): GPT-2's 50,257 tokens × 64 positions
# make 3.3 M a window, so a batch is 4 windows there and 64 (the most) for a small vocabulary


def _in_batches(teacher: CausalLMTeacher, ids: np.ndarray, fn, progress) -> list:
    batch = max(1, min(64, LOGITS_PER_BATCH // max(1, ids.shape[1] * teacher.vocab_size)))
    parts = []
    for s in range(0, len(ids), batch):
        parts.append(fn(teacher.logits(ids[s:s + batch])))
        if progress:
            progress(len(ids[s:s + batch]))
    return parts


def _scorer(windows: TokenWindows, coarse):
    """fn(teacher logits of the next batch of `windows`, in order) -> their TokenScores over the student's outcomes."""
    done = 0

    def score(logits: torch.Tensor) -> TokenScores:
        nonlocal done
        n = logits.shape[0]
        out = token_scores(coarse(logits).numpy(), windows.targets[done:done + n], windows.doc[done:done + n])
        done += n
        return out
    return score


def teacher_outputs(teacher: CausalLMTeacher, tokenizer: VocabTokenizer, documents: list[str], splits: LMSplits,
                    k: int, temperatures: tuple[float, ...], cache_dir: Path | None, progress=None) -> LMTeacherOutputs:
    """Run the teacher over the training and test windows (or read a cached run: keyed as the module doc says).
    `documents`: every document in the corpus's order (the indices the windows' `doc` hold); `temperatures`: the T
    whose tail mass is stored (positive, as given: the order is the tail's columns). k is capped at V_S."""
    k = min(int(k), tokenizer.vocab_size)
    temps = tuple(float(t) for t in temperatures)
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    key = hashlib.sha256("|".join([CACHE_FORMAT, teacher.identity(), tokenizer.identity(),
                                   array_digest(splits.train.ids), array_digest(splits.test.ids), str(k),
                                   ",".join(map(repr, temps))]).encode())
    path = directory / f"lm-{key.hexdigest()[:32]}.npz"
    if path.is_file():
        out = _read(path, temps)
        if out is not None:
            if progress:
                progress(len(splits.train) + len(splits.test))
            return out
    t0 = time.perf_counter()
    ids = tokenizer.teacher_token_ids(documents)
    train_ids = teacher_windows(splits.train, ids, splits.context)
    test_ids = teacher_windows(splits.test, ids, splits.context)
    coarse = lambda lg: student_vocabulary_logits(lg, tokenizer)  # noqa: E731
    parts = _in_batches(teacher, train_ids, lambda lg: top_k_logits(coarse(lg), k, temps), progress)
    # indices as int32: 4 bytes a token id instead of 8 (the trainer widens a batch's for gather)
    top = TopKLogits(torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts]).int(),
                     torch.cat([p.tail for p in parts]), temps)
    test = concat_scores(_in_batches(teacher, test_ids, _scorer(splits.test, coarse), progress))
    seconds = time.perf_counter() - t0
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    np.savez(tmp, values=top.values.numpy(), indices=top.indices.numpy(), tail=top.tail.numpy(),
             test_nll=test.nll, test_rank=test.rank, test_doc=test.doc, temperatures=np.asarray(temps, np.float64))
    os.replace(tmp, path)
    return LMTeacherOutputs(top, test, top.bytes_per_position(), seconds, False)


def _read(path: Path, temps: tuple[float, ...]) -> LMTeacherOutputs | None:
    """A cached entry, or None when it is damaged or its stored temperatures are not `temps` (recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "temperatures" not in z.files or tuple(z["temperatures"].tolist()) != temps \
                    or z["tail"].shape[-1] != len(temps):
                return None
            top = TopKLogits(torch.from_numpy(z["values"]), torch.from_numpy(z["indices"]),
                             torch.from_numpy(z["tail"]), temps)
            test = TokenScores(z["test_nll"], z["test_rank"], z["test_doc"])
            return LMTeacherOutputs(top, test, top.bytes_per_position(), 0.0, True)
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is recomputed and overwritten
