"""The training loop shared by distillation, its no-teacher twin and the auto-tuning trials.

Deterministic for a given seed (data order from a seeded generator, checkpointed with everything else). The budget
is a number of optimizer steps: whole epochs (`epochs`), or exactly `steps`, the last epoch cut short, with the
learning-rate schedule sized to them. Validates every `eval_every` steps (schedule.eval_interval: every epoch while
an epoch is at most 1,000 steps, more often within a longer one) and after the last step, keeps the last weights
unless an earlier evaluation was better on validation beyond its noise, and checkpoints at every evaluation point,
from which a run resumes exactly, mid-epoch included (edgedistill.distill.resume).

Samples may be kept in their stored dtype (a memory-mapped uint8 x.npy): each batch becomes float32 as it is built
(`edgedistill.data.arrays.model_input`), so the whole set never exists in float32.

Batches come from torch's DataLoader (edgedistill.distill.loader), built in `settings.workers` worker processes or
in this one; augmentation (settings.augment) draws from a generator seeded by (seed, epoch, step) that nothing else
consumes, so a batch is the same whoever builds it: a distilled student and its no-teacher twin with the same
settings see identical batches, the worker count changes nothing, and with augmentation on the teacher runs on those
same batches (`TrainSet.teacher_stream`), never on un-augmented cached samples.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgedistill import distributed as ddp
from edgedistill.data.arrays import model_input
from edgedistill.data.mapped import release_pages
from edgedistill.data.augment import Augment, Mix
from edgedistill.distill import loader, resume
from edgedistill.distill.feature_terms import feature_terms
from edgedistill.distill.loader import rows_of as _rows
from edgedistill.distill.losses import distillation_objective
from edgedistill.distill.optim import OPTIMIZERS, SCHEDULES, lr_groups
from edgedistill.distill.schedule import eval_interval
from edgedistill.distill.weights_choice import MIN_LEAD_SAMPLES, keep_last_epoch  # noqa: F401 (re-exported)
from edgedistill.errors import RunFailed
from edgedistill.teachers.ensemble import combine
from edgedistill.teachers.stream import TeacherStream
from edgedistill.distill.topk_table import TopKTable


class TrainingDiverged(RunFailed):
    """The training loss became NaN or infinite: the run stops instead of writing a model of NaN weights."""


@dataclass(frozen=True)
class TrainSettings:
    """The budget and optimizer of one fit(). `steps`: optimizer steps in all, exactly (None: `epochs` whole
    epochs); `eval_every`: optimizer steps between two validations (None: schedule.eval_interval)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    optimizer: str = "adamw"
    schedule: str = "cosine"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    seed: int = 0
    augment: Augment = Augment()
    steps: int | None = None
    eval_every: int | None = None
    workers: int = 0  # DataLoader worker processes building batches (0: this process); changes no result

    @classmethod
    def of(cls, train, augment: Augment, workers: int = 0) -> "TrainSettings":
        """From a resolved config's `train` section (edgedistill.config.TrainConfig, after schedule.resolve_config)
        and the run's augmentation; the section's keys that are not fit()'s (threads, min_steps) are left out."""
        mine = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in train.model_dump().items() if k in mine}, augment=augment, workers=workers)


