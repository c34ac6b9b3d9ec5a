"""16×8 LayerNorm through QAT, the ONNX and TFLite writers and every runtime: the file computes the LayerNorm's
kernels in int16 (MEAN, SUB, MUL, RSQRT; no float tensor, no leftover boundary marker) and agrees with the QAT model
to the step on LiteRT (builtin and reference kernels) and TFLite Micro, within one on onnxruntime. The exporter refuses
a file whose int16 kernels the converter did not write (litert-torch#627), and the two LiteRT option fixes matter:
without them LiteRT refuses an int16 SUB and its reference kernels compute a 16×8 FULLY_CONNECTED wrongly."""

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed

from edgedistill.distill.trainer import predict_logits
from edgedistill.export.parity import check_parity, int8_references
from edgedistill.export.registry import export_all
from edgedistill.export.tflite_int16 import (Int16NotWrittenError, check_int16, general_int16_add_sub,
                                             int16_kernels, int32_bias_16x8)
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTRunner

_qd = torch.ops.quantized_decomposed
INT16 = ("layernorm",)
LAYERNORM_KERNELS = {"MEAN": 2, "SUB": 1, "MUL": 2, "RSQRT": 1}


class _Block(nn.Module):
    """Embedding + positions, a residual feed-forward step and a LayerNorm with learned γ / β, mean-pooled."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(60, 16, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(10, 16) * 0.3)
        self.ff = nn.Linear(16, 16)
        self.norm = nn.LayerNorm(16)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.3, 0.3)
        self.head = nn.Linear(16, 4)

    def forward(self, ids):
        x = self.embed(ids) + self.pos
        return self.head(self.norm(x + torch.relu(self.ff(x))).mean(1))


def _qat(model, x, y, steps=12):
    """Calibrate in 16×8 form, then a few QAT steps with TFLite Micro's arithmetic and tracked ranges."""
    q = calibrate(to_quant_student(model, "tflm", int16=INT16), x)
    q.set_tracking(True)
    q.train()
    opt = torch.optim.Adam(q.parameters(), 1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(q(x), y).backward()
        opt.step()
    q.set_tracking(False)
    return q.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("int16")
    m = _Block().eval()
    x = torch.randint(1, 60, (240, 10), dtype=torch.int32)
    x[::3, 7:] = 0
    y = torch.randint(0, 4, (240,))
    q = _qat(m, x, y)
    arts = export_all(m, q, (10,), 4, d, ["onnx", "tflite"], True)
    return m, q, x, arts, d


def test_file_computes_the_layernorm_in_int16(exported):
    _, q, _, _, d = exported
    path = d / "student_int8.tflite"
    found = int16_kernels(path)
    assert {k: found.get(k, 0) for k in LAYERNORM_KERNELS} == LAYERNORM_KERNELS, found
    assert check_int16(q, path) == LAYERNORM_KERNELS
    r = LiteRTRunner(path)
    ops = r.op_names()
    assert "MAXIMUM" not in ops and "MINIMUM" not in ops, ops  # the boundary markers are gone
    assert ops.count("QUANTIZE") == 2, ops  # int8 -> int16 into the LayerNorm, int16 -> int8 out of it
    types = {t["dtype"] for t in r.interp.get_tensor_details()}
    assert np.int16 in types and np.float32 not in types, types


def test_parity_within_one_step_on_every_runtime(exported):
    m, q, x, arts, _ = exported
    ref_q = int8_references(q, x.numpy(), predict_logits)
    rows = check_parity(arts, predict_logits(m, x).numpy(), ref_q, x.numpy(), ref_q("float").argmax(1),
                        float(q.output_q.scale), 240)
    by = {(r.artifact, r.runtime): r for r in rows}
    for key in [("onnx-int8", "onnxruntime"), ("tflite-int8", "litert"), ("tflite-int8", "litert-reference"),
                ("tflite-int8", "tflm")]:
        assert by[key].passed and by[key].max_steps <= 1 + 1e-3 and by[key].top1_agreement >= 99.0, by[key]
    # QAT computes every int16 kernel's integers as the runtime does: the TFLite rows agree to the step
    assert all(r.max_steps == 0 for r in rows if r.artifact == "tflite-int8"), rows


def test_an_int8_file_for_a_16x8_graph_is_refused(exported, tmp_path):
    """What the converter does when it ignores 16×8 mode: an int8 file. The check names it."""
    m, q, x, _, _ = exported
    q8 = calibrate(to_quant_student(m), x)
    export_all(m, q8, (10,), 4, tmp_path, ["tflite"], True)
    assert sum(int16_kernels(tmp_path / "student_int8.tflite").values()) == 0
    with pytest.raises(Int16NotWrittenError, match="int16 kernels were asked"):
        check_int16(q, tmp_path / "student_int8.tflite")


def _convert(module, x, path):
    import litert_torch

    from edgedistill.export.tflite_export import _static_qdq_config

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        litert_torch.convert(module.eval(), (x,), quant_config=_static_qdq_config()).export(str(path))
    return path


def _q16(x, s):
    return _qd.dequantize_per_tensor(_qd.quantize_per_tensor(x, s, 0, -32768, 32767, torch.int16),
                                     s, 0, -32768, 32767, torch.int16)


def _run_ref(path, codes):
    from ai_edge_litert import interpreter as litert

    it = litert.Interpreter(model_path=str(path), num_threads=1,
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], codes)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).astype(np.int64)


