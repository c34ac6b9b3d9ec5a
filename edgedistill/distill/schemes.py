"""Distillation schemes beyond offline (a frozen teacher, one student): born-again generations and mutual learning.

* Born-again networks (Furlanello et al., ICML 2018): once the student has learnt from the teacher, a fresh student
  of the same architecture learns from it (soft targets of the previous generation, same objective, same data
  order and augmentation), and so on for `generations` more rounds. The last generation is the result; every
  generation's validation and test accuracy is reported.
* Deep mutual learning (Zhang et al., CVPR 2018): `peers` students of the same architecture (different
  initialisations) train together on the same batches; each minimises its own objective (hard labels and, when
  alpha > 0, the frozen teacher) plus `weight` · KL(p_peer ‖ p_self) towards every other peer's current
  predictions (detached), at temperature 1. The peer with the best validation accuracy is the result.
  With `online_teacher`, the teacher itself (a copy of its torch module) joins the peers and keeps training at a
  smaller learning rate: online distillation, teacher and student learn together (DML's large-network setting).
  Its knowledge then flows through the live KL term only; the frozen-teacher soft targets are not used.

Both reuse the trainer's pieces (batches, augmentation stream, optimizers, schedules); mutual learning has its own
small loop, without resume or torch.distributed (refused up front), because it steps several models at once.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.data.augment import batch_generator
from edgedistill.distill.losses import distillation_objective
from edgedistill.distill.optim import OPTIMIZERS, SCHEDULES, lr_groups
from edgedistill.distill.trainer import (
    EpochRecord,
    FitResult,
    Objective,
    TrainSet,
    TrainSettings,
    batch_at,
    keep_last_epoch,
    mixed_labels,
    planned_samples,
    predict_logits,
    total_steps,
    val_accuracy,
)
from edgedistill.errors import ConfigError
from edgedistill.teachers.ensemble import combine
from edgedistill.teachers.stream import TeacherStream

SCHEMES = ("offline", "born-again", "mutual")


@dataclass(frozen=True)
class Generation:
    index: int  # 0: learnt from the configured teacher
    val_acc: float
    test_acc: float | None = None


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def student_as_teacher(model: nn.Module, data: TrainSet, augmented: bool) -> TrainSet:
    """`data` with a trained student (frozen, eval mode) in the teacher's place."""
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    if augmented:  # the previous generation runs on each augmented batch, like any teacher (function matching)
        stream = TeacherStream(lambda xb: frozen(xb).detach()[None], f"born-again|{weights_digest(frozen)}", None)
        return replace(data, teacher_members=None, ensemble="arithmetic", teacher_stream=stream, teacher_module=None,
                       teacher_topk=None)
    return replace(data, teacher_members=predict_logits(frozen, data.x)[None], ensemble="arithmetic",
                   teacher_stream=None, teacher_module=None, teacher_topk=None)


def born_again(first: nn.Module, first_result: FitResult, train: Callable, make_model: Callable[[], nn.Module],
               data: TrainSet, objective: Objective, settings: TrainSettings, generations: int,
               score: Callable[[nn.Module], float]) -> tuple[nn.Module, FitResult, list[Generation]]:
    """Train `generations` more students, each from the previous one. `train(model_factory, data, objective, tag)`
    is the pipeline's trainer (checkpoints, progress); `score(model)` its test accuracy."""
    model, result = first, first_result
    record = [Generation(0, first_result.best_val_acc, score(first))]
    objective = replace(objective, teacher=True, features=())  # feature terms name the original teacher's layers
    for g in range(1, generations + 1):
        gen_data = student_as_teacher(model, data, settings.augment.enabled)
        model, result = train(make_model, gen_data, objective, f"born-again-{g}")
        record.append(Generation(g, result.best_val_acc, score(model)))
    return model, result, record


