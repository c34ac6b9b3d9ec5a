"""`auto` temperature / alpha (and soft loss): a bounded grid of short trials scored on the validation split (and,
on small data, on held-out folds of the labelled transfer samples).

The grid: for each loss, its temperatures (below) × alpha in {0.5, 0.9, 1} (alpha = 1 alone without labels; alpha 1
with labels is pure function matching: the labels only score the trials, which was the steadiest recipe measured in
docs/distillation_gain.md). `loss = kd` with T and alpha auto is 4 × 3 = 12 trials; `loss = auto` adds decoupled KD
(T 1, 4: the DKD paper's setting is 4) and standardized-logit KD (T 2, 4: logits are z-scored, so the useful
temperatures are lower), 24 trials in all. Each trial is `tune_epochs` epochs (default epochs // 3, or a third of a
step budget, at most exactly schedule.TRIAL_STEPS = 700 optimizer steps) on at most
`tune_max_samples` transfer samples, with the run's augmentation. The no-teacher objective is scored with the same
budget, so a setting is only chosen if it is measured against what training without a teacher gets in the same time.

Noise-aware choice. Settings that differ by a few tenths of a point cannot be told apart on a validation split of a
few thousand images, and a short trial rewards what learns fastest, not what ends best (measured in
docs/distillation_gain.md: 1-epoch trials picked standardized KD on every seed, which ended level with plain KD at
T 1, alpha 1 after 30 epochs or up to 0.5 points below it). So the grid's *reference* (plain KD, T 1, alpha 1: pure function matching, the
steadiest recipe measured; or the grid's first candidate when it is not in the grid) is kept unless the best trial
beats it by more than NOISE_Z standard errors of the paired difference: both trials are scored on the same
validation images, so the per-image difference (right/wrong of one minus the other's) gives that error exactly.
Ties keep the earlier candidate.

Small data: scoring on more than the validation split. With few labelled samples the validation split is tiny
(400 labelled samples leave about 40: one sample is 2.5 points, and the paired noise is so large that the
reference can never be beaten, whatever the trials measure). So when the validation split has fewer than CV_BELOW
(1,000) samples and the tuning subset holds at least CV_MIN_LABELED (40) labelled transfer samples, every trial is
also run CV_FOLDS (4) more times, each time with one quarter of the labelled transfer samples held out (removed from
that run's transfer set, inputs and teacher outputs alike) and scored on them. Each trial's score is its accuracy
pooled over the validation split and the four held-out quarters: every labelled sample is scored exactly once, by a
model that never saw it, so n grows from ~40 to ~440 at 400 labels and the same paired reference rule applies on
that pooled per-sample correctness. Unlabelled transfer samples stay in every fold's training set.

Cost: trials × tune_epochs × (tuning samples / batch) optimizer steps, times (1 + CV_FOLDS) = 5 when the folds
apply. The folds only apply where the validation split is under 1,000 samples, i.e. on small data sets whose trials
are cheap (400 samples at the sized schedule: 13 trials × 5 runs × ~51 epochs × 10-13 steps of 32 samples); on
large data (validation >= 1,000) the search is the single-split search, bounded by tune_max_samples as before.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch
from torch import nn

from edgedistill.distill.resume import fingerprint
from edgedistill.distill.trainer import (
    FeatureTerm,
    Objective,
    TrainSet,
    TrainSettings,
    fit,
    predict_logits,
)

TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
LOSS_TEMPERATURES = {"kd": TEMPERATURES, "dkd": (1.0, 4.0), "kd-std": (2.0, 4.0), "mse": (1.0,)}
AUTO_LOSSES = ("kd", "dkd", "kd-std")
ALPHAS = (0.5, 0.9, 1.0)
REFERENCE = ("kd", 1.0, 1.0)
NOISE_Z = 2.0
CV_BELOW = 1000  # validation samples below which trials are also scored by k-fold on the labelled transfer samples
CV_FOLDS = 4
CV_MIN_LABELED = 40
# The reference trial must get at least this far from chance towards 100 % ((acc - chance) / (100 - chance)) for
# the trials to rank anything. Measured (docs/trial_ranking.md): MNIST-1D trials whose reference reached 0.62 ranked
# the full runs at Spearman rho +0.81, above the +0.70 two seeds of the full runs reach; the built-in example's
# one-epoch trials on 3,000 images reached 0.01-0.12 (10-21 % with 10 classes) and chose by noise.
MIN_MATURITY = 0.5


@dataclass(frozen=True)
class Trial:
    loss: str
    temperature: float
    alpha: float
    teacher: bool
    val_acc: float


@dataclass(frozen=True)
class Decision:
    """Best trial vs the reference, in validation points: switch only if difference > NOISE_Z · std_error."""
    reference: int  # index into the teacher trials
    best: int
    difference: float
    std_error: float

    @property
    def chosen(self) -> int:
        return self.best if self.difference > NOISE_Z * self.std_error else self.reference


@dataclass(frozen=True)
class TuneResult:
    chosen: Objective
    trials: list[Trial]
    baseline_val_acc: float
    decision: Decision | None = None
    cv_folds: int = 0  # folds of the labelled transfer samples added to the validation split (0: validation only)
    scored_on: int = 0  # samples each trial was scored on, pooled over the folds
    trial_epochs: int = 0  # epochs of each trial run (the last one cut short when trial_steps is set)
    trial_steps: int | None = None  # optimizer steps of each trial run, exactly (None: whole epochs)
    skipped: str = ""  # why the other trials were not run (the reference trial was too immature to rank them)

    def to_dict(self) -> dict:
        """Everything the search found, as JSON-able data (from_dict rebuilds it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TuneResult":
        """Inverse of to_dict. Raises KeyError / TypeError on a record of another shape."""
        chosen = dict(d["chosen"])
        chosen["features"] = tuple(FeatureTerm(**f) for f in chosen.get("features") or ())
        decision = Decision(**d["decision"]) if d.get("decision") else None
        return cls(Objective(**chosen), [Trial(**t) for t in d["trials"]], d["baseline_val_acc"], decision,
                   **{k: d[k] for k in ("cv_folds", "scored_on", "trial_epochs", "skipped")},
                   trial_steps=d.get("trial_steps"))

    def summary(self) -> dict:
        """The choice as the metrics record it: reference, best, their paired difference and its noise."""
        if self.decision is None:
            return {}
        kd = [t for t in self.trials if t.teacher]
        name = lambda t: f"{t.loss} T {t.temperature:g} alpha {t.alpha:g}"  # noqa: E731
        d = self.decision
        if self.skipped:
            why = self.skipped
        elif d.best == d.reference:
            why = "the reference is the best trial"
        elif d.chosen == d.reference:
            why = f"the reference: the best trial is not ahead of it by more than {NOISE_Z:g} standard errors"
        else:
            why = f"the best trial: ahead of the reference by more than {NOISE_Z:g} standard errors"
        return {"cv_folds": self.cv_folds, "scored_on": self.scored_on, "reference": name(kd[d.reference]),
                "best": name(kd[d.best]), "chosen": name(kd[d.chosen]), "best_minus_reference": d.difference,
                "std_error": d.std_error, "noise_z": NOISE_Z, "why": why, "skipped": bool(self.skipped)}


def decide(val_accs: list[float], correct: list[torch.Tensor], reference: int) -> Decision:
    """Pick between the best trial (ties: the earlier) and the reference from per-image correctness on validation."""
    best = max(range(len(val_accs)), key=lambda i: (val_accs[i], -i))
    d = correct[best].double() - correct[reference].double()
    se = float(d.std() / len(d) ** 0.5) * 100.0 if len(d) > 1 else float("inf")
    return Decision(reference, best, float(d.mean()) * 100.0, se)


def reference_index(objectives: list[Objective]) -> int:
    keys = [(o.loss, o.temperature, o.alpha) for o in objectives]
    return keys.index(REFERENCE) if REFERENCE in keys else 0


def candidate_objectives(loss: str, temperature, alpha, labeled: bool) -> list[Objective]:
    alphas = (1.0,) if not labeled else ALPHAS if alpha == "auto" else (float(alpha),)
    out = []
    for name in AUTO_LOSSES if loss == "auto" else (loss,):
        ts = LOSS_TEMPERATURES.get(name, TEMPERATURES) if temperature == "auto" else (float(temperature),)
        if name == "mse":
            ts = (1.0,)
        out += [Objective(True, name, t, a) for t in ts for a in alphas]
    return out


@dataclass(frozen=True)
class Fold:
    """One scoring split: train a trial on `train`, score it on (x, y)."""

    train: TrainSet
    x: torch.Tensor
    y: torch.Tensor


def scoring_folds(sub: TrainSet, val_x: torch.Tensor, val_y: torch.Tensor, seed: int) -> list[Fold]:
    """The validation split, plus CV_FOLDS folds of the labelled transfer samples when validation is small
    (< CV_BELOW samples) and there are at least CV_MIN_LABELED labelled samples to split (see the module docstring)."""
    folds = [Fold(sub, val_x, val_y)]
    if sub.y is None or len(val_y) >= CV_BELOW:
        return folds
    labeled = torch.nonzero(sub.y >= 0).flatten()
    if len(labeled) < CV_MIN_LABELED:
        return folds
    labeled = labeled[torch.randperm(len(labeled), generator=torch.Generator().manual_seed(seed + 11))]
    for held in labeled.chunk(CV_FOLDS):
        keep = torch.ones(len(sub), dtype=torch.bool)
        keep[held] = False
        folds.append(Fold(sub.subset(torch.nonzero(keep).flatten()), sub.x[held], sub.y[held]))
    return folds


def tune(make_model: Callable[[], nn.Module], data: TrainSet, val_x: torch.Tensor, val_y: torch.Tensor,
         loss: str, temperature, alpha, settings: TrainSettings, max_samples: int,
         on_trial: Callable[[Trial], None] | None = None) -> TuneResult:
    """Score each candidate objective with short identical runs on every scoring fold (pooled per-sample
    correctness); keep the reference unless beaten beyond noise."""
    n = min(len(data), max_samples)
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(settings.seed))[:n]
    sub = data.subset(idx)
    folds = scoring_folds(sub, val_x, val_y, settings.seed)
    candidates = candidate_objectives(loss, temperature, alpha, data.y is not None)
    if data.y is not None:
        candidates.append(Objective(teacher=False))
    init = make_model()
    kd_objs = [o for o in candidates if o.teacher]
    ref = reference_index(kd_objs)
    scored_on = sum(len(f.y) for f in folds)

    def run(obj: Objective) -> tuple[Trial, torch.Tensor]:
        right = []
        for fold in folds:
            model = copy.deepcopy(init)
            res = fit(model, fold.train, fold.x, fold.y, obj, settings)
            model.load_state_dict(res.best_state)
            right.append(predict_logits(model, fold.x).argmax(1) == fold.y)
        pooled = torch.cat(right)
        trial = Trial(obj.loss, obj.temperature, obj.alpha, obj.teacher, 100.0 * float(pooled.double().mean()))
        if on_trial:
            on_trial(trial)
        return trial, pooled

    done = {ref: run(kd_objs[ref])}  # the reference first: if it is still near chance, nothing can be ranked
    classes = int(init.eval()(val_x[:1]).shape[1])
    chance = 100.0 / classes
    maturity = (done[ref][0].val_acc - chance) / (100.0 - chance)
    if maturity < MIN_MATURITY:
        why = (f"the trials are too short to rank: the reference reached {done[ref][0].val_acc:.1f} % where chance is "
               f"{chance:.1f} % (maturity {maturity:.2f} < {MIN_MATURITY:g}), so the other trials were not run and "
               "the reference is kept; longer trials (distill --tune-epochs N, or kd.tune_epochs in a --config file for "
               "build) rank them, and a fixed objective (distill -T / --alpha, or kd.temperature / kd.alpha) skips "
               "the search")
        return TuneResult(kd_objs[ref], [done[ref][0]], float("nan"), Decision(0, 0, 0.0, 0.0), len(folds) - 1,
                          scored_on, settings.epochs, settings.steps, skipped=why)
    results = [done[i] if i == ref else run(o) for i, o in enumerate(kd_objs)]
    base = [run(o)[0] for o in candidates if not o.teacher]
    trials = [t for t, _ in results] + base
    decision = decide([t.val_acc for t, _ in results], [c for _, c in results], ref)
    return TuneResult(kd_objs[decision.chosen], trials, base[0].val_acc if base else float("nan"), decision,
                      len(folds) - 1, scored_on, settings.epochs, settings.steps)


