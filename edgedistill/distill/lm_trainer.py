"""Training a causal LM student on token windows: the distilled student, its no-teacher twin, and their QAT.

One loop for all four: minibatches of windows drawn in a seeded order (the same order for the student and its twin,
so the teacher is the only difference), the token-level objective of edgedistill.distill.lm_losses (α · top-k KD +
(1 − α) · next-token CE; the twin: CE only; with --feature loss=cosine the student adds β · mean(1 − cos) of its
projected last hidden state, edgedistill.distill.lm_hidden), the optimizer and schedule registered in distill/optim.py, and model
selection on validation perplexity (exp of the mean next-token NLL over the validation positions), evaluated every
`eval_every` steps and at the end; the best weights are returned. QAT (Jacob et al. 2018) runs the same loop on the
int8 graph (quantize/lm_qat.py: fake quantization, straight-through gradients) from its calibrated start, which
competes as step 0, so QAT that only loses ends where it began.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.distill import lm_resume
from edgedistill.distill.lm_hidden import HiddenCosine
from edgedistill.distill.lm_losses import IGNORE, TopKLogits, token_kd_objective
from edgedistill.distill.optim import OPTIMIZERS, SCHEDULES
from edgedistill.distill.lm_resume import lm_fingerprint
from edgedistill.errors import RunFailed
from edgedistill.lm_metrics import TokenScores, concat_scores, token_scores

EVAL_BATCH = 256  # windows per evaluation forward pass


class LMTrainingDiverged(RunFailed):
    """The loss became NaN or infinite: the learning rate is too high for this student."""


@dataclass(frozen=True)
class LMTrainSettings:
    """`steps` optimizer steps of `batch_size` windows at peak learning rate `lr` (registered `optimizer` and
    `schedule`), validation every `eval_every` steps; `seed` fixes initialisation-independent data order."""

    steps: int
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    schedule: str = "cosine"
    eval_every: int = 50
    seed: int = 0


@dataclass(frozen=True)
class LMFitResult:
    """The best weights (by validation perplexity), that perplexity and the step it was reached at (0: the start),
    the steps run, seconds (an interrupted run's included), the (step, validation perplexity) history, and the
    checkpoint's step a resumed fit went on from (0: not resumed)."""

    best_state: dict
    best_val_perplexity: float
    best_step: int
    steps: int
    seconds: float
    history: list = field(default_factory=list)
    resumed_from_step: int = 0


@torch.no_grad()
def lm_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """float32 (W, L, V) logits of `model` (eval mode) for int ids (W, L), in batches."""
    was = model.training
    model.eval()
    out = [model(ids[s:s + EVAL_BATCH]).float() for s in range(0, len(ids), EVAL_BATCH)]
    model.train(was)
    return torch.cat(out)


@torch.no_grad()
def lm_scores(model: nn.Module, ids: torch.Tensor, targets, doc) -> TokenScores:
    """edgedistill.lm_metrics.token_scores of `model` (eval mode) on int ids (W, L) with targets (W, L) and doc (W,),
    computed batch by batch: what a split's metrics need, without holding its (W, L, V) logits."""
    targets, doc = np.asarray(targets), np.asarray(doc)
    return concat_scores([token_scores(lm_logits(model, ids[s:s + EVAL_BATCH]).numpy(), targets[s:s + EVAL_BATCH],
                                       doc[s:s + EVAL_BATCH]) for s in range(0, len(ids), EVAL_BATCH)])


@torch.no_grad()
def mean_nll(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean next-token negative log-likelihood in nats over the positions with a target (IGNORE skipped)."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for s in range(0, len(ids), EVAL_BATCH):
        logits, tgt = model(ids[s:s + EVAL_BATCH]).float(), targets[s:s + EVAL_BATCH]
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                   ignore_index=IGNORE, reduction="sum"))
        count += int((tgt != IGNORE).sum())
    model.train(was)
    return total / max(count, 1)


def _batch(top: TopKLogits | None, idx: torch.Tensor) -> TopKLogits | None:
    if top is None:
        return None
    return TopKLogits(top.values[idx], top.indices[idx].long(), top.tail[idx], top.temperatures)


