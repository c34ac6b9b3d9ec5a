"""Quantization-aware training of a causal LM student (Jacob et al. 2018): the int8 graph of quantize/ trained with
the token-level objective by distill/lm_trainer.py's loop, activation ranges tracked while training."""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from edgedistill.distill.lm_losses import TopKLogits
from edgedistill.distill.lm_trainer import LMFitResult, LMTrainSettings, fit_lm
from edgedistill.quantize.calibrate import calibrate
from edgedistill.quantize.graph import QuantStudent, to_quant_student


def qat_lm(float_model: nn.Module, ids: torch.Tensor, targets: torch.Tensor, teacher: TopKLogits | None,
           val_ids: torch.Tensor, val_targets: torch.Tensor, temperature: float, alpha: float,
           settings: LMTrainSettings, calib: torch.Tensor, rounding: str, lr_scale: float = 0.1,
           method: str = "minmax", progress=None, checkpoint=None,
           exact_share: float = 1.0) -> tuple[QuantStudent, LMFitResult]:
    """QAT of a copy of `float_model`: the int8 graph (TFLite's int8 spec in `rounding`'s arithmetic) calibrated on
    `calib` windows, activation ranges tracked while training, then the best validation-perplexity weights (the
    calibrated start competes; `checkpoint`: fit_lm's). `exact_share`: the share of steps, the last ones, computing
    `rounding`'s integers (quantize/qat.py). Returns (QuantStudent in eval mode, LMFitResult); the float model is
    untouched."""
    q = calibrate(to_quant_student(copy.deepcopy(float_model).eval(), rounding, "off"), calib.int(), method)
    q.set_tracking(True)
    q.exact_share = exact_share
    try:
        res = fit_lm(q, ids, targets, teacher, val_ids, val_targets, temperature, alpha,
                     replace(settings, lr=settings.lr * lr_scale), progress, score_start=True,
                     checkpoint=checkpoint)
    finally:
        q.set_tracking(False)
        q.set_exact_training(True)
    q.load_state_dict(res.best_state)
    return q.eval(), res
