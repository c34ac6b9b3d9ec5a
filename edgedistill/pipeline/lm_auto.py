"""The automatic choice of a causal LM's distillation losses (`--temperature auto`, the default, with no --feature
and no --seq-kd given): short seeded trials of the candidates, picked on validation perplexity.

Candidates (CANDIDATES, in order; the first is the reference):
    token-kd            per-token top-k KD + next-token CE (distill/lm_losses.py), T = 2, α = 0.5
    token-kd+cosine     + β · mean(1 − cos) on the last hidden states, β = 1 (distill/lm_hidden.py; DistilBERT's
                        cosine weight)
    token-kd+seq-kd     + the teacher's greedy continuations of N = max(1, ⌈windows / 4⌉) seeded training prompts
                        as extra training windows (pipeline/lm_seqkd.py, Kim & Rush 2016)

Each trial trains a fresh student from the run's initial weights, with the run's settings cut to TRIAL_FRACTION
(20 %) of the float steps (at least one), and is scored on the validation windows (the weights of its best
validation point). Noise-aware choice, as distill/tuning.py does for classifiers: a short trial rewards what
learns fastest and two candidates a few tenths of a perplexity apart cannot be told apart on a small validation
split, so the reference (plain token KD) is kept unless the best other candidate beats it beyond noise: its paired
perplexity gain over the reference (edgedistill.lm_metrics.paired_perplexity_gain: a bootstrap over validation
documents, both trials scored on the same positions) has a 95 % interval above 0. Ties keep the earlier candidate.

Cost: 3 trials × 20 % = 60 % of the float student's steps, plus the teacher passes the candidates need (N greedy
continuations, the last hidden states on the training windows), whichever is chosen; recorded in metrics.json's
`loss_choice` with every trial's figures.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import torch

from edgedistill.config import DistillConfig
from edgedistill.distill.lm_hidden import HiddenCosine
from edgedistill.distill.lm_losses import TopKLogits
from edgedistill.distill.lm_trainer import fit_lm, lm_logits
from edgedistill.lm_metrics import paired_perplexity_gain, token_scores
from edgedistill.pipeline.lm_inputs import LMInputs
from edgedistill.pipeline.lm_train import make_decoder, objective_of, settings_of, tensors
from edgedistill.progress import VAL_PERPLEXITY

TRIAL_FRACTION = 0.2
COSINE_WEIGHT = 1.0


@dataclass(frozen=True)
class LMCandidate:
    """One candidate objective: token KD, plus the hidden-state cosine at `cosine` (None: off), plus the
    sequence-level KD windows (`seq_kd`)."""

    name: str
    cosine: float | None = None
    seq_kd: bool = False


CANDIDATES = (LMCandidate("token-kd"), LMCandidate("token-kd+cosine", cosine=COSINE_WEIGHT),
              LMCandidate("token-kd+seq-kd", seq_kd=True))


@dataclass(frozen=True)
class LMChoice:
    """The chosen candidate and metrics.json's `loss_choice` record."""

    chosen: LMCandidate
    record: dict


def auto_choice_applies(config: DistillConfig) -> bool:
    """True when the run leaves the objective to edgedistill: --temperature auto, no --feature, no --seq-kd."""
    kd = config.kd
    return kd.temperature == "auto" and not kd.features and not kd.seq_kd


