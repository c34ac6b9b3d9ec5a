"""Token-level distillation for causal language models, from a teacher's top-k logits per position.

A teacher's full distribution over a vocabulary of V tokens at every position does not fit on disk at scale (V =
50,257 for GPT-2: 200 KB a token in float32), so the teacher pass keeps, per position, its k largest logits (values
and vocabulary indices) and, for each temperature T the run may use, the log of the mass it leaves out,

    tail_T = log Σ_{j ∉ top-k} exp(t_j / T)                        (−inf when k = V)

— k + 1 numbers per temperature instead of V. The loss is Hinton's KD (Hinton, Vinyals & Dean 2015, arXiv:1503.02531)
applied per token as DistilGPT2 / DistilBERT do (Sanh et al. 2019, arXiv:1910.01108), with the vocabulary
coarsened to k + 1 outcomes: the teacher's k tokens, and "any other token" as one bucket:

    Z   = logsumexp(v / T, tail_T),    p_i = exp(v_i / T − Z) (i ≤ k),   p_tail = exp(tail_T − Z)
    q   = softmax(s / T) over all V,   q_tail = Σ_{j ∉ top-k} q_j = 1 − Σ_{i ≤ k} q_{idx_i}
    KD  = T² · mean over positions [ Σ_i p_i (log p_i − log q_{idx_i}) + p_tail (log p_tail − log q_tail) ]

This is exactly KL(p ‖ q) over the coarsened outcomes: with k = V the tail is empty and it is the full-softmax KD
loss; with k < V it is a lower bound of the full KL (coarsening cannot increase a KL divergence), which asks the
student to give the rest of the vocabulary the teacher's total tail mass without prescribing how to share it. The
T² keeps the soft gradient's size independent of T (the paper's sec. 2.1). The hard next-token loss is weighted in
as for the classifiers, L = α · KD + (1 − α) · CE(s, next token), both averaged over the positions that have a next
token (targets ≠ IGNORE), so padding after a document's end never counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgedistill.registry import Registry

IGNORE = -1  # a position with no next token (edgedistill.data.lm_windows.IGNORE)
TOKEN_LOSSES: Registry = Registry("token distillation loss")


@dataclass(frozen=True)
class TopKLogits:
    """A teacher's top-k logits per position. `values`: float (..., k), largest first; `indices`: int64 (..., k),
    their vocabulary ids; `tail`: float (..., len(temperatures)), log Σ_{j ∉ top-k} exp(t_j / T) for each T of
    `temperatures` (−inf when k = V)."""

    values: torch.Tensor
    indices: torch.Tensor
    tail: torch.Tensor
    temperatures: tuple[float, ...]

    @property
    def k(self) -> int:
        return int(self.values.shape[-1])

    def tail_at(self, temperature: float) -> torch.Tensor:
        """tail_T (...,) for a temperature the teacher pass stored. Raises ValueError for another one: the tail
        mass at an unstored T cannot be recovered from the top-k values."""
        for i, t in enumerate(self.temperatures):
            if abs(t - float(temperature)) < 1e-9:
                return self.tail[..., i]
        raise ValueError(f"the teacher's tail mass was stored for T in {self.temperatures}, not T = {temperature:g}")

    def bytes_per_position(self) -> int:
        """Storage a position costs: k values and indices and one tail per temperature, as stored."""
        return self.k * (self.values.element_size() + self.indices.element_size()) + \
            len(self.temperatures) * self.tail.element_size()


def top_k_logits(teacher_logits: torch.Tensor, k: int, temperatures: tuple[float, ...]) -> TopKLogits:
    """Keep a teacher's k largest logits per position (teacher_logits float (..., V)) and the tail's log mass at each
    temperature (module doc). Raises ValueError unless 1 <= k <= V."""
    vocab = teacher_logits.shape[-1]
    if not 1 <= k <= vocab:
        raise ValueError(f"k must lie in 1..{vocab} (the vocabulary), got {k}")
    logits = teacher_logits.detach().float()
    values, indices = logits.topk(k, dim=-1)
    rest = logits.scatter(-1, indices, float("-inf"))
    tail = torch.stack([torch.logsumexp(rest / float(t), dim=-1) for t in temperatures], dim=-1)
    return TopKLogits(values, indices, tail, tuple(float(t) for t in temperatures))


def top_k_kd(student_logits: torch.Tensor, teacher: TopKLogits, temperature: float,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """T² · mean KL(p ‖ q) over the teacher's top-k tokens and the tail bucket (module doc). `student_logits`: float
    (..., V); `teacher`: the same leading shape; `mask`: bool (...), the positions that count (None: all)."""
    t = float(temperature)
    log_q = F.log_softmax(student_logits.float() / t, dim=-1)
    log_q_top = log_q.gather(-1, teacher.indices)
    tail_t = teacher.tail_at(t)
    z = torch.logsumexp(torch.cat([teacher.values / t, tail_t[..., None]], dim=-1), dim=-1, keepdim=True)
    log_p_top = teacher.values / t - z
    log_p_tail = tail_t - z[..., 0]
    log_q_tail = torch.logsumexp(log_q.scatter(-1, teacher.indices, float("-inf")), dim=-1)
    top = (log_p_top.exp() * (log_p_top - log_q_top)).sum(-1)
    # an empty tail (k = V, or a tail below float range) contributes 0 · log 0 = 0
    tail = torch.where(torch.isfinite(log_p_tail), log_p_tail.exp() * (log_p_tail - log_q_tail),
                       torch.zeros_like(top))
    per_position = top + tail
    if mask is not None:
        per_position = per_position[mask]
    if per_position.numel() == 0:
        return student_logits.sum() * 0.0
    return per_position.mean() * (t * t)


def next_token_ce(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean −log softmax(s)[next token] over the positions with a target: student_logits (..., V), targets int64
    (...) with IGNORE (-1) where there is none. No target at all: 0 (with a graph)."""
    flat_t = targets.reshape(-1)
    if not bool((flat_t != IGNORE).any()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits.reshape(-1, student_logits.shape[-1]).float(), flat_t,
                           ignore_index=IGNORE)


@TOKEN_LOSSES.register("token-kd", "per-token Hinton KD over the vocabulary from the teacher's top-k logits (tail "
                                   "as one bucket), T² scaled, + (1 − alpha) · next-token cross-entropy")
def token_kd_objective(student_logits: torch.Tensor, targets: torch.Tensor, teacher: TopKLogits | None,
                       temperature: float, alpha: float) -> torch.Tensor:
    """α · KD + (1 − α) · CE over the positions with a next token (module doc). `student_logits`: float (N, L, V);
    `targets`: int64 (N, L), IGNORE where none; `teacher`: top-k logits of shape (N, L, k), or None for the
    no-teacher twin (next-token cross-entropy only)."""
    hard = next_token_ce(student_logits, targets)
    if teacher is None or alpha <= 0.0:
        return hard
    soft = top_k_kd(student_logits, teacher, temperature, mask=targets != IGNORE)
    return soft if alpha >= 1.0 else alpha * soft + (1.0 - alpha) * hard
