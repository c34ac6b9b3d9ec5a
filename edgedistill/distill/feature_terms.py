"""Feature / relation terms of a distillation objective during training: hooks on the student and the teacher, FitNets
regressors and per-term bookkeeping (the losses themselves: distill/knowledge.py and distill/text_knowledge.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from edgedistill import distributed as ddp
from edgedistill.data.arrays import model_input

if TYPE_CHECKING:
    from edgedistill.distill.trainer import Objective, TrainSet


class FeatureTerms:
    """Feature / relation terms of an objective: hooks on both models, FitNets regressors, per-term bookkeeping.

    The teacher's torch module runs on each training batch (its features are not cached); regressors are trained
    with the student and checkpointed with it, and dropped after training (they are not part of the deployed model).
    """

    def __init__(self, model: nn.Module, data: TrainSet, objective: Objective):
        from edgedistill.distill.knowledge import FEATURE_LOSSES, NEEDS_REGRESSOR, FeatureTap, regressor

        if data.teacher_module is None:
            raise ValueError("feature terms need the teacher's torch module (TrainSet.teacher_module)")
        if ddp.active():
            raise ValueError("feature terms are not supported under torch.distributed yet")
        self.terms = objective.features
        self.fns = [FEATURE_LOSSES.get(t.loss) for t in self.terms]
        self.teacher = data.teacher_module
        self.s_tap = FeatureTap(model, sorted({t.student for t in self.terms}), "the student")
        self.t_tap = FeatureTap(self.teacher, sorted({t.teacher for t in self.terms}), "the teacher")
        was = model.training
        model.eval()
        with torch.no_grad():
            probe = model_input(data.x[:2])
            model(probe)
            self.teacher(probe)
        model.train(was)
        self.heads = nn.ModuleDict()
        for i, t in enumerate(self.terms):
            if t.loss in NEEDS_REGRESSOR:
                fs, ft = self.s_tap.outputs[t.student], self.t_tap.outputs[t.teacher]
                torch.manual_seed(1000 + i)
                self.heads[str(i)] = regressor(tuple(fs.shape[1:]), tuple(ft.shape[1:]))
        self._sums = [0.0] * len(self.terms)
        self._count = 0

    def loss(self, xb: torch.Tensor) -> torch.Tensor:
        """After the student's forward on xb: run the teacher on xb and add every weighted term."""
        with torch.no_grad():
            self.teacher(xb)
        total = torch.zeros(())
        for i, (t, fn) in enumerate(zip(self.terms, self.fns)):
            fs = self.s_tap.outputs[t.student]
            if str(i) in self.heads:
                fs = self.heads[str(i)](fs)
            value = fn(fs, self.t_tap.outputs[t.teacher].detach())
            self._sums[i] += float(value.detach())
            total = total + t.weight * value
        self._count += 1
        return total

    def epoch_terms(self) -> dict:
        out = {f"{t.loss}:{t.student}->{t.teacher}": s / max(1, self._count) for t, s in zip(self.terms, self._sums)}
        self._sums, self._count = [0.0] * len(self.terms), 0
        return out

    def close(self) -> None:
        self.s_tap.close()
        self.t_tap.close()


def feature_terms(model: nn.Module, data: TrainSet, objective: Objective):
    """The objective's feature terms on this data: text_knowledge.TextFeatureTerms for a text teacher's features
    (`data.text_features`), FeatureTerms on the teacher's torch module otherwise."""
    if data.text_features is None:
        return FeatureTerms(model, data, objective)
    from edgedistill.distill.text_knowledge import TextFeatureTerms

    if ddp.active():
        raise ValueError("feature terms are not supported under torch.distributed yet")
    return TextFeatureTerms(model, data.x[:2], data.text_features, objective.features)
