"""Parity's int8 references are computed once per arithmetic and only on the samples a row needs: the QAT
evaluation's logits are reused for the model's own arithmetic, TFLite Micro's row (a prefix) costs a prefix."""

from __future__ import annotations

import numpy as np
import torch

from edgedistill.export.parity import int8_references


def _qgraph():
    from edgedistill.quantize.calibrate import post_training_quantize

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    x = torch.rand(64, 1, 3, 4)
    return post_training_quantize(model.eval(), x, "minmax", "xnnpack"), x.numpy()


def test_references_reuse_known_logits_and_compute_only_the_prefix_asked_for():
    from edgedistill.distill.trainer import predict_logits

    q, x = _qgraph()
    calls = []

    def predict(model, xt):
        calls.append((model.rounding, len(xt)))
        return predict_logits(model, xt)

    known = predict_logits(q, torch.from_numpy(x)).numpy()  # what the QAT evaluation computed, in xnnpack
    ref = int8_references(q, x, predict, known={"xnnpack": known})
    assert np.array_equal(ref("xnnpack", None), known) and calls == []
    tflm10 = ref("tflm", 10)
    assert calls == [("tflm", 10)] and tflm10.shape == (10, 3)
    assert np.array_equal(ref("tflm", 4), tflm10[:4]) and len(calls) == 1  # a shorter prefix: no new pass
    whole = ref("tflm", None)
    assert calls[-1] == ("tflm", 64) and np.array_equal(whole[:10], tflm10)  # a prefix is the whole pass's prefix
    assert q.rounding == "xnnpack"  # the model's own arithmetic is restored after each pass
    # the reused logits are what a fresh pass in the model's arithmetic computes
    assert np.array_equal(int8_references(q, x, predict_logits)("xnnpack"), known)
