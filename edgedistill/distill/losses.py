"""Response-based distillation losses. Each is a plain function of (student logits, teacher logits, T).

They register by name so configs refer to them as strings (`loss = "kd"`); the trainer mixes the soft term with
hard-label cross-entropy:   L = alpha · L_soft(s, t; T) + (1 - alpha) · CE(s, y).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgedistill.registry import Registry

SOFT_LOSSES: Registry = Registry("distillation loss")


@SOFT_LOSSES.register("kd", "Hinton soft targets: KL(softmax(t/T) ‖ softmax(s/T)) · T²")
def hinton_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
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
def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Logit matching (Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?", NeurIPS; Buciluǎ, Caruana &
    Niculescu-Mizil 2006, "Model Compression"):

        L = (1/(N·K)) Σ_n Σ_k (s_nk − t_nk)²

    Hinton's KD reduces to this in the high-temperature limit when logits are zero-mean per sample.
    """
    return F.mse_loss(student_logits, teacher_logits)


def hard_label_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the ground-truth labels: (1/N) Σ_n −log softmax(s_n)[y_n]."""
    return F.cross_entropy(student_logits, labels)


def distillation_objective(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                           labels: torch.Tensor | None, loss: str, temperature: float, alpha: float) -> torch.Tensor:
    """alpha · soft + (1 − alpha) · hard. No teacher: hard labels only. No labels: soft term only (alpha = 1)."""
    if teacher_logits is None:
        return hard_label_ce(student_logits, labels)
    soft = SOFT_LOSSES.get(loss)(student_logits, teacher_logits, temperature)
    if labels is None or alpha >= 1.0:
        return soft
    return alpha * soft + (1.0 - alpha) * hard_label_ce(student_logits, labels)