def fit_mutual(models: list[nn.Module], data: TrainSet, val_x: torch.Tensor, val_y: torch.Tensor,
               objective: Objective, settings: TrainSettings, weight: float,
               progress: Callable[[int, float, float | None], None] | None = None,
               lr_scales: list[float] | None = None) -> list[FitResult]:
    """Deep mutual learning: every model steps on the same batch with its objective + weight · mean KL to peers.
    `lr_scales[k]` multiplies model k's learning rate (an online teacher fine-tunes gently). Runs
    total_steps(settings) optimizer steps (a step budget cuts the last epoch short) and validates at every epoch's
    end and after the last step."""
    n = len(data)
    steps = (n + settings.batch_size - 1) // settings.batch_size
    lrs = [settings.lr * s for s in (lr_scales or [1.0] * len(models))]
    opts = [OPTIMIZERS.get(settings.optimizer)(lr_groups(m, lr), lr, settings.weight_decay, settings.momentum)
            for m, lr in zip(models, lrs)]
    total = total_steps(settings, n)  # whole epochs, or exactly settings.steps (the last epoch cut short)
    scheds = [SCHEDULES.get(settings.schedule)(o, total, lr) for o, lr in zip(opts, lrs)]
    gen = torch.Generator().manual_seed(settings.seed)
    results = [FitResult(copy.deepcopy(m.state_dict()), 0, -1.0) for m in models]
    aug = settings.augment
    use_teacher = objective.teacher and objective.alpha > 0
    on_the_fly = use_teacher and aug.enabled
    fixed = data.teacher_logits(objective.temperature) if use_teacher and not on_the_fly else None
    key = data.teacher_stream.stream_key(data.x, settings.seed, settings.batch_size, aug) if on_the_fly else ""
    done = 0
    for epoch in range(-(-total // steps)):
        t0 = time.perf_counter()
        for m in models:
            m.train()
        order = torch.randperm(n, generator=gen)
        totals = [0.0] * len(models)
        seen = 0
        for step in range(min(steps, total - done)):
            i = step * settings.batch_size
            idx = order[i: i + settings.batch_size]
            xb, yb, mix = batch_at(data, idx, aug, batch_generator(settings.seed, epoch, step))
            tb = fixed[idx] if fixed is not None else None
            if on_the_fly:
                tb = combine(data.teacher_stream.members(key, epoch, step, steps, xb), data.ensemble,
                             objective.temperature)
            logits = [m(xb) for m in models]
            if yb is not None and mix is not None:
                yb = mixed_labels(mix, yb, logits[0].shape[1])
            for k, (out, opt, sched) in enumerate(zip(logits, opts, scheds)):
                own = distillation_objective(out, tb, yb, objective.loss, objective.temperature,
                                             objective.alpha if use_teacher else 0.0)
                log_p = F.log_softmax(out, 1)
                peers = [F.kl_div(log_p, F.softmax(o.detach(), 1), reduction="batchmean")
                         for j, o in enumerate(logits) if j != k]
                loss = own + weight * torch.stack(peers).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                totals[k] += float(loss.detach()) * len(xb)
            done, seen = done + 1, seen + len(idx)
            if progress:
                progress(len(idx), totals[0] / max(1, i + len(idx)), None)
        for m, r, opt, loss_sum in zip(models, results, opts, totals):
            acc = val_accuracy(m, val_x, val_y)
            r.history.append(EpochRecord(epoch + 1, loss_sum / seen, acc, opt.param_groups[0]["lr"],
                                         time.perf_counter() - t0, step=done))
            r.seconds += time.perf_counter() - t0
            if acc > r.best_val_acc:
                r.best_val_acc, r.best_epoch, r.best_step = acc, epoch + 1, done
                r.best_state = copy.deepcopy(m.state_dict())
        if progress:
            progress(0, totals[0] / seen, results[0].best_val_acc)
    for m, r in zip(models, results):
        r.steps, r.eval_every = done, steps
        r.samples_per_s = planned_samples(settings, n) * len(models) / r.seconds if r.seconds else 0.0
        if r.history and keep_last_epoch(r.best_val_acc, r.history[-1].val_acc, len(val_y)):  # as fit() does
            last = r.history[-1]
            r.best_val_acc, r.best_epoch, r.best_step = last.val_acc, last.epoch, last.step
            r.best_state = copy.deepcopy(m.state_dict())
    return results


def check_online_teacher(config, teachers: list, splits) -> None:
    """An online teacher trains: it must be one torch module fed raw samples, with labels to learn from."""
    why = ("it needs --scheme mutual" if config.kd.scheme != "mutual" else
           "it needs exactly one teacher" if len(teachers) != 1 else
           f"{teachers[0].name!r} is {teachers[0].format}, not a trainable torch module"
           if teachers[0].torch_module() is None else
           "the teacher must take raw samples (teacher input 'raw')" if config.teachers[0].input != "raw" else
           "it needs labelled training data (no separate transfer set)"
           if splits.train.y is None or config.data.transfer else "")
    if why:
        raise ConfigError(f"An online teacher (kd.online_teacher) trains together with the students, so {why}. "
                          "Drop kd.online_teacher to keep the teacher frozen.")


def trainable_teacher(module: nn.Module) -> nn.Module:
    """A copy of the teacher's torch module that can train as a peer (the user's teacher is left untouched)."""
    copy_ = copy.deepcopy(module)
    for p in copy_.parameters():
        p.requires_grad_(True)
    return copy_


def mutual_student(make_peer: Callable[[int], nn.Module], peers: int, data: TrainSet, val_x: torch.Tensor,
                   val_y: torch.Tensor, objective: Objective, settings: TrainSettings, weight: float,
                   score: Callable[[nn.Module], float], progress: Callable | None = None,
                   online_teacher: nn.Module | None = None,
                   teacher_lr_scale: float = 0.1) -> tuple[nn.Module, FitResult, dict]:
    """Train `peers` students with `fit_mutual` (and the online teacher, if given, as one more peer); the best
    student on validation is the student. Returns it, its FitResult and a record of every member (validation and
    `score`, i.e. test, accuracy)."""
    models = [make_peer(k) for k in range(peers)]
    scales = [1.0] * peers
    teacher_before = None
    if online_teacher is not None:
        teacher_before = {"val_acc": val_accuracy(online_teacher, val_x, val_y), "test_acc": score(online_teacher)}
        models.append(online_teacher)
        scales.append(teacher_lr_scale)
        objective = replace(objective, teacher=False, features=())  # the live teacher replaces the frozen one
    results = fit_mutual(models, data, val_x, val_y, objective, settings, weight, progress, scales)
    for m, r in zip(models, results):
        m.load_state_dict(r.best_state)
        m.eval()
    best = max(range(peers), key=lambda k: results[k].best_val_acc)
    info = {"scheme": "mutual", "chosen": best,
            "peers": [{"index": k, "val_acc": r.best_val_acc, "test_acc": score(m)}
                      for k, (m, r) in enumerate(zip(models[:peers], results))]}
    if online_teacher is not None:
        info["online_teacher"] = {"lr_scale": teacher_lr_scale, "before": teacher_before,
                                  "after": {"val_acc": results[-1].best_val_acc, "test_acc": score(models[-1])}}
    return models[best], results[best], info