def test_int16_sub_with_power_of_two_scales_runs_only_after_the_fix(tmp_path):
    s = 2.0 ** -13

    class Sub(nn.Module):
        def forward(self, x):
            x = _q16(x, s)
            return _q16(x - _q16(x.mean(-1, keepdim=True), s), 2 * s)

    path = _convert(Sub(), torch.randn(1, 4, 16), tmp_path / "sub.tflite")
    codes = np.random.default_rng(0).integers(-8000, 8000, (1, 4, 16)).astype(np.int16)
    with pytest.raises(RuntimeError, match="input1_shift"):
        _run_ref(path, codes)
    assert general_int16_add_sub(path) == 1
    got = _run_ref(path, codes)
    mean = np.round(codes.mean(-1, keepdims=True))  # MEAN keeps the grid: the rounded mean code
    assert np.abs(got - (codes - mean) / 2).max() <= 1  # (x − μ) on the twice-coarser grid


def test_16x8_fully_connected_bias_is_read_right_only_after_the_fix(tmp_path):
    torch.manual_seed(0)
    w, b, s_in, s_out = torch.randn(8, 16) * 0.3, torch.randn(8) * 0.5, 4.0 / 32768, 16.0 / 32768
    ws = (w.abs().amax(1) / 127).float()
    wz = torch.zeros(8, dtype=torch.int64)

    class FC(nn.Module):
        def forward(self, x):
            wq = _qd.dequantize_per_channel(_qd.quantize_per_channel(w, ws, wz, 0, -127, 127, torch.int8),
                                            ws, wz, 0, -127, 127, torch.int8)
            return _q16(nn.functional.linear(_q16(x, s_in), wq, b), s_out)

    path = _convert(FC(), torch.randn(1, 16), tmp_path / "fc.tflite")
    codes = np.random.default_rng(1).integers(-20000, 20000, (1, 16)).astype(np.int16)
    wq = torch.round(w / ws[:, None]).numpy()
    want = ((codes.astype(np.float64) * s_in) @ (wq * ws.numpy()[:, None]).T + b.numpy()) / s_out
    assert np.abs(_run_ref(path, codes) - want).max() > 100  # the int32 bias read as int64
    assert int32_bias_16x8(path) == 1
    assert np.abs(_run_ref(path, codes) - want).max() <= 1
