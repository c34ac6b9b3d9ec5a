"""The automatic choice of a causal LM's temperature and distillation losses (`--temperature auto`, the default, with
no --feature and no --seq-kd given, not even --seq-kd 0): short seeded trials, picked on validation perplexity, in
two stages.

1. Temperature: token KD (top-k KD + next-token CE, distill/lm_losses.py, α = 0.5) at each T of
   lm_train.TEMPERATURES (1, 2, 4), the reference T = 2 (DistilGPT2's; lm_train.AUTO_TEMPERATURE) first, each trial
   TEMPERATURE_TRIAL_FRACTION (50 %) of the float steps. The teacher cache stores the tail mass at each T
   (pipeline/lm_teacher.py), so a trial at another T costs no teacher pass. Why longer trials here: on the tests'
   tiny world (200 steps) 40-step trials ranked T = 1 first beyond noise (validation perplexity 15.6 against 16.2 at
   T = 2) while the full run at T = 1 ended worse (2.89 against 2.69; test 2.31 against 2.22, where the KD student
   no longer beat its twin); at 100 steps T = 1 and 2 tied (4.838 / 4.836) and the reference was kept. A low T
   learns fastest early, so short trials reward it.
2. Terms, at the chosen T, each trial TRIAL_FRACTION (20 %) of the float steps (CANDIDATES, in order; the first,
   token KD alone, is this stage's reference):
    token-kd            per-token top-k KD + next-token CE
    token-kd+cosine     + β · mean(1 − cos) on the last hidden states, β = 1 (distill/lm_hidden.py; DistilBERT's
                        cosine weight)
    token-kd+seq-kd     + the teacher's greedy continuations of N = max(1, ⌈windows / 4⌉) seeded training prompts
                        as extra training windows (pipeline/lm_seqkd.py, Kim & Rush 2016)

Each trial trains a fresh student from the run's initial weights, with the run's settings cut to its stage's
fraction of the float steps (at least one), and is scored on the validation windows (the weights of its best
validation point). Noise-aware choice, as distill/tuning.py does for classifiers: a short trial rewards what
learns fastest and two candidates a few tenths of a perplexity apart cannot be told apart on a small validation
split, so in each stage the reference is kept unless the best other candidate beats it beyond noise: its paired
perplexity gain over the reference (edgedistill.lm_metrics.paired_perplexity_gain: a bootstrap over validation
documents, both trials scored on the same positions) has a 95 % interval above 0. Ties keep the earlier candidate.

Cost: 3 × 50 % + 3 × 20 % = 210 % of the float student's steps (TRIAL_BUDGET), plus the teacher passes the term
candidates need (N greedy continuations, the last hidden states on the training windows), whichever is chosen;
recorded in metrics.json's `loss_choice` with every trial's figures (its T, validation perplexity, paired gain
over its stage's reference, seconds).
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
from edgedistill.pipeline.lm_train import (AUTO_TEMPERATURE, TEMPERATURES, LMObjective, make_decoder, objective_of,
                                           settings_of, tensors)
from edgedistill.progress import VAL_PERPLEXITY, step_bar

TRIAL_FRACTION = 0.2  # a terms trial, × the float steps
TEMPERATURE_TRIAL_FRACTION = 0.5  # a temperature trial: at 20 % the lowest T learns fastest and wins (module doc)
COSINE_WEIGHT = 1.0


@dataclass(frozen=True)
class LMCandidate:
    """One candidate objective: token KD at `temperature`, plus the hidden-state cosine at `cosine` (None: off),
    plus the sequence-level KD windows (`seq_kd`)."""

    name: str
    cosine: float | None = None
    seq_kd: bool = False
    temperature: float = AUTO_TEMPERATURE


CANDIDATES = (LMCandidate("token-kd"), LMCandidate("token-kd+cosine", cosine=COSINE_WEIGHT),
              LMCandidate("token-kd+seq-kd", seq_kd=True))
# stage 1: token KD at each T, the reference T first
TEMPERATURE_CANDIDATES = tuple(LMCandidate("token-kd", temperature=t)
                               for t in (AUTO_TEMPERATURE, *[t for t in TEMPERATURES if t != AUTO_TEMPERATURE]))
TRIAL_BUDGET = len(TEMPERATURE_CANDIDATES) * TEMPERATURE_TRIAL_FRACTION + len(CANDIDATES) * TRIAL_FRACTION  # × steps


@dataclass(frozen=True)
class LMChoice:
    """The chosen candidate and metrics.json's `loss_choice` record."""

    chosen: LMCandidate
    record: dict