def steps_per_epoch(settings: TrainSettings, n: int) -> int:
    return -(-n // settings.batch_size)


def total_steps(settings: TrainSettings, n: int) -> int:
    """Optimizer steps fit() takes on n samples: `steps` when given, else `epochs` whole epochs."""
    return settings.steps if settings.steps is not None else settings.epochs * steps_per_epoch(settings, n)


def planned_samples(settings: TrainSettings, n: int) -> int:
    """Samples fit() trains on over n samples (a progress bar's total): whole epochs, then the cut-short one."""
    full, rest = divmod(total_steps(settings, n), steps_per_epoch(settings, n))
    return full * n + min(n, rest * settings.batch_size)


@dataclass(frozen=True)
class FeatureTerm:
    """weight · FEATURE_LOSSES[loss](student layer's output, teacher layer's output), added to the response loss."""

    loss: str
    weight: float
    student: str
    teacher: str


@dataclass(frozen=True)
class Objective:
    """What the student learns from: `teacher=False` is the no-teacher twin (hard labels only)."""

    teacher: bool = True
    loss: str = "kd"
    temperature: float = 4.0
    alpha: float = 0.9
    features: tuple[FeatureTerm, ...] = ()


@dataclass(frozen=True)
class TrainSet:
    """Raw samples, optional labels and the teacher: logits per sample (M members × N × K, aligned by index) for
    training without augmentation, and/or a stream that runs the teacher on augmented batches."""

    x: torch.Tensor
    y: torch.Tensor | None
    teacher_members: torch.Tensor | None
    ensemble: str = "arithmetic"
    teacher_stream: TeacherStream | None = None
    teacher_module: nn.Module | None = None  # the (first) teacher's torch module, for feature terms
    text_features: Callable | None = None  # text: token ids -> the teacher's AlignedTextFeatures (text_knowledge)
    teacher_topk: TopKTable | None = None  # instead of teacher_members: one teacher's top-k cache (cache_form.py)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def teacher_logits(self, temperature: float) -> torch.Tensor | TopKTable | None:
        """Effective teacher logits whose softmax at `temperature` is the ensemble's soft target, or the top-k
        table (indexed like them; ConfigError if the rest's mass was not stored at `temperature`)."""
        if self.teacher_topk is not None:
            return self.teacher_topk.at(temperature)
        if self.teacher_members is None:
            return None
        return combine(self.teacher_members, self.ensemble, temperature)

    def labeled(self) -> "TrainSet":
        """The samples that carry a label (y >= 0): what a user without a teacher can train on. Self when all do."""
        if self.y is None or bool((self.y >= 0).all()):
            return self
        return self.subset(torch.nonzero(self.y >= 0).flatten())

    def subset(self, idx: torch.Tensor) -> "TrainSet":
        members = None if self.teacher_members is None else self.teacher_members[:, idx]
        topk = None if self.teacher_topk is None else self.teacher_topk.subset(idx)
        return TrainSet(self.x[idx], None if self.y is None else self.y[idx], members, self.ensemble,
                        self.teacher_stream, self.teacher_module, self.text_features, topk)


@dataclass
class EpochRecord:
    """One evaluation point: the epoch it fell in (1-based; at an epoch's end, the epochs done), the optimizer steps
    done, the mean training loss since the previous evaluation, validation accuracy, learning rate, seconds."""

    epoch: int
    train_loss: float
    val_acc: float
    lr: float
    seconds: float
    terms: dict = field(default_factory=dict)  # mean of each loss term since the previous evaluation (feature terms)
    step: int = 0


@dataclass
class FitResult:
    """The chosen weights (best_epoch / best_step: the evaluation they come from; 0: the starting weights) and the
    record: `steps` optimizer steps in all (resumed ones included), validated every `eval_every` steps."""

    best_state: dict
    best_epoch: int
    best_val_acc: float
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_s: float = 0.0
    data_s: float = 0.0  # of `seconds`: waiting for batches (indexing, decoding to float, augmentation in this
    # process; with workers, only the time the step waited for the next batch)
    workers: int = 0  # DataLoader worker processes that built the batches
    samples_read: int = 0  # samples this process read to build its batches (this call; its shard of each batch)
    resumed_from_epoch: int = 0
    best_step: int = 0
    steps: int = 0
    eval_every: int = 0
    resumed_from_step: int = 0


@torch.no_grad()
def val_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Validation accuracy; under torch.distributed each rank scores a shard and the counts are summed."""
    if not ddp.active():
        return accuracy(predict_logits(model, x), y)
    sl = slice(ddp.rank(), None, ddp.world())
    correct = (predict_logits(model, x[sl]).argmax(1) == y[sl]).sum().double()
    return 100.0 * float(ddp.all_sum(correct)) / len(y)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch: int = 1024, progress=None) -> torch.Tensor:
    """N×K logits of `model` in eval mode, in batches; `progress(k)` is told of every k samples done."""
    was_training = model.training
    model.eval()
    parts = []
    for i in range(0, len(x), batch):
        parts.append(model(model_input(x[i : i + batch])))
        if (i // batch) % 16 == 15:
            release_pages()  # memory-mapped samples (edgedistill.data.mapped)
        if progress:
            progress(len(parts[-1]))
    model.train(was_training)
    return torch.cat(parts)


def batch_at(data: TrainSet, idx: torch.Tensor, aug: Augment,
             aug_gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None, Mix | None]:
    """One training batch (float32, or token ids): augmented inputs, their labels and what mixup did (None without
    mixup)."""
    xb = model_input(_rows(data.x, idx))
    yb = data.y[idx] if data.y is not None else None
    if not aug.enabled:
        return xb, yb, None
    xb, mix = aug.apply(xb, aug_gen)
    return xb, yb, mix


def mixed_labels(mix: Mix, yb: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mixup's soft labels; a mixed sample is labelled only when both of its sources are (an all-zero row marks
    it unlabelled, see losses.labeled_rows)."""
    known = yb >= 0
    if bool(known.all()):
        return mix.soft_labels(yb, num_classes)
    soft = mix.soft_labels(yb.clamp_min(0), num_classes)
    return soft * (known & known[mix.perm]).unsqueeze(1).to(soft.dtype)


def labeled_only(data: TrainSet, settings: TrainSettings) -> tuple[TrainSet, TrainSettings]:
    """The no-teacher twin's data and budget on a partly labelled transfer set: the labelled samples only, for
    exactly the optimizer steps the full set gets (its last epoch over the labelled samples cut short)."""
    sub = data.labeled()
    if sub is data:
        return data, settings
    if len(sub) == 0:
        raise ValueError("the no-teacher twin needs labelled samples; every transfer sample is unlabelled (y = -1)")
    steps = total_steps(settings, len(data))
    per_epoch = steps_per_epoch(settings, len(sub))
    return sub, replace(settings, epochs=-(-steps // per_epoch), steps=steps)  # validated at its own epochs' ends


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(1) == y).float().mean())


ProgressFn = Callable[[int, float | None, float | None], None]  # (samples done in this call, loss, val acc)


def fit(model: nn.Module, data: TrainSet, val_x: torch.Tensor, val_y: torch.Tensor, objective: Objective,
        settings: TrainSettings, checkpoint: Path | None = None,
        progress: ProgressFn | None = None, score_start: bool = False) -> FitResult:
    """Train `model` in place for total_steps(settings, len(data)) optimizer steps; return the chosen weights and the
    history of evaluation points. The chosen weights are the last evaluation's unless an earlier one beat it on
    validation beyond the split's noise (`keep_last_epoch`); best_epoch / best_step and best_val_acc describe the
    chosen weights. `score_start`: the weights `model` starts from are kept instead (best_epoch 0) when they score
    higher on validation than the chosen ones: fine-tuning a model that is already good, as QAT does from its
    post-training int8 starting point, then never ends below where it began. `checkpoint`: written at every
    evaluation point and resumed from when it fits this run (edgedistill.distill.resume).

    Labels of -1 mark unlabelled samples: the soft loss sees them, the hard loss does not (losses.py), and an
    objective without a teacher trains on the labelled samples only, for the same number of optimizer steps, and
    without a mixup that is the teacher's alone (Augment.twin_mixup False: the automatic function-matching mixup)."""
    if not objective.teacher:
        data, settings = labeled_only(data, settings)
        settings = replace(settings, augment=settings.augment.for_twin())  # the automatic mixup is the teacher's
    n, bs = len(data), settings.batch_size
    per_epoch, total = steps_per_epoch(settings, n), total_steps(settings, n)
    every = settings.eval_every or eval_interval(per_epoch, total)
    step_fn = _Stepper(model, data, objective, settings, per_epoch)
    sched = SCHEDULES.get(settings.schedule)(step_fn.opt, total, settings.lr)
    gen = torch.Generator().manual_seed(settings.seed)
    result = FitResult(best_state=copy.deepcopy(model.state_dict()), best_epoch=0, best_val_acc=-1.0, steps=total,
                       eval_every=every)
    start = (copy.deepcopy(model.state_dict()), val_accuracy(model, val_x, val_y)) if score_start else None
    key = resume.fingerprint(settings, objective, data, model) if checkpoint is not None else ""
    pos = resume.Position(0, gen.get_state())
    state = resume.load(checkpoint, key) if checkpoint is not None else None
    if state is not None:
        pos = _restore(state, model, step_fn, sched, result)
        result.resumed_from_step, result.resumed_from_epoch = pos.step, pos.step // per_epoch
        if progress:
            _report_resumed(progress, pos.step, per_epoch, n, bs)
    gen.set_state(pos.generator)
    done, trained, t_train = pos.step, 0, 0.0
    loss_sum, seen, t_seg = torch.zeros(()), 0, time.perf_counter()
    order = loader.Order(gen, n, bs, per_epoch, pos.step, total)
    shard = slice(ddp.rank(), None, ddp.world())
    batches = iter(loader.loader(loader.Batches(data.x, data.y, settings.augment, settings.seed, shard), order,
                                 settings.workers))
    model.train()
    before_step = getattr(model, "before_train_step", None)  # a QAT graph's exact-integer schedule (graph.py)
    while done < total:
        if before_step is not None:
            before_step(done, total)
        t0 = time.perf_counter()
        batch = next(batches)
        step_fn.data_s += time.perf_counter() - t0
        epoch, step = batch.epoch, batch.step
        loss_sum += step_fn(batch, sched)
        result.samples_read += batch.read
        done, seen, trained = done + 1, seen + len(batch.idx), trained + len(batch.idx)
        if progress:
            progress(len(batch.idx), step_fn.last_loss, None)
        if done % every and done < total:
            continue
        t_train += time.perf_counter() - t_seg
        record = _evaluate(model, step_fn, val_x, val_y, epoch + 1, done, loss_sum, seen, t_seg)
        result.history.append(record)
        if record.val_acc > result.best_val_acc:
            result.best_val_acc, result.best_epoch, result.best_step = record.val_acc, epoch + 1, done
            result.best_state = copy.deepcopy(model.state_dict())
        if progress:
            progress(0, record.train_loss, record.val_acc)
        if checkpoint is not None and ddp.is_main():
            ended = step + 1 == per_epoch  # the next step opens a new epoch: its shuffle is drawn from that state
            _checkpoint(checkpoint, key, done, per_epoch, model, step_fn, sched, result,
                        order.state_at(epoch + 1 if ended else epoch))
        model.train()
        loss_sum, seen, t_seg = torch.zeros(()), 0, time.perf_counter()
    del batches  # its workers exit
    step_fn.close()
    result.steps = done
    if result.history and keep_last_epoch(result.best_val_acc, result.history[-1].val_acc, len(val_y)):
        last = result.history[-1]
        result.best_state = copy.deepcopy(model.state_dict())
        result.best_epoch, result.best_step, result.best_val_acc = last.epoch, last.step, last.val_acc
    if start is not None and start[1] > result.best_val_acc:
        result.best_state, result.best_epoch, result.best_step, result.best_val_acc = start[0], 0, 0, start[1]
    result.seconds, result.data_s, result.workers = t_train, step_fn.data_s, settings.workers
    result.samples_per_s = trained / t_train if t_train > 0 else 0.0
    return result


class _Stepper:
    """One optimizer step on a batch of sample indices: the batch (augmented), the teacher's targets (cached or run
    on the augmented batch), this rank's share, the loss, backward, optimizer and scheduler. Owns the optimizer and
    the feature terms."""

    def __init__(self, model: nn.Module, data: TrainSet, objective: Objective, settings: TrainSettings,
                 per_epoch: int):
        self.data, self.objective, self.settings, self.per_epoch = data, objective, settings, per_epoch
        self.features = feature_terms(model, data, objective) if objective.teacher and objective.features else None
        params = lr_groups(model, settings.lr) + ([{"params": list(self.features.heads.parameters())}]
                                                  if self.features else [])
        self.opt = OPTIMIZERS.get(settings.optimizer)(params, settings.lr, settings.weight_decay, settings.momentum)
        aug = settings.augment
        self.on_the_fly = objective.teacher and aug.enabled
        if self.on_the_fly and data.teacher_stream is None:
            raise ValueError("training with augmentation and a teacher needs TrainSet.teacher_stream (the teacher "
                             "must see the augmented batch)")
        self.teacher_logits = (data.teacher_logits(objective.temperature)
                               if objective.teacher and not self.on_the_fly else None)
        self.stream_key = (data.teacher_stream.stream_key(data.x, settings.seed, settings.batch_size, aug)
                           if self.on_the_fly else "")
        if ddp.active():  # each rank runs the teacher on its own slice of every batch: its own stream
            self.stream_key += f"|rank{ddp.rank()}of{ddp.world()}"
        self.shard = slice(ddp.rank(), None, ddp.world())  # this rank's share of every global batch
        self.net = ddp.wrap(model)
        self.last_loss = 0.0
        self.data_s = 0.0  # seconds spent waiting for batches

    def __call__(self, batch: loader.Batch, sched) -> torch.Tensor:
        """Train on this rank's share of a global batch; returns the loss times its size (detached)."""
        data, objective, shard = self.data, self.objective, self.shard
        epoch, step, xb, yb, mix = batch.epoch, batch.step, batch.x, batch.y, batch.mix
        tb = _rows(self.teacher_logits, batch.idx[shard]) if self.teacher_logits is not None else None
        if self.on_the_fly:
            members = data.teacher_stream.members(self.stream_key, epoch, step, self.per_epoch, xb)
            tb = combine(members, data.ensemble, objective.temperature)
        logits = self.net(xb)
        if yb is not None:
            yb = (mixed_labels(mix, yb, logits.shape[1]) if mix is not None else yb)[shard]
        loss = distillation_objective(logits, tb if objective.teacher else None, yb, objective.loss,
                                      objective.temperature, objective.alpha)
        if self.features is not None:
            loss = loss + self.features.loss(xb)
        if not torch.isfinite(loss.detach()):
            raise TrainingDiverged(
                f"Training diverged: the loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}"
                f" (lr {self.opt.param_groups[0]['lr']:.3g}). Usual causes: a learning rate too high for this "
                "student (--lr), NaN or infinite values in the data, or a student whose output is undefined for "
                "some inputs (a custom layer dividing by zero, attention over padding only). Nothing was written.")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        sched.step()
        self.last_loss = float(loss.detach())
        return loss.detach() * len(xb)

    def close(self) -> None:
        if self.features is not None:
            self.features.close()


def _report_resumed(progress: ProgressFn, step: int, per_epoch: int, n: int, batch_size: int) -> None:
    """Tell `progress` of the samples a resumed run's first `step` steps trained on, so its bar goes on from there
    rather than from 0: one report per whole epoch (n samples), then the cut-short epoch's (a whole number of
    batches), the same counts a step bar (progress.step_bar: ceil(k / batch) a report) turns back into steps."""
    full, rest = divmod(step, per_epoch)
    for _ in range(full):
        progress(n, None, None)
    if rest:
        progress(rest * batch_size, None, None)


def _evaluate(model: nn.Module, step_fn: _Stepper, val_x, val_y, epoch: int, done: int, loss_sum: torch.Tensor,
              seen: int, t_seg: float) -> EpochRecord:
    """Score the model on validation at an evaluation point (replicas' buffers synchronised first)."""
    ddp.sync_buffers(model)
    val_acc = val_accuracy(model, val_x, val_y)
    loss = float(ddp.all_sum(loss_sum)) / max(1, seen)
    terms = step_fn.features.epoch_terms() if step_fn.features else {}
    return EpochRecord(epoch, loss, val_acc, step_fn.opt.param_groups[0]["lr"], time.perf_counter() - t_seg, terms,
                       done)


def _checkpoint(path: Path, key: str, done: int, per_epoch: int, model: nn.Module, step_fn: _Stepper, sched,
                result: FitResult, generator: torch.Tensor) -> None:
    resume.save_atomic({
        "fingerprint": key, "step": done, "epoch": done // per_epoch, "model": model.state_dict(),
        "optimizer": step_fn.opt.state_dict(), "scheduler": sched.state_dict(), "generator": generator,
        "best_state": result.best_state, "best_epoch": result.best_epoch,
        "best_step": result.best_step, "best_val_acc": result.best_val_acc,
        "history": [asdict(h) for h in result.history],
        "heads": step_fn.features.heads.state_dict() if step_fn.features else {},
    }, path)


def _restore(state: dict, model: nn.Module, step_fn: _Stepper, sched, result: FitResult) -> resume.Position:
    """Load a checkpoint of this run (resume.load checked it) into the model, optimizer, scheduler and result."""
    model.load_state_dict(state["model"])
    if step_fn.features is not None:
        step_fn.features.heads.load_state_dict(state.get("heads", {}))
    step_fn.opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    result.best_state, result.best_epoch = state["best_state"], state["best_epoch"]
    result.best_step, result.best_val_acc = state["best_step"], state["best_val_acc"]
    result.history = [EpochRecord(**h) for h in state["history"]]
    return resume.Position(int(state["step"]), state["generator"])

