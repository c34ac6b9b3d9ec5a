"""Per-layer int8 figures (quantize/inspect.py) against hand computations on tiny models."""

import math

import torch
from torch import nn

from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.inspect import SQNR_CAP, layer_report, layer_section
from tiny_models import tiny_cnn


def _exact_then_linear():
    """Layer 0 is the identity on int8-grid inputs (its int8 output equals float exactly); layer 1 is a random Linear."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3)).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.eye(4))
        m[0].bias.zero_()
    x = torch.randint(-128, 128, (400, 4)).float()
    x[0], x[1] = -128.0, 127.0  # the calibrated input grid is then scale 1, zero point 0: every input exact
    return m, x


def test_exact_layer_is_at_least_40_db_and_a_forced_saturation_is_named():
    m, x = _exact_then_linear()
    q = calibrate(to_quant_student(m), x)
    stats = layer_report(m, q, x)
    assert [s.name for s in stats] == ["input", "0", "1"]
    assert stats[1].sqnr_db >= 40.0 and stats[1].saturation == 0.0
    assert stats[1].weight_min == 0.0 and stats[1].weight_max == 1.0
    last = q.ops[q.steps[-1][0]].out_q
    last.scale.fill_(float(last.scale) / 20)  # the output grid now covers 1/20 of the calibrated range
    try:
        section = layer_section(layer_report(m, q, x), len(x))
    finally:
        last.scale.fill_(float(last.scale) * 20)
    assert section["saturating"] == ["1"]
    row = section["layers"][2]
    assert row["saturation"] > 0.5 and row["clipped_low"] > 0 and row["clipped_high"] > 0
    assert section["lowest_sqnr"]["name"] == "1"


def test_sqnr_matches_a_hand_computation():
    torch.manual_seed(1)
    model = tiny_cnn(10, seed=3)
    x = torch.randn(64, 1, 8, 8)
    q = calibrate(to_quant_student(model), x)
    stats = layer_report(model, q, x, batch=20)  # batches of uneven size accumulate like one pass
    with torch.no_grad():
        f, y = model(x).double(), q(x).double()
    hand = 10 * math.log10(float((f ** 2).sum()) / float(((f - y) ** 2).sum()))
    assert abs(stats[-1].sqnr_db - hand) < 1e-3  # float32: BN folded in the graph, batches of 20
    assert stats[-1].op == "linear" and 10.0 < hand < SQNR_CAP
    # the conv layer's own figures: float activation range from the float model's ReLU output
    with torch.no_grad():
        act = model[2](model[1](model[0](x)))
    conv = next(s for s in stats if s.op == "conv2d")
    assert abs(conv.act_min - float(act.min())) < 1e-6 and abs(conv.act_max - float(act.max())) < 1e-5
    assert conv.grid_min <= conv.act_min and conv.grid_max >= conv.act_max - 1e-6  # calibrated on x
    # the int8 pass (quantized inputs and weights) may land a value or two just past the float maximum: no more
    assert conv.saturation < 1e-3


def test_models_are_left_as_they_were():
    model = tiny_cnn(10, seed=0)
    x = torch.randn(32, 1, 8, 8)
    q = calibrate(to_quant_student(model), x)
    before = q(x).clone()
    layer_report(model, q, x)
    assert torch.equal(q(x), before)
    assert all(not q_._forward_pre_hooks for q_ in q.quantizers())
