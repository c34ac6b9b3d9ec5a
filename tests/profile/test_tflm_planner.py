"""The predicted TFLite Micro arena follows TFLite Micro's greedy memory planner and equals what its recording
allocator plans, on a depthwise-separable stack with padding at 96×96 built here."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.profile.tflm_planner import Buffer, greedy_arena_bytes, greedy_offsets, lower_bound_bytes

q = torch.ops.quantized_decomposed


def _no_overlap(buffers, offsets):
    for (a, oa), (b, ob) in itertools.combinations(zip(buffers, offsets), 2):
        live_together = not (a.first > b.last or b.first > a.last)
        if live_together:
            assert oa + a.size <= ob or ob + b.size <= oa


def test_greedy_plan_is_valid_and_can_exceed_the_lower_bound():
    # every plan: no two buffers live at the same step share bytes, and no plan beats the lower bound
    bufs = [Buffer(64, 0, 1), Buffer(48, 1, 2), Buffer(48, 2, 3), Buffer(32, 0, 0), Buffer(80, 3, 4)]
    offs = greedy_offsets(bufs)
    _no_overlap(bufs, offs)
    assert greedy_arena_bytes(bufs) >= lower_bound_bytes(bufs, 5)
    random = __import__("random").Random(0)
    for _ in range(200):
        n = random.randint(1, 12)
        bs = []
        for _ in range(n):
            a = random.randint(0, 8)
            bs.append(Buffer(16 * random.randint(1, 20), a, a + random.randint(0, 4)))
        offsets = greedy_offsets(bs)
        _no_overlap(bs, offsets)
        assert greedy_arena_bytes(bs) >= lower_bound_bytes(bs, 14)


def test_equal_sizes_are_placed_last_added_first():
    # TFLite Micro lists buffers from the last added before its stable sort: with equal sizes the later tensor is
    # placed first. Three equal buffers in a chain and a larger one: placing in added order would need 3 slots.
    bufs = [Buffer(32, 0, 0), Buffer(32, 0, 1), Buffer(32, 1, 2), Buffer(48, 2, 3)]
    assert greedy_offsets(bufs)[3] == 0
    assert greedy_arena_bytes(bufs) == 48 + 32  # the lower bound here, reached only in TFLM's order


def _fq(v, s, z=0):
    return q.dequantize_per_tensor(q.quantize_per_tensor(v, s, z, -128, 127, torch.int8), s, z, -128, 127, torch.int8)


class DepthwiseSeparable96(nn.Module):
    """MobileNetV1-style: 3×3 stride-2 stem, then depthwise 3×3 (padding 1, strides 1 and 2) + pointwise 1×1
    blocks, global mean, classifier; every tensor int8 through explicit quantize/dequantize pairs."""

    CFG = ((8, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1))

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.blocks = nn.ModuleList(nn.ModuleList([nn.Conv2d(i, i, 3, s, 1, groups=i), nn.Conv2d(i, o, 1)])
                                    for i, o, s in self.CFG)
        self.fc = nn.Linear(64, 2)

    def forward(self, x):
        x = _fq(torch.relu(F.conv2d(_fq(x, 0.02), _fq(self.stem.weight, 0.01), self.stem.bias, 2, 1)), 0.05)
        for dw, pw in self.blocks:
            x = _fq(torch.relu(F.conv2d(x, _fq(dw.weight, 0.01), dw.bias, dw.stride, 1, 1, dw.groups)), 0.05)
            x = _fq(torch.relu(F.conv2d(x, _fq(pw.weight, 0.01), pw.bias)), 0.05)
        return _fq(F.linear(_fq(x.mean((2, 3)), 0.05), _fq(self.fc.weight, 0.01), self.fc.bias), 0.1)


@pytest.mark.slow
def test_predicted_arena_equals_tflm_on_a_depthwise_separable_stack_at_96(tmp_path):
    litert_torch = pytest.importorskip("litert_torch")
    from edgedistill.export.tflite_export import _static_qdq_config
    from edgedistill.profile.cost import tflite_cost
    from edgedistill.profile.tflm_arena import tflm_arena

    path = tmp_path / "ds96.tflite"
    litert_torch.convert(DepthwiseSeparable96().eval(), (torch.zeros(1, 3, 96, 96),),
                         quant_config=_static_qdq_config()).export(str(path))
    cost = tflite_cost(path)
    ops = [layer.op for layer in cost.layers]
    assert "PAD" in ops and "DEPTHWISE_CONV_2D" in ops
    assert cost.peak_activation_bytes == tflm_arena(path).activation_bytes
