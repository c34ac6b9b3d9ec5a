"""The training loop shared by distillation, its no-teacher twin and the auto-tuning trials.

Deterministic for a given seed (data order from a seeded generator, checkpointed with everything else), validates
every epoch, keeps the last weights unless an earlier epoch was better on validation beyond its noise, and resumes
from its last finished epoch.

Augmentation (settings.augment) draws from its own generator, seeded by (seed, epoch), that nothing else consumes:
a distilled student and its no-teacher twin with the same settings see identical batches, and with augmentation on
the teacher runs on those same batches (`TrainSet.teacher_stream`), never on un-augmented cached samples.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgedistill import distributed as ddp
from edgedistill.data.augment import Augment, Mix
from edgedistill.distill.losses import distillation_objective
from edgedistill.distill.optim import OPTIMIZERS, SCHEDULES
from edgedistill.errors import EdgeDistillError
from edgedistill.teachers.cache import array_digest
from edgedistill.teachers.ensemble import combine
from edgedistill.teachers.stream import TeacherStream


class TrainingDiverged(EdgeDistillError):
    """The training loss became NaN or infinite: the run stops instead of writing a model of NaN weights."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    optimizer: str = "adamw"
    schedule: str = "cosine"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    seed: int = 0
    augment: Augment = Augment()


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

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def teacher_logits(self, temperature: float) -> torch.Tensor | None:
        """Effective teacher logits whose softmax at `temperature` is the ensemble's soft target."""
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
        return TrainSet(self.x[idx], None if self.y is None else self.y[idx], members, self.ensemble,
                        self.teacher_stream, self.teacher_module)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_acc: float
    lr: float
    seconds: float
    terms: dict = field(default_factory=dict)  # mean of each loss term over the epoch (feature terms)


@dataclass
class FitResult:
    best_state: dict
    best_epoch: int
    best_val_acc: float
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_s: float = 0.0
    resumed_from_epoch: int = 0


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
        parts.append(model(x[i : i + batch]))
        if progress:
            progress(len(parts[-1]))
    model.train(was_training)
    return torch.cat(parts)


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
            probe = data.x[:2]
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


