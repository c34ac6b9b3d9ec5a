"""`distill` for `--task causal-lm`: the classifier chain's stages, in their causal-LM form, top to bottom.

    inputs (lm_inputs) -> teacher top-k (lm_teacher) [-> hidden states (lm_hidden_teacher)]
        [-> automatic choice of T and the losses (lm_auto)] -> train student + twin (lm_train)
        -> int8: QAT, export, parity (lm_int8) -> tokens/s (lm_speed) -> metrics, report, gate (lm_report)

It shares the classifier chain's run directory (OUT.partial -> OUT, nothing published unless every step and the
parity held: pipeline/distill.finish), its progress bars, student checkpoints and exporters. Written into OUT:
student.safetensors / student.json (and baseline.*), tokenizer.json (the student's vocabulary, with the map to the
teacher's tokens: the device app's first step), with --qat the float and int8 .onnx / .tflite files and
student_qat.safetensors, metrics.json, config.json and report.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from edgedistill.budget import Budget
from edgedistill.config import DistillConfig
from edgedistill.data.splits import Normalizer
from edgedistill.pipeline.distill import DistillResult, finish
from edgedistill.distill.lm_losses import TopKLogits
from edgedistill.errors import DataError
from edgedistill.pipeline.lm_auto import (COSINE_WEIGHT, auto_choice_applies, auto_seq_kd_prompts, choose_lm_objective,
                                          chosen_objective)
from edgedistill.pipeline.lm_hidden_teacher import hidden_cosine_weight, teacher_hidden_states
from edgedistill.pipeline.lm_inputs import LMInputs, read_lm_inputs
from edgedistill.pipeline.lm_int8 import run_lm_int8, test_scores
from edgedistill.pipeline.lm_report import attach_gate, lm_metrics_doc, twin_loss_warnings, write_lm_report
from edgedistill.pipeline.lm_samples import lm_samples, samples_note
from edgedistill.pipeline.lm_seqkd import concat, teacher_continuations
from edgedistill.pipeline.lm_speed import lm_speed, slower_than_teacher_warnings
from edgedistill.pipeline.lm_teacher import teacher_outputs
from edgedistill.pipeline.lm_train import cache_temperatures, default_steps, short_run_note, train_lm_students
from edgedistill.pipeline.rundir import RunDir
from edgedistill.progress import bars
from edgedistill.students.checkpoint import StudentCheckpoint, save_student


@dataclass(frozen=True)
class _Done:
    """What pipeline/distill.finish reads: the metrics, the int8 outcome (passed / failures) and the config."""

    metrics: dict
    int8: object
    config: DistillConfig


def distill_lm(config: DistillConfig, *, overwrite: bool = False, show_progress: bool = True,
               inputs: LMInputs | None = None, budget: Budget | None = None,
               sections: dict | None = None, extra_files=None) -> DistillResult:
    """Run the causal-LM chain (module doc); returns pipeline.distill.DistillResult. Raises the inputs' one-paragraph
    errors before anything is written, ParityError (outputs kept in OUT.partial) when an exported file disagrees.
    `build` (pipeline/lm_build.py) passes the `inputs` it has read, the `budget` its gate judges (default: the
    target's limits with --qat), `sections` added to metrics.json (its search) and `extra_files`, a callback
    writing its manifest into the work directory before it is published."""
    t_start = time.perf_counter()
    with RunDir(Path(config.out), overwrite) as run:
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        inputs = inputs or read_lm_inputs(config)
        target = _target(config)
        run.create()
        timings: dict = {}
        with bars(show_progress) as ui:
            s = inputs.splits
            taught = _teacher(config, inputs, ui, timings)
            outs, top, cont, hidden, choice = taught.outs, taught.top, taught.cont, taught.hidden, taught.choice
            transfer = cont.windows if cont else None
            trained = train_lm_students(config, inputs, top, ui, transfer, run.checkpoints,
                                        None if hidden is None else (hidden[0].states, hidden[1]),
                                        chosen_objective(choice) if choice else None)
            timings["distill_s"] = trained.result.seconds
            if trained.twin_result is not None:
                timings["baseline_s"] = trained.twin_result.seconds
            int8 = run_lm_int8(config, inputs, trained, top, target, run.work, ui, transfer,
                               run.checkpoints) if config.quant.qat else None
            speed = _speed(int8, inputs, target, ui, timings, config.train.threads)
            samples, sample_warning = _samples(int8, inputs)
        scores = int8.scores if int8 is not None else test_scores(
            {"float": trained.student, **({"twin": trained.twin} if trained.twin is not None else {})}, s.test)
        metrics = lm_metrics_doc(config, inputs, outs, trained, scores, None if int8 is None else int8.metrics,
                                 timings)
        metrics.update(({"speed": speed} if speed else {}), **({"sequence_kd": cont.record()} if cont else {}),
                       **({"hidden_cosine": hidden[0].record(hidden[1], inputs.arch.width)} if hidden else {}),
                       **({"loss_choice": choice.record} if choice else {}),
                       **({"samples": samples} if samples else {}), **(sections or {}))
        metrics["warnings"] += slower_than_teacher_warnings(speed) + sample_warning
        if not sample_warning and (note := samples_note(metrics)):
            metrics["samples_note"] = note
        losses = twin_loss_warnings(metrics)  # the student lost to its twin: say so, and whether the run was short
        windows = len(s.train) + (len(transfer) if transfer is not None else 0)
        note = short_run_note(trained.settings.steps, default_steps(config, windows)) if losses else None
        metrics["warnings"] += losses + ([note] if note else [])
        attach_gate(metrics, budget or (Budget.for_target(target, Budget()) if target is not None else None))
        ckpt = StudentCheckpoint(inputs.arch, (s.context,), inputs.tokenizer.vocab_size, [],
                                 Normalizer([0.0], [1.0], "feature"), inputs.tokenizer)
        save_student(run.work, trained.student, ckpt, "student")
        if trained.twin is not None:
            save_student(run.work, trained.twin, ckpt, "baseline")
        write_lm_report(metrics, run.work)
        finish(run, _Done(metrics, int8, config), None, t_start, extra_files)
    return DistillResult(run.out, metrics)


@dataclass(frozen=True)
class _Taught:
    """The teacher's outputs, the top-k the student trains with, and (None where unused) the continuations,
    (hidden states, β) and the automatic choice."""

    outs: object
    top: TopKLogits
    cont: object
    hidden: tuple | None
    choice: object


def _teacher(config: DistillConfig, inputs: LMInputs, ui, timings: dict) -> _Taught:
    """The teacher's passes (continuations, top-k, hidden states) and, with the automatic choice (lm_auto.py), its
    trials, whose choice decides what the student trains with."""
    s = inputs.splits
    auto = auto_choice_applies(config)
    cont = _continuations(config, inputs, ui, auto)
    docs, teacher_splits = inputs.documents.all + (cont.texts if cont else []), \
        replace(s, train=concat(s.train, cont.windows if cont else None))
    bar = ui.task(f"teacher top-{min(config.kd.top_k, inputs.tokenizer.vocab_size)} logits",
                  len(teacher_splits.train) + len(s.test))
    outs = teacher_outputs(inputs.teacher, inputs.tokenizer, docs, teacher_splits, config.kd.top_k,
                           cache_temperatures(config), Path(config.cache_dir) if config.cache_dir else None,
                           progress=lambda k: bar(k, None, None))
    timings["teacher_logits_s"] = outs.seconds
    hidden = _hidden(config, inputs, docs, s.train if auto else teacher_splits.train, ui, auto)
    top, choice = outs.train, None
    if auto:
        choice = choose_lm_objective(config, inputs, top, cont, hidden[0].states, ui)
        top, cont, hidden = _apply(choice.chosen, top, len(s.train), cont, hidden)
        timings["loss_choice_s"] = choice.record["seconds"]
    return _Taught(outs, top, cont, hidden, choice)


def _continuations(config: DistillConfig, inputs: LMInputs, ui, auto: bool):
    """--seq-kd N: the teacher's continuations of N training prompts (pipeline/lm_seqkd.py); the automatic
    choice's candidate (lm_auto.py: None when no training document is long enough for a prompt); else None."""
    count = auto_seq_kd_prompts(len(inputs.splits.train)) if auto else config.kd.seq_kd
    if not count:
        return None
    bar = ui.task(f"teacher continuations (sequence-level KD, {count})", count)
    try:
        return teacher_continuations(inputs.teacher, inputs.tokenizer, inputs.documents.all, inputs.splits,
                                     count, config.data.seed, progress=lambda k: bar(k, None, None))
    except DataError:
        if auto:
            return None
        raise


def _apply(chosen, top: TopKLogits, n_train: int, cont, hidden):
    """The teacher's outputs the chosen candidate (lm_auto.py) trains with: (top-k rows, continuations, hidden)."""
    rows = n_train + (len(cont.windows) if chosen.seq_kd else 0)
    top = TopKLogits(top.values[:rows], top.indices[:rows], top.tail[:rows], top.temperatures)
    return top, cont if chosen.seq_kd else None, None if chosen.cosine is None else (hidden[0], chosen.cosine)


def _hidden(config: DistillConfig, inputs: LMInputs, docs: list[str], windows, ui, auto: bool):
    """--feature loss=cosine (or the automatic choice's cosine candidate): the teacher's last hidden states on
    the student's windows and β, else None."""
    weight = COSINE_WEIGHT if auto else hidden_cosine_weight(config)
    if weight is None:
        return None
    bar = ui.task("teacher hidden states (cosine term)", len(windows))
    states = teacher_hidden_states(inputs.teacher, inputs.tokenizer, docs, windows, inputs.splits.context,
                                   Path(config.cache_dir) if config.cache_dir else None,
                                   progress=lambda k: bar(k, None, None))
    return states, weight


def _speed(int8, inputs: LMInputs, target, ui, timings: dict, threads: int | None) -> dict | None:
    """Tokens/s of the int8 files and the teacher (pipeline/lm_speed.py), once parity held, on the user's --threads
    where given (a user who asked for one thread gets no timing on two)."""
    if int8 is None or not int8.passed:
        return None
    t0 = time.perf_counter()
    bar = ui.task("tokens/s (host timing, target estimates)", 1)
    speed = lm_speed(int8.artifacts, inputs.teacher.module, inputs.splits.context, target, threads=threads,
                     kv_files=int8.kv_artifacts, tokenizer_bytes=inputs.tokenizer.device_bytes())
    bar(1, None, None)
    timings["speed_s"] = time.perf_counter() - t0
    return speed


def _samples(int8, inputs: LMInputs) -> tuple[list[dict], list[str]]:
    """Greedy continuations of a few test prompts by the int8 TFLite file and the teacher (pipeline/lm_samples.py),
    once parity held; none without an int8 TFLite file. The report's illustration, not a result: a failure here
    (a tokenizer that cannot decode a prompt, a teacher that cannot generate) becomes a warning, not a lost run."""
    files = [a.path for a in (int8.artifacts if int8 is not None and int8.passed else []) if a.name == "tflite-int8"]
    if not files:
        return [], []
    try:
        return lm_samples(files[0], inputs.tokenizer, inputs.teacher, inputs.splits.test, inputs.splits.context), []
    except Exception as exc:  # noqa: BLE001  an illustration must not cost the run (docstring)
        return [], [f"The report's sample continuations were skipped: {type(exc).__name__}: {exc}"]



def _target(config: DistillConfig):
    """The target profile (with --qat): its runtime decides the integer arithmetic QAT computes."""
    if not config.quant.qat:
        return None
    from edgedistill.targets import load_target

    return load_target(config.target)
