"""Quantization-aware distillation: fold BN, calibrate, freeze activation ranges, then keep distilling with int8
fake quantization in the forward pass and straight-through gradients (Jacob et al. 2018; Krishnamoorthi 2018,
"Quantizing deep convolutional networks for efficient inference: A whitepaper", arXiv:1806.08342)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from edgedistill.distill.trainer import FitResult, Objective, TrainSet, TrainSettings, fit
from edgedistill.quantize.calibrate import calibrate
from edgedistill.quantize.graph import QuantStudent, to_quant_student


def qat_distill(float_model: nn.Module, data: TrainSet, x_calib: torch.Tensor, val_x: torch.Tensor,
                val_y: torch.Tensor, objective: Objective, settings: TrainSettings, *, method: str = "minmax",
                lr_scale: float = 0.1, checkpoint: Path | None = None, progress=None,
                rounding: str = "float", input_head: str = "auto",
                ranges: str = "ema", int16: tuple[str, ...] = (),
                exact_share: float = 1.0) -> tuple[QuantStudent, FitResult]:
    """Returns the best QAT student (by validation accuracy) and its training record. The float model is untouched.
    The calibrated starting point (post-training int8) competes as epoch 0: QAT that only loses accuracy, as a short
    run at a high learning rate can, ends where it began (FitResult.best_epoch 0).
    `rounding`: the runtime arithmetic QAT computes (quantize/arithmetic.py); `input_head`: see to_quant_student;
    `ranges`: "ema" lets activation ranges follow the training (quantize/fake.py), "frozen" keeps the calibrated;
    `int16`: op kinds with int16 activations (TFLite's 16×8 mode, quantize/int16_ops.py); `exact_share`: the share
    of QAT steps, the last ones, that compute `rounding`'s integers (QuantStudent.before_train_step; the others
    fake-quantize only); validation computes them at every evaluation point."""
    qmodel = calibrate(to_quant_student(copy.deepcopy(float_model).eval(), rounding, input_head, tuple(int16)),
                       x_calib, method)
    qat_settings = replace(settings, lr=settings.lr * lr_scale)
    qmodel.set_tracking(ranges == "ema")
    qmodel.exact_share = exact_share
    try:
        result = fit(qmodel, data, val_x, val_y, objective, qat_settings, checkpoint=checkpoint, progress=progress,
                     score_start=True)
    finally:
        qmodel.set_tracking(False)
        qmodel.set_exact_training(True)
    qmodel.load_state_dict(result.best_state)
    return qmodel.eval(), result


def rebuild_quant_student(float_model: nn.Module, state: dict, rounding: str = "float",
                          sample: torch.Tensor | None = None) -> QuantStudent:
    """Recreate a trained QuantStudent from its float architecture and saved state (scales included; a float input
    head exactly when the state holds one; LayerNorms and attentions in 16×8 form exactly when it holds theirs).
    `sample` (a batch of model inputs, one sample is enough): run once, so that shapes a forward pass records are
    known to export; without it a Flatten of a C×H×W map into a Linear exported its columns in C, H, W order while
    the file flattens H, W, C (a user's student exported from its QAT checkpoint lost all accuracy)."""
    head = "on" if "head.a" in state else "off"
    int16 = tuple(kind for kind, mark in (("layernorm", ".widen."), ("attention", ".wide_q.")) if any(
        mark in k for k in state))
    qmodel = to_quant_student(copy.deepcopy(float_model).eval(), rounding, head, int16)
    missing, unexpected = qmodel.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(".ranges")]  # tracked ranges: only used while training
    keep_asymmetric_grids(qmodel)
    if missing or unexpected:
        raise RuntimeError(f"the saved int8 state does not fit the student: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    qmodel.set_mode("quant")
    qmodel.eval()
    if sample is not None:
        with torch.no_grad():
            qmodel(sample)
    return qmodel


def keep_asymmetric_grids(qmodel: nn.Module) -> None:
    """A checkpoint trained before K and V got zero-point-0 grids (quantize/attention_ops.py) holds nonzero zero
    points there: its quantizers keep the asymmetric rule, so they describe the grid they hold and re-derive it so if
    QAT resumes (the file then runs those BATCH_MATMULs on LiteRT's built-in kernel, as before; a new QAT run gets
    the faster grids)."""
    from edgedistill.quantize.fake import ActQuant
    from edgedistill.quantize.ranges import SYMMETRIC_INT8, WIDTHS

    for m in qmodel.modules():
        if isinstance(m, ActQuant) and m.width is SYMMETRIC_INT8 and int(m.zero_point) != 0:
            m.width = WIDTHS[8]
