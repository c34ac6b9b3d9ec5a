"""`build(config, budget)`: the whole chain for one target in one directory, re-runnable.

    inputs -> search (fails fast) -> [the distill chain on the chosen student, QAT on] -> measure (+ device)
           -> report (+ search, device) -> manifest -> gate

The build directory holds a manifest: every input with its hash, tool versions, the resolved config and every
artifact with its sha256. A re-run whose inputs hash the same and whose artifacts still verify trains nothing: it
re-measures on the device when asked and re-runs the gate; a re-run under another budget that picks the same student
retrains nothing either (the report's search section and the gate follow the new limits); an interrupted run resumes
from the last finished epoch.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from edgedistill import distributed as ddp
from edgedistill.budget import LM_ONLY, Budget
from edgedistill.config import DistillConfig
from edgedistill.errors import ConfigError
from edgedistill.gate import Verdict, gate, junit_xml, load_report, markdown, report_budget
from edgedistill.pipeline.distill import check_and_target, finish, measure, train_and_deploy
from edgedistill.pipeline.inputs import Inputs, fit_student_to_target, read_inputs
from edgedistill.pipeline.measure import measure_device
from edgedistill.pipeline.report import report_document, search_section, with_device, write_report
from edgedistill.pipeline.rundir import (MANIFEST, RUN_FILES, RunDir, artifact_list, artifacts_verify, read_manifest,
                                         refuse_foreign)
from edgedistill.pipeline.search import announce, choose_student
from edgedistill.students.search import SearchResult
from edgedistill.targets import load_target
from edgedistill.teachers.cache import array_digest
from edgedistill.util import write_json

TOOLS = ("edgedistill", "torch", "numpy", "onnx", "onnxruntime", "ai-edge-litert", "litert-torch", "tflite-micro")
DEVICE_SAMPLES = 100


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    verdict: Verdict
    reused: bool
    search: SearchResult
    task: str = "classification"  # or "causal-lm" (pipeline/lm_build.py: metrics.json, no report.json)
    rebudgeted: bool = False  # reused under another budget (the same student): only the search section and gate redone


def build(config: DistillConfig, budget_text: str | None = None, *, show_progress: bool = True,
          device: str | None = None) -> BuildResult | None:
    """Returns None on the ranks other than 0 of a distributed build (rank 0 writes, checks and gates)."""
    t_start = time.perf_counter()
    from edgedistill.pipeline.distill import refuse_kv_cache
    from edgedistill.pipeline.lm_inputs import task_of

    refuse_kv_cache(config, task_of(config))
    if task_of(config) == "causal-lm":
        from edgedistill.pipeline.lm_build import build_lm

        return build_lm(config, budget_text, show_progress=show_progress, device=device)
    ddp.init_from_env()
    target = load_target(config.target)
    budget = Budget.for_target(target, Budget.parse(budget_text or ""))
    lm_limits = budget.given(LM_ONLY)
    if lm_limits:
        raise ConfigError(f"--budget {','.join(lm_limits)} limits a causal language model (its generated tokens per "
                          "second, perplexity or next-token accuracy), and this build is a classifier (its teacher is "
                          "not a causal LM): give it latency= / accuracy= / drop= limits instead, or build with a "
                          "causal-LM teacher (--task causal-lm).")
    _refuse_other_data(Path(config.out), config.data.source, config.target)
    with RunDir(Path(config.out), overwrite=True, replacing=False) as run:  # replaced only when retrained
        inputs = read_inputs(config, show_progress)
        config, inputs = fit_student_to_target(config, inputs, show_progress)  # GELU where the target has none
        found = choose_student(config, budget, inputs, target)  # an infeasible budget fails here, untrained
        config = _with_student(config, found)
        key = _input_hash(config, _inputs_record(config, inputs))
        old = read_manifest(run.out)
        reused = old is not None and old.get("input_hash") == key and artifacts_verify(run.out, old)
        rebudgeted = False
        if not reused:
            refuse_foreign(run.out)  # before training: the new build will replace OUT
            if not _train(config, inputs, found, budget, key, run, device, show_progress, t_start):
                return None
        else:
            run.lock()
            rebudgeted = old.get("budget") != budget.to_dict()
            if rebudgeted:
                _rebudget(run.out, found, budget)
            if device:
                _recheck_device(run.out, device, inputs, target.threads)
        verdict = _gate(run.out, budget)
    return BuildResult(run.out, verdict, reused, found, rebudgeted=rebudgeted)


def _train(config, inputs: Inputs, found, budget: Budget, key: str, run: RunDir, device, show_progress,
           t_start) -> bool:
    """The distill chain on the chosen student, the report with its search and device sections, the manifest."""
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    arch = found.chosen.arch
    target = check_and_target(config, inputs, arch)
    announce(found, run.out, show_progress, budget, target.name if target is not None else config.target)
    run.create()
    done = train_and_deploy(config, inputs, arch, target, run, show_progress)
    if not ddp.is_main():
        return False  # under torchrun the other ranks helped train; rank 0 writes, checks and gates
    t0 = time.perf_counter()
    report = report_document(done.metrics, measure(done.int8, inputs, target, config.train.threads),
                             search_section(found, budget))
    done.metrics["timings"]["report_s"] = time.perf_counter() - t0
    if device:
        dev = measure_device(device, run.work / "student_int8.tflite", inputs.splits.test.x[:DEVICE_SAMPLES],
                             target.threads)
        report = with_device(report, dev, device, "student_int8.tflite")
    record = _inputs_record(config, inputs)

    def manifest(work: Path) -> None:
        write_json(work / MANIFEST, {
            "input_hash": key, "inputs": record, "budget": budget.to_dict(), "versions": tool_versions(),
            "config": config.model_dump(mode="json"), "artifacts": artifact_list(work)})

    finish(run, done, report, t_start, extra_files=manifest)
    return True


def _rebudget(out: Path, found: SearchResult, budget: Budget) -> None:
    """A re-run under another budget that chose the same student (so the same config and inputs): nothing is
    retrained; the report's search section (which lists each candidate's violations of the budget) and the manifest's
    budget are brought up to date, and the gate then judges the new limits."""
    report = json.loads((out / "report.json").read_text())
    write_report({**report, "search": search_section(found, budget)}, out)
    manifest = read_manifest(out)
    write_json(out / MANIFEST, {**manifest, "budget": budget.to_dict(), "artifacts": artifact_list(out)})


def _recheck_device(out: Path, url: str, inputs: Inputs, threads: int) -> None:
    model = out / "student_int8.tflite"
    dev = measure_device(url, model, inputs.splits.test.x[:DEVICE_SAMPLES], threads)
    write_report(with_device(json.loads((out / "report.json").read_text()), dev, url, model.name), out)
    manifest = read_manifest(out)
    write_json(out / MANIFEST, {**manifest, "artifacts": artifact_list(out)})  # the report's new digests


def _gate(out: Path, budget: Budget) -> Verdict:
    """Stage 9, gate: report + budget -> verdict, written as JUnit XML and Markdown beside the report."""
    report = load_report(out / "report.json")
    verdict = gate(report, report_budget(report).tighten(budget))
    (out / "gate.xml").write_text(junit_xml(verdict))
    (out / "gate.md").write_text(markdown(verdict))
    return verdict


def _with_student(config: DistillConfig, found: SearchResult) -> DistillConfig:
    arch = found.chosen.arch
    student = config.student if arch.factory else config.student.model_copy(  # the user's own student stays as given
        update={"family": arch.family, "width": arch.width, "depth": arch.depth, "knobs": dict(arch.knobs)})
    return config.model_copy(update={"student": student, "quant": config.quant.model_copy(update={"qat": True})})


def tool_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _refuse_other_data(out: Path, source: str, target: str) -> None:
    """A build replaces its own earlier build (other settings, a changed budget), never a build of other data (two
    data paths with the same name, a/feat and b/feat, share a default directory) nor one for another target (an
    --out given to builds for two targets: the first target's files would be gone without a word). Raises
    ConfigError; writes nothing."""
    if not all((out / name).is_file() for name in RUN_FILES):
        return  # no build of ours (or none at all): the run directory's own checks decide
    manifest = read_manifest(out) or {}
    old, old_target = _field(manifest, "inputs", "data", "source"), _field(manifest, "config", "target")
    if old is not None and old != source:
        raise ConfigError(f"{out} holds a build of other data ({old}); a build replaces only its own earlier build "
                          f"of the same data ({source} here), and nothing there was touched. Choose another --out, "
                          "or delete that directory first.")
    if old_target is not None and old_target != target:
        raise ConfigError(f"{out} holds a build for another target ({old_target}); a build replaces only its own "
                          f"earlier build for the same target ({target} here), and nothing there was touched. Choose "
                          "another --out (the default, runs/build-TARGET..., keeps one folder per target), or delete "
                          "that directory first.")


def _field(manifest: dict, *keys: str) -> str | None:
    """manifest[k1][k2]... where every level is an object and the value a string, else None (a hand-written or
    foreign manifest.json is judged by the run directory's own checks, not read here)."""
    value = manifest
    for k in keys:
        value = value.get(k) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


def _inputs_record(config: DistillConfig, inputs: Inputs) -> dict:
    data = {"source": config.data.source, "train_sha256": array_digest(inputs.raw.train.x)}
    return {"data": data, "teachers": [
        {"path": t.path, "files": [{"path": str(f), "sha256": d} for f, d in zip(teacher.files, teacher.digests())]}
        for t, teacher in zip(config.teachers, inputs.teachers)]}


def _input_hash(config: DistillConfig, inputs: dict) -> str:
    """sha256 of what training depends on: the resolved config (the chosen student included), the inputs' digests and
    the tools' versions. The budget is not in it: it decides the student, which is in the config, and the gate."""
    blob = json.dumps([config.model_dump(mode="json", exclude={"out"}), inputs, tool_versions()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
