"""`build --task causal-lm --target T`: the decoder student chosen under the target's budget, then the causal-LM
distill chain (pipeline/lm_distill.py) with QAT, its tokens/s, report and gate under that budget.

    inputs (lm_inputs) -> search (decoder family, fails fast) -> distill_lm(QAT on) -> gate.xml / gate.md

The search is the classifier build's (students/search.py, rule: the most parameters among the candidates that fit,
at most half the teacher's): every decoder of DECODER_SEARCH_GRID costed exactly on its int8 graph for the run's
context window and the student's vocabulary, against flash (the int8 file's size bound plus the tables the
tokenizer reads on the device, StudentTokenizer.device_bytes()), RAM (the tensor arena) and
the latency of one decoder step on the target (its roofline estimate), which is the latency per generated token:
`--budget tokens_per_s=N` is searched as latency = 1000 / N ms. With `--kv-cache` every candidate is costed as its
KV-cache step instead (students/cost_kv.py), the file the gate then judges: its MACs and latency per token, its
file, and its arena plus the key / value caches the app keeps. A budget no decoder meets fails here, before
anything is written, in one paragraph naming the limit and the smallest budget that would work. The gate then
judges the trained files: perplexity rows, tokens/s (measured here on a host target, else the estimate), flash and
RAM (edgedistill.gate_lm). As the classifier build, it writes a manifest (pipeline/lm_manifest.py): a re-run whose
inputs, options and tools are unchanged and whose files still verify trains nothing, re-runs the gate and
leaves the files as they are; under another budget that picks the same decoder, metrics.json's search and gate
sections, report.md and the manifest's budget are brought up to date first. `--device URL` measures the int8 step
the gate judges (with --kv-cache the KV-cache step) on a device after the build, or on a re-run of an unchanged one
(pipeline/lm_device.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from edgedistill.budget import CLASSIFIER_ONLY, Budget
from edgedistill.config import DistillConfig
from edgedistill.errors import ConfigError
from edgedistill.gate import Check, Verdict, junit_xml, markdown
from edgedistill.gate_lm import lm_gate
from edgedistill.pipeline.lm_device import device_file, measure_lm_device, with_lm_device
from edgedistill.pipeline.lm_distill import distill_lm
from edgedistill.pipeline.lm_inputs import LMInputs, read_lm_inputs
from edgedistill.pipeline.lm_manifest import lm_input_hash, lm_inputs_record, manifest_writer, unchanged
from edgedistill.pipeline.report import search_section
from edgedistill.pipeline.search import announce
from edgedistill.pipeline.lm_report import attach_gate, report_markdown, write_lm_report
from edgedistill.pipeline.lm_train import tensors
from edgedistill.pipeline.rundir import MANIFEST, RunDir, artifact_list, read_manifest
from edgedistill.students.search import SearchResult, search
from edgedistill.targets import TargetProfile, load_target
from edgedistill.util import write_json


def search_budget(budget: Budget) -> Budget:
    """The budget the search costs candidates under: a tokens/s floor becomes its latency per token (1000 / N ms),
    tightened with any `latency=` limit."""
    if not budget.min_tokens_per_s:
        return budget
    return budget.tighten(Budget(latency_ms=1000.0 / budget.min_tokens_per_s))


def choose_decoder(config: DistillConfig, budget: Budget, inputs: LMInputs, target: TargetProfile) -> SearchResult:
    """The decoder student for `inputs` (context window, student vocabulary) under `budget` on `target`: the largest
    that fits, capped at half the teacher's parameters. Raises InfeasibleBudgetError (one paragraph) when none does,
    ConfigError for a family other than the decoder."""
    _decoder_only(config)
    s = inputs.splits
    vocab = inputs.tokenizer.vocab_size
    return search("text", (s.context,), vocab, search_budget(budget), ["decoder"],
                  max_params=inputs.teacher.num_params() // 2, target=target, vocab_size=vocab,
                  knobs=dict(config.student.knobs), tokenizer_bytes=inputs.tokenizer.device_bytes(),
                  kv_cache=bool(config.quant.kv_cache))


def _decoder_only(config: DistillConfig) -> None:
    if config.student.family not in ("auto", "decoder") or config.student.factory:
        raise ConfigError(f"build --task causal-lm searches the decoder student family, not "
                          f"{config.student.factory or config.student.family!r}; leave --family out or give "
                          "--family decoder.")


def _with_decoder(config: DistillConfig, found: SearchResult) -> DistillConfig:
    a = found.chosen.arch
    student = config.student.model_copy(update={"family": "decoder", "width": a.width, "depth": a.depth,
                                                "knobs": dict(a.knobs)})
    return config.model_copy(update={"student": student, "quant": config.quant.model_copy(update={"qat": True})})


def build_lm(config: DistillConfig, budget_text: str | None = None, *, show_progress: bool = True,
             device: str | None = None):
    """Run the causal-LM build (module doc); returns pipeline.build.BuildResult (task "causal-lm"). Raises before
    anything is written: ConfigError / DataError / ModelLoadError from the inputs, InfeasibleBudgetError from the
    search; ParityError (outputs kept in OUT.partial) when an exported file disagrees. `device`: a device URL the int8
    step is measured on (a device that fails gives a warning, not an error)."""
    from edgedistill.pipeline.build import BuildResult, _refuse_other_data

    target = load_target(config.target)
    budget = Budget.for_target(target, Budget.parse(budget_text or ""))
    wrong = budget.given(CLASSIFIER_ONLY)
    if wrong:
        raise ConfigError(f"--budget {','.join(wrong)} limits a classifier's accuracy, and this build is a causal LM: "
                          "limit its next-token accuracy with top1= / top3= (percent), its perplexity with "
                          "perplexity=, and the int8 model's perplexity rise with int8_rise= (default 2%).")
    _refuse_other_data(Path(config.out), config.data.source, config.target)
    _decoder_only(config)
    inputs = read_lm_inputs(config)
    found = choose_decoder(config, budget, inputs, target)
    config = _with_decoder(config, found)
    inputs = replace(inputs, arch=found.chosen.arch)  # the grid's point, with the user's knobs (heads, ffn)
    record = lm_inputs_record(config, inputs)
    key = lm_input_hash(config, record)
    out = Path(config.out)
    if unchanged(out, key):
        with RunDir(out, overwrite=True, replacing=False) as run:  # nothing is replaced: files stay as they are
            run.lock()
            rebudgeted = read_manifest(out).get("budget") != budget.to_dict()
            if rebudgeted:
                _rebudget(out, found, budget)
            if device:
                _on_device(out, device, inputs, target, budget)
            verdict = lm_gate(json.loads((out / "metrics.json").read_text()), budget)
            _write_gate(out, verdict)
        return BuildResult(out, verdict, True, found, task="causal-lm", rebudgeted=rebudgeted)
    announce(found, out, show_progress, budget, target.name)
    res = distill_lm(config, overwrite=True, show_progress=show_progress, inputs=inputs, budget=budget,
                     sections={"search": search_section(found, budget)},
                     extra_files=manifest_writer(key, record, budget, config))
    g = (_on_device(res.out_dir, device, inputs, target, budget) if device else res.metrics)["gate"]
    verdict = Verdict([Check(**c) for c in g["checks"]], list(g["warnings"]))
    _write_gate(res.out_dir, verdict)
    return BuildResult(res.out_dir, verdict, False, found, task="causal-lm")


def _rebudget(out: Path, found: SearchResult, budget: Budget) -> None:
    """A re-run under another budget that chose the same decoder: nothing is retrained; metrics.json's search
    section and gate, report.md and the manifest's budget follow the new limits (as pipeline/build._rebudget)."""
    metrics = attach_gate({**json.loads((out / "metrics.json").read_text()), "search": search_section(found, budget)},
                          budget)
    write_json(out / "metrics.json", metrics)
    write_lm_report(metrics, out)
    write_json(out / MANIFEST, {**read_manifest(out), "budget": budget.to_dict(), "artifacts": artifact_list(out)})


def _on_device(out: Path, url: str, inputs: LMInputs, target: TargetProfile, budget: Budget) -> dict:
    """Measure the built int8 step on the device (pipeline/lm_device.py); metrics.json (its gate included), report.md
    and the manifest's file list follow. Returns the new metrics."""
    ids, _ = tensors(inputs.splits.test)
    metrics = json.loads((out / "metrics.json").read_text())
    device = measure_lm_device(url, out, ids.numpy(), target.threads, device_file(metrics))
    metrics = attach_gate(with_lm_device(metrics, device, url, target.runtime), budget)
    report = report_markdown(metrics)  # rendered before anything is written: a failure leaves the files as they were
    write_json(out / "metrics.json", metrics)
    (out / "report.md").write_text(report, encoding="utf-8")
    if (out / MANIFEST).exists():
        write_json(out / MANIFEST, {**read_manifest(out), "artifacts": artifact_list(out)})
    return metrics


def _write_gate(out: Path, verdict: Verdict) -> None:
    (out / "gate.xml").write_text(junit_xml(verdict))
    (out / "gate.md").write_text(markdown(verdict))
