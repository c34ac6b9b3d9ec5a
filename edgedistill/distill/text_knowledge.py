"""Feature terms for text students: what a student that tokenizes on its own terms can learn from a transformer's
insides besides its class probabilities.

The student (bytes, or the teacher's vocabulary cut to the data) and the teacher (WordPiece / BPE with its special
tokens) usually split a text into different positions, so token-by-token alignment is not available in general.
Two terms, registered by name in TEXT_FEATURE_LOSSES:

* `cosine`  DistilBERT's cosine embedding loss (Sanh et al. 2019, arXiv:1910.01108), at the sentence level so that
            it works for any tokenizer: 1 − cos(W·s, t) per text, averaged over the batch, where t (N×H) is the
            mask-aware mean of the teacher's chosen hidden state over its non-padding tokens (special tokens
            included) and s (N×D) the student's pooled representation (by default the input of its last Linear,
            the classifier), through a learned projection W (D -> H, trained with the student, not deployed).
* `minilm`  MiniLM's self-attention distribution transfer (Wang et al. 2020, arXiv:2002.10957, sec. 3.1):
            KL(A_t || A_s) between the teacher's and the student's attention distributions of one layer, per query
            over the keys, averaged over the heads and the non-padding queries. Only where positions align: a
            `transformer` student with the teacher's own vocabulary (`--tokenizer vocab`), the teacher fed exactly
            the student's tokens between its special tokens ([CLS] ... [SEP]); the teacher's rows and columns of the
            student's positions are cut out and renormalised over the student's non-padding keys (the student has
            no [CLS] / [SEP] to attend to). Heads: with equal head counts head h is matched to head h, as in MiniLM;
            with different counts the two heads' *mean* distributions are compared (a mean of softmax
            distributions is still a distribution over the keys). MiniLMv2's relation form (Wang et al. 2021,
            arXiv:2012.15828: q-q / k-k / v-v relations re-split into a common number of relation heads) would
            also bridge head counts, but needs the teacher's q / k / v projections, which a transformers model
            returns only through hooks on its internals; the head mean needs nothing but the attention maps every
            transformers model returns, and keeps MiniLM's loss when the counts agree.

Both are functions of tensors (student side with gradients, teacher side detached). `TextFeatureTerms` is the
trainer's side: hooks on the student, the teacher's features of each training batch from `TrainSet.text_features`
(a callable the pipeline builds: ids -> AlignedTextFeatures), the projections and per-term bookkeeping, with the
interface of trainer.FeatureTerms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.registry import Registry
from edgedistill.students.layers import mask_scores

TEXT_FEATURE_LOSSES: Registry = Registry("text feature loss")
AUTO = "auto"


@dataclass(frozen=True)
class AlignedTextFeatures:
    """The teacher's view of one batch of N student rows of L ids. hidden_states: each float32 N×T×H (T: the
    teacher's tokens); mask: int64 N×T (1 = token); attentions: each float32 N×heads×L×L cut to the student's
    positions, or () when the positions do not align (then `minilm` is refused before training)."""

    hidden_states: tuple[torch.Tensor, ...]
    mask: torch.Tensor
    attentions: tuple[torch.Tensor, ...] = ()


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of h (N×T×H) over the positions where mask (N×T) is non-zero -> N×H (a row without tokens gives 0)."""
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


@TEXT_FEATURE_LOSSES.register("cosine", "DistilBERT cosine: 1 − cos(W·student pooled, teacher masked-mean hidden)")
def pooled_cosine(student_pooled: torch.Tensor, teacher_hidden: torch.Tensor, teacher_mask: torch.Tensor
                  ) -> torch.Tensor:
    """student_pooled: N×H (already projected), teacher_hidden: N×T×H, teacher_mask: N×T -> scalar in [0, 2]."""
    t = masked_mean(teacher_hidden.detach(), teacher_mask)
    return (1.0 - F.cosine_similarity(student_pooled, t, dim=1)).mean()


@TEXT_FEATURE_LOSSES.register("minilm", "MiniLM self-attention transfer: KL(teacher || student) per query, "
                                        "aligned positions only")
