"""Response-based distillation losses. Each is a plain function of (student logits, teacher logits, T, target)
where target is the batch's class index per sample (or None: losses that need one use the teacher's argmax).

They register by name so configs refer to them as strings (`loss = "kd"`); the trainer mixes the soft term with
hard-label cross-entropy:   L = alpha · L_soft(s, t; T) + (1 - alpha) · CE(s, y).
y may be class indices or, after mixup, a row-stochastic N×K matrix of soft labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgedistill.distill.lm_losses import TopKLogits, top_k_kd
from edgedistill.registry import Registry

SOFT_LOSSES: Registry = Registry("distillation loss")
# the same losses from a top-k teacher cache (teachers/cache_form.py): teacher and student over the same k + 1 outcomes
TOPK_SOFT_LOSSES: Registry = Registry("distillation loss from a top-k teacher cache")


@SOFT_LOSSES.register("kd", "Hinton soft targets: KL(softmax(t/T) ‖ softmax(s/T)) · T²")
def hinton_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
              target: torch.Tensor | None = None) -> torch.Tensor:
    """Knowledge distillation with soft targets (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a
    Neural Network", arXiv:1503.02531).

        p = softmax(t / T),  q = softmax(s / T)
        L = T² · (1/N) Σ_n KL(p_n ‖ q_n)

    The gradient of KL(p‖q) w.r.t. a student logit is (q_i − p_i) / T (the paper's eq. 2); multiplying by T²
    keeps the soft-target gradient magnitude roughly independent of T (sec. 2.1), so alpha means the same thing
    at every temperature.
    """
    t = float(temperature)
    log_q = F.log_softmax(student_logits / t, dim=1)
    log_p = F.log_softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * (t * t)


@SOFT_LOSSES.register("mse", "logit matching: mean squared error between logits (T is ignored)")
def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
              target: torch.Tensor | None = None) -> torch.Tensor:
    """Logit matching (Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?", NeurIPS; Buciluǎ, Caruana &
    Niculescu-Mizil 2006, "Model Compression"):

        L = (1/(N·K)) Σ_n Σ_k (s_nk − t_nk)²

    Hinton's KD reduces to this in the high-temperature limit when logits are zero-mean per sample.
    """
    return F.mse_loss(student_logits, teacher_logits)


@TOPK_SOFT_LOSSES.register("kd", "Hinton soft targets over the teacher's top k classes and the rest as one bucket")
def top_k_hinton_kd(student_logits: torch.Tensor, teacher: TopKLogits, temperature: float,
                    target: torch.Tensor | None = None) -> torch.Tensor:
    """Hinton's KD (above) from a top-k teacher cache: both distributions coarsened to the same k + 1 outcomes,
    the teacher's k classes and "any other class",

        L = T² · (1/N) Σ_n KL(p̄_n ‖ q̄_n),   p̄ from the k logits and the stored log mass of the rest at T,
                                              q̄ = softmax(s / T) with the rest's probabilities summed

    (distill/lm_losses.top_k_kd). Normalising the student over all K classes against a teacher renormalised over its
    k classes is the known top-k KD bug: it overstates every teacher probability by the rest's mass. With k = K this
    is the full loss; with k < K a lower bound of it (merging outcomes cannot increase a KL divergence).
    student_logits: float (N, K); teacher: TopKLogits of (N, k)."""
    return top_k_kd(student_logits, teacher, temperature)


def teacher_top1(teacher) -> torch.Tensor:
    """The teacher's class per sample, int64 (N,), from dense logits (N, K) or a TopKLogits (largest first)."""
    return teacher.indices[:, 0] if isinstance(teacher, TopKLogits) else teacher.argmax(1)


DKD_ALPHA, DKD_BETA = 1.0, 8.0


@SOFT_LOSSES.register("dkd", f"decoupled KD: {DKD_ALPHA:g}·TCKD + {DKD_BETA:g}·NCKD at temperature T (Zhao et al. 2022)")
def decoupled_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                 target: torch.Tensor | None = None) -> torch.Tensor:
    """Decoupled knowledge distillation (Zhao, Cui, Song, Qiu & Liang 2022, "Decoupled Knowledge Distillation",
    CVPR, arXiv:2203.08679). KD splits into a target-class term and a non-target term,

        TCKD = KL([p_t, 1 − p_t] ‖ [q_t, 1 − q_t])            (binary: target class vs the rest)
        NCKD = KL(p̂ ‖ q̂)   over the non-target classes, p̂ = softmax of the non-target logits / T

    and classical KD = TCKD + (1 − p_t) · NCKD, which suppresses NCKD exactly where the teacher is confident. DKD
    weighs them independently: L = T² · (a · TCKD + b · NCKD), a = 1, b = 8 (the paper's ImageNet/CIFAR setting; the
    paper's 20-epoch linear warm-up of the loss is left out). `target` is the true class; without labels the
    teacher's argmax stands in for it.
    """
    t = float(temperature)
    tgt = teacher_logits.argmax(1) if target is None else target
    tckd, nckd = dkd_parts(student_logits, teacher_logits, t, tgt)
    return (DKD_ALPHA * tckd.mean() + DKD_BETA * nckd.mean()) * (t * t)


def dkd_parts(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
              target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (TCKD, NCKD) at temperature T, without the T² factor."""
    t = float(temperature)
    mask = F.one_hot(target, student_logits.shape[1]).bool()
    p_s = F.softmax(student_logits / t, dim=1)
    p_t = F.softmax(teacher_logits / t, dim=1)
    b_s = torch.stack([(p_s * mask).sum(1), (p_s * ~mask).sum(1)], dim=1).clamp_min(1e-12)
    b_t = torch.stack([(p_t * mask).sum(1), (p_t * ~mask).sum(1)], dim=1).clamp_min(1e-12)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1)
    big = 1000.0 * mask  # removes the target class from both softmaxes
    log_q = F.log_softmax(student_logits / t - big, dim=1)
    log_p = F.log_softmax(teacher_logits / t - big, dim=1)
    nckd = (log_p.exp() * (log_p - log_q)).masked_fill(mask, 0.0).sum(1)
    return tckd, nckd


@SOFT_LOSSES.register("kd-std", "KD on standardized logits (z-scored per sample), T² scaled (Sun et al. 2024)")
def standardized_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                    target: torch.Tensor | None = None) -> torch.Tensor:
    """Logit-standardized KD (Sun, Ren, Li, Wang & Cao 2024, "Logit Standardization in Knowledge Distillation",
    CVPR, arXiv:2403.01427): Hinton KD after z-scoring each sample's logits,

        z̃ = (z − mean(z)) / std(z),   L = T² · KL(softmax(t̃/T) ‖ softmax(s̃/T))

    so a small student only has to match the teacher's logit *ranking and relative gaps*, not its logit scale (a
    capacity-gap remedy: the student is free to be less confident than the teacher).
    """
    def z(v: torch.Tensor) -> torch.Tensor:
        return (v - v.mean(1, keepdim=True)) / (v.std(1, keepdim=True) + 1e-7)

    return hinton_kd(z(student_logits), z(teacher_logits), temperature)


def hard_label_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the ground-truth labels: (1/N) Σ_n −log softmax(s_n)[y_n]; for soft labels (mixup)
    (1/N) Σ_n Σ_k −y_nk log softmax(s_n)_k."""
    return F.cross_entropy(student_logits, labels)


UNLABELED = -1  # a class index of -1 marks a sample without a label (soft targets only)


def labeled_rows(labels: torch.Tensor) -> torch.Tensor:
    """Bool mask (N) of the rows that carry a label: index >= 0, or a soft-label row that is not all zeros."""
    return labels >= 0 if labels.dim() == 1 else labels.sum(1) > 0


def distillation_objective(student_logits: torch.Tensor, teacher_logits: torch.Tensor | TopKLogits | None,
                           labels: torch.Tensor | None, loss: str, temperature: float, alpha: float) -> torch.Tensor:
    """alpha · soft + (1 − alpha) · hard. No teacher: hard labels only. No labels: soft term only (alpha = 1).

    Partly labelled batches (index -1, or an all-zero soft-label row after mixup): the soft term is averaged over
    every sample, the hard term over the labelled ones only, L = alpha · mean_all(soft) + (1 − alpha) ·
    mean_labelled(CE); a batch without any label contributes its soft term alone (no teacher: zero, with a graph).
    Where a loss needs the true class (DKD), an unlabelled sample uses the teacher's argmax, as without labels.
    `teacher_logits` may be a batch of a top-k cache (TopKLogits): the soft term is then TOPK_SOFT_LOSSES[loss]."""
    known = None
    if labels is not None:
        known = labeled_rows(labels)
        if bool(known.all()):
            known = None  # fully labelled: the plain formula
    if teacher_logits is None:
        if known is None:
            return hard_label_ce(student_logits, labels)
        return _masked_ce(student_logits, labels, known)
    target = None if labels is None else (labels.argmax(1) if labels.dim() == 2 else labels)
    if target is not None and known is not None:
        target = torch.where(known, target, teacher_top1(teacher_logits))
    losses = TOPK_SOFT_LOSSES if isinstance(teacher_logits, TopKLogits) else SOFT_LOSSES
    soft = losses.get(loss)(student_logits, teacher_logits, temperature, target)
    if labels is None or alpha >= 1.0:
        return soft
    hard = hard_label_ce(student_logits, labels) if known is None else _masked_ce(student_logits, labels, known)
    return alpha * soft + (1.0 - alpha) * hard


def _masked_ce(student_logits: torch.Tensor, labels: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    if not bool(known.any()):
        return student_logits.sum() * 0.0
    return hard_label_ce(student_logits[known], labels[known])
