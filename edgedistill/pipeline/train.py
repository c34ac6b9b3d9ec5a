"""Stage 5, train: the distilled student under the configured scheme (offline, born-again, mutual) and its
no-teacher twin (same architecture, initialisation, data order, augmentation and epochs; hard labels only), each
resumable from the run directory's checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from edgedistill.config import DistillConfig
from edgedistill.distill.schemes import born_again, mutual_student, trainable_teacher
from edgedistill.distill.trainer import (FitResult, Objective, TrainSet, TrainSettings, accuracy, fit, planned_samples,
                                         predict_logits)
from edgedistill.pipeline.inputs import EvalTensors
from edgedistill.progress import step_bar
from edgedistill.teachers import Teacher


@dataclass(frozen=True)
class Trained:
    """The deployed student with its training record and scheme record; the twin (None with --no-baseline or an
    unlabelled transfer set) with its record."""

    student: torch.nn.Module
    result: FitResult
    scheme: dict
    twin: torch.nn.Module | None
    twin_result: FitResult | None


def fit_bar(ui, label: str, settings: TrainSettings, n: int):
    """A training run's progress bar in its budget's unit: optimizer steps when the budget is in steps (`--steps N`
    shows 0/N, as a causal LM's bars do), else the samples of its epochs over `n` training samples."""
    if settings.steps is not None:
        return step_bar(ui, label, settings.steps, settings.batch_size)
    return ui.task(label, planned_samples(settings, n))


def fit_model(make_model: Callable[[], torch.nn.Module], data: TrainSet, ev: EvalTensors, objective: Objective,
              settings: TrainSettings, checkpoint: Path, update) -> tuple[torch.nn.Module, FitResult]:
    """A fresh model from `make_model`, trained (resuming from `checkpoint`), with its best validation weights."""
    model = make_model()
    res = fit(model, data, ev.x_val, ev.y_val, objective, settings, checkpoint=checkpoint,
              progress=lambda k, loss, val: update(k, loss, val))
    model.load_state_dict(res.best_state)
    return model.eval(), res


def _mutual(config, make_peer, teachers, data, ev, objective, settings, label, ui):
    update = fit_bar(ui, f"mutual ×{config.kd.peers}, " + label, settings, len(data))
    online = trainable_teacher(teachers[0].torch_module()) if config.kd.online_teacher else None
    return mutual_student(make_peer, config.kd.peers, data, ev.x_val, ev.y_val, objective, settings,
                          config.kd.mutual_weight, lambda m: accuracy(predict_logits(m, ev.x_test), ev.y_test), update,
                          online, config.kd.teacher_lr_scale)


def train_students(config: DistillConfig, make_model: Callable[[int], torch.nn.Module], teachers: tuple[Teacher, ...],
                   data: TrainSet, ev: EvalTensors, objective: Objective, settings: TrainSettings,
                   checkpoints: Path, ui) -> Trained:
    """`make_model(k)` builds student number k of the run, seeded (k = 0: the student and its twin start equal)."""
    label = f"distill (T={objective.temperature:g}, α={objective.alpha:g})"
    first = lambda: make_model(0)  # noqa: E731
    if config.kd.scheme == "mutual":
        student, res, scheme = _mutual(config, make_model, teachers, data, ev, objective, settings, label, ui)
    else:
        student, res = fit_model(first, data, ev, objective, settings, checkpoints / "student.pt",
                                 fit_bar(ui, label, settings, len(data)))
        scheme = {"scheme": "offline"}
    if config.kd.scheme == "born-again":
        def train_gen(mk, d, obj, tag):
            return fit_model(mk, d, ev, obj, settings, checkpoints / f"{tag}.pt", fit_bar(ui, tag, settings, len(d)))

        student, res, gens = born_again(student, res, train_gen, first, data, objective, settings,
                                        config.kd.generations, lambda m: accuracy(predict_logits(m, ev.x_test),
                                                                                  ev.y_test))
        scheme = {"scheme": "born-again", "generations": [asdict(g) for g in gens]}
    twin = twin_res = None
    if config.baseline and ev.y_transfer is not None:
        twin, twin_res = fit_model(first, data, ev, Objective(teacher=False), settings, checkpoints / "baseline.pt",
                                   fit_bar(ui, "no-teacher twin", settings, len(data)))
    return Trained(student, res, scheme, twin, twin_res)
