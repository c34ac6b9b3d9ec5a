"""The training budget, sized to the data: how many optimizer steps, epochs and samples per batch.

A fixed "10 epochs at batch 128" is about 30 optimizer steps on 400 samples: far too few for a small student to
learn anything, with or without a teacher (measured in issue 20: a 400-sample task went from a 0-point to a
10-point distillation gain at batch 32 × 200 epochs). So the default budget is counted in optimizer steps, not
epochs, and the epochs follow from the number of transfer samples n:

    batch  = 32 if n < 1,024;  64 if n < 4,096;  else 128         (a small set: smaller batches, more updates)
    steps per epoch = ceil(n / batch)
    epochs = clamp(min(ceil(MIN_STEPS / steps per epoch), ceil(MAX_PASSES / n)), DEFAULT_EPOCHS, MAX_EPOCHS)
    QAT epochs = max(3, round(0.3 · epochs))                          (today's 3 QAT per 10 float epochs)

with MIN_STEPS = 6,000, MAX_PASSES = 400,000 sample passes, DEFAULT_EPOCHS = 10, MAX_EPOCHS = 500. Distillation on
small data is patient (Beyer et al. 2022: function matching keeps improving long after plain training would
stop): on MNIST-1D with 360 transfer samples and mixup, 6,000 steps gave 94.6 % where 2,000 gave 93.2 %, and
with 3,960 (3,600 unlabelled) 98.0 % where 2,000 gave 96.8 % (docs/scarce_labels.md). The MAX_PASSES cap keeps that
floor from costing much on larger sets, and a large set keeps today's cost exactly (60,000 samples: batch 128, 469
steps per epoch, 10 epochs = 4,690 steps, 3 QAT epochs). Examples: 300 samples: batch 32, 10 steps per epoch,
500 epochs (5,000 steps, MAX_EPOCHS); 360: 500 epochs = 6,000 steps; 4,000: batch 64, 63 per epoch, 96 epochs
(6,048 steps, 384 K sample passes); 20,000: batch 128, 20 epochs (MAX_PASSES). The floor costs at most 400 K
sample passes, about 7 epochs of a 60,000-sample set.

The tuning trials are capped at TRIAL_STEPS = 700 optimizer steps each (`trial_epochs`): the patient floor is for
the final run; a trial only has to rank the candidates, and 13 trials × 5 folds (tuning.py) at a third of 6,000
steps would cost more than the training itself. Large sets are below the cap (60,000: 3 epochs of 79 steps).

Overrides: `epochs` (the user's count, at the sized or given batch); `steps` (optimizer steps in all: epochs =
ceil(steps / steps per epoch)); `batch_size`; `qat_epochs`. epochs and steps cannot both be given. With explicit
epochs and no qat_epochs, QAT keeps its historical 3 epochs. The same resolved schedule drives the student, the
no-teacher twin (which sees the same number of optimizer steps, see trainer.fit), QAT and the tuning trials
(epochs // 3 each, kd.tune_epochs overrides).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MIN_STEPS = 6000
MAX_PASSES = 400_000
TRIAL_STEPS = 700
DEFAULT_EPOCHS = 10
MAX_EPOCHS = 500
DEFAULT_QAT_EPOCHS = 3
QAT_SHARE = 0.3


@dataclass(frozen=True)
class Schedule:
    """A resolved training budget for n samples. `how` says which numbers were sized and which were given."""

    samples: int
    batch_size: int
    epochs: int
    steps_per_epoch: int
    steps: int
    qat_epochs: int
    how: str

    def to_dict(self) -> dict:
        return asdict(self)


def auto_batch(n: int) -> int:
    """Batch size for n training samples (see the module docstring)."""
    return 32 if n < 1024 else 64 if n < 4096 else 128


def resolve(n: int, epochs: int | str | None = "auto", batch_size: int | str | None = "auto",
            steps: int | None = None, qat_epochs: int | str | None = "auto") -> Schedule:
    """Resolve the schedule for n > 0 samples; "auto" or None means "size it". Raises ValueError for epochs and steps
    together or a non-positive n."""
    if n <= 0:
        raise ValueError(f"need at least one training sample, got {n}")
    given = lambda v: v not in (None, "auto")  # noqa: E731
    if given(epochs) and steps is not None:
        raise ValueError("give epochs or steps, not both")
    batch = int(batch_size) if given(batch_size) else auto_batch(n)
    per_epoch = math.ceil(n / batch)
    if steps is not None:
        ep, how = max(1, math.ceil(int(steps) / per_epoch)), f"{steps} steps given"
    elif given(epochs):
        ep, how = int(epochs), "epochs given"
    else:
        floor = min(math.ceil(MIN_STEPS / per_epoch), math.ceil(MAX_PASSES / n))
        ep = min(MAX_EPOCHS, max(DEFAULT_EPOCHS, floor))
        how = (f"sized for {n:,} samples (at least {MIN_STEPS:,} optimizer steps or {MAX_PASSES:,} sample passes, "
               f"{DEFAULT_EPOCHS}-{MAX_EPOCHS} epochs)")
    how += ", batch " + ("given" if given(batch_size) else "sized")
    if given(qat_epochs):
        q = int(qat_epochs)
    elif given(epochs):
        q = DEFAULT_QAT_EPOCHS
    else:
        q = max(DEFAULT_QAT_EPOCHS, round(QAT_SHARE * ep))
    return Schedule(n, batch, ep, per_epoch, ep * per_epoch, q, how)


def resolve_config(config, n: int):
    """(config with concrete train.epochs / train.batch_size / quant.qat_epochs and train.steps cleared, Schedule)
    for a DistillConfig whose transfer set has n samples. Everything downstream reads plain integers."""
    t, q = config.train, config.quant
    sched = resolve(n, t.epochs, t.batch_size, t.steps, q.qat_epochs)
    train = t.model_copy(update={"epochs": sched.epochs, "batch_size": sched.batch_size, "steps": None})
    quant = q.model_copy(update={"qat_epochs": sched.qat_epochs})
    return config.model_copy(update={"train": train, "quant": quant}), sched


def trial_epochs(epochs: int, batch_size: int, n: int) -> int:
    """Epochs of one auto-tuning trial on n samples: a third of the run's epochs, at most TRIAL_STEPS optimizer
    steps (at least 1 epoch)."""
    per_epoch = max(1, math.ceil(n / batch_size))
    return max(1, min(epochs // 3, math.ceil(TRIAL_STEPS / per_epoch)))