def auto_seq_kd_prompts(train_windows: int) -> int:
    """N for the sequence-level KD candidate: a quarter of the training windows, at least one."""
    return max(1, -(-int(train_windows) // 4))


def decide(scores: list, reference: int = 0, seed: int = 0) -> tuple[int, list]:
    """The index chosen among trials scored by `scores` (lm_metrics.TokenScores on the same validation positions)
    and each one's paired gain over the reference (module doc: the best by perplexity replaces the reference only
    with a gain whose interval lies above 0; ties keep the earlier)."""
    ppl = [math.exp(float(s.nll.mean())) if s.nll.size else math.inf for s in scores]
    gains = [None if i == reference else paired_perplexity_gain(s, scores[reference], seed=seed)
             for i, s in enumerate(scores)]
    best = min(range(len(scores)), key=lambda i: (ppl[i], i))
    if best != reference and not (gains[best].beyond_noise and gains[best].gain > 0):
        best = reference
    return best, gains


def choose_lm_objective(config: DistillConfig, inputs: LMInputs, top: TopKLogits, continuations,
                        hidden: torch.Tensor, ui) -> LMChoice:
    """Run the trials (module doc) and choose. `top`: the teacher's top-k on the training windows then the
    continuations' windows (`continuations`: lm_seqkd.Continuations, or None when no training document is long
    enough for a prompt: that candidate is then left out); `hidden`: the teacher's last hidden states
    (N_train, L, H_T) on the training windows."""
    from edgedistill.pipeline.lm_seqkd import concat

    s = inputs.splits
    n = len(s.train)
    base = settings_of(config, n)
    steps = max(1, round(TRIAL_FRACTION * base.steps))
    settings = replace(base, steps=steps, eval_every=max(1, steps // 10))  # as a run of `steps` (settings_of)
    objective = objective_of(config)
    val_ids, val_targets = tensors(s.val)
    trials, scores = [], []
    candidates = [c for c in CANDIDATES if continuations is not None or not c.seq_kd]
    for c in candidates:
        t0 = time.perf_counter()
        windows = concat(s.train, continuations.windows) if c.seq_kd else s.train
        rows = len(windows)
        teacher = TopKLogits(top.values[:rows], top.indices[:rows], top.tail[:rows], top.temperatures)
        term = None if c.cosine is None else HiddenCosine(hidden, inputs.arch.width, c.cosine, base.seed + 11)
        ids, targets = tensors(windows)
        model = make_decoder(inputs, base.seed)
        bar = ui.task(f"loss choice: {c.name} ({steps} steps)", steps * settings.batch_size, VAL_PERPLEXITY)
        res = fit_lm(model, ids, targets, teacher, val_ids, val_targets, objective.temperature, objective.alpha,
                     settings, progress=lambda k, loss, val: bar(k, loss, val), hidden=term)
        scores.append(token_scores(lm_logits(model, val_ids).numpy(), s.val.targets, s.val.doc))
        trials.append({"name": c.name, "val_perplexity": res.best_val_perplexity, "best_step": res.best_step,
                       "windows": rows, "seconds": time.perf_counter() - t0})
    best, gains = decide(scores, 0, config.data.seed)
    for t, g in zip(trials, gains):
        t["gain_vs_reference"] = None if g is None else {"gain": g.gain, "low": g.low, "high": g.high,
                                                         "beyond_noise": g.beyond_noise}
    why = ("the reference: no other candidate beat it beyond the validation noise" if best == 0 else
           "beat the reference beyond the validation noise (paired bootstrap over validation documents)")
    record = {"reference": candidates[0].name, "chosen": candidates[best].name, "why": why, "trial_steps": steps,
              "trial_fraction": TRIAL_FRACTION, "steps": base.steps, "temperature": objective.temperature,
              "alpha": objective.alpha, "cosine_weight": COSINE_WEIGHT, "seq_kd_prompts": len(continuations.texts) if continuations else 0,
              "trials": trials, "seconds": sum(t["seconds"] for t in trials)}
    return LMChoice(candidates[best], record)


def choice_markdown(record: dict) -> list[str]:
    """report.md's section on the automatic choice: every trial's validation perplexity and paired gain."""
    lines = ["## Choice of the losses (automatic)", "",
             f"{len(record['trials'])} seeded trials of {record['trial_steps']} steps each ({record['trial_fraction']:.0%}"
             f" of the {record['steps']}), T = {record['temperature']:g}, α = {record['alpha']:g}; chosen: "
             f"**{record['chosen']}** ({record['why']}).", "",
             "| candidate | validation perplexity | gain over the reference, 95 % | seconds |", "|---|---|---|---|"]
    for t in record["trials"]:
        g = t["gain_vs_reference"]
        gain = "reference" if g is None else f"{g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"
        lines.append(f"| {t['name']} | {t['val_perplexity']:.3f} | {gain} | {t['seconds']:.1f} |")
    return lines