def fit_lm(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor, teacher: TopKLogits | None,
           val_ids: torch.Tensor, val_targets: torch.Tensor, temperature: float, alpha: float,
           settings: LMTrainSettings, progress=None, score_start: bool = False,
           checkpoint: Path | None = None, hidden: HiddenCosine | None = None) -> LMFitResult:
    """Train `model` in place on windows ids int (N, L) / targets int64 (N, L) (IGNORE where none) with the teacher's
    top-k logits (N, L, k) (None: next-token CE only, the twin), keeping the weights of the best validation
    perplexity. `progress(windows_done, loss, val_ppl)`. `score_start`: the starting weights compete (QAT).
    `checkpoint`: a file written at every evaluation point and resumed from when it matches this fit
    (distill/lm_resume.py); the resumed fit ends with the same weights as an uninterrupted one. `hidden`: the
    hidden-state cosine term (distill/lm_hidden.py), its projection trained and checkpointed with the model.
    Raises LMTrainingDiverged on a non-finite loss."""
    t0 = time.perf_counter()
    params = list(model.parameters()) + (list(hidden.parameters()) if hidden is not None else [])
    opt = OPTIMIZERS.get(settings.optimizer)(params, settings.lr, settings.weight_decay, 0.9)
    sched = SCHEDULES.get(settings.schedule)(opt, settings.steps, settings.lr)
    order = torch.Generator().manual_seed(settings.seed)
    ids, val_ids = ids.int(), val_ids.int()
    best_ppl, best_step, best = math.inf, 0, None
    history: list = []
    key = None if checkpoint is None else lm_fingerprint(
        settings, temperature, alpha, [ids, targets, *(_teacher_tensors(teacher)), val_ids, val_targets,
                                          *(hidden.fingerprint_tensors() if hidden is not None else [])], model,
        score_start)
    state = None if checkpoint is None else lm_resume.load(checkpoint, key)

    def evaluate(step: int) -> float:
        nonlocal best_ppl, best_step, best
        ppl = math.exp(mean_nll(model, val_ids, val_targets))
        history.append((step, ppl))
        if ppl < best_ppl:
            best_ppl, best_step, best = ppl, step, copy.deepcopy(model.state_dict())
        return ppl

    def save(step: int) -> None:
        lm_resume.save_atomic({"fingerprint": key, "step": step, "model": model.state_dict(), "opt": opt.state_dict(),
                               "sched": sched.state_dict(), "order": order.get_state(), "perm": perm, "at": at,
                               "rng": torch.get_rng_state(), "best": best, "best_ppl": best_ppl,
                               "best_step": best_step, "history": history,
                               "seconds": earlier + time.perf_counter() - t0,
                               **({"hidden": hidden.state_dict()} if hidden is not None else {})}, checkpoint)

    earlier, first = 0.0, 1
    if state is not None:
        model.load_state_dict(state["model"])
        if hidden is not None:
            hidden.load_state_dict(state["hidden"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        order.set_state(state["order"])
        torch.set_rng_state(state["rng"])
        perm, at, first = state["perm"], int(state["at"]), int(state["step"]) + 1
        best, best_ppl, best_step = state["best"], float(state["best_ppl"]), int(state["best_step"])
        history, earlier = [tuple(h) for h in state["history"]], float(state["seconds"])
        if progress:
            progress(min(state["step"], settings.steps) * settings.batch_size, None, history[-1][1] if history else None)
    else:
        if score_start:
            evaluate(0)
        perm, at = torch.randperm(len(ids), generator=order), 0
    if hidden is not None:
        hidden.attach(model)
    model.train()
    before_step = getattr(model, "before_train_step", None)  # a QAT graph's exact-integer schedule (graph.py)
    for step in range(first, settings.steps + 1):
        if before_step is not None:
            before_step(step - 1, settings.steps)
        if at + settings.batch_size > len(perm) and at > 0:
            perm, at = torch.randperm(len(ids), generator=order), 0
        idx = perm[at:at + settings.batch_size]
        at += len(idx)
        loss = token_kd_objective(model(ids[idx]), targets[idx], _batch(teacher, idx), temperature, alpha)
        if hidden is not None:
            loss = loss + hidden.loss(idx, targets[idx])
        if not torch.isfinite(loss):
            raise LMTrainingDiverged(f"The training loss became {float(loss)} at step {step}: the learning rate "
                                     f"({settings.lr:g}) is too high for this student; lower it with --lr.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        val = evaluate(step) if step % settings.eval_every == 0 or step == settings.steps else None
        if val is not None and checkpoint is not None:
            save(step)
        if progress:
            progress(len(idx), float(loss.detach()), val)
    if hidden is not None:
        hidden.detach()
    model.load_state_dict(best)
    model.eval()
    return LMFitResult(best, best_ppl, best_step, settings.steps, earlier + time.perf_counter() - t0, history,
                       first - 1)


def _teacher_tensors(teacher: TopKLogits | None) -> list:
    return [None] * 3 if teacher is None else [teacher.values, teacher.indices, teacher.tail]
