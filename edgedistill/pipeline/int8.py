"""Stage 6, int8: PTQ baseline, QAT distillation (student and its no-teacher twin), export of float and int8 files,
and parity of every file on its own runtime(s): the proof that each file computes what was trained."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from edgedistill import distributed as ddp
from edgedistill.config import QuantConfig
from edgedistill.data.arrays import model_input
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, predict_logits
from edgedistill.export.parity import check_parity, int8_references, parity_plan
from edgedistill.export.registry import export_all, planned_exports
from edgedistill.errors import RunFailed
from edgedistill.pipeline.train import fit_bar
from edgedistill.quantize import calibration_indices, post_training_quantize, to_quant_student
from edgedistill.quantize.inspect import SAMPLES, layer_report, layer_section
from edgedistill.quantize.qat import qat_distill
from edgedistill.report.noise import paired_gain
from edgedistill.report.per_class import confusion_matrix
from edgedistill.students.checkpoint import save_weights


@dataclass(frozen=True)
class Int8Outcome:
    """`metrics`: metrics.json's int8 section; `passed`: every checked parity row held; `artifacts`: the files."""

    metrics: dict
    passed: bool
    failures: list[str] = field(default_factory=list)
    artifacts: list = field(default_factory=list)
    qat_student: torch.nn.Module | None = None


