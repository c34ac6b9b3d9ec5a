"""Stage 4, tune: the distillation objective (loss, temperature T, alpha). Fixed values from the config are used as
given; any `auto` runs the bounded search of edgedistill.distill.tuning on the validation split (never the test
split), which keeps its reference recipe unless a trial beats it beyond the paired validation noise.

The search's result is kept in the run's checkpoint directory (`tuning.json`, under the search's key: the training
checkpoint's fingerprint of the trial settings, data, teacher outputs and architecture, plus the validation split
and the search's arguments), so a run interrupted after the trials resumes without running them again; another
key (other data, settings or code) runs the search afresh. The directory goes when the run is published."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from edgedistill import distributed as ddp
from edgedistill.config import DistillConfig
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings
from edgedistill.distill.tuning import TuneResult, candidate_objectives, search_key, tune, tuning_settings
from edgedistill.pipeline.checks import feature_terms
from edgedistill.pipeline.inputs import EvalTensors
from edgedistill.util import write_json

TUNING_FILE = "tuning.json"


@dataclass(frozen=True)
class Tuned:
    """The objective training uses (feature terms attached) and, when searched, the search's record (`resumed`:
    read back from the run's checkpoint directory, the trials not run again)."""

    objective: Objective
    search: TuneResult | None
    seconds: float | None
    resumed: bool = False


def _saved(path: Path | None, key: str) -> TuneResult | None:
    """The search result stored under `key`, or None (no file, another key, or a damaged file: search afresh)."""
    if path is None or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return TuneResult.from_dict(record["result"]) if record.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
                     make_model: Callable[[], torch.nn.Module], ui, checkpoints: Path | None = None) -> Tuned:
    """The objective (see the module docstring); `checkpoints`: the run's checkpoint directory, where the search's
    result is stored and, on a resumed run with the same key, read back instead of searching again."""
    labeled = ev.y_transfer is not None
    objective, search, seconds = fixed_objective(config, labeled), None, None
    if objective is None:
        t0 = time.perf_counter()
        tset = tuning_settings(settings, config.kd.tune_epochs, min(len(data), config.kd.tune_max_samples))
        path = None if checkpoints is None else checkpoints / TUNING_FILE
        key = search_key(make_model, data, ev.x_val, ev.y_val, config.kd.loss, config.kd.temperature,
                         config.kd.alpha, tset, config.kd.tune_max_samples) if path is not None else ""
        if (saved := _saved(path, key)) is not None:
            return Tuned(replace(saved.chosen, features=feature_terms(config)), saved,
                         time.perf_counter() - t0, resumed=True)
        n_trials = len(candidate_objectives(config.kd.loss, config.kd.temperature, config.kd.alpha, labeled)) + labeled
        what = "loss/T/alpha" if config.kd.loss == "auto" else "T/alpha"
        update = ui.task(f"auto {what} ({n_trials} trials)", n_trials)
        search = tune(make_model, data, ev.x_val, ev.y_val, config.kd.loss, config.kd.temperature, config.kd.alpha,
                      tset, config.kd.tune_max_samples, on_trial=lambda tr: update(1, val_acc=tr.val_acc))
        if search.skipped:  # the bar stays at the trials that ran; one line says the rest did not, as the report
            ui.log(f"auto {what}: {len(search.trials)} of {n_trials} trials run, the rest skipped: too short to rank "
                   "(the report says why)")
        objective = search.chosen
        seconds = time.perf_counter() - t0
        if path is not None and ddp.is_main():
            write_json(path, {"key": key, "result": search.to_dict()})
    return Tuned(replace(objective, features=feature_terms(config)), search, seconds)
