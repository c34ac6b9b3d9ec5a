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

The tuning trials are capped at TRIAL_STEPS = 700 optimizer steps each (`trial_budget`): the patient floor is for
the final run; a trial only has to rank the candidates, and 13 trials × 5 folds (tuning.py) at a third of 6,000
steps would cost more than the training itself. Large sets are below the cap (60,000: 3 epochs of 79 steps). A
capped trial runs exactly TRIAL_STEPS steps (the last epoch of the trial's subset cut short), not whole epochs.

Large data: a sized budget never exceeds LARGE_DATA_PASSES (600,000) sample passes, 10 epochs of 60,000 samples,
the largest sized budget below that size. Beyond it the 10-epoch floor would grow with the data (1,000,000 samples:
10 M passes, 78,130 steps), so the budget becomes a step budget of ceil(600,000 / batch) optimizer steps (4,688 at
batch 128: 100,000 samples get 6 epochs, the last cut short; 1,000,000 samples 0.6 of an epoch), QAT and the tuning
trials sized from those steps as from a user's --steps.

Overrides: `epochs` (the user's count, at the sized or given batch; with `min_steps`, raised to at least that many
optimizer steps: build's default of 4 epochs is 272 steps on 8,640 paragraphs of builtin:docs, far from
converged); `steps` (optimizer steps in all, exactly: the run stops mid-epoch after the last one, and the
learning-rate schedule is sized to them; `epochs` then counts the epochs the run touches, ceil(steps / steps per
epoch)); `batch_size`; `qat_epochs`. epochs and steps cannot both be given. With explicit epochs and no
qat_epochs, QAT keeps its historical 3 epochs; with steps and no qat_epochs, QAT
runs QAT_SHARE · steps optimizer steps (`qat_steps`), so a step budget bounds QAT too: 300 steps on 420,000 samples
used to mean 3 QAT epochs (9,843 steps), now 90. The same resolved schedule drives the student, the no-teacher twin
(which sees the same number of optimizer steps, see trainer.fit), QAT and the tuning trials (epochs // 3 each, or a
third of the steps, at most TRIAL_STEPS; kd.tune_epochs overrides).

Validation runs every `eval_interval` optimizer steps and after the last one: at every epoch end while an epoch is
at most EVAL_EVERY (1,000) steps long, which is every run of today's sizes (60,000 samples at batch 128 are 469
steps per epoch), else every EVAL_EVERY steps; a step budget shorter than that is scored SHORT_RUN_EVALS (3) times,
at least MIN_EVAL_STEPS (100) steps apart. Checkpoints are written at the same points, so a run resumes from the
last one, mid-epoch included.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MIN_STEPS = 6000
MAX_PASSES = 400_000
LARGE_DATA_PASSES = 600_000  # the sized budget's ceiling in sample passes: 10 epochs of 60,000 samples
TRIAL_STEPS = 700
DEFAULT_EPOCHS = 10
MAX_EPOCHS = 500
DEFAULT_QAT_EPOCHS = 3
QAT_SHARE = 0.3
EVAL_EVERY = 1000
MIN_EVAL_STEPS = 100
SHORT_RUN_EVALS = 3


@dataclass(frozen=True)
class Schedule:
    """A resolved training budget for n samples. `steps` is the optimizer steps the float run takes, exactly;
    `epochs` the epochs it touches (the last one cut short when `exact_steps`: a step budget); `qat_steps` the QAT
    run's optimizer steps when a step budget sized it (None: `qat_epochs` whole epochs). `how` says which numbers
    were sized and which were given."""

    samples: int
    batch_size: int
    epochs: int
    steps_per_epoch: int
    steps: int
    qat_epochs: int
    how: str
    exact_steps: bool = False
    qat_steps: int | None = None
    eval_every: int = 0  # optimizer steps between two validations of the float run (and after its last step)

    def to_dict(self) -> dict:
        return asdict(self)


def auto_batch(n: int) -> int:
    """Batch size for n training samples (see the module docstring)."""
    return 32 if n < 1024 else 64 if n < 4096 else 128