def _host_cpu_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return []
    return sorted({f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")})


def run_int8_stage(q: QuantConfig, student: torch.nn.Module, twin: torch.nn.Module | None, data: TrainSet,
                   x_val: torch.Tensor, y_val: torch.Tensor, x_test: np.ndarray, y_test: np.ndarray,
                   objective: Objective, settings: TrainSettings, input_shape, num_classes: int, work: Path,
                   ui, rounding: str = "float") -> Int8Outcome:
    """Quantize, QAT-distill, export into `work` and check parity. The float student and twin are not modified.
    `rounding`: the integer arithmetic QAT computes (quantize/arithmetic.py; see `qat_rounding`)."""
    t0 = time.perf_counter()
    x_te = torch.from_numpy(x_test)
    y_te = torch.from_numpy(y_test)
    idx = calibration_indices(len(data), q.calibration_size, settings.seed)
    x_calib = model_input(data.x[torch.from_numpy(idx)])
    ptq = post_training_quantize(student, x_calib, q.calibration, rounding, q.input_head, tuple(q.int16))
    qat_settings = replace(settings, epochs=q.qat_epochs, steps=q.qat_steps, eval_every=None)  # steps: exact
    if q.qat_max_samples and q.qat_max_samples < len(data):  # QAT fine-tunes a trained model: a subset can do
        pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(settings.seed + 7))
        data = data.subset(pick[: q.qat_max_samples])
    ckpt = work / "checkpoints"
    objective = replace(objective, features=())  # feature terms shape the float student; QAT keeps the response loss
    qs, res = qat_distill(student, data, x_calib, x_val, y_val, objective, qat_settings, method=q.calibration,
                          lr_scale=q.qat_lr_scale, checkpoint=ckpt / "student_qat.pt", rounding=rounding,
                          input_head=q.input_head, ranges=q.ranges, int16=tuple(q.int16),
                          exact_share=q.exact_share, progress=fit_bar(ui, "QAT distill", qat_settings, len(data)))
    evaluate = _evaluator(ui, "int8 evaluation on the test split (float, PTQ, QAT)", 3, x_te)
    logits = {"float": evaluate(student), "ptq": evaluate(ptq), "qat": evaluate(qs)}
    right = {k: v.argmax(1) == y_te for k, v in logits.items()}
    metrics = {
        "calibration": {"method": q.calibration, "samples": int(len(idx))},
        "rounding": rounding,
        "exact_share": q.exact_share,  # the last QAT steps computing the rounding's integers (the others fake-quantize)
        "int16": list(q.int16),  # op kinds with int16 activations (TFLite's 16×8 mode)
        "deployed_arithmetic": ARITHMETIC_OF.get(rounding, rounding),
        "qat_epochs": q.qat_epochs,
        "qat_steps": q.qat_steps,  # None: qat_epochs whole epochs
        "qat_steps_run": res.steps,
        "qat_samples": len(data),
        "float_test_acc": _pct(right["float"]),
        "ptq_test_acc": _pct(right["ptq"]),
        "qat_test_acc": _pct(right["qat"]),
        "qat_best_val_acc": res.best_val_acc,
        "qat_best_epoch": res.best_epoch,  # 0: no QAT epoch beat the post-training starting point on validation
        # QAT against plain PTQ of the same float student, on the same test samples (McNemar)
        "qat_vs_ptq_test": paired_gain(right["qat"], right["ptq"]),
        "qat_vs_float_test": paired_gain(right["qat"], right["float"]),
        "input_head": qs.head is not None,  # the file takes raw float32 samples (quantize/input_head.py)
    }
    check_qat_kept(metrics, q, student)
    if ddp.is_main():
        save_weights({k: v.contiguous() for k, v in qs.state_dict().items()}, work / "student_qat.safetensors")
    if twin is not None:
        qt, twin_res = qat_distill(twin, data, x_calib, x_val, y_val, Objective(teacher=False), qat_settings,
                            method=q.calibration, lr_scale=q.qat_lr_scale, checkpoint=ckpt / "baseline_qat.pt",
                            rounding=rounding, input_head=q.input_head, ranges=q.ranges, int16=tuple(q.int16),
                            exact_share=q.exact_share,
                            progress=fit_bar(ui, "QAT no-teacher twin", qat_settings, len(data)))
        right["twin"] = _evaluator(ui, "int8 evaluation of the twin", 1, x_te)(qt).argmax(1) == y_te
        metrics["baseline_qat_test_acc"] = _pct(right["twin"])
        metrics["baseline_qat_steps_run"] = twin_res.steps
        metrics["gain_vs_baseline_int8"] = metrics["qat_test_acc"] - metrics["baseline_qat_test_acc"]
        metrics["gain_vs_baseline_int8_test"] = paired_gain(right["qat"], right["twin"])
        if ddp.is_main():
            save_weights({k: v.contiguous() for k, v in qt.state_dict().items()}, work / "baseline_qat.safetensors")
    metrics["train_s"] = time.perf_counter() - t0
    if not ddp.is_main():  # export, parity and profiling run once, on rank 0
        return Int8Outcome(metrics, True, qat_student=qs)
    t3 = time.perf_counter()
    x_layers = x_calib[:SAMPLES]  # the calibration set is a seeded random draw: its head is one too
    metrics["layers"] = layer_section(layer_report(student, qs, x_layers), len(x_layers))  # where int8 went
    metrics["layers_s"] = time.perf_counter() - t3
    # the QAT model's test logits in its trained arithmetic are parity's reference for that arithmetic: not recomputed
    known = {qs.rounding: logits["qat"].numpy()}
    return _export_and_check(q, student, qs, input_shape, num_classes, x_test, y_test, work, ui, metrics, known)


def _export_and_check(q: QuantConfig, student, qs, input_shape, num_classes: int, x_test: np.ndarray,
                      y_test: np.ndarray, work: Path, ui, metrics: dict,
                      known: dict[str, np.ndarray] | None = None) -> Int8Outcome:
    """Export float and int8 files into `work`, run each on its runtime(s) against the torch model it came from."""
    metrics = dict(metrics)
    t1 = time.perf_counter()
    bar = _bar(ui, "export", len(planned_exports(q.formats, True)))
    artifacts = export_all(student, qs, input_shape, num_classes, work, q.formats, int8=True,
                           progress=lambda k: bar(k))
    metrics["export_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    ref_f = predict_logits(student, torch.from_numpy(x_test)).numpy()
    bar = _bar(ui, "parity on real runtimes", len(parity_plan(artifacts)))
    predicted: dict = {}
    skipped: list[str] = []
    rows = check_parity(artifacts, ref_f, int8_references(qs, x_test, predict_logits, known), x_test, y_test,
                        float(qs.output_q.scale), q.tflm_max_samples, progress=lambda k: bar(k, None, None),
                        predictions=predicted, skipped=skipped)
    metrics["parity_skipped"] = skipped
    # each int8 file's confusion matrix on the whole test split, as its own runtime predicted (the per-class view)
    metrics["confusion"] = {key: confusion_matrix(p, y_test, num_classes) for key, p in predicted.items()
                            if "int8" in key and len(p) == len(y_test)}
    metrics["parity_s"] = time.perf_counter() - t2
    metrics["artifacts"] = [a.to_dict() for a in artifacts]
    metrics["parity"] = [r.to_dict() for r in rows]
    metrics["host_cpu_flags"] = _host_cpu_flags()
    sizes = {a.name: a.bytes for a in artifacts}
    if "tflite-int8" in sizes and "tflite-float" in sizes:
        metrics["tflite_int8_size_ratio"] = sizes["tflite-int8"] / sizes["tflite-float"]
    failures = [r.failure() for r in rows if r.checked and not r.passed]
    metrics["parity_passed"] = not failures
    return Int8Outcome(metrics, not failures, failures, artifacts, qs)


class QATCollapse(RunFailed):
    """QAT int8 ended far below its float student: the run stops before any int8 file is written."""


def check_qat_kept(int8: dict, q: QuantConfig, student: torch.nn.Module) -> None:
    """Raise QATCollapse, naming the likely cause, when the QAT model is more than `q.max_qat_drop` points below the
    float student on the test split, beyond its noise (McNemar on the same samples)."""
    paired = int8["qat_vs_float_test"]
    drop = int8["float_test_acc"] - int8["qat_test_acc"]
    if drop <= q.max_qat_drop or paired["within_noise"]:
        return
    if int8["ptq_test_acc"] >= int8["float_test_acc"] - q.max_qat_drop:
        why = (f"post-training int8 of the same float student keeps {int8['ptq_test_acc']:.2f}%, so QAT itself went "
               "wrong: lower its learning rate (quant.qat_lr_scale, now a fraction of --lr) or give it more epochs "
               "(--qat-epochs)")
    elif not int8["input_head"] and to_quant_student(student, input_head="auto").head is not None:
        why = (f"post-training int8 collapses too ({int8['ptq_test_acc']:.2f}%): the input channels' ranges differ by "
               "orders of magnitude and one int8 input scale cannot carry them; let the float input head "
               "standardise them (quant.input_head = \"auto\" or \"on\")")
    else:
        why = (f"post-training int8 collapses too ({int8['ptq_test_acc']:.2f}%), so int8 cannot represent this student "
               "as calibrated: metrics.json's int8.layers names the layers that saturate; try --calibration "
               "percentile or mse, or a student without those layers")
    raise QATCollapse(
        f"QAT int8 reaches {int8['qat_test_acc']:.2f}% on the test split where the float student reaches "
        f"{int8['float_test_acc']:.2f}%: {drop:.1f} points lower (McNemar p = {paired['p_value']:.2g}, beyond the "
        f"split's noise; the limit is quant.max_qat_drop = {q.max_qat_drop:g}). {why[0].upper() + why[1:]}. No int8 "
        "file was written.")


def qat_below_ptq_warning(int8: dict | None) -> str | None:
    """A warning when the deployed QAT int8 model is worse than post-training quantization of the same float
    student beyond the test split's noise (McNemar p < 0.05): QAT was meant to recover accuracy, not lose it."""
    paired = (int8 or {}).get("qat_vs_ptq_test")
    if not paired or paired["gain_points"] >= 0 or paired["within_noise"]:
        return None
    return (f"QAT int8 ({int8['qat_test_acc']:.2f}%) is below post-training int8 of the same float student "
            f"({int8['ptq_test_acc']:.2f}%) beyond the test split's noise (McNemar p = {paired['p_value']:.2g}), and the "
            "QAT model is what the int8 files hold. QAT may have been too short (--qat-epochs) or its learning rate "
            "too high (quant.qat_lr_scale); a run without --qat followed by `edgedistill export --int8` writes the "
            "post-training file instead.")


def _evaluator(ui, label: str, models: int, x: torch.Tensor):
    """model -> its N×K logits on the test split `x`, one progress bar for `models` models."""
    bar = _bar(ui, label, models * len(x))
    return lambda model: predict_logits(model, x, progress=lambda k: bar(k))


def _pct(right: torch.Tensor) -> float:
    return 100.0 * float(right.float().mean())


def _bar(ui, label: str, total: int):
    update = ui.task(label, total)
    return lambda k, loss=None, val=None: update(k, loss, val)


# The integer arithmetic each target runtime computes (quantize/arithmetic.py); no target: the host's LiteRT, which
# is what the report measures.
RUNTIME_ARITHMETIC = {"tflm": "tflm", "litert": "xnnpack", "onnxruntime": "float"}
# Which deployed runtime computes each arithmetic: the runtime the reported QAT accuracy is exact for.
ARITHMETIC_OF = {"tflm": "TFLite Micro", "xnnpack": "LiteRT (XNNPACK)", "reference": "LiteRT reference kernels",
                 "float": "onnxruntime (QDQ, float32)"}


def qat_rounding(setting: str, target) -> str:
    """The integer arithmetic QAT computes: the config's choice, or (auto) that of the runtime the target deploys
    to (TFLite Micro's on a microcontroller, XNNPACK's for LiteRT, also without a target), so the accuracy QAT
    reports is what the deployed file computes there."""
    if setting != "auto":
        return setting
    return RUNTIME_ARITHMETIC[target.runtime if target is not None else "litert"]
