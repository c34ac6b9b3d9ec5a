"""Stage 6 for a causal LM: QAT of the student and its twin, export of the float and int8 decoder (one fixed context
window, N×L int32 ids -> N×L×V logits), and parity of every file on its runtimes against the model it came from:
top-1 next-token agreement over every position of the test windows and the largest logit difference in output
quantization steps (export/parity.py's bounds, the classifiers' own: >= 99.9 % agreement, one step).

Memory: the test metrics take each model's scores batch by batch (distill/lm_trainer.lm_scores), and parity runs on
`parity_windows` test windows spread evenly over the split, as many as PARITY_BYTES of float32 logits hold (at least
MIN_PARITY_WINDOWS, at most the whole split): every runtime's outputs, the references of every arithmetic and their
comparisons are (n, L, V) arrays, so their size is fixed by the vocabulary and the window, not by the corpus (a
corpus of several MB gave a test split whose logits alone took gigabytes a copy)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from edgedistill.config import DistillConfig
from edgedistill.distill.lm_losses import TopKLogits
from edgedistill.distill.lm_resume import checkpoint_path
from edgedistill.distill.lm_trainer import lm_logits, lm_scores
from edgedistill.agreement import AGREEMENT, agreement_words
from edgedistill.export.causality import causality_failure, causality_rows
from edgedistill.export.parity import check_parity, int8_references, parity_plan
from edgedistill.export.registry import export_all, planned_exports
from edgedistill.pipeline.int8 import qat_rounding
from edgedistill.pipeline.lm_inputs import LMInputs
from edgedistill.pipeline.lm_train import LMTrained, tensors
from edgedistill.progress import VAL_PERPLEXITY, step_bar
from edgedistill.quantize.lm_qat import qat_lm
from edgedistill.students.checkpoint import save_weights


@dataclass(frozen=True)
class LMInt8:
    """The QAT student and twin, the test scores of every model (lm_metrics.TokenScores by key: float, int8, twin,
    twin_int8), metrics.json's int8 section, whether every checked parity row held, the failures and the exported
    files."""

    qat_student: torch.nn.Module
    qat_twin: torch.nn.Module | None
    scores: dict
    metrics: dict
    passed: bool
    failures: list = field(default_factory=list)
    artifacts: list = field(default_factory=list)
    kv_artifacts: list = field(default_factory=list)  # the KV-cache step files (--kv-cache; pipeline/lm_kv.py)


def _qat(config: DistillConfig, inputs: LMInputs, model, top: TopKLogits | None, trained: LMTrained, rounding: str,
         label: str, ui, windows=None, checkpoint: Path | None = None):
    q = config.quant
    s = inputs.splits
    steps = q.qat_steps or max(1, round(0.3 * trained.settings.steps))
    settings = replace(trained.settings, steps=int(steps), eval_every=max(1, int(steps) // 5))
    ids, targets = tensors(s.train if windows is None else windows)
    val_ids, val_targets = tensors(s.val)
    pick = torch.randperm(len(ids), generator=torch.Generator().manual_seed(settings.seed + 7))
    calib = ids[pick[: q.calibration_size]]
    bar = step_bar(ui, label, settings.steps, settings.batch_size, VAL_PERPLEXITY)
    return qat_lm(model, ids, targets, top, val_ids, val_targets, trained.objective.temperature,
                  trained.objective.alpha, settings, calib, rounding, q.qat_lr_scale, q.calibration,
                  progress=lambda k, loss, val: bar(k, loss, val), checkpoint=checkpoint, exact_share=q.exact_share)


def run_lm_int8(config: DistillConfig, inputs: LMInputs, trained: LMTrained, top: TopKLogits, target,
                work: Path, ui, transfer=None, checkpoints: Path | None = None) -> LMInt8:
    """QAT (student, twin; checkpointed into `checkpoints` and resumed), test logits of every model, export into
    `work`, parity (module doc). `transfer`: the student's extra windows (lm_train.train_lm_students), which the
    twin's QAT does not read."""
    from edgedistill.pipeline.lm_seqkd import concat

    t0 = time.perf_counter()
    rounding = qat_rounding(config.quant.rounding, target)
    qs, res = _qat(config, inputs, trained.student, top, trained, rounding, "QAT distill", ui,
                   concat(inputs.splits.train, transfer), checkpoint_path(checkpoints, "student_qat"))
    qt = twin_res = None
    if trained.twin is not None:
        qt, twin_res = _qat(config, inputs, trained.twin, None, trained, rounding, "QAT no-teacher twin", ui,
                            checkpoint=checkpoint_path(checkpoints, "baseline_qat"))
    models = {"float": trained.student, "int8": qs, **({"twin": trained.twin, "twin_int8": qt} if qt else {})}
    scores = test_scores(models, inputs.splits.test)
    save_weights({k: v.contiguous() for k, v in qs.state_dict().items()}, work / "student_qat.safetensors")
    metrics = {"rounding": rounding, "exact_share": config.quant.exact_share, "qat_steps_run": res.steps,
               "qat_best_step": res.best_step,
               "qat_resumed_from_step": res.resumed_from_step,
               "qat_best_val_perplexity": res.best_val_perplexity,
               "baseline_qat_steps_run": None if twin_res is None else twin_res.steps,
               "calibration": {"method": config.quant.calibration,
                               "samples": min(config.quant.calibration_size, len(inputs.splits.train))},
               "train_s": time.perf_counter() - t0}
    return export_and_check(config, inputs, trained.student, qs, qt, scores, metrics, work, ui)