def augment_seed(seed: int, epoch: int) -> int:
    """The augmentation generator's seed for one epoch (independent of everything the loss touches)."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


def batch_at(data: TrainSet, idx: torch.Tensor, aug: Augment,
             aug_gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None, Mix | None]:
    """One training batch: augmented inputs, their labels and what mixup did (None without mixup)."""
    xb = data.x[idx]
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
    """The no-teacher twin's data and budget on a partly labelled transfer set: the labelled samples only, for the
    same number of optimizer steps the full set gets (epochs = ceil(steps / labelled steps per epoch))."""
    sub = data.labeled()
    if sub is data:
        return data, settings
    if len(sub) == 0:
        raise ValueError("the no-teacher twin needs labelled samples; every transfer sample is unlabelled (y = -1)")
    steps = settings.epochs * -(-len(data) // settings.batch_size)
    per_epoch = -(-len(sub) // settings.batch_size)
    return sub, replace(settings, epochs=max(1, -(-steps // per_epoch)))


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(1) == y).float().mean())


def fingerprint(settings: TrainSettings, objective: Objective, data: TrainSet, model: nn.Module) -> str:
    """What a checkpoint was trained on and for: the settings, the objective, the samples, labels and teacher
    outputs (content digests), the teacher stream's identity and the model's parameter shapes. A checkpoint of other
    data, another teacher or another architecture is not resumed (the run starts fresh)."""
    obj = asdict(objective)
    if not obj["features"]:
        del obj["features"]
    arrays = [data.x, data.y, data.teacher_members]
    content = [None if a is None else array_digest(a.detach().cpu().numpy()) for a in arrays]
    stream = data.teacher_stream.identity if data.teacher_stream is not None else None
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    blob = json.dumps([asdict(settings), obj, len(data), content, stream, shapes], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


ProgressFn = Callable[[int, float, float | None], None]  # (samples done in this call, loss, val acc or None)


def fit(model: nn.Module, data: TrainSet, val_x: torch.Tensor, val_y: torch.Tensor, objective: Objective,
        settings: TrainSettings, checkpoint: Path | None = None,
        progress: ProgressFn | None = None, score_start: bool = False) -> FitResult:
    """Train `model` in place; return the chosen weights and the per-epoch history. The chosen weights are the last
    epoch's unless an earlier epoch beat it on validation beyond the split's noise (`keep_last_epoch`); best_epoch
    and best_val_acc describe the chosen weights. `score_start`: the weights `model` starts from are kept instead
    (best_epoch 0) when they score higher on validation than the chosen ones: fine-tuning a model that is already
    good, as QAT does from its post-training int8 starting point, then never ends below where it began.

    Labels of -1 mark unlabelled samples: the soft loss sees them, the hard loss does not (losses.py), and an
    objective without a teacher trains on the labelled samples only, for the same number of optimizer steps, and
    without a mixup that is the teacher's alone (Augment.twin_mixup False: the automatic function-matching mixup)."""
    if not objective.teacher:
        data, settings = labeled_only(data, settings)
        settings = replace(settings, augment=settings.augment.for_twin())  # the automatic mixup is the teacher's
    n = len(data)
    steps_per_epoch = (n + settings.batch_size - 1) // settings.batch_size
    features = FeatureTerms(model, data, objective) if objective.teacher and objective.features else None
    params = list(model.parameters()) + (list(features.heads.parameters()) if features else [])
    opt = OPTIMIZERS.get(settings.optimizer)(params, settings.lr, settings.weight_decay, settings.momentum)
    sched = SCHEDULES.get(settings.schedule)(opt, settings.epochs * steps_per_epoch, settings.lr)
    gen = torch.Generator().manual_seed(settings.seed)
    result = FitResult(best_state=copy.deepcopy(model.state_dict()), best_epoch=0, best_val_acc=-1.0)
    start = (copy.deepcopy(model.state_dict()), val_accuracy(model, val_x, val_y)) if score_start else None
    key = fingerprint(settings, objective, data, model) if checkpoint is not None else ""
    start_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        start_epoch = _resume(checkpoint, key, model, opt, sched, gen, result, features)
    aug = settings.augment
    on_the_fly = objective.teacher and aug.enabled
    if on_the_fly and data.teacher_stream is None:
        raise ValueError("training with augmentation and a teacher needs TrainSet.teacher_stream (the teacher must "
                         "see the augmented batch)")
    teacher_logits = data.teacher_logits(objective.temperature) if objective.teacher and not on_the_fly else None
    stream_key = data.teacher_stream.stream_key(data.x, settings.seed, settings.batch_size, aug) if on_the_fly else ""
    if ddp.active():  # each rank runs the teacher on its own slice of every batch: its own stream
        stream_key += f"|rank{ddp.rank()}of{ddp.world()}"
    shard = slice(ddp.rank(), None, ddp.world())  # this rank's share of every global batch
    net = ddp.wrap(model)
    t_train = 0.0
    for epoch in range(start_epoch, settings.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        aug_gen = torch.Generator().manual_seed(augment_seed(settings.seed, epoch))
        total = torch.zeros(())
        for step, i in enumerate(range(0, n, settings.batch_size)):
            idx = order[i : i + settings.batch_size]
            xb, yb, mix = batch_at(data, idx, aug, aug_gen)  # the whole global batch: identical on every rank
            tb = teacher_logits[idx[shard]] if teacher_logits is not None else None
            xb = xb[shard]
            if on_the_fly:
                members = data.teacher_stream.members(stream_key, epoch, step, steps_per_epoch, xb)
                tb = combine(members, data.ensemble, objective.temperature)
            logits = net(xb)
            if yb is not None:
                yb = (mixed_labels(mix, yb, logits.shape[1]) if mix is not None else yb)[shard]
            loss = distillation_objective(
                logits, tb if objective.teacher else None, yb, objective.loss, objective.temperature, objective.alpha,
            )
            if features is not None:
                loss = loss + features.loss(xb)
            if not torch.isfinite(loss.detach()):
                raise TrainingDiverged(
                    f"Training diverged: the loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}"
                    f" (lr {opt.param_groups[0]['lr']:.3g}). Usual causes: a learning rate too high for this student "
                    "(--lr), NaN or infinite values in the data, or a student whose output is undefined for some "
                    "inputs (a custom layer dividing by zero, attention over padding only). Nothing was written.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(xb)
            if progress:
                progress(len(idx), float(loss.detach()), None)
        t_train += time.perf_counter() - t0
        ddp.sync_buffers(model)
        val_acc = val_accuracy(model, val_x, val_y)
        total = ddp.all_sum(total)
        result.history.append(EpochRecord(epoch + 1, float(total) / n, val_acc, opt.param_groups[0]["lr"],
                                          time.perf_counter() - t0, features.epoch_terms() if features else {}))
        if val_acc > result.best_val_acc:
            result.best_val_acc, result.best_epoch = val_acc, epoch + 1
            result.best_state = copy.deepcopy(model.state_dict())
        if progress:
            progress(0, float(total) / n, val_acc)
        if checkpoint is not None and ddp.is_main():
            _save_atomic({
                "fingerprint": key, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": gen.get_state(),
                "best_state": result.best_state, "best_epoch": result.best_epoch,
                "best_val_acc": result.best_val_acc, "history": [asdict(h) for h in result.history],
                "heads": features.heads.state_dict() if features else {},
            }, checkpoint)
    if features is not None:
        features.close()
    if result.history and keep_last_epoch(result.best_val_acc, result.history[-1].val_acc, len(val_y)):
        result.best_state = copy.deepcopy(model.state_dict())
        result.best_epoch, result.best_val_acc = result.history[-1].epoch, result.history[-1].val_acc
    if start is not None and start[1] > result.best_val_acc:
        result.best_state, result.best_epoch, result.best_val_acc = start[0], 0, start[1]
    done = max(0, settings.epochs - start_epoch)
    result.seconds = t_train
    result.samples_per_s = done * n / t_train if t_train > 0 else 0.0
    return result


MIN_LEAD_SAMPLES = 6  # the fewest discordant samples McNemar's exact test can call significant: 2 · 0.5^6 = 0.031


def keep_last_epoch(best_val_acc: float, last_val_acc: float, n_val: int) -> bool:
    """Whether the final weights are kept instead of the best epoch's: when the best epoch's validation lead over the
    last epoch is within the noise of the validation split. The lead must clear two bars: best above the upper end
    of the last epoch's Wilson 95 % interval (edgedistill.stats), and at least MIN_LEAD_SAMPLES validation samples,
    because the two epochs are scored on the same samples and a lead of k samples means at least k discordant pairs,
    which McNemar's exact test cannot call significant at 5 % below k = 6 (p = 2 · 0.5^k). The second bar matters at
    the top of the scale, where Wilson's interval is short: on a 40-sample split 40/40 is above the interval of
    39/40, and on MNIST-1D with 400 labels (issue 20) a 500-epoch run kept epoch 92 for that one sample and lost
    about 6 test points. On thousands of samples an earlier epoch that is clearly better is still kept."""
    from edgedistill.stats import wilson_from_percent

    if n_val <= 0 or last_val_acc >= best_val_acc:
        return True
    lead_samples = (best_val_acc - last_val_acc) / 100.0 * n_val
    if lead_samples < MIN_LEAD_SAMPLES - 1e-6:
        return True
    return best_val_acc <= wilson_from_percent(last_val_acc, n_val).high


def _resume(path: Path, fingerprint: str, model, opt, sched, gen, result: FitResult, features=None) -> int:
    """Restore a checkpoint written by the same settings; a foreign or damaged one is ignored (fresh start)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a checkpoint cut short by a crash: start over rather than fail
        return 0
    if state.get("fingerprint") != fingerprint:
        return 0
    model.load_state_dict(state["model"])
    if features is not None:
        features.heads.load_state_dict(state.get("heads", {}))
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    result.best_state, result.best_epoch = state["best_state"], state["best_epoch"]
    result.best_val_acc = state["best_val_acc"]
    result.history = [EpochRecord(**h) for h in state["history"]]
    result.resumed_from_epoch = int(state["epoch"])
    return int(state["epoch"])
