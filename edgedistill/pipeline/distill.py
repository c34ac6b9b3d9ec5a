"""`distill(config)`: the chain of stages, top to bottom.

    inputs -> teacher outputs -> tune -> train (student + twin) -> int8 (QAT, export, parity) -> measure -> report

`build` (edgedistill.pipeline.build) is the same chain with the student search before it and the gate after it.
Every check a user's input can fail runs in the inputs stage, before anything is written. Work happens in
`<out>.partial/` (which also holds the resumable checkpoints), owned by one RunDir, and is renamed to `<out>` only
when everything succeeded.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from edgedistill import distributed as ddp
from edgedistill.config import DistillConfig
from edgedistill.data.mapped import release_pages
from edgedistill.distill import datafree
from edgedistill.distill.datafree import parse_synthetic
from edgedistill.distill.loader import workers_for
from edgedistill.distill.schedule import recorded_config, resolve_config, short_run_note
from edgedistill.distill.trainer import TrainSettings
from edgedistill.errors import ConfigError, RunFailed
from edgedistill.export.parity import AGREEMENT, MAX_STEPS
from edgedistill.pipeline.inputs import (EvalTensors, Inputs, check_student, fit_student_to_target, read_inputs,
                                         student_arch)
from edgedistill.pipeline.int8 import Int8Outcome, qat_below_ptq_warning, qat_rounding, run_int8_stage
from edgedistill.pipeline.measure import Measured, measure_build
from edgedistill.pipeline.report import (TWIN_LOSS, distill_metrics, int8_gain_warning, report_document,
                                         target_fit_warnings, write_report)
from edgedistill.pipeline.rundir import RunDir
from edgedistill.pipeline.teacher_outputs import teacher_outputs
from edgedistill.pipeline.train import train_students
from edgedistill.pipeline.tune import choose_objective
from edgedistill.progress import bars
from edgedistill.report.noise import annotate_intervals
from edgedistill.report.run_cost import run_cost
from edgedistill.students import StudentArch, build_student
from edgedistill.students.checkpoint import StudentCheckpoint, save_student
from edgedistill.teachers import LogitCache
from edgedistill.util import peak_rss_bytes, write_json


class ParityError(RunFailed):
    """An exported file does not compute what was trained (beyond the configured tolerance). Its outputs stay in
    OUT.partial for inspection (pipeline/rundir.RunDir removes a refused run's directory otherwise)."""

    keeps_outputs = True


@dataclass(frozen=True)
class DistillResult:
    out_dir: Path
    metrics: dict


@dataclass(frozen=True)
class Trained8:
    """What the training stages hand to measure and report: metrics.json's content, the int8 outcome and the config
    with its training budget resolved for the data (what config.json records)."""

    metrics: dict
    int8: Int8Outcome | None
    config: DistillConfig


def distill(config: DistillConfig, *, overwrite: bool = False, show_progress: bool = True) -> DistillResult:
    """Run the chain of the config's task (`task_of`: classification, or causal-lm: pipeline/lm_distill.py)."""
    from edgedistill.pipeline.lm_inputs import task_of

    task = task_of(config)
    refuse_kv_cache(config, task)
    return TASKS[task]()(config, overwrite=overwrite, show_progress=show_progress)


def refuse_kv_cache(config: DistillConfig, task: str) -> None:
    """ConfigError for --kv-cache where it means nothing: a classifier, or a run without int8 files."""
    if not config.quant.kv_cache:
        return
    if task != "causal-lm":
        raise ConfigError("--kv-cache exports the KV-cache decoder step of a causal language model; this run is a "
                          f"{task} task. Leave --kv-cache out, or give a causal-LM teacher (--task causal-lm).")
    if not config.quant.qat:
        raise ConfigError("--kv-cache exports the int8 KV-cache decoder step, which QAT trains: add --qat.")


def _causal_lm():
    from edgedistill.pipeline.lm_distill import distill_lm  # imports this module: resolved at call time

    return distill_lm


def distill_classifier(config: DistillConfig, *, overwrite: bool = False,
                       show_progress: bool = True) -> DistillResult:
    """The classification chain of the module doc."""
    t_start = time.perf_counter()
    ddp.init_from_env()  # under torchrun: join the process group (see edgedistill.distributed)
    with RunDir(Path(config.out), overwrite) as run:
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        inputs = read_inputs(config, show_progress)
        show_notes(inputs, show_progress)
        config, inputs = fit_student_to_target(config, inputs, show_progress)  # GELU where the target has none
        arch = student_arch(config, inputs.splits)
        target = check_and_target(config, inputs, arch)
        run.create()
        done = train_and_deploy(config, inputs, arch, target, run, show_progress)
        if not ddp.is_main():  # training is done; rank 0 alone exports, reports and writes
            return DistillResult(run.out, {})
        report = None
        if done.int8 is not None and config.report:
            t0 = time.perf_counter()
            measured = measure(done.int8, inputs, target, config.train.threads)
            done.metrics["warnings"] += target_fit_warnings(measured.target)
            report = report_document(done.metrics, measured)
            done.metrics["timings"]["report_s"] = time.perf_counter() - t0
        finish(run, done, report, t_start)
    return DistillResult(run.out, done.metrics)


# task -> (a function returning) its chain's entry point
TASKS = {"classification": lambda: distill_classifier, "causal-lm": _causal_lm}


def show_notes(inputs: Inputs, show: bool) -> None:
    """The readers' advice (a large .npz) at once, before the long steps; metrics.json keeps it among the warnings."""
    if show and ddp.is_main():
        from edgedistill.progress import console

        for note in inputs.notes:
            console.print(f"note: {note}", markup=False, highlight=False)


def check_and_target(config: DistillConfig, inputs: Inputs, arch: StudentArch):
    """The student's checks, then (with --qat) the target profile the report is measured against."""
    check_student(config, inputs, arch)
    if not config.quant.qat:
        return None
    from edgedistill.targets import load_target

    return load_target(config.target)


def formats_warning(target, formats: list[str]) -> str | None:
    """A warning when none of the written formats is one the target runs (`--formats onnx --target cortex-m4`):
    the report's target section would be silently empty."""
    if target is None or set(target.formats) & set(formats):
        return None
    return (f"The target {target.name} runs {' / '.join(target.formats)} files ({target.runtime}), but this run wrote "
            f"only {', '.join(formats)}: nothing was measured or fit-checked against the target. Add "
            f"--formats {','.join(sorted(set(formats) | set(target.formats)))}.")


def measure(int8: Int8Outcome, inputs: Inputs, target, threads: int | None = None) -> Measured:
    """Stage 7 on this run's files: on `threads` (the user's --threads) where given, else as measure_build says;
    a text student's flash counts its tokenizer's device tables."""
    return measure_build(int8.artifacts, inputs.teachers, inputs.splits.input_shape, target, threads,
                         inputs.tokenizer_bytes, inputs.teacher_window)


def train_and_deploy(config: DistillConfig, inputs: Inputs, arch: StudentArch, target, run: RunDir,
                     show_progress: bool) -> Trained8:
    """Teacher outputs -> tune -> train -> int8, in `run.work`. Returns metrics.json's content and the int8 outcome
    (on ranks other than 0 of a distributed run: after the collective steps, with no files written)."""
    timings: dict[str, float] = {}
    cache = LogitCache(Path(config.cache_dir) if config.cache_dir else None)
    inputs, data_free = _synthesize(config, inputs, cache, run, show_progress)
    s = inputs.splits
    config, schedule = resolve_config(config, len(s.transfer))  # the training budget, sized to the data
    # auto mixup (arrays; mixing token ids means nothing, so text trains on its samples as they are)
    byte_tokens = s.text is not None and s.text.tokenizer.name == "bytes"
    y = s.transfer.y  # None for a synthesized (data-free) transfer set
    labelled = float(np.mean(np.asarray(y) >= 0)) if y is not None and len(s.transfer) else 0.0
    config = config.model_copy(update={"augment": config.augment.resolved(
        len(s.transfer), text=s.text is not None, byte_tokens=byte_tokens, labelled_fraction=labelled)})
    ev = EvalTensors.of(s, config.data.seed)
    settings = TrainSettings.of(config.train, config.augment.recipe())

    def make_student(k: int = 0) -> torch.nn.Module:
        torch.manual_seed(settings.seed + k)  # k > 0: mutual-learning peers; peer 0 starts where the twin starts
        return build_student(arch, s.input_shape, s.num_classes, s.normalizer, s.vocab_size)

    if config.quant.int16:  # a kind the student lacks is refused now, not after the teacher pass and training
        from edgedistill.quantize.graph import to_quant_student

        with torch.random.fork_rng():
            to_quant_student(make_student(), int16=tuple(config.quant.int16))

    with bars(show_progress and ddp.is_main()) as ui:
        outs = teacher_outputs(config, inputs.teachers, s, ev, cache, settings.augment.enabled, ui)
        settings = replace(settings, workers=workers_for(config.data.workers, outs.data.x))
        timings["teacher_logits_s"] = outs.seconds
        release_pages()  # between stages: pages of memory-mapped data the last stage read (data.mapped)
        tuned = choose_objective(config, outs.data, ev, settings, make_student, ui, run.checkpoints)
        if tuned.seconds is not None:
            timings["tune_s"] = tuned.seconds
        trained = train_students(config, make_student, inputs.teachers, outs.data, ev, tuned.objective, settings,
                                 run.checkpoints, ui)
        timings["distill_s"] = trained.result.seconds
        release_pages()
        if trained.twin_result is not None:
            timings["baseline_s"] = trained.twin_result.seconds
        int8 = None
        if config.quant.qat:
            int8 = run_int8_stage(config.quant, trained.student, trained.twin, outs.data, ev.x_val, ev.y_val,
                                  ev.x_test.numpy(), ev.y_test.numpy(), tuned.objective, settings, s.input_shape,
                                  s.num_classes,
                                  run.work, ui, qat_rounding(config.quant.rounding, target))
    replicas = _replica_digests(trained.student, trained.twin, int8)
    samples_read = ddp.gather_objects(trained.result.samples_read)  # each rank's, for the distilled student
    restarts = ddp.gather_objects(ddp.restart_count())  # torchrun counts restarts per node (distributed.py)
    if not ddp.is_main():
        return Trained8({}, int8, config)
    ckpt = StudentCheckpoint(arch, s.input_shape, s.num_classes, s.class_names, s.normalizer,
                             None if s.text is None else s.text.tokenizer)
    save_student(run.work, trained.student, ckpt, "student")
    if trained.twin is not None:
        save_student(run.work, trained.twin, ckpt, "baseline")
    if outs.stream is not None:
        st = outs.stream.stats
        timings.update(teacher_on_the_fly_s=st.seconds, teacher_batches_computed=st.computed,
                       teacher_batches_reused=st.reused)
    metrics = distill_metrics(config, inputs, arch, ev, outs.test_members, tuned, trained, cache, timings)
    metrics.update(int8=None if int8 is None else int8.metrics, data_free=data_free, scheme=trained.scheme)
    metrics["teacher_cache"]["form"] = outs.form  # every logit or the top k (teachers/cache_form.py), and why
    if warning := qat_below_ptq_warning(metrics["int8"]):
        metrics["warnings"].append(warning)
    if warning := int8_gain_warning(metrics["int8"]):  # the float student may win while the deployed one loses
        metrics["warnings"].append(warning)
    if warning := formats_warning(target, config.quant.formats):
        metrics["warnings"].append(warning)
    metrics["warnings"] += (metrics["int8"] or {}).get("parity_skipped", [])  # a file TFLite Micro cannot load
    if any(TWIN_LOSS in w for w in metrics["warnings"]) and (note := short_run_note(schedule)):
        metrics["warnings"].append(note)  # a quick look's twin comparison is not the full run's
    annotate_intervals(metrics, len(s.test))  # every test accuracy gets its Wilson 95 % interval and n
    metrics["training"]["schedule"] = schedule.to_dict()  # steps, epochs and batch size planned
    metrics["training"]["steps_run"] = steps_run(trained, int8)  # optimizer steps each model actually took
    metrics["data"]["val_scored"] = ev.val_scored
    metrics["data"]["form"] = inputs.data_form  # in memory or memory-mapped; an .npz's conversion (data_form.py)
    metrics["warnings"][:0] = list(inputs.notes)
    metrics.update(distributed={"world_size": ddp.world(), "replica_weight_sha256": replicas,
                                "replicas_identical": all(r == replicas[0] for r in replicas),
                                "global_batch": settings.batch_size,
                                "per_rank_batch": -(-settings.batch_size // ddp.world()),
                                "samples_read_per_rank": samples_read,  # training rows each rank read (its shard)
                                "restart_count_per_rank": restarts})
    return Trained8(metrics, int8, config)


def finish(run: RunDir, done: Trained8, report: dict | None, t_start: float, extra_files=None) -> None:
    """Write the report, config.json and metrics.json (and the caller's extra files) into the work directory and
    publish it. A run whose parity failed is not published: its outputs stay in OUT.partial for inspection and an
    existing OUT is left as it was."""
    done.metrics["timings"]["total_s"] = time.perf_counter() - t_start
    done.metrics["timings"]["peak_rss_bytes"] = peak_rss_bytes()
    if report is not None:
        write_report({**report, "cost": run_cost(done.metrics)}, run.work)
    write_json(run.work / "config.json", recorded_config(done.config))
    write_json(run.work / "metrics.json", done.metrics)
    if done.int8 is not None and not done.int8.passed:
        raise ParityError(
            f"Parity check failed (outputs are kept in {run.work} for inspection, metrics.json records every figure; "
            f"{run.out} was not touched): " + "; ".join(done.int8.failures)
            + f". Every file must agree with the trained model on its runtime's arithmetic (top-1 >= {AGREEMENT}%, "
            f"logits within {MAX_STEPS:g} output step).")
    if extra_files is not None:
        extra_files(run.work)
    run.publish()


def _synthesize(config: DistillConfig, inputs: Inputs, cache: LogitCache, run: RunDir, show_progress: bool):
    """Data-free distillation: the transfer set synthesized from the teacher (cached), else the inputs unchanged."""
    if parse_synthetic(config.data.transfer) is None:
        return inputs, None
    with bars(show_progress and ddp.is_main()) as ui:
        cache_dir = cache.directory if cache.enabled else run.work
        splits, record = datafree.synthetic_splits(config, inputs.splits, inputs.teachers[0], cache_dir, ui)
    return replace(inputs, splits=splits), record


def steps_run(trained, int8: Int8Outcome | None) -> dict:
    """Optimizer steps each trained model took in all (a resumed run's earlier steps included)."""
    out = {"student": trained.result.steps}
    if trained.twin_result is not None:
        out["baseline"] = trained.twin_result.steps
    if int8 is not None:
        out.update({k: v for k, v in int8.metrics.items() if k in ("qat_steps_run", "baseline_qat_steps_run")})
    return out


def _replica_digests(student, baseline, int8) -> list[str]:
    """sha256 of each rank's final trained weights (one entry per rank; all equal when the replicas agree)."""
    h = hashlib.sha256()
    models = [student, baseline] + ([int8.qat_student] if int8 is not None and int8.qat_student is not None else [])
    for m in models:
        if m is None:
            continue
        for k, v in sorted(m.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().contiguous().numpy().tobytes())
    return ddp.gather_objects(h.hexdigest())
