"""`--feature loss=cosine[,weight=β]` for `--task causal-lm`: the teacher's last hidden states on the training
windows, cached on disk as float16 beside the top-k cache, for the hidden-state cosine term (distill/lm_hidden.py).

The teacher reads its own token ids, window for window (pipeline/lm_teacher.teacher_windows): the student's
"unknown" id stands for a real token there, which the teacher sees as itself, so its states are those of the real
text at every position. Positions are aligned 1:1 (one student id per teacher token). Cost: 2 · H_T bytes a
training position (reported in metrics.json as `hidden_cosine`, like the top-k cache's bytes).

The term trains the float student only. QAT drops it: QAT starts from the distilled float weights and only has to
keep their function through int8 arithmetic, which the token objective measures directly; the int8 graph
(quantize/lm_qat.py) exposes logits, not the final LayerNorm's output, and the projection would be trained for a
few steps on states that no exported file keeps. So QAT, its checkpoints and the exported files stay as without it.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgedistill.config import DistillConfig
from edgedistill.data.lm_windows import TokenWindows
from edgedistill.data.vocab_tokenizer import VocabTokenizer
from edgedistill.errors import ConfigError
from edgedistill.pipeline.lm_teacher import teacher_windows
from edgedistill.teachers.cache import array_digest, default_cache_dir
from edgedistill.teachers.causal_lm import CausalLMTeacher


@dataclass(frozen=True)
class TeacherHidden:
    """`states`: float16 (N, L, H_T) for the N training windows; `seconds`: teacher time (0 on a cache hit);
    `cached`: whether the cache answered."""

    states: torch.Tensor
    seconds: float
    cached: bool

    @property
    def bytes_per_position(self) -> int:
        return int(self.states.shape[-1]) * self.states.element_size()

    def record(self, weight: float, student_width: int) -> dict:
        """metrics.json's `hidden_cosine` section."""
        h_t = int(self.states.shape[-1])
        return {"weight": weight, "teacher_width": h_t, "student_width": int(student_width),
                "projection_params": int(student_width) * h_t + h_t, "dtype": "float16",
                "bytes_per_position": self.bytes_per_position,
                "cached_bytes": self.bytes_per_position * int(np.prod(self.states.shape[:2])),
                "from_cache": self.cached, "seconds": self.seconds, "qat": "dropped (float distillation only)"}


def hidden_cosine_weight(config: DistillConfig) -> float | None:
    """β of the run's `--feature loss=cosine[,weight=β]`, or None without --feature. Raises ConfigError (one
    paragraph) for any other feature term, or more than one: a causal LM has one pair of last hidden states."""
    terms = config.kd.features
    if not terms:
        return None
    t = terms[0]
    if len(terms) > 1 or t.loss != "cosine" or t.student != "auto" or t.teacher not in ("auto", "-1"):
        given = "; ".join(f"loss={x.loss},student={x.student},teacher={x.teacher}" for x in terms)
        raise ConfigError(f"--task causal-lm takes one feature term, --feature loss=cosine[,weight=B]: the cosine "
                          f"between the student's last hidden state (projected to the teacher's width) and the "
                          f"teacher's, at every position; got {given}. Leave student= and teacher= out.")
    return float(t.weight)


def teacher_hidden_states(teacher: CausalLMTeacher, tokenizer: VocabTokenizer, documents: list[str],
                          windows: TokenWindows, context: int, cache_dir: Path | None,
                          progress=None) -> TeacherHidden:
    """The teacher's last hidden states (float16 (N, L, H_T)) on `windows` (the student's training windows, the
    sequence-level KD ones after them), or the cached ones: keyed by the teacher's files, the student tokenizer and
    the windows. `documents`: every document the windows' `doc` index, in order."""
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    key = hashlib.sha256("|".join(["hidden", teacher.identity(), tokenizer.identity(),
                                   array_digest(windows.ids), array_digest(windows.doc)]).encode())
    path = directory / f"lm-hidden-{key.hexdigest()[:32]}.npy"
    if path.is_file():
        try:
            states = torch.from_numpy(np.load(path, allow_pickle=False))
            if progress:
                progress(len(windows))
            return TeacherHidden(states, 0.0, True)
        except (OSError, ValueError):
            pass  # a damaged entry is recomputed and overwritten
    t0 = time.perf_counter()
    ids = teacher_windows(windows, tokenizer.teacher_token_ids(documents), context)
    parts = []
    for s in range(0, len(ids), 64):
        parts.append(teacher.last_hidden(ids[s:s + 64]).half())
        if progress:
            progress(len(ids[s:s + 64]))
    states = torch.cat(parts) if parts else torch.zeros(0, context, teacher.hidden_size, dtype=torch.float16)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npy")
    np.save(tmp, states.numpy())
    os.replace(tmp, path)
    return TeacherHidden(states, time.perf_counter() - t0, False)
