"""Calibration sets and the calibrate-then-freeze step shared by PTQ and QAT."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from edgedistill.quantize.graph import QuantStudent, to_quant_student


def calibration_indices(n: int, size: int, seed: int) -> np.ndarray:
    """A reproducible sample of `size` training indices (sorted, so the set does not depend on batch order)."""
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(size, n)])


@torch.no_grad()
def calibrate(qmodel: QuantStudent, x: torch.Tensor, method: str = "minmax", batch: int = 256) -> QuantStudent:
    """Observe every activation quantizer on `x` (float pass), then freeze scales and zero points."""
    qmodel.eval()
    qmodel.set_mode("observe")
    for i in range(0, len(x), batch):
        qmodel(x[i : i + batch])
    for q in qmodel.quantizers():
        q.freeze(method)
    return qmodel


def post_training_quantize(float_model: nn.Module, x_calib: torch.Tensor, method: str = "minmax",
                           rounding: str = "float", input_head: str = "auto",
                           int16: tuple[str, ...] = ()) -> QuantStudent:
    """PTQ baseline: fold, calibrate and freeze a copy of the float student; no training. `int16`: op kinds in
    16×8 form (quantize/int16_ops.py)."""
    return calibrate(to_quant_student(copy.deepcopy(float_model).eval(), rounding, input_head, tuple(int16)),
                     x_calib, method)