def attention_kl(student_probs: torch.Tensor, teacher_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(A_t || A_s) per query over the keys, averaged over heads and non-padding queries (see the module doc).

    student_probs: N×Hs×L×L, teacher_probs: N×Ht×L×L (rows: queries, columns: keys), mask: N×L (non-zero = token).
    Both are restricted to the non-padding keys and renormalised there; Hs != Ht compares the heads' means."""
    t = teacher_probs.detach()
    if student_probs.shape[1] != t.shape[1]:
        student_probs, t = student_probs.mean(1, keepdim=True), t.mean(1, keepdim=True)
    keys = (mask != 0)[:, None, None, :]
    t = torch.where(keys, t, torch.zeros(()))
    t = t / t.sum(-1, keepdim=True).clamp_min(1e-12)
    s = torch.where(keys, student_probs, torch.zeros(()))
    s = s / s.sum(-1, keepdim=True).clamp_min(1e-12)
    kl = (torch.xlogy(t, t) - t * torch.log(s.clamp_min(1e-12))).sum(-1)  # N×H×L
    queries = (mask != 0)[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * queries).sum() / queries.sum().clamp_min(1.0)


def attention_probs(attn: nn.Module, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The attention distributions N×heads×L×L of a students.layers.MaskedSelfAttention on its inputs (x N×L×D,
    ids N×L), recomputed from its own q / k projections so that gradients reach them."""
    q = attn.split(attn.q(x)) * attn.head_dim ** -0.5
    scores = mask_scores(q @ attn.split(attn.k(x)).transpose(-2, -1), (ids == 0)[:, None, None, :])
    return scores.softmax(-1)  # finite on an all-padded sample too (mask_scores), and so its gradient


def last_linear(model: nn.Module) -> str:
    """Name of the model's last nn.Linear in module order (a classifier's final layer)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise KeyError("the student has no Linear layer whose input could serve as its pooled representation; "
                       "name a layer with student=LAYER")
    return names[-1]


def last_attention(model: nn.Module) -> str:
    """Name of the model's last self-attention module (one with q / k projections and a head split)."""
    names = [n for n, m in model.named_modules() if all(hasattr(m, a) for a in ("q", "k", "split", "head_dim"))]
    if not names:
        raise KeyError("the student has no self-attention layer (a transformer student has one per encoder layer)")
    return names[-1]


def _layer(spec: str, what: str) -> int:
    if spec in (AUTO, "last"):
        return -1
    try:
        return int(spec)
    except ValueError:
        raise KeyError(f"the teacher's {what} are chosen by index (0 = the first; -1 or 'last' = the last), not "
                       f"{spec!r}") from None


class TextFeatureTerms:
    """Text feature terms of an objective (see the module doc): same interface as trainer.FeatureTerms."""

    def __init__(self, model: nn.Module, x: torch.Tensor, text_features: Callable[[torch.Tensor],
                 AlignedTextFeatures], terms):
        for t in terms:
            TEXT_FEATURE_LOSSES.get(t.loss)
        self.terms, self.source, self.model = tuple(terms), text_features, model
        modules = dict(model.named_modules())
        self._kept: dict[str, object] = {}
        self._handles, self._where = [], []
        for t in self.terms:
            if t.loss == "cosine":
                name = last_linear(model) if t.student == AUTO else t.student
                pre = t.student == AUTO
            else:
                name, pre = (last_attention(model) if t.student == AUTO else t.student), True
            if name not in modules:
                raise KeyError(f"the student has no layer named {name!r}; available: "
                               f"{', '.join(n for n in modules if n)}")
            self._where.append(name)
            if name not in self._kept:
                self._kept[name] = None
                hook = self._keep_input(name) if pre else self._keep_output(name)
                self._handles.append(modules[name].register_forward_pre_hook(hook) if pre
                                     else modules[name].register_forward_hook(hook))
        self.teacher_layers = [_layer(t.teacher, "hidden states" if t.loss == "cosine" else "attention layers")
                               for t in self.terms]
        was = model.training
        model.eval()
        with torch.no_grad():
            model(x[:2])
            probe = self.source(x[:2])
        model.train(was)
        self.heads = nn.ModuleDict()
        for i, t in enumerate(self.terms):
            if t.loss == "cosine":
                dim = self._student_side(i, t).shape[1]
                torch.manual_seed(1000 + i)
                self.heads[str(i)] = nn.Linear(dim, probe.hidden_states[self.teacher_layers[i]].shape[-1])
            else:
                self._check_attention(i, probe)
        self._sums, self._count = [0.0] * len(self.terms), 0

    def _keep_input(self, name: str):
        def hook(_module, inputs):
            self._kept[name] = inputs
        return hook

    def _keep_output(self, name: str):
        def hook(_module, _inputs, out):
            self._kept[name] = (out[0] if isinstance(out, (tuple, list)) else out,)
        return hook

    def _student_side(self, i: int, t) -> torch.Tensor:
        kept = self._kept[self._where[i]]
        if t.loss == "cosine":
            return kept[0].flatten(1)
        if len(kept) < 2:
            raise KeyError(f"student layer {self._where[i]!r} is not a self-attention layer (it takes no token ids)")
        return attention_probs(dict(self.model.named_modules())[self._where[i]], kept[0], kept[1])

    def _check_attention(self, i: int, probe: AlignedTextFeatures) -> None:
        if not probe.attentions:
            raise ValueError("minilm needs the teacher's attention maps at the student's positions")
        s = self._student_side(i, self.terms[i])
        a = probe.attentions[self.teacher_layers[i]]
        if s.shape[-2:] != a.shape[-2:]:
            raise ValueError(f"the student attends over {s.shape[-1]} positions, the teacher's cut maps have "
                             f"{a.shape[-1]}")

    def loss(self, xb: torch.Tensor) -> torch.Tensor:
        """After the student's forward on xb (token ids N×L): the teacher's features of xb, every weighted term."""
        f = self.source(xb)
        mask = (xb != 0).long()
        total = torch.zeros(())
        for i, t in enumerate(self.terms):
            s = self._student_side(i, t)
            if t.loss == "cosine":
                value = pooled_cosine(self.heads[str(i)](s), f.hidden_states[self.teacher_layers[i]], f.mask)
            else:
                value = attention_kl(s, f.attentions[self.teacher_layers[i]], mask)
            self._sums[i] += float(value.detach())
            total = total + t.weight * value
        self._count += 1
        return total

    def epoch_terms(self) -> dict:
        out = {f"{t.loss}:{w}->{t.teacher}": s / max(1, self._count)
               for t, w, s in zip(self.terms, self._where, self._sums)}
        self._sums, self._count = [0.0] * len(self.terms), 0
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()