def search_key(make_model: Callable[[], nn.Module], data: TrainSet, val_x: torch.Tensor, val_y: torch.Tensor,
               loss: str, temperature, alpha, settings: TrainSettings, max_samples: int) -> str:
    """What `tune` with these arguments computes, as a digest: the training checkpoint's fingerprint of the trial
    settings, transfer samples, labels, teacher outputs and architecture (resume.fingerprint), the validation split,
    the search's own arguments and the grid and rule of this module. The same key means the same search, so its
    result can be reused (a resumed run need not run the trials again)."""
    from edgedistill.teachers.cache import array_digest

    rule = [TEMPERATURES, LOSS_TEMPERATURES, AUTO_LOSSES, ALPHAS, REFERENCE, NOISE_Z, CV_BELOW, CV_FOLDS,
            CV_MIN_LABELED, MIN_MATURITY]
    blob = json.dumps([fingerprint(settings, Objective(), data, make_model()), loss, temperature, alpha, max_samples,
                       array_digest(val_x.numpy()), array_digest(val_y.numpy()), rule], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tuning_settings(settings: TrainSettings, tune_epochs: int | None, n: int | None = None) -> TrainSettings:
    """Each trial's settings: `tune_epochs` whole epochs when given, else a third of the run's epochs (a third of
    its steps for a step budget), capped at exactly schedule.TRIAL_STEPS optimizer steps on the trial's n samples
    (n None: no cap)."""
    from edgedistill.distill.schedule import trial_budget

    if tune_epochs:
        return replace(settings, epochs=tune_epochs, steps=None, eval_every=None)
    if n is None:
        return replace(settings, epochs=max(1, settings.epochs // 3), steps=None, eval_every=None)
    epochs, steps = trial_budget(settings.epochs, settings.batch_size, n, settings.steps)
    return replace(settings, epochs=epochs, steps=steps, eval_every=None)
