"""LiteRT's reference MUL (kernels/mul.cc) forms its output multiplier s_a · s_b / s_out from float32 scales in
float32; TFLite Micro casts each scale to double first. Near a rounding tie the two give codes one apart (a trained
decoder's LayerNorm gamma MUL was one code off on LiteRT's reference kernels, 5 output steps at its logits). The
independent reference is LiteRT itself, on a one-op model x · w whose every input code (-128..127 against each of
w's codes) is fed to the file: its grids are chosen (by the calibration range) so that the double multiplier
mispredicts some products, and the `reference` arithmetic must reproduce every code LiteRT writes."""

import numpy as np
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from torch import nn

from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.arithmetic import ARITHMETIC
from edgedistill.quantize.mcu import binary_tflm

WIDTH = 32


class Scale(nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x * self.w


def _grids(q):
    g = lambda aq: (float(aq.scale), int(aq.zero_point))  # noqa: E731
    return g(q.input_q), g(q.ops["w"].out_q), g(q.ops["mul"].out_q)


def _products(q):
    """Every input code against every code of w: a int64 (256, 1), b int64 (1, WIDTH)."""
    _, (sb, zb), _ = _grids(q)
    b = torch.clamp(torch.round(q.ops["w"].value.detach() / sb) + zb, -128, 127).long()[None]
    return torch.arange(-128, 128)[:, None], b


def _model_where_double_misses():
    """The first (gains, calibration range) whose grids make the double multiplier miss some product: pure
    arithmetic, about one case in a hundred (the intermediate of gemmlowp's two roundings must fall within the two
    multipliers' difference of a tie). Positive gains, as a LayerNorm's: zero point -128, codes up to 255 apart."""
    for seed in range(40):
        torch.manual_seed(seed)
        m = Scale(torch.rand(WIDTH) * 2 + 0.1).eval()
        x = torch.randn(64, WIDTH)
        for r in np.linspace(0.5, 3.0, 25):
            q = calibrate(to_quant_student(m, "reference", "off"), x * float(r))
            a, b = _products(q)
            grids = _grids(q)
            if (binary_tflm("mul", a, b, *grids) != binary_tflm("mul", a, b, *grids, mul_float32=True)).any():
                return q
    raise AssertionError("no case separates the two multipliers")


def test_reference_mul_reproduces_litert_where_a_double_multiplier_does_not(tmp_path):
    q = _model_where_double_misses()
    export_tflite_int8(q, (WIDTH,), tmp_path / "m.tflite")
    it = Interpreter(model_path=str(tmp_path / "m.tflite"), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    (sa, za), grid_b, (so, zo) = _grids(q)
    a, b = _products(q)
    codes = np.broadcast_to(a.numpy(), (256, WIDTH))
    mul = next(op for op in it._get_ops_details() if op["op_name"] == "MUL")
    got = []
    for row in codes:
        feed = row if inp["dtype"] == np.int8 else (row - za) * np.float32(sa)
        it.set_tensor(inp["index"], np.asarray(feed, inp["dtype"])[None])
        it.invoke()
        assert (it.get_tensor(mul["inputs"][0]).reshape(-1) == row).all()  # the file read the codes meant
        got.append(it.get_tensor(mul["outputs"][0]).reshape(-1))
    litert = np.stack(got).astype(np.float32)
    grids = ((sa, za), grid_b, (so, zo))
    mine = ARITHMETIC.get("reference").binary("mul", a, b, *grids).numpy()
    double = binary_tflm("mul", a, b, *grids).numpy()
    assert (double != litert).sum() > 0  # the case tells the two multipliers apart ...
    np.testing.assert_array_equal(mine, litert)  # ... and LiteRT's is the float32 one, on all 8,192 products
