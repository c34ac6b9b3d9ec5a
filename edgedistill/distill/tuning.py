"""`auto` temperature / alpha (and soft loss): a bounded grid of short trials scored on the validation split.

The grid: for each loss, its temperatures (below) × alpha in {0.5, 0.9, 1} (alpha = 1 alone without labels; alpha 1
with labels is pure function matching: the labels only score the trials, which was the steadiest recipe measured in
docs/distillation_gain.md). `loss = kd` with T and alpha auto is 4 × 3 = 12 trials; `loss = auto` adds decoupled KD
(T 1, 4: the DKD paper's setting is 4) and standardized-logit KD (T 2, 4: logits are z-scored, so the useful
temperatures are lower), 24 trials in all. Each trial is `tune_epochs` epochs (default epochs // 3) on at most
`tune_max_samples` transfer samples, with the run's augmentation. The no-teacher objective is scored with the same
budget, so a setting is only chosen if it is measured against what training without a teacher gets in the same time.
Ties keep the earlier candidate (plain KD first, lower alpha first).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit

TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
LOSS_TEMPERATURES = {"kd": TEMPERATURES, "dkd": (1.0, 4.0), "kd-std": (2.0, 4.0), "mse": (1.0,)}
AUTO_LOSSES = ("kd", "dkd", "kd-std")
ALPHAS = (0.5, 0.9, 1.0)


@dataclass(frozen=True)
class Trial:
    loss: str
    temperature: float
    alpha: float
    teacher: bool
    val_acc: float


@dataclass(frozen=True)
class TuneResult:
    chosen: Objective
    trials: list[Trial]
    baseline_val_acc: float


def candidate_objectives(loss: str, temperature, alpha, labeled: bool) -> list[Objective]:
    alphas = (1.0,) if not labeled else ALPHAS if alpha == "auto" else (float(alpha),)
    out = []
    for name in AUTO_LOSSES if loss == "auto" else (loss,):
        ts = LOSS_TEMPERATURES.get(name, TEMPERATURES) if temperature == "auto" else (float(temperature),)
        if name == "mse":
            ts = (1.0,)
        out += [Objective(True, name, t, a) for t in ts for a in alphas]
    return out


def tune(make_model: Callable[[], nn.Module], data: TrainSet, val_x: torch.Tensor, val_y: torch.Tensor,
         loss: str, temperature, alpha, settings: TrainSettings, max_samples: int,
         on_trial: Callable[[Trial], None] | None = None) -> TuneResult:
    """Score each candidate objective with a short identical run; return the best (ties keep the earlier)."""
    n = min(len(data), max_samples)
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(settings.seed))[:n]
    sub = data.subset(idx)
    candidates = candidate_objectives(loss, temperature, alpha, data.y is not None)
    if data.y is not None:
        candidates.append(Objective(teacher=False))
    init = make_model()
    trials: list[Trial] = []
    for obj in candidates:
        model = copy.deepcopy(init)
        res = fit(model, sub, val_x, val_y, obj, settings)
        trial = Trial(obj.loss, obj.temperature, obj.alpha, obj.teacher, res.best_val_acc)
        trials.append(trial)
        if on_trial:
            on_trial(trial)
    kd_trials = [t for t in trials if t.teacher]
    best = max(kd_trials, key=lambda t: t.val_acc)
    base = [t.val_acc for t in trials if not t.teacher]
    return TuneResult(Objective(True, best.loss, best.temperature, best.alpha), trials, base[0] if base else float("nan"))


def tuning_settings(settings: TrainSettings, tune_epochs: int | None) -> TrainSettings:
    return replace(settings, epochs=tune_epochs or max(1, settings.epochs // 3))
