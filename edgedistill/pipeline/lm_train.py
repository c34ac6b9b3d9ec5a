"""Stage 5 for a causal LM: the distilled decoder student and its no-teacher twin (same architecture, initial
weights, windows, data order and steps; next-token labels only), then (with --qat) both quantization-aware.

The budget: --steps exactly, else --epochs (auto: 10) passes over the training windows; batches of --batch-size
windows (auto: 32); validation perplexity every tenth of the run picks the weights kept. The objective: the
token-level KD of distill/lm_losses at temperature T (auto: 2, DistilGPT2's) weighted α (auto: 0.5) against the
next-token cross-entropy (with --feature loss=cosine the student adds the hidden-state cosine term,
distill/lm_hidden.py; with --temperature auto and neither --feature nor --seq-kd, pipeline/lm_auto.py chooses T
among TEMPERATURES and then the terms first). QAT: --qat-steps, else 0.3 × the float steps, at lr ×
quant.qat_lr_scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgedistill.config import DistillConfig
from edgedistill.data.lm_windows import TokenWindows
from edgedistill.data.splits import Normalizer
from edgedistill.distill.lm_hidden import HiddenCosine
from edgedistill.distill.lm_losses import TopKLogits
from edgedistill.distill.lm_resume import checkpoint_path
from edgedistill.distill.lm_trainer import LMFitResult, LMTrainSettings, fit_lm
from edgedistill.pipeline.lm_inputs import LMInputs
from edgedistill.progress import VAL_PERPLEXITY, step_bar
from edgedistill.students import build_student

AUTO_TEMPERATURE, AUTO_ALPHA, AUTO_EPOCHS, AUTO_BATCH = 2.0, 0.5, 10, 32
# the temperatures whose tail mass every teacher cache stores (pipeline/lm_teacher.py), and the automatic choice's
# grid (pipeline/lm_auto.py); AUTO_TEMPERATURE is among them
TEMPERATURES = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class LMObjective:
    temperature: float
    alpha: float


@dataclass(frozen=True)
class LMTrained:
    """The float student and twin with their records, and the settings they trained with."""

    student: torch.nn.Module
    result: LMFitResult
    twin: torch.nn.Module | None
    twin_result: LMFitResult | None
    settings: LMTrainSettings
    objective: LMObjective


def objective_of(config: DistillConfig) -> LMObjective:
    t, a = config.kd.temperature, config.kd.alpha
    return LMObjective(AUTO_TEMPERATURE if t == "auto" else float(t), AUTO_ALPHA if a == "auto" else float(a))


def cache_temperatures(config: DistillConfig) -> tuple[float, ...]:
    """The temperatures the teacher cache stores a tail for: TEMPERATURES and a fixed --temperature, ascending (the
    cache is then the same for the automatic run and a run at a fixed T of the grid)."""
    t = config.kd.temperature
    return tuple(sorted(set(TEMPERATURES) | ({float(t)} if t != "auto" else set())))


def settings_of(config: DistillConfig, windows: int) -> LMTrainSettings:
    """The float training budget for `windows` training windows (module doc)."""
    tr = config.train
    batch = AUTO_BATCH if tr.batch_size == "auto" else int(tr.batch_size)
    batch = max(1, min(batch, windows))
    steps = tr.steps or (AUTO_EPOCHS if tr.epochs == "auto" else int(tr.epochs)) * -(-windows // batch)
    return LMTrainSettings(steps=int(steps), batch_size=batch, lr=tr.lr, weight_decay=tr.weight_decay,
                           optimizer=tr.optimizer, schedule=tr.schedule, eval_every=max(1, steps // 10),
                           seed=tr.seed)


def default_steps(config: DistillConfig, windows: int) -> int:
    """The float steps of the causal LM's default length for `windows` training windows at the run's batch size:
    AUTO_EPOCHS passes, what `distill --task causal-lm` trains without --epochs / --steps."""
    train = config.train.model_copy(update={"epochs": "auto", "steps": None})
    return settings_of(config.model_copy(update={"train": train}), windows).steps


def short_run_note(steps: int, default: int) -> str | None:
    """A sentence for a causal-LM run given fewer than half the optimizer steps of the default length (`default`,
    default_steps), else None: as for a classifier (distill/schedule.short_run_note), distillation's gain over the
    twin shows late, so a short run's comparison says little about the full one."""
    if steps >= default / 2:
        return None
    return (f"This run trained {steps:,} optimizer steps, under half the {default:,} of the causal LM's default "
            f"length ({AUTO_EPOCHS} passes over the training windows: distill --task causal-lm's default without "
            "--epochs / --steps; build --task causal-lm trains 4 unless told otherwise): short runs seldom show "
            "distillation's gain, so this comparison says little about a full-length run.")


def tensors(w: TokenWindows) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(w.ids)), torch.from_numpy(np.ascontiguousarray(w.targets))


def make_decoder(inputs: LMInputs, seed: int) -> torch.nn.Module:
    """The decoder student for the inputs' context and vocabulary, initialised from `seed`."""
    torch.manual_seed(seed)
    return build_student(inputs.arch, (inputs.splits.context,), inputs.tokenizer.vocab_size,
                         Normalizer([0.0], [1.0], "feature"), inputs.tokenizer.vocab_size)


def train_lm_students(config: DistillConfig, inputs: LMInputs, teacher: TopKLogits, ui,
                      transfer: TokenWindows | None = None, checkpoints: Path | None = None,
                      hidden: tuple[torch.Tensor, float] | None = None,
                      objective: LMObjective | None = None) -> LMTrained:
    """The distilled student and (unless --no-baseline) its twin, each from the same initial weights. `transfer`:
    extra windows after the training ones that only the student reads (the teacher's continuations,
    pipeline/lm_seqkd.py; `teacher` then covers both); the twin takes the same steps over the training windows.
    Each fit is checkpointed into `checkpoints` (student.pt, baseline.pt) and resumed from there. `hidden`: the
    teacher's last hidden states (N, L, H_T) on the student's windows and β, for the student's hidden-state cosine
    term (distill/lm_hidden.py; the twin never has it). `objective`: T and α (default: the config's,
    objective_of; the automatic choice passes the T it chose)."""
    from edgedistill.pipeline.lm_seqkd import concat

    s = inputs.splits
    mine = concat(s.train, transfer)
    settings, objective = settings_of(config, len(mine)), objective or objective_of(config)
    val_ids, val_targets = tensors(s.val)

    def run(label: str, top: TopKLogits | None, windows: TokenWindows, name: str, term=None):
        ids, targets = tensors(windows)
        model = make_decoder(inputs, settings.seed)
        bar = step_bar(ui, label, settings.steps, settings.batch_size, VAL_PERPLEXITY)
        res = fit_lm(model, ids, targets, top, val_ids, val_targets, objective.temperature, objective.alpha,
                     settings, progress=lambda k, loss, val: bar(k, loss, val),
                     checkpoint=checkpoint_path(checkpoints, name), hidden=term)
        return model, res

    term = None if hidden is None else HiddenCosine(hidden[0], inputs.arch.width, hidden[1], settings.seed + 11)
    extra = "" if term is None else f", cosine β={term.weight:g}"
    student, res = run(f"distill (T={objective.temperature:g}, α={objective.alpha:g}, top-{teacher.k}{extra})",
                       teacher, mine, "student", term)
    twin, twin_res = run("no-teacher twin", None, s.train, "baseline") if config.baseline else (None, None)
    return LMTrained(student, res, twin, twin_res, settings, objective)