def test_scores(models: dict, test) -> dict:
    """{key: lm_metrics.TokenScores} of each model on the test windows, batch by batch (module doc: memory)."""
    ids, _ = tensors(test)
    return {k: lm_scores(m, ids, test.targets, test.doc) for k, m in models.items()}


PARITY_BYTES = 128 << 20  # one float32 (n, L, V) copy of the parity windows' logits
MIN_PARITY_WINDOWS = 32


def parity_windows(count: int, context: int, vocab: int) -> np.ndarray:
    """Indices of the test windows parity runs on (module doc): min(count, max(MIN_PARITY_WINDOWS, PARITY_BYTES /
    (4 · L · V))) of the `count`, evenly spaced over the split (first and last included), ascending."""
    n = min(count, max(MIN_PARITY_WINDOWS, PARITY_BYTES // (4 * context * max(vocab, 1))))
    return np.unique(np.round(np.linspace(0, count - 1, n)).astype(np.int64)) if n else np.zeros(0, np.int64)


def export_and_check(config, inputs: LMInputs, student, qs, qt, scores: dict, metrics: dict, work: Path,
                      ui) -> LMInt8:
    """Export the float `student` and its QAT int8 model `qs` (None: the float files only) into `work`
    (config.quant.formats), check every file on its runtimes against the models on the parity windows
    (parity_windows), their causality (export/causality.py), and with quant.kv_cache the KV-cache step; `metrics`
    gets export_s, parity_s, artifacts, parity (lm_row form), parity_windows, causality, kv_cache and parity_passed. Used by the run and by `edgedistill export` of a
    causal-LM run (export/lm_run.py)."""
    q, s = config.quant, inputs.splits
    int8 = qs is not None
    t1 = time.perf_counter()
    bar = ui.task("export", len(planned_exports(q.formats, int8)))
    artifacts = export_all(student, qs, (s.context,), inputs.tokenizer.vocab_size, work, q.formats, int8=int8,
                           progress=lambda k: bar(k, None, None))
    metrics["export_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    pick = parity_windows(len(s.test), s.context, inputs.tokenizer.vocab_size)
    x = np.ascontiguousarray(s.test.ids[pick])
    bar = ui.task("parity on real runtimes", len(parity_plan(artifacts)))
    # every arithmetic's reference in lm_logits' batches of windows (predict_logits' 1,024 samples are 1,024 windows
    # here: the integer emulation's float64 intermediates of 1,024 × L × V took gigabytes)
    refs = int8_references(qs, x, lm_logits) if int8 else None
    rows = check_parity(artifacts, lm_logits(student, torch.from_numpy(x)).numpy(), refs, x, s.test.targets[pick],
                        float(qs.output_q.scale) if int8 else None, q.tflm_max_samples,
                        progress=lambda k: bar(k, None, None))
    metrics.update(parity_s=time.perf_counter() - t2, artifacts=[a.to_dict() for a in artifacts],
                   parity=[lm_row(r.to_dict(), s.context) for r in rows],
                   parity_windows={"windows": len(pick), "of": len(s.test), "positions": len(pick) * s.context})
    failures = [parity_failure(r) for r in metrics["parity"] if r["checked"] and not r["passed"]]
    # parity cannot see a mask that leaks in QAT and file alike: probe the files themselves (export/causality.py)
    metrics["causality"] = causality_rows(artifacts, x, inputs.tokenizer.vocab_size)
    failures += [causality_failure(r) for r in metrics["causality"] if not r["passed"]]
    kv_files = _kv_cache(config, qs, artifacts, refs, x, metrics, failures, work, ui) if int8 and q.kv_cache else []
    metrics["parity_passed"] = not failures
    return LMInt8(qs, qt, scores, metrics, not failures, failures, artifacts, kv_files)


def _kv_cache(config, qs, artifacts, refs, x, metrics: dict, failures: list, work: Path, ui) -> list:
    """--kv-cache: export the KV-cache step beside the window files and check it against them (pipeline/lm_kv.py);
    metrics["kv_cache"] gets the form, the files and the parity rows, `failures` the rows that failed."""
    from edgedistill.export.kv_cache import FORM
    from edgedistill.pipeline.lm_kv import KV_EXPORTERS, export_kv, kv_failure, kv_parity

    q = config.quant
    t0 = time.perf_counter()
    kv_files = export_kv(qs, q.formats, work)
    bar = ui.task("KV-cache step: parity with the window files",
                  sum(len(KV_EXPORTERS.get(f)[3]) for f in q.formats if f in KV_EXPORTERS))
    rows = kv_parity(kv_files, artifacts, refs, x, float(qs.output_q.scale), q.tflm_max_samples,
                     progress=lambda k: bar(k, None, None))
    failures += [kv_failure(r) for r in rows if not r["passed"]]
    metrics["kv_cache"] = {"form": FORM, "files": [a.to_dict() for a in kv_files], "parity": rows,
                           "seconds": time.perf_counter() - t0}
    return kv_files


def parity_failure(row: dict) -> str:
    """A failed window-file parity row (metrics.json's form, `lm_row`) in the LM's own figures: next-token top-1
    agreement over the test positions and the largest logit difference in output steps (a float file: in logit
    units), each with its bound. (ParityRow.failure's class accuracies are a classifier's: dropped here.)"""
    off = (f"logits up to {row['max_steps']:.1f} output steps apart (bound {row['step_bound']:g})"
           if row.get("max_steps") is not None else f"logits up to {row['max_abs_logit_diff']:.3g} apart")
    return (f"{row['artifact']} on {row['runtime']}: next-token top-1 agreement {agreement_words(row)} over "
            f"{row['positions']:,} positions with the QAT model computing {row['arithmetic']} arithmetic (bound "
            f"{AGREEMENT}%), {off}")


def lm_row(row: dict, context: int) -> dict:
    """A parity row for N×L×V outputs: agreement counts positions (every position of every window, padding
    included); the row's accuracy fields compare with next tokens where padding has none, so they are dropped."""
    row = {k: v for k, v in row.items() if k not in ("accuracy", "reference_accuracy")}
    row["positions"] = int(row["samples"]) * context
    return row
