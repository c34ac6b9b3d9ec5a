"""Stage 4, tune: the distillation objective (loss, temperature T, alpha). Fixed values from the config are used as
given; any `auto` runs the bounded search of edgedistill.distill.tuning on the validation split (never the test
split), which keeps its reference recipe unless a trial beats it beyond the paired validation noise."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from edgedistill.config import DistillConfig
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings
from edgedistill.distill.tuning import TuneResult, candidate_objectives, tune, tuning_settings
from edgedistill.pipeline.checks import feature_terms
from edgedistill.pipeline.inputs import EvalTensors


@dataclass(frozen=True)
class Tuned:
    """The objective training uses (feature terms attached) and, when searched, the search's record."""

    objective: Objective
    search: TuneResult | None
    seconds: float | None


def fixed_objective(config: DistillConfig, labeled: bool) -> Objective | None:
    """The objective the config fixes, or None when anything in it is 'auto'."""
    t, a = config.kd.temperature, config.kd.alpha
    if not labeled:
        a = 1.0  # unlabeled transfer set: soft targets are all there is
    if config.kd.loss == "mse":
        t = 1.0 if t == "auto" else t
    if t == "auto" or a == "auto" or config.kd.loss == "auto":
        return None
    return Objective(True, config.kd.loss, float(t), float(a))


def choose_objective(config: DistillConfig, data: TrainSet, ev: EvalTensors, settings: TrainSettings,
                     make_model: Callable[[], torch.nn.Module], ui) -> Tuned:
    labeled = ev.y_transfer is not None
    objective, search, seconds = fixed_objective(config, labeled), None, None
    if objective is None:
        t0 = time.perf_counter()
        tset = tuning_settings(settings, config.kd.tune_epochs, min(len(data), config.kd.tune_max_samples))
        n_trials = len(candidate_objectives(config.kd.loss, config.kd.temperature, config.kd.alpha, labeled)) + labeled
        what = "loss/T/alpha" if config.kd.loss == "auto" else "T/alpha"
        update = ui.task(f"auto {what} ({n_trials} trials)", n_trials)
        search = tune(make_model, data, ev.x_val, ev.y_val, config.kd.loss, config.kd.temperature, config.kd.alpha,
                      tset, config.kd.tune_max_samples, on_trial=lambda tr: update(1, val_acc=tr.val_acc))
        if search.skipped:
            update(n_trials - len(search.trials))  # the trials not run: the bar ends, the report says why
        objective = search.chosen
        seconds = time.perf_counter() - t0
    return Tuned(replace(objective, features=feature_terms(config)), search, seconds)
