"""`build(...)`: the whole pipeline for one target in one directory, re-runnable.

data -> budgeted search (fails fast) -> distill (teacher logits cached, float + QAT, no-teacher twin) -> export ->
parity -> profile -> report -> gate. The build directory holds a manifest: every input with its hash, tool
versions, the resolved config and every artifact with its sha256. A re-run whose inputs hash the same and whose
artifacts still verify does nothing but re-run the gate; an interrupted run resumes from the last finished epoch
(the distill stage's checkpoints in OUT.partial).
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from edgedistill import distributed as ddp
from edgedistill.budget import Budget
from edgedistill.config import DistillConfig
from edgedistill.data import kind_of, read_dataset
from edgedistill.data.splits import make_splits
from edgedistill.gate import Verdict, gate, junit_xml, load_report, markdown, report_budget
from edgedistill.students.search import SearchResult, search
from edgedistill.targets import load_target
from edgedistill.teachers import TeacherSpec, load_teacher
from edgedistill.teachers.base import file_digest
from edgedistill.teachers.cache import array_digest
from edgedistill.util import write_json

MANIFEST = "manifest.json"
TOOLS = ("edgedistill", "torch", "numpy", "onnx", "onnxruntime", "ai-edge-litert", "litert-torch", "tflite-micro")


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    verdict: Verdict
    reused: bool
    search: SearchResult


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _load_teachers(config: DistillConfig) -> list:
    return [load_teacher(TeacherSpec(t.path, t.format, t.factory, t.factory_kwargs, t.allow_pickle))
            for t in config.teachers]


def _inputs(config: DistillConfig, raw, teachers: list) -> dict:
    data = {"source": config.data.source, "train_sha256": array_digest(raw.train.x)}
    return {"data": data, "teachers": [
        {"path": t.path, "files": [{"path": str(f), "sha256": d} for f, d in zip(teacher.files, teacher.digests())]}
        for t, teacher in zip(config.teachers, teachers)]}


def _input_hash(config: DistillConfig, inputs: dict, budget: Budget) -> str:
    blob = json.dumps([config.model_dump(mode="json", exclude={"out"}), inputs, budget.to_dict(),
                       _versions()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _artifacts_verify(out: Path, manifest: dict) -> bool:
    for a in manifest.get("artifacts", []):
        p = out / a["path"]
        if not p.is_file() or file_digest(p) != a["sha256"]:
            return False
    return bool(manifest.get("artifacts"))


def _teacher_params(teachers: list) -> int:
    """Parameters of the (largest) teacher; for runtime formats, estimated from the file size (4 bytes each)."""
    return max(t.num_params() or sum(f.stat().st_size for f in t.files) // 4 for t in teachers)


def _search(config: DistillConfig, budget: Budget, raw, splits, teachers: list) -> SearchResult:
    kind = kind_of(raw.train.x)
    own = config.student.arch(kind) if config.student.factory else None  # the user's student: costed, not searched
    fams = None if config.student.family == "auto" or own else [config.student.family]
    return search(kind, splits.input_shape, splits.num_classes, budget, fams,
                  max_params=_teacher_params(teachers) // 2, arch=own)


def build(config: DistillConfig, budget_text: str | None = None, *, show_progress: bool = True,
          device: str | None = None) -> BuildResult | None:
    from edgedistill.distill.pipeline import distill

    target = load_target(config.target)
    budget = Budget.from_target(target).tighten(Budget.parse(budget_text or ""))
    raw = read_dataset(config.data.source)
    teachers = _load_teachers(config)
    splits = make_splits(raw, val_fraction=config.data.val_fraction, test_fraction=config.data.test_fraction,
                         seed=config.data.seed)
    found = _search(config, budget, raw, splits, teachers)  # an infeasible budget fails here, before any training
    arch = found.chosen.arch
    config = config.model_copy(update={
        "student": config.student.model_copy(update={"family": arch.family, "width": arch.width, "depth": arch.depth}),
        "quant": config.quant.model_copy(update={"qat": True})})
    out = Path(config.out)
    inputs = _inputs(config, raw, teachers)
    key = _input_hash(config, inputs, budget)
    manifest_path = out / MANIFEST
    reused = False
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        reused = old.get("input_hash") == key and _artifacts_verify(out, old)
    if not reused:
        distill(config, overwrite=True, show_progress=show_progress)
        if not ddp.is_main():
            return None  # under torchrun the other ranks helped train; rank 0 writes, checks and gates
        _add_search_to_report(out, found)
        files = sorted(p for p in out.iterdir() if p.is_file() and p.name != MANIFEST)
        write_json(manifest_path, {
            "input_hash": key, "inputs": inputs, "budget": budget.to_dict(), "versions": _versions(),
            "config": config.model_dump(mode="json"),
            "artifacts": [{"path": p.name, "sha256": file_digest(p), "bytes": p.stat().st_size} for p in files
                          if not p.name.startswith(("gate.", "report."))]})
    if not ddp.is_main():
        return None
    if device:
        _add_device_to_report(out, device, splits.test.x[:100], target.threads)
    report = load_report(out / "report.json")
    verdict = gate(report, report_budget(report).tighten(budget))
    (out / "gate.xml").write_text(junit_xml(verdict))
    (out / "gate.md").write_text(markdown(verdict))
    return BuildResult(out, verdict, reused, found)


_DEVICE_WARNINGS = ("Device figures are missing", "The device ")


def _add_device_to_report(out: Path, url: str, x, threads: int) -> None:
    """Measure the deployed int8 TFLite file on the device with real test samples x; the device must reproduce this
    machine's outputs. A device failure marks the figures missing (never zero) and leaves the host report intact."""
    from edgedistill.device.collect import host_reference, measure_on_device
    from edgedistill.report import write_reports

    model = out / "student_int8.tflite"
    ref, tolerance = host_reference(model, x)
    rep = json.loads((out / "report.json").read_text())
    u = rep["usage"]
    # a re-run replaces the previous device figures: start again from the host / estimated latency
    u.setdefault("latency_ms_host_or_estimate", u["latency_ms"])
    u.setdefault("latency_how_host_or_estimate", u["latency_how"])
    u["latency_ms"], u["latency_how"] = u["latency_ms_host_or_estimate"], u["latency_how_host_or_estimate"]
    rep["warnings"] = [w for w in rep["warnings"] if not w.startswith(_DEVICE_WARNINGS)]
    rep["device"] = measure_on_device(url, model, x, ref, threads, tolerance=tolerance)
    if rep["device"]["status"] == "measured":
        rep["usage"]["latency_ms"] = rep["device"]["latency_ms"].get("p50") or rep["device"]["latency_ms"]["mean"]
        rep["usage"]["latency_how"] = "measured-device"
        if rep["device"]["parity"].get("passed") is False:
            rep["warnings"].append(f"The device {url} does not reproduce this machine's outputs for "
                                   f"{model.name} (max |diff| {rep['device']['parity'].get('max_abs_diff')}).")
    else:
        rep["warnings"].append(f"Device figures are missing: {rep['device']['error']}")
    write_reports(rep, out)


def _add_search_to_report(out: Path, found: SearchResult) -> None:
    from edgedistill.report import write_reports

    rep = json.loads((out / "report.json").read_text())
    rep["search"] = {"rule": found.rule, "max_params": found.max_params, "chosen": found.chosen.to_dict(),
                     "candidates": [c.to_dict() for c in found.candidates]}
    write_reports(rep, out)
