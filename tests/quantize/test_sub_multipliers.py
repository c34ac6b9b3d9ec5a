"""int8 SUB's three multipliers (s_a / 2·max(s_a, s_b), s_b / 2·max(s_a, s_b), 2·max(s_a, s_b) / (2^20 · s_out)):
LiteRT's kernels/sub.cc forms them in double, and so does the tflite-micro interpreter installed here, though its
sub_common.cc source divides the float32 scales. Near a rounding tie float32 multipliers give a code one apart (a
depth-2 decoder's LayerNorm x − μ was one code off on both runtimes, 2-5 output steps at its logits). The
independent reference is each runtime itself, on a one-op model x − w whose every input code (-128..127 against
each of w's codes) is fed to the file: its grids are chosen so that float32 multipliers mispredict some
differences, and the `reference` and `tflm` arithmetics must reproduce every code the runtimes write."""

import numpy as np
import pytest
import torch
from torch import nn

from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.arithmetic import ARITHMETIC
from edgedistill.quantize.mcu import binary_tflm
from edgedistill.runtimes import LiteRTReferenceRunner, TFLMRunner

WIDTH = 32


class Shift(nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x - self.w


def _grids(q):
    g = lambda aq: (float(aq.scale), int(aq.zero_point))  # noqa: E731
    return g(q.input_q), g(q.ops["w"].out_q), g(q.ops["sub"].out_q)


def _pairs(q):
    """Every input code against every code of w: a int64 (256, 1), b int64 (1, WIDTH)."""
    _, (sb, zb), _ = _grids(q)
    b = torch.clamp(torch.round(q.ops["w"].value.detach() / sb) + zb, -128, 127).long()[None]
    return torch.arange(-128, 128)[:, None], b


def _misses(q) -> int:
    a, b = _pairs(q)
    grids = _grids(q)
    return int((binary_tflm("sub", a, b, *grids) != binary_tflm("sub", a, b, *grids, sub_float32=False)).sum())


@pytest.fixture(scope="module")
def tie(tmp_path_factory):
    """The first (offsets, calibration range) whose grids make float32 and double multipliers disagree on some
    difference (pure arithmetic: the intermediate must fall within the multipliers' difference of a tie), exported.
    The offsets' scale is a tenth of the input's, as a LayerNorm's mean against its input."""
    for seed in range(40):
        torch.manual_seed(seed)
        m = Shift(torch.rand(WIDTH) * 0.2 - 0.1).eval()
        x = torch.randn(64, WIDTH)
        for r in np.linspace(0.5, 3.0, 25):
            q = calibrate(to_quant_student(m, "reference", "off"), x * float(r))
            if _misses(q):
                path = tmp_path_factory.mktemp("sub") / "m.tflite"
                export_tflite_int8(q, (WIDTH,), path)
                return q, path
    raise AssertionError("no case separates the two multipliers")


@pytest.mark.parametrize("runner,arithmetic", [(LiteRTReferenceRunner, "reference"), (TFLMRunner, "tflm")])
def test_int8_sub_reproduces_the_runtime_where_float32_multipliers_do_not(tie, runner, arithmetic):
    q, path = tie
    (sa, za), grid_b, (so, zo) = _grids(q)
    a, b = _pairs(q)
    run = runner(path)
    assert "SUB" in LiteRTReferenceRunner(path).op_names()
    feed = (np.broadcast_to(a.numpy(), (256, WIDTH)) - za) * np.float32(sa)  # the file quantizes back to a's codes
    got = np.round(run.predict(feed.astype(np.float32)) / np.float32(so)) + zo  # the output is the SUB's
    grids = ((sa, za), grid_b, (so, zo))
    mine = ARITHMETIC.get(arithmetic).binary("sub", a, b, *grids).numpy()
    single = binary_tflm("sub", a, b, *grids, sub_float32=True).numpy()
    assert (single != got).sum() > 0  # the case tells the two multipliers apart ...
    np.testing.assert_array_equal(mine, got)  # ... and the runtime's are the double ones, on all 8,192 differences
