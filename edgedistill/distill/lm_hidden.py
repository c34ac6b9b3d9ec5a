"""Hidden-state cosine distillation for a causal LM: DistilBERT's cosine embedding loss (Sanh et al. 2019,
"DistilBERT, a distilled version of BERT", arXiv:1910.01108, sec. 3), per token, through a learned projection.

The student's last hidden state h_s (the output of its final LayerNorm: the input of its tied output head, float
(N, L, H_S)) is mapped to the teacher's width by a Linear(H_S -> H_T) trained with the student (a FitNets-style
regressor, Romero et al. 2015, arXiv:1412.6550: the widths differ, DistilBERT's did not), and pulled towards the
teacher's last hidden state h_t (transformers' `hidden_states[-1]`: after GPT-2's final LayerNorm, the input of
its own head) in direction:

    L = α · KD + (1 − α) · CE + β · mean over positions with a next token of (1 − cos(W h_s + b, h_t))

(KD and CE: edgedistill.distill.lm_losses). The cosine ignores the scale of either side, so no normalisation of
the teacher's states is needed. The projection lives only in training: the exported student is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.distill.lm_losses import IGNORE


class HiddenCosine(nn.Module):
    """The β-weighted cosine term of the module doc. `teacher_hidden`: the teacher's last hidden states (N, L, H_T)
    (float16 as cached; widened per batch) for the N training windows the fit reads; `student_width`: H_S;
    `weight`: β >= 0 (0 computes the term and adds exactly nothing); `seed`: the projection's initialisation
    (drawn from its own generator: torch's global one, and so the student's run, is untouched).

    `attach(model)` captures the output of `model.norm` (the decoder student's final LayerNorm) on each forward;
    `loss(idx, targets)` is the term for the windows `idx` of the last forward, targets int64 (B, L) with IGNORE
    where there is no next token. state_dict() holds the projection only."""

    def __init__(self, teacher_hidden: torch.Tensor, student_width: int, weight: float, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.projection = nn.Linear(int(student_width), int(teacher_hidden.shape[-1]))
        self.teacher, self.weight = teacher_hidden, float(weight)
        self._hidden: torch.Tensor | None = None
        self._hook = None

    def attach(self, model: nn.Module) -> None:
        """Start capturing `model.norm`'s output. Raises ValueError for a model without a final `norm` module."""
        norm = getattr(model, "norm", None)
        if not isinstance(norm, nn.Module):
            raise ValueError("the hidden-state cosine term needs the decoder student's final LayerNorm `norm`")
        self._hook = norm.register_forward_hook(lambda _m, _i, out: setattr(self, "_hidden", out))

    def detach(self) -> None:
        if self._hook is not None:
            self._hook.remove()
        self._hook, self._hidden = None, None

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """β · mean(1 − cos) over the positions of windows `idx` with a target (0 with a graph when none has)."""
        h = self.projection(self._hidden.float())
        t = self.teacher[idx].float()
        mask = targets != IGNORE
        if not bool(mask.any()):
            return h.sum() * 0.0
        cos = F.cosine_similarity(h[mask], t[mask], dim=-1, eps=1e-8)
        return self.weight * (1.0 - cos).mean()

    def fingerprint_tensors(self) -> list[torch.Tensor]:
        """What a resume checkpoint must match besides the token objective: the teacher's states and β."""
        return [self.teacher, torch.tensor([self.weight], dtype=torch.float64)]