def resolve(n: int, epochs: int | str | None = "auto", batch_size: int | str | None = "auto",
            steps: int | None = None, qat_epochs: int | str | None = "auto",
            qat_steps: int | None = None, min_steps: int | None = None) -> Schedule:
    """Resolve the schedule for n > 0 samples; "auto" or None means "size it". Raises ValueError for epochs and steps
    (or qat_epochs and qat_steps) together or a non-positive n."""
    if n <= 0:
        raise ValueError(f"need at least one training sample, got {n}")
    given = lambda v: v not in (None, "auto")  # noqa: E731
    if given(epochs) and steps is not None:
        raise ValueError("give epochs or steps, not both")
    if given(qat_epochs) and qat_steps is not None:
        raise ValueError("give qat_epochs or qat_steps, not both")
    batch = int(batch_size) if given(batch_size) else auto_batch(n)
    per_epoch = math.ceil(n / batch)
    if steps is not None:
        ep = max(1, math.ceil(int(steps) / per_epoch))
        how = f"{steps} steps given (exactly{'; the last epoch cut short' if int(steps) % per_epoch else ''})"
    elif given(epochs):
        ep, how = int(epochs), "epochs given"
        if min_steps and ep * per_epoch < min_steps:  # few samples: the given epochs are too few updates
            ep = math.ceil(min_steps / per_epoch)
            how = f"{epochs} epochs given, raised to {ep} for at least {min_steps:,} optimizer steps"
    else:
        floor = min(math.ceil(MIN_STEPS / per_epoch), math.ceil(MAX_PASSES / n))
        ep = min(MAX_EPOCHS, max(DEFAULT_EPOCHS, floor))
        how = (f"sized for {n:,} samples (at least {MIN_STEPS:,} optimizer steps or {MAX_PASSES:,} sample passes, "
               f"{DEFAULT_EPOCHS}-{MAX_EPOCHS} epochs)")
        if ep * n > LARGE_DATA_PASSES:  # large data: a budget of sample passes, not of epochs (a step budget)
            steps = math.ceil(LARGE_DATA_PASSES / batch)
            ep = math.ceil(steps / per_epoch)
            how = (f"sized for {n:,} samples: large data gets {LARGE_DATA_PASSES:,} sample passes, {steps:,} "
                   f"optimizer steps exactly{'; the last epoch cut short' if steps % per_epoch else ''}")
    how += ", batch " + ("given" if given(batch_size) else "sized")
    if qat_steps is not None:
        qat_steps = int(qat_steps)
        q = math.ceil(qat_steps / per_epoch)
    elif given(qat_epochs):
        q = int(qat_epochs)
    elif given(epochs):
        q = DEFAULT_QAT_EPOCHS
    elif steps is not None:  # a step budget bounds QAT as well: a share of the steps, not whole epochs
        qat_steps = max(1, round(QAT_SHARE * int(steps)))
        q = math.ceil(qat_steps / per_epoch)
    else:
        q = max(DEFAULT_QAT_EPOCHS, round(QAT_SHARE * ep))
    total = int(steps) if steps is not None else ep * per_epoch
    return Schedule(n, batch, ep, per_epoch, total, q, how, steps is not None, qat_steps,
                    eval_interval(per_epoch, total))


def short_run_note(schedule: Schedule) -> str | None:
    """A sentence for a run given fewer than half the optimizer steps the data-sized schedule would take (`--epochs`
    / `--steps` set low for a quick look), else None: distillation's gain over the twin shows late (the twin fits
    the labels first), so a short run's comparison says little about the full one."""
    sized = resolve(schedule.samples, batch_size=schedule.batch_size)
    if schedule.steps >= sized.steps / 2:
        return None
    return (f"This run trained {schedule.steps:,} optimizer steps, under half the {sized.steps:,} the data-sized "
            "schedule takes (distill's default without --epochs / --steps; build trains 4 epochs, at least 800 "
            "steps, unless told otherwise): short runs seldom show distillation's gain, so this comparison says "
            "little about a full-length run.")


def eval_interval(steps_per_epoch: int, total_steps: int) -> int:
    """Optimizer steps between two validations (the run is also scored after its last step): one epoch while an
    epoch is at most EVAL_EVERY steps, else EVAL_EVERY; a run shorter than that is scored about SHORT_RUN_EVALS
    times, at least MIN_EVAL_STEPS steps apart (see the module docstring)."""
    every = max(1, min(steps_per_epoch, EVAL_EVERY))
    if total_steps < every:
        every = max(MIN_EVAL_STEPS, math.ceil(total_steps / SHORT_RUN_EVALS))
    return every


def resolve_config(config, n: int):
    """(config with concrete train.epochs / train.batch_size / quant.qat_epochs, Schedule) for a DistillConfig whose
    transfer set has n samples. Everything downstream reads plain integers; a step budget stays in train.steps (the
    exact count) and sets quant.qat_steps unless QAT epochs were given. `recorded_config` turns it back into a
    config that loads and resolves to the same schedule (what config.json holds)."""
    t, q = config.train, config.quant
    sched = resolve(n, t.epochs, t.batch_size, t.steps, q.qat_epochs, q.qat_steps, t.min_steps)
    train = t.model_copy(update={"epochs": sched.epochs, "batch_size": sched.batch_size,
                                 "steps": sched.steps if sched.exact_steps else None})
    quant = q.model_copy(update={"qat_epochs": sched.qat_epochs, "qat_steps": sched.qat_steps})
    return config.model_copy(update={"train": train, "quant": quant}), sched


def recorded_config(config) -> dict:
    """The resolved config as config.json records it: a step budget as `steps` with epochs "auto" (a config holding
    both is refused on loading), QAT steps likewise with qat_epochs "auto"."""
    out = config.model_dump(mode="json")
    if out["train"].get("steps") is not None:
        out["train"]["epochs"] = "auto"
    if out["quant"].get("qat_steps") is not None:
        out["quant"]["qat_epochs"] = "auto"
    return out


def trial_budget(epochs: int, batch_size: int, n: int, steps: int | None = None) -> tuple[int, int | None]:
    """(epochs, exact steps or None for whole epochs) of one auto-tuning trial on n samples: a third of the run's
    epochs (or, for a step budget, of its steps), at most TRIAL_STEPS optimizer steps, at least one step. A capped
    trial stops after exactly TRIAL_STEPS steps instead of finishing its last epoch."""
    per_epoch = max(1, math.ceil(n / batch_size))
    if steps is not None:
        s = max(1, min(TRIAL_STEPS, int(steps) // 3))
        return math.ceil(s / per_epoch), s
    e = max(1, epochs // 3)
    if e * per_epoch <= TRIAL_STEPS:
        return e, None
    return math.ceil(TRIAL_STEPS / per_epoch), TRIAL_STEPS
