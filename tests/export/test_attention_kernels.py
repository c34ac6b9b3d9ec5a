"""Which kernel runs a multi-head attention's BATCH_MATMUL on LiteRT decides its rounding: the XNNPACK delegate
takes an int8 BATCH_MATMUL only when its right operand (K for the scores, V for the context) has zero point 0, and
leaves any other to LiteRT's builtin kernel (quantize/xnnpack.py). QAT must follow the grids: a depth-2, two-head
decoder with one layer's K on zero point 0 and the other layer's V on zero point 0 (so every combination of kernel
and role occurs) computes, in the xnnpack arithmetic, the integers the exported file computes on LiteRT with
XNNPACK, and in the reference / tflm arithmetic those of LiteRT's reference kernels and TFLite Micro (whose int8 SUB
forms its multipliers in double: a LayerNorm's x − μ near a tie). Before, QAT computed the builtin kernel for every
BATCH_MATMUL and drifted 4 output steps from the file on a trained decoder of this shape."""

import numpy as np
import pytest
import torch

from edgedistill.distill.trainer import predict_logits
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, TFLMRunner
from edgedistill.students.decoder_family import decoder

V, L = 40, 8


def _zero_point_zero(q) -> None:
    """Move a grid onto zero point 0 (symmetric about 0, covering its calibrated range): the value the delegate
    checks. Its scale is that of the wider side over 127, so no calibrated value is clipped."""
    lo, hi = float(q.ranges[0]), float(q.ranges[1])
    q.scale.fill_(max(-lo / 128.0, hi / 127.0))
    q.zero_point.fill_(0)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(3)
        m = decoder((L,), V, 32, 2, V, heads=2).eval()
        for p in m.parameters():  # planted: wider weights than the initialisation, so scores spread over the grid
            p.data.normal_(0.0, 0.2)
        g = torch.Generator().manual_seed(3)
        x = torch.randint(1, V, (32, L), generator=g, dtype=torch.int32)
        q = calibrate(to_quant_student(m, "xnnpack"), x)
        attn = [op for op in q.modules() if type(op).__name__ == "Attention"]
        _zero_point_zero(attn[0].k.out_q)  # layer 0: scores in XNNPACK, context on the builtin kernel
        _zero_point_zero(attn[1].v.out_q)  # layer 1: the reverse
        path = tmp_path_factory.mktemp("attn_kernels") / "student_int8.tflite"
        export_tflite_int8(q, (L,), path)
        return q, attn, x.numpy(), path
    finally:
        torch.set_num_threads(threads)


def _steps(q, arithmetic: str, x: np.ndarray, out: np.ndarray) -> float:
    torch.set_num_threads(1)  # small integer tensors: one thread is fastest beside other jobs (conftest restores)
    q.set_rounding(arithmetic)
    ref = predict_logits(q, torch.from_numpy(x)).numpy()
    return float(np.abs(out - ref).max()) / float(q.output_q.scale)


def test_the_planted_grids_put_each_matmul_role_on_each_kernel(planted):
    _, attn, _, _ = planted
    zero = [[int(a.k.out_q.zero_point) == 0, int(a.v.out_q.zero_point) == 0] for a in attn]
    assert zero == [[True, False], [False, True]], zero


def test_qat_computes_what_litert_xnnpack_computes_when_the_grids_pick_the_kernel(planted):
    q, _, x, path = planted
    assert _steps(q, "xnnpack", x, LiteRTRunner(path).predict(x)) == 0.0


@pytest.mark.parametrize("runner,arithmetic", [(LiteRTReferenceRunner, "reference"), (TFLMRunner, "tflm")])
def test_the_fixed_point_runtimes_compute_the_builtin_kernel_whatever_the_zero_point(planted, runner, arithmetic):
    q, _, x, path = planted
    assert _steps(q, arithmetic, x, runner(path).predict(x)) == 0.0
