"""`distill(config)`: data -> teachers -> cached teacher logits -> (auto T/alpha) -> student + no-teacher twin.

Every check a user's input can fail runs before anything is written. Work happens in `<out>.partial/` (which also
holds the resumable training checkpoints) and is renamed to `<out>` only when everything succeeded.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

import edgedistill
from edgedistill import distributed as ddp
from edgedistill.config import DistillConfig
from edgedistill.data import DataSplits, Split, make_splits, read_dataset
from edgedistill.distill.trainer import (
    FitResult,
    Objective,
    TrainSet,
    TrainSettings,
    accuracy,
    fit,
    predict_logits,
)
from edgedistill.distill import datafree
from edgedistill.distill.checks import check_feature_terms, check_out_dir, check_teacher_fits, feature_terms
from edgedistill.distill.datafree import parse_synthetic
from edgedistill.distill.schemes import born_again, check_online_teacher, mutual_student, trainable_teacher
from edgedistill.distill.tuning import candidate_objectives, tune, tuning_settings
from edgedistill.errors import ConfigError, EdgeDistillError
from edgedistill.progress import bars
from edgedistill.students import DEFAULT_FAMILY, StudentArch, build_student, count_params
from edgedistill.students.checkpoint import StudentCheckpoint, save_student
from edgedistill.teachers import LogitCache, Teacher, TeacherSpec, combine, load_teacher
from edgedistill.teachers.stream import TeacherStream
from edgedistill.util import write_json

SCHEMA_VERSION = 1


class ParityError(EdgeDistillError):
    """An exported file does not compute what was trained (beyond the configured tolerance)."""


@dataclass(frozen=True)
class DistillResult:
    out_dir: Path
    metrics: dict


@dataclass(frozen=True)
class Prepared:
    """Everything validated before any output exists."""

    splits: DataSplits
    teachers: list[Teacher]
    arch: StudentArch
    target: object = None


def prepare(config: DistillConfig) -> Prepared:
    """Read data and teachers and check that they fit each other. Raises EdgeDistillError, writes nothing."""
    raw = read_dataset(config.data.source)
    transfer = None
    synthetic = parse_synthetic(config.data.transfer, config.train.seed)
    if config.data.transfer and synthetic is None:
        t = read_dataset(config.data.transfer)
        transfer = Split(t.train.x, t.train.y)
    splits = make_splits(raw, val_fraction=config.data.val_fraction, test_fraction=config.data.test_fraction,
                         seed=config.data.seed, transfer=transfer, max_train=config.data.max_train)
    teachers = [load_teacher(TeacherSpec(t.path, t.format, t.factory, t.factory_kwargs, t.allow_pickle))
                for t in config.teachers]
    for spec, teacher in zip(config.teachers, teachers):
        check_teacher_fits(teacher, spec.input, splits)
    if synthetic is not None:
        datafree.check_teacher(config, teachers)
    why = config.augment.recipe().check(len(splits.input_shape))
    if why:
        raise ConfigError(f"Augmentation {config.augment.recipe().describe()} does not fit this data (samples of "
                          f"shape {splits.input_shape}): {why}. Change or drop --augment.")
    family = DEFAULT_FAMILY[splits.kind] if config.student.family == "auto" else config.student.family
    arch = StudentArch(family, config.student.width, config.student.depth)
    student = build_student(arch, splits.input_shape, splits.num_classes, splits.normalizer)  # family vs data
    if config.kd.features:
        check_feature_terms(config, teachers, student, splits)
    if config.kd.scheme == "mutual" and (config.kd.features or ddp.active()):
        raise ConfigError("Mutual learning (--scheme mutual) cannot be combined with feature terms or run under "
                          "torch.distributed yet; use the offline or born-again scheme for those.")
    if config.kd.online_teacher:
        check_online_teacher(config, teachers, splits)
    target = None
    if config.quant.qat:
        from edgedistill.quantize import to_quant_student
        from edgedistill.targets import load_target

        to_quant_student(student)  # an architecture int8 cannot express fails now, not after training
        target = load_target(config.target)
    return Prepared(splits, teachers, arch, target)


def _teacher_members(teachers, specs, cache: LogitCache, x: np.ndarray, splits: DataSplits, update) -> torch.Tensor:
    parts = []
    for teacher, spec in zip(teachers, specs):
        transform = splits.normalizer.apply if spec.input == "normalized" else None
        parts.append(cache.get(teacher, x, spec.input, transform, progress=lambda k: update(k)))
    return torch.stack(parts)


def _teacher_stream(teachers, specs, splits: DataSplits, cache: LogitCache) -> TeacherStream:
    """The teachers run on each augmented batch (function matching); see edgedistill.teachers.stream."""
    transforms = [splits.normalizer.apply if spec.input == "normalized" else None for spec in specs]

    def members(xb: torch.Tensor) -> torch.Tensor:
        x = xb.numpy()
        return torch.stack([t.logits(f(x) if f else x) for t, f in zip(teachers, transforms)])

    identity = "|".join(f"{t.identity()}|{spec.input}" for t, spec in zip(teachers, specs))
    return TeacherStream(members, identity, cache.directory if cache.enabled else None)


def distill(config: DistillConfig, *, overwrite: bool = False, show_progress: bool = True) -> DistillResult:
    t_start = time.perf_counter()
    ddp.init_from_env()  # under torchrun: join the process group (see edgedistill.distributed)
    out = Path(config.out)
    check_out_dir(out, overwrite)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    prep = prepare(config)
    work = out.with_name(out.name + ".partial")
    if ddp.is_main():
        work.mkdir(parents=True, exist_ok=True)
        (work / "checkpoints").mkdir(exist_ok=True)
    ddp.barrier()
    timings: dict[str, float] = {}
    cache = LogitCache(Path(config.cache_dir) if config.cache_dir else None)
    data_free = None
    if parse_synthetic(config.data.transfer) is not None:
        with bars(show_progress and ddp.is_main()) as ui:
            cache_dir = cache.directory if cache.enabled else work
            splits, data_free = datafree.synthetic_splits(config, prep.splits, prep.teachers[0], cache_dir, ui)
        prep = replace(prep, splits=splits)
    s = prep.splits
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    x_tr, x_val, x_te = to_t(s.transfer.x), to_t(s.val.x), to_t(s.test.x)
    y_tr = to_t(s.transfer.y) if s.transfer.labeled else None
    y_val, y_te = to_t(s.val.y), to_t(s.test.y)
    settings = TrainSettings(**config.train.model_dump(exclude={"threads"}), augment=config.augment.recipe())
    streaming = settings.augment.enabled

    def make_model() -> torch.nn.Module:
        torch.manual_seed(settings.seed)
        return build_student(prep.arch, s.input_shape, s.num_classes, s.normalizer)

    with bars(show_progress and ddp.is_main()) as ui:
        t0 = time.perf_counter()
        total = len(prep.teachers) * ((0 if streaming else len(s.transfer)) + len(s.test))
        upd = ui.task("teacher logits", total)
        members_tr = None if streaming else _teacher_members(prep.teachers, config.teachers, cache, s.transfer.x, s,
                                                             upd)
        members_te = _teacher_members(prep.teachers, config.teachers, cache, s.test.x, s, upd)
        timings["teacher_logits_s"] = time.perf_counter() - t0
        stream = _teacher_stream(prep.teachers, config.teachers, s, cache) if streaming else None
        data = TrainSet(x_tr, y_tr, members_tr, config.ensemble, stream,
                        prep.teachers[0].torch_module() if config.kd.features else None)

        tuning = None
        objective = _fixed_objective(config, y_tr is not None)
        if objective is None:
            t0 = time.perf_counter()
            tset = tuning_settings(settings, config.kd.tune_epochs)
            n_trials = len(candidate_objectives(config.kd.loss, config.kd.temperature, config.kd.alpha,
                                                y_tr is not None)) + (y_tr is not None)
            what = "loss/T/alpha" if config.kd.loss == "auto" else "T/alpha"
            upd = ui.task(f"auto {what} ({n_trials} trials)", n_trials)
            tuning = tune(make_model, data, x_val, y_val, config.kd.loss, config.kd.temperature, config.kd.alpha,
                          tset, config.kd.tune_max_samples, on_trial=lambda tr: upd(1, val_acc=tr.val_acc))
            objective = tuning.chosen
            timings["tune_s"] = time.perf_counter() - t0

        ckpt_dir = work / "checkpoints"
        objective = replace(objective, features=feature_terms(config))
        label = f"distill (T={objective.temperature:g}, α={objective.alpha:g})"
        if config.kd.scheme == "mutual":
            def peer(k: int) -> torch.nn.Module:
                torch.manual_seed(settings.seed + k)  # peer 0 starts where the twin starts
                return build_student(prep.arch, s.input_shape, s.num_classes, s.normalizer)

            upd = ui.task(f"mutual ×{config.kd.peers}, " + label, settings.epochs * len(data))
            online = trainable_teacher(prep.teachers[0].torch_module()) if config.kd.online_teacher else None
            student, res_s, scheme = mutual_student(peer, config.kd.peers, data, x_val, y_val, objective, settings,
                                                    config.kd.mutual_weight, lambda m: accuracy(predict_logits(m, x_te),
                                                                                                y_te), upd,
                                                    online, config.kd.teacher_lr_scale)
        else:
            student, res_s = _train(make_model, data, x_val, y_val, objective, settings, ckpt_dir / "student.pt",
                                    ui.task(label, settings.epochs * len(data)))
            scheme = {"scheme": "offline"}
        if config.kd.scheme == "born-again":
            def train_gen(mk, d, obj, tag):
                return _train(mk, d, x_val, y_val, obj, settings, ckpt_dir / f"{tag}.pt",
                              ui.task(tag, settings.epochs * len(d)))

            student, res_s, gens = born_again(student, res_s, train_gen, make_model, data, objective, settings,
                                              config.kd.generations, lambda m: accuracy(predict_logits(m, x_te), y_te))
            scheme = {"scheme": "born-again", "generations": [asdict(g) for g in gens]}
        timings["distill_s"] = res_s.seconds
        baseline = res_b = None
        if config.baseline and y_tr is not None:
            baseline, res_b = _train(make_model, data, x_val, y_val, Objective(teacher=False), settings,
                                     ckpt_dir / "baseline.pt", ui.task("no-teacher twin", settings.epochs * len(data)))
            timings["baseline_s"] = res_b.seconds
        int8 = None
        if config.quant.qat:
            from edgedistill.deploy import run_int8_stage

            int8 = run_int8_stage(config.quant, student, baseline, data, x_val, y_val, s.test.x, s.test.y, objective,
                                  settings, s.input_shape, s.num_classes, work, ui)
    replicas = _replica_digests(student, baseline, int8)
    if not ddp.is_main():  # training is done; rank 0 alone exports, reports and writes
        return DistillResult(out, {})

    ckpt = StudentCheckpoint(prep.arch, s.input_shape, s.num_classes, s.class_names, s.normalizer)
    save_student(work, student, ckpt, "student")
    if baseline is not None:
        save_student(work, baseline, ckpt, "baseline")
    teacher_acc = accuracy(combine(members_te, config.ensemble, 1.0), y_te)
    if stream is not None:
        timings.update(teacher_on_the_fly_s=stream.stats.seconds, teacher_batches_computed=stream.stats.computed,
                       teacher_batches_reused=stream.stats.reused)
    metrics = _metrics(config, prep, members_te, y_te, teacher_acc, student, res_s, objective, baseline, res_b,
                       x_te, tuning, cache, timings)
    metrics["int8"] = None if int8 is None else int8.metrics
    metrics["data_free"] = data_free
    metrics["scheme"] = scheme
    metrics["distributed"] = {"world_size": ddp.world(), "replica_weight_sha256": replicas,
                              "replicas_identical": all(r == replicas[0] for r in replicas),
                              "global_batch": settings.batch_size,
                              "per_rank_batch": -(-settings.batch_size // ddp.world())}
    if int8 is not None and config.report:
        t0 = time.perf_counter()
        _write_report(config, prep, int8, metrics, work)
        metrics["timings"]["report_s"] = time.perf_counter() - t0
    metrics["timings"]["total_s"] = time.perf_counter() - t_start
    write_json(work / "config.json", config.model_dump(mode="json"))
    write_json(work / "metrics.json", metrics)
    if int8 is not None and not int8.passed:  # a failed run is not published: OUT (if any) stays as it was
        raise ParityError(
            f"Parity check failed (outputs are kept in {work} for inspection, metrics.json records every figure; "
            f"{out} was not touched): " + "; ".join(int8.failures)
            + f". Tolerance: {config.quant.int8_tolerance} points (--int8-tolerance).")
    _publish(work, out)
    return DistillResult(out, metrics)


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


def _write_report(config: DistillConfig, prep: Prepared, int8, metrics: dict, work: Path) -> None:
    from edgedistill.report import assemble, write_reports
    from edgedistill.report.collect import profile_artifacts, profile_teacher, target_section

    threads = prep.target.threads if prep.target.kind == "host" else 1
    profiles = profile_artifacts(int8.artifacts, threads)
    if len(prep.teachers) == 1:
        profiles["teacher"] = profile_teacher(prep.teachers[0], prep.splits.input_shape, threads)
    host_ms = (profiles.get("tflite-int8") or {}).get("latency_ms")
    write_reports(assemble(metrics, profiles, target_section(int8.artifacts, prep.target, host_ms)), work)


def _fixed_objective(config: DistillConfig, labeled: bool) -> Objective | None:
    t, a = config.kd.temperature, config.kd.alpha
    if not labeled:
        a = 1.0  # unlabeled transfer set: soft targets are all there is
    if config.kd.loss == "mse":
        t = 1.0 if t == "auto" else t
    if t == "auto" or a == "auto" or config.kd.loss == "auto":
        return None
    return Objective(True, config.kd.loss, float(t), float(a))


def _train(make_model, data, x_val, y_val, objective, settings, ckpt_path, update) -> tuple[torch.nn.Module, FitResult]:
    model = make_model()
    res = fit(model, data, x_val, y_val, objective, settings, checkpoint=ckpt_path,
              progress=lambda k, loss, val: update(k, loss, val))
    model.load_state_dict(res.best_state)
    return model.eval(), res


def _run_summary(model, res: FitResult, x_te, y_te) -> dict:
    return {
        "params": count_params(model),
        "test_acc": accuracy(predict_logits(model, x_te), y_te),
        "best_val_acc": res.best_val_acc,
        "best_epoch": res.best_epoch,
        "resumed_from_epoch": res.resumed_from_epoch,
        "samples_per_s": res.samples_per_s,
        "history": [asdict(h) for h in res.history],
    }


def _metrics(config, prep, members_te, y_te, teacher_acc, student, res_s, objective, baseline, res_b, x_te,
             tuning, cache, timings) -> dict:
    teachers = []
    for i, (t, spec) in enumerate(zip(prep.teachers, config.teachers)):
        teachers.append({"name": t.name, "format": t.format, "runtime": t.runtime(), "path": spec.path,
                         "params": t.num_params(),
                         "files": [{"path": str(f), "sha256": d} for f, d in zip(t.files, t.digests())],
                         "test_acc": accuracy(members_te[i], y_te)})
    st = _run_summary(student, res_s, x_te, y_te)
    st.update(arch=asdict(prep.arch), objective=asdict(objective))
    m = {
        "schema_version": SCHEMA_VERSION,
        "data": prep.splits.summary(),
        "teachers": teachers,
        "teacher": {"ensemble": config.ensemble if len(teachers) > 1 else None, "test_acc": teacher_acc,
                    "params": sum(t["params"] or 0 for t in teachers) or None},
        "student": st,
        "baseline": None,
        "gain_vs_baseline": None,
        "training": {"epochs": config.train.epochs, "qat_epochs": config.quant.qat_epochs if config.quant.qat else 0,
                     "augment": config.augment.model_dump(), "augment_text": config.augment.recipe().describe(),
                     "teacher_outputs": "on the fly, per augmented batch" if config.augment.recipe().enabled
                     else "cached per sample",
                     "twin": "same architecture, initialisation, data order, augmentation and epochs; hard labels only"},
        "warnings": [],
        "tuning": None if tuning is None else {
            "trials": [asdict(t) for t in tuning.trials], "baseline_val_acc": tuning.baseline_val_acc,
            "epochs_per_trial": tuning_settings(TrainSettings(**config.train.model_dump(exclude={"threads"})),
                                                config.kd.tune_epochs).epochs,
            "max_samples_per_trial": config.kd.tune_max_samples, **tuning.summary()},
        "timings": {**timings, "teacher_cache_hits": cache.stats.hits, "teacher_cache_misses": cache.stats.misses},
        "versions": {"edgedistill": edgedistill.__version__, "torch": torch.__version__,
                     "python": platform.python_version(), "numpy": np.__version__},
    }
    if baseline is not None:
        m["baseline"] = _run_summary(baseline, res_b, x_te, y_te)
        m["gain_vs_baseline"] = st["test_acc"] - m["baseline"]["test_acc"]
        if m["gain_vs_baseline"] < 0:
            m["warnings"].append(
                f"Distillation LOST to the no-teacher twin by {-m['gain_vs_baseline']:.2f} points on the test split "
                f"({st['test_acc']:.2f}% vs {m['baseline']['test_acc']:.2f}%). The teacher is not helping this "
                "student at this budget: try more epochs, another temperature/alpha, or a stronger teacher.")
    return m


def _publish(work: Path, out: Path) -> None:
    """Replace `out` with the finished work directory; checkpoints are dropped (the run is complete)."""
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    if out.exists():
        old = out.with_name(out.name + f".old{os.getpid()}")
        os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, out)
