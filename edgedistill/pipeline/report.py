"""Stage 8, report: metrics.json and report.json (+ .md, .html) assembled in one place from the stage results.

metrics.json is what training measured (teacher, twin and student accuracy, the gain over the twin, parameters,
the tuning record, per-epoch history, timings, versions); report.json adds what the measure stage found (sizes,
latencies, the target's estimate and fit checks) and, for `build`, the student search and the device figures.
"""

from __future__ import annotations

import copy
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

import edgedistill
from edgedistill.config import DistillConfig
from edgedistill.distill.trainer import FitResult, accuracy, predict_logits
from edgedistill.pipeline.inputs import EvalTensors, Inputs
from edgedistill.pipeline.measure import Measured
from edgedistill.pipeline.train import Trained
from edgedistill.pipeline.tune import Tuned
from edgedistill.report.noise import correct, gain_text, paired_gain
from edgedistill.report.per_class import confusion_matrix
from edgedistill.sanity import student_not_smaller_warning, teacher_size
from edgedistill.students import StudentArch, count_params
from edgedistill.pipeline.teacher_outputs import test_predictions
from edgedistill.teachers import LogitCache
from edgedistill.distill.topk_table import TopKTable

SCHEMA_VERSION = 1


def run_summary(model, res: FitResult, ev: EvalTensors) -> dict:
    """One trained model's figures: parameters, test accuracy, best validation accuracy and epoch, history."""
    return {
        "params": count_params(model),
        "test_acc": accuracy(predict_logits(model, ev.x_test), ev.y_test),
        "best_val_acc": res.best_val_acc,
        "best_epoch": res.best_epoch,
        "best_step": res.best_step,
        "steps": res.steps,  # optimizer steps run in all (a resumed run's earlier ones included)
        "eval_every": res.eval_every,
        "resumed_from_epoch": res.resumed_from_epoch,
        "resumed_from_step": res.resumed_from_step,
        "samples_per_s": res.samples_per_s,
        "data_share": res.data_s / res.seconds if res.seconds > 0 else None,  # batch assembly's share of step time
        "workers": res.workers,  # DataLoader worker processes that built the batches (0: the training process)
        "history": [asdict(h) for h in res.history],
    }


def _teachers(config: DistillConfig, inputs: Inputs, each: list[torch.Tensor], y_te: torch.Tensor) -> list[dict]:
    return [{"name": t.name, "format": t.format, "runtime": t.runtime(), "path": spec.path, "params": t.num_params(),
             "output": t.contract.to_dict(), "files": [{"path": str(f), "sha256": d} for f, d in zip(t.files, t.digests())],
             "test_acc": _percent(each[i], y_te)}
            for i, (t, spec) in enumerate(zip(inputs.teachers, config.teachers))]


