"""Quantization arithmetic against written-out formulas, and BN folding against the float model."""

import numpy as np
import pytest
import torch
from torch import nn

from edgedistill.quantize import RANGE_METHODS, calibrate, to_quant_student
from edgedistill.quantize.fake import ActQuant, fake_quant_weight, int8_weights
from edgedistill.quantize.ranges import scale_zero_point
from edgedistill.students import StudentArch, build_student
from edgedistill.data import Normalizer
from tiny_models import tiny_cnn


def test_scale_and_zero_point_formula():
    s, z = scale_zero_point(-1.0, 3.0)
    assert s == pytest.approx(4.0 / 255, rel=1e-6)
    assert z == round(-128 + 1.0 / s)
    assert scale_zero_point(0.0, 6.0)[1] == -128  # after ReLU: zero maps to the lowest code
    s, z = scale_zero_point(0.5, 2.0)  # a range that misses 0 is widened to contain it
    assert z == -128 and s == pytest.approx(2.0 / 255, rel=1e-6)


def test_weights_are_symmetric_per_channel_int8():
    w = torch.randn(5, 3, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0]).view(5, 1, 1, 1)
    q, scales = int8_weights(w)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    np.testing.assert_allclose(scales, w.abs().flatten(1).amax(1).numpy() / 127, rtol=1e-6)
    assert (np.abs(q).reshape(5, -1).max(1) == 127).all()  # each channel uses its full range
    deq = q.astype(np.float32) * scales.reshape(5, 1, 1, 1)
    np.testing.assert_allclose(fake_quant_weight(w).detach().numpy(), deq, rtol=1e-6, atol=1e-7)


def test_act_quant_rounds_to_the_grid_and_saturates():
    q = ActQuant()
    q.mode = "observe"
    q(torch.linspace(-1, 3, 1000))
    q.freeze("minmax")
    s, z = float(q.scale), int(q.zero_point)
    x = torch.tensor([-5.0, -1.0, 0.0, 0.37, 3.0, 9.0])
    expected = (torch.clamp(torch.round(x / s) + z, -128, 127) - z) * s
    torch.testing.assert_close(q(x), expected)
    assert float(q(torch.tensor([0.0]))) == 0.0  # zero is exact


def test_freeze_without_calibration_is_an_error():
    with pytest.raises(RuntimeError, match="before any calibration"):
        ActQuant().freeze()


def test_range_methods_order():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 20000), [40.0]])  # one outlier
    lo, hi = values.min(), values.max()
    mm = RANGE_METHODS.get("minmax")(values, lo, hi)
    pc = RANGE_METHODS.get("percentile")(values, lo, hi)
    ms = RANGE_METHODS.get("mse")(values, lo, hi)
    assert mm == (lo, hi)
    assert pc[1] < hi and ms[1] < hi  # both clip the outlier


def test_folding_keeps_the_float_function():
    torch.manual_seed(0)
    m = build_student(StudentArch("dscnn", 8, 3), (1, 28, 28), 10, Normalizer([0.3], [0.4], "channel")).eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    q = to_quant_student(m)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(q(x), m(x), atol=1e-4, rtol=1e-4)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in q.modules())  # BN is gone, folded


def test_quant_student_does_not_modify_its_input():
    m = tiny_cnn()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    calibrate(to_quant_student(m), torch.rand(32, 1, 8, 8))
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])


def test_unsupported_op_names_layer_and_op():
    from edgedistill.quantize import UnsupportedOpError

    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ELU(), nn.Flatten(), nn.Linear(8, 2))  # (GELU is in the int8 set)
    with pytest.raises(UnsupportedOpError) as info:
        to_quant_student(m)
    assert "'1'" in str(info.value) and "ELU" in str(info.value)