def auto_choice_applies(config: DistillConfig) -> bool:
    """True when the run leaves the objective to edgedistill: --temperature auto, no --feature, no --seq-kd (any
    --seq-kd, 0 included, is the user's own choice of that term: `--seq-kd 0` means "no sequence-level KD", which the
    choice could otherwise pick)."""
    kd = config.kd
    return kd.temperature == "auto" and not kd.features and kd.seq_kd is None


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
    """Run the two stages of trials (module doc) and choose. `top`: the teacher's top-k on the training windows
    then the continuations' windows, its tail stored at every T of lm_train.TEMPERATURES (`continuations`:
    lm_seqkd.Continuations, or None when no training document is long enough for a prompt: that candidate is then
    left out); `hidden`: the teacher's last hidden states (N_train, L, H_T) on the training windows."""
    base = settings_of(config, len(inputs.splits.train))
    alpha = objective_of(config).alpha

    def stage(candidates, fraction: float, name: str) -> tuple[int, list[dict]]:
        steps = max(1, round(fraction * base.steps))
        settings = replace(base, steps=steps, eval_every=max(1, steps // 10))  # as a run of `steps` (settings_of)
        trials, scores = zip(*[_trial(c, inputs, top, continuations, hidden, settings, alpha, ui)
                               for c in candidates])
        return _stage(list(trials), list(scores), name, config.data.seed), list(trials)

    t_best, t_trials = stage(TEMPERATURE_CANDIDATES, TEMPERATURE_TRIAL_FRACTION, "temperature")
    temperature = TEMPERATURE_CANDIDATES[t_best].temperature
    terms = [replace(c, temperature=temperature) for c in CANDIDATES if continuations is not None or not c.seq_kd]
    best, trials = stage(terms, TRIAL_FRACTION, "terms")
    record = {"reference": CANDIDATES[0].name, "reference_temperature": AUTO_TEMPERATURE,
              "chosen": terms[best].name, "temperature": temperature, "why": _why(best),
              "temperature_why": _why(t_best), "temperatures": [c.temperature for c in TEMPERATURE_CANDIDATES],
              "temperature_trial_steps": t_trials[0]["steps"], "temperature_trial_fraction": TEMPERATURE_TRIAL_FRACTION,
              "trial_steps": trials[0]["steps"], "trial_fraction": TRIAL_FRACTION, "steps": base.steps,
              "alpha": alpha, "cosine_weight": COSINE_WEIGHT,
              "seq_kd_prompts": len(continuations.texts) if continuations else 0, "trials": t_trials + trials}
    record["trial_budget"] = sum(t["steps"] for t in record["trials"]) / base.steps
    record["seconds"] = sum(t["seconds"] for t in record["trials"])
    return LMChoice(terms[best], record)


def _trial(c: LMCandidate, inputs: LMInputs, top: TopKLogits, continuations, hidden: torch.Tensor, settings,
           alpha: float, ui) -> tuple[dict, object]:
    """One seeded trial of `c`: its record (without the gain) and its validation TokenScores."""
    from edgedistill.pipeline.lm_seqkd import concat

    s = inputs.splits
    t0 = time.perf_counter()
    windows = concat(s.train, continuations.windows) if c.seq_kd else s.train
    rows = len(windows)
    teacher = TopKLogits(top.values[:rows], top.indices[:rows], top.tail[:rows], top.temperatures)
    term = None if c.cosine is None else HiddenCosine(hidden, inputs.arch.width, c.cosine, settings.seed + 11)
    ids, targets = tensors(windows)
    val_ids, val_targets = tensors(s.val)
    model = make_decoder(inputs, settings.seed)
    bar = step_bar(ui, f"loss choice: {c.name}, T={c.temperature:g}", settings.steps, settings.batch_size,
                   VAL_PERPLEXITY)
    res = fit_lm(model, ids, targets, teacher, val_ids, val_targets, c.temperature, alpha, settings,
                 progress=lambda k, loss, val: bar(k, loss, val), hidden=term)
    score = token_scores(lm_logits(model, val_ids).numpy(), s.val.targets, s.val.doc)
    return {"name": c.name, "temperature": c.temperature, "steps": settings.steps,
            "val_perplexity": res.best_val_perplexity,
            "best_step": res.best_step, "windows": rows, "seconds": time.perf_counter() - t0}, score


def _stage(trials: list[dict], scores: list, stage: str, seed: int) -> int:
    """decide() over one stage's trials (the first is its reference); each trial's record gets its stage and its
    paired gain over the reference. Returns the chosen index."""
    best, gains = decide(scores, 0, seed)
    for t, g in zip(trials, gains):
        t["stage"] = stage
        t["gain_vs_reference"] = None if g is None else {"gain": g.gain, "low": g.low, "high": g.high,
                                                         "beyond_noise": g.beyond_noise}
    return best


def _why(best: int) -> str:
    return ("the reference: no other candidate beat it beyond the validation noise" if best == 0 else
            "beat the reference beyond the validation noise (paired bootstrap over validation documents)")


def chosen_objective(choice: LMChoice) -> LMObjective:
    """The T and α the final run trains with."""
    return LMObjective(float(choice.record["temperature"]), float(choice.record["alpha"]))


def choice_markdown(record: dict) -> list[str]:
    """report.md's section on the automatic choice: every trial's T, validation perplexity and paired gain."""
    lines = ["## Choice of the temperature and the losses (automatic)", "",
             f"{len(record['trials'])} seeded trials ({record['trial_budget']:.0%} of the {record['steps']} float "
             f"steps in all), α = {record['alpha']:g}. First token KD at T ∈ "
             f"{{{', '.join(f'{t:g}' for t in record['temperatures'])}}}, {record['temperature_trial_steps']} steps "
             f"each (reference T = {record['reference_temperature']:g}): chosen **T = {record['temperature']:g}** "
             f"({record['temperature_why']}); then the terms at that T, {record['trial_steps']} steps each "
             f"(reference: token KD): chosen **{record['chosen']}** ({record['why']}).", "",
             "| stage | candidate | T | steps | validation perplexity | gain over the stage's reference, 95 % "
             "| seconds |",
             "|---|---|---|---|---|---|---|"]
    for t in record["trials"]:
        g = t["gain_vs_reference"]
        gain = "reference" if g is None else f"{g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"
        lines.append(f"| {t['stage']} | {t['name']} | {t['temperature']:g} | {t['steps']} | "
                     f"{t['val_perplexity']:.3f} | {gain} | {t['seconds']:.1f} |")
    return lines