def _percent(predicted: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((predicted == y).float().mean())


def _training(config: DistillConfig) -> dict:
    return {"epochs": config.train.epochs, "qat_epochs": config.quant.qat_epochs if config.quant.qat else 0,
            "steps": config.train.steps, "qat_steps": config.quant.qat_steps if config.quant.qat else None,
            # the last share of QAT steps computing the runtime's integers (None: every step fake-quantized)
            "qat_exact_share": config.quant.exact_share if config.quant.qat and config.quant.rounding != "float"
            else None,
            "augment": config.augment.model_dump(), "augment_text": config.augment.recipe().describe(),
            "teacher_outputs": "on the fly, per augmented batch" if config.augment.recipe().enabled
            else "cached per sample",
            "twin": "same architecture, initialisation, data order, augmentation and epochs; hard labels only"}


def _tuning(config: DistillConfig, tuned: Tuned) -> dict | None:
    if tuned.search is None:
        return None
    epochs = tuned.search.trial_epochs
    return {"trials": [asdict(t) for t in tuned.search.trials], "baseline_val_acc": tuned.search.baseline_val_acc,
            "epochs_per_trial": epochs, "steps_per_trial": tuned.search.trial_steps,
            "max_samples_per_trial": config.kd.tune_max_samples, "resumed_from_checkpoint": tuned.resumed,
            **tuned.search.summary()}


TWIN_LOSS = "the no-teacher twin"  # in every paragraph _gain_warning writes


def _gain_warning(student_acc: float, twin_acc: float, test: dict, form: str = " (float)") -> str:
    """One paragraph when the distilled student scores below its no-teacher twin: "LOST" only when the paired test
    says the difference is beyond the test split's noise; within it, the figures and "may be chance". `form`:
    " (float)" or " (int8)", both models in that form (a run whose headline is int8 reads which one trails)."""
    gap = (f"{TWIN_LOSS}{form} by {twin_acc - student_acc:.2f} points on the test split ({student_acc:.2f}% "
           f"vs {twin_acc:.2f}%; {gain_text(test)})")
    if test.get("within_noise"):
        return (f"The distilled student{form} trails {gap}. The test split cannot tell the two apart, so this may be "
                "chance; if it repeats, try more epochs, another temperature/alpha, or a stronger teacher.")
    return (f"Distillation{form} LOST to {gap}. The teacher is not helping this student at this budget: try more "
            "epochs, another temperature/alpha, or a stronger teacher.")


def int8_gain_warning(int8: dict | None) -> str | None:
    """The same paragraph for the deployed int8 student against the twin's int8 (QAT) form, when it scores below."""
    if not int8 or int8.get("gain_vs_baseline_int8") is None or int8["gain_vs_baseline_int8"] >= 0:
        return None
    return _gain_warning(int8["qat_test_acc"], int8["baseline_qat_test_acc"], int8["gain_vs_baseline_int8_test"],
                         " (int8)")


def distill_metrics(config: DistillConfig, inputs: Inputs, arch: StudentArch, ev: EvalTensors,
                    members_te: torch.Tensor | TopKTable, tuned: Tuned, trained: Trained, cache: LogitCache,
                    timings: dict) -> dict:
    """metrics.json's training part (int8, scheme, data-free and distributed sections are added by the caller's
    composition from their own stage results, before anything is written)."""
    each, combined = test_predictions(members_te, config.ensemble)
    teachers = _teachers(config, inputs, each, ev.y_test)
    student = run_summary(trained.student, trained.result, ev)
    student.update(arch=arch.to_dict(), objective=asdict(tuned.objective))
    m = {
        "schema_version": SCHEMA_VERSION,
        "data": inputs.splits.summary(),
        "teachers": teachers,
        "teacher": {"ensemble": config.ensemble if len(teachers) > 1 else None,
                    "test_acc": _percent(combined, ev.y_test),
                    "params": sum(t["params"] or 0 for t in teachers) or None},
        "student": student,
        "baseline": None,
        "gain_vs_baseline": None,
        "training": _training(config),
        "warnings": [],
        "tuning": _tuning(config, tuned),
        "timings": {**timings, "teacher_cache_hits": cache.stats.hits, "teacher_cache_misses": cache.stats.misses},
        "teacher_cache": cache.stats.summary(),  # each entry's form (teachers.logit_store) and bytes on disk
        "versions": {"edgedistill": edgedistill.__version__, "torch": torch.__version__,
                     "python": platform.python_version(), "numpy": np.__version__},
    }
    if trained.twin is not None:
        m["baseline"] = run_summary(trained.twin, trained.twin_result, ev)
        m["gain_vs_baseline"] = student["test_acc"] - m["baseline"]["test_acc"]
        m["gain_vs_baseline_test"] = paired_gain(correct(trained.student, ev.x_test, ev.y_test),
                                                 correct(trained.twin, ev.x_test, ev.y_test))
        if m["gain_vs_baseline"] < 0:
            m["warnings"].append(_gain_warning(student["test_acc"], m["baseline"]["test_acc"],
                                               m["gain_vs_baseline_test"]))
    k = inputs.splits.num_classes
    m["class_names"] = list(inputs.splits.class_names)
    m["confusion"] = {"teacher": confusion_matrix(combined, ev.y_test, k),
                      "distilled (float)": confusion_matrix(predict_logits(trained.student, ev.x_test).argmax(1),
                                                            ev.y_test, k)}
    if trained.twin is not None:
        m["confusion"]["no-teacher twin (float)"] = confusion_matrix(
            predict_logits(trained.twin, ev.x_test).argmax(1), ev.y_test, k)
    if inputs.splits.text is not None:
        m["warnings"] += inputs.splits.text.warnings()
    t_params, how = teacher_size(m["teacher"]["params"], [f["path"] for t in teachers for f in t["files"]])
    if warning := student_not_smaller_warning(student["params"], t_params, how):
        m["warnings"].append(warning)
    return m


def target_fit_warnings(target: dict | None) -> list[str]:
    """The deployed file over the target's flash or RAM, as warnings: the report's fit table alone was easy to miss
    (a breaking session's 11.9 MB file for a 1 MiB chip exited 0 with no warning printed). `target`: the measure
    stage's target section (its `fit` checks)."""
    out = []
    for f in (target or {}).get("fit", []):
        if f["check"] in ("flash", "ram") and f["value"] is not None and f["limit"] is not None and not f["passed"]:
            tables = target.get("tokenizer_bytes") if f["check"] == "flash" else None
            what = (f"The int8 file ({target.get('file_bytes', 0):,} B) and the tokenizer's tables "
                    f"({tables:,} B) need" if tables else
                    "The int8 file needs" if f["check"] == "flash" else "The TFLite Micro arena needs")
            out.append(f"{what} {f['value']:,} B, more than {target['name']}'s {f['check']} "
                       f"({f['limit']:,} B): this student does not fit the device. Choose a smaller student, or let "
                       "`edgedistill build` search one under the target's budget.")
    return out


def report_document(metrics: dict, measured: Measured, search: dict | None = None) -> dict:
    """report.json from metrics.json, the measure stage and (build) the search section."""
    from edgedistill.report import assemble

    rep = assemble(metrics, measured.profiles, measured.target)
    if search is not None:
        rep["search"] = search
    return rep


DEVICE_WARNINGS = ("Device figures are missing", "The device ")  # the warnings a device re-check replaces


def with_device(report: dict, device: dict, url: str, model: str) -> dict:
    """A copy of `report` whose device section (and, when measured, the gated latency) is `device`. A re-check
    replaces the previous device figures: the latency starts again from the host / estimated figure."""
    rep = copy.deepcopy(report)
    u = rep["usage"]
    u.setdefault("latency_ms_host_or_estimate", u["latency_ms"])
    u.setdefault("latency_how_host_or_estimate", u["latency_how"])
    u["latency_ms"], u["latency_how"] = u["latency_ms_host_or_estimate"], u["latency_how_host_or_estimate"]
    rep["warnings"] = [w for w in rep["warnings"] if not w.startswith(DEVICE_WARNINGS)]
    rep["device"] = device
    if device["status"] == "measured":
        u["latency_ms"] = device["latency_ms"].get("p50") or device["latency_ms"]["mean"]
        u["latency_how"] = "measured-device"
        if device["parity"].get("passed") is False:
            rep["warnings"].append(f"The device {url} does not reproduce this machine's outputs for {model} "
                                   f"(max |diff| {device['parity'].get('max_abs_diff')}).")
    else:
        rep["warnings"].append(f"Device figures are missing: {device['error']}")
    return rep


def search_section(found, budget=None) -> dict:
    """report.json's `search`: the rule, every candidate with its exact costs, the chosen one and the budget (limits
    the search applied; None = unconstrained)."""
    return {"rule": found.rule, "max_params": found.max_params, "chosen": found.chosen.to_dict(),
            "candidates": [c.to_dict() for c in found.candidates],
            "budget": None if budget is None else budget.to_dict()}


def write_report(report: dict, directory: Path) -> None:
    from edgedistill.report import write_reports

    write_reports(report, directory)
