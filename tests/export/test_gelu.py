"""GELU in the int8 core, and its substitute where the runtime has none (issue #28).

LiteRT computes int8 GELU as a 256-entry table of the float32 function (quantize/lut.py); the QAT model's table is
checked code by code on LiteRT (XNNPACK and reference kernels) and against an independent float64 GELU. Then tiny
transformer students built in code with activation=gelu and with the substitute (hardswish) go through QAT to int8
TFLite and ONNX and run on onnxruntime, LiteRT (XNNPACK, reference) and, for the substitute, TFLite Micro: every
logit within one output step of the QAT model computing that runtime's arithmetic, no float tensor in the file."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.export.onnx_export import export_onnx_int8
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.lut import gelu_table
from edgedistill.quantize.ops import Activation
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, OnnxRunner, TFLMRunner
from edgedistill.students import StudentArch, build_student


def _float64_gelu(x: float, approximate: bool) -> float:
    if approximate:
        return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * math.erfc(-x / math.sqrt(2.0))


@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize("grid", [(0.05, -3, 0.03, -100), (0.011, 20, 0.004, -128), (0.2, 0, 0.1, -20)])
def test_gelu_table_is_the_float_function_rounded(approximate, grid):
    """Each entry is GELU of the dequantized input code, requantized: within one code of an independent float64
    GELU rounded, equal to it wherever that value is not within 1e-3 of a half (float32 rounding)."""
    si, zi, so, zo = grid
    table = gelu_table(si, zi, so, zo, approximate)
    codes = np.arange(-128, 128)
    exact = np.array([_float64_gelu(si * (c - zi), approximate) / so + zo for c in codes])
    want = np.clip(np.floor(exact + 0.5), -128, 127)
    near_half = np.abs(exact - np.floor(exact) - 0.5) < 1e-3
    assert np.abs(table - want).max() <= 1
    np.testing.assert_array_equal(table[~near_half], want[~near_half])
    assert len(np.unique(table)) > 20  # the grid is exercised, not saturated


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_equals_litert_code_by_code(approximate, tmp_path):
    """A linear layer sweeps the int8 range into GELU (F.gelu's `approximate` becomes the op's option): every output
    code on LiteRT's XNNPACK and reference interpreters equals the table's entry and the QAT model's."""
    m = nn.Sequential(nn.Linear(1, 2), nn.GELU(approximate=approximate)).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[6.0], [-4.0]]))
        m[0].bias.copy_(torch.tensor([0.0, 1.0]))
    x = torch.linspace(-1, 1, 1000).view(1000, 1)
    q = calibrate(to_quant_student(m, rounding="xnnpack"), x)
    path = tmp_path / "gelu.tflite"
    export_tflite_int8(q, (1,), path)
    a = next(op for op in q.ops.values() if isinstance(op, Activation))
    assert a.kind == ("gelu_tanh" if approximate == "tanh" else "gelu")
    (si, zi), (so, zo) = [(float(g.scale), int(g.zero_point)) for g in (a.in_qs[0], a.out_q)]
    table = gelu_table(si, zi, so, zo, approximate == "tanh")
    seen = {}
    a.register_forward_pre_hook(lambda mod, inp: seen.__setitem__("in", inp[0].detach()))
    codes_in = None
    for runner, arithmetic in ((LiteRTRunner, "xnnpack"), (LiteRTReferenceRunner, "reference")):
        q.set_rounding(arithmetic)
        with torch.no_grad():
            ours = np.round(q(x).numpy() / so + zo).astype(int)
        codes_in = (torch.round(seen["in"] / si) + zi).long().numpy()
        theirs = np.round(runner(path).predict(x.numpy()) / so + zo).astype(int)
        np.testing.assert_array_equal(table[codes_in + 128], theirs)
        np.testing.assert_array_equal(ours, theirs)
    assert len(np.unique(codes_in)) > 200  # most input codes are exercised
    assert LiteRTRunner(path).op_names() == ["FULLY_CONNECTED", "GELU"]


def _texts(n: int, length: int, vocab: int, seed: int):
    """Token ids whose class is which third of the vocabulary most tokens come from (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    ids = 1 + y[:, None] * (vocab - 1) // 3 + torch.randint(0, (vocab - 1) // 3, (n, length), generator=g)
    ids[torch.rand(n, length, generator=g) < 0.25] = torch.randint(1, vocab, (1,), generator=g)
    ids[: n // 3, length - 3:] = 0  # padded texts
    return ids.int(), y


def _train(model, x, y, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for i in range(steps):
        idx = torch.arange(i * 32, i * 32 + 32) % len(x)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()


L, VOCAB = 12, 31


@pytest.fixture(scope="module", params=["gelu", "hardswish"])
def deployed(request, tmp_path_factory):
    """A one-layer transformer (width 32, two heads, ffn 48) with the activation, trained float then QAT."""
    torch.manual_seed(0)
    act = request.param
    arch = StudentArch("transformer", 32, 1).with_knobs(heads=2, ffn=48, activation=act)
    m = build_student(arch, (L,), 3, None, VOCAB).eval()
    x, y = _texts(384, L, VOCAB, 0)
    _train(m, x, y, steps=60, lr=3e-3)
    q = calibrate(to_quant_student(m, rounding="xnnpack"), x[:128])
    _train(q, x, y, steps=12, lr=3e-4)
    out = tmp_path_factory.mktemp(act)
    tfl, onx = export_tflite_int8(q, (L,), out / "m.tflite"), export_onnx_int8(q, (L,), 3, out / "m.onnx")
    xt, yt = _texts(120, L, VOCAB, 1)
    return act, q, xt, yt, tfl.path, onx.path


def _reference(q, x, arithmetic: str) -> np.ndarray:
    trained = q.rounding
    q.set_rounding(arithmetic)
    try:
        with torch.no_grad():
            return q(x).numpy()
    finally:
        q.set_rounding(trained)


def _steps(out: np.ndarray, ref: np.ndarray, q) -> float:
    return float(np.abs(out - ref).max() / float(q.output_q.scale))


def test_the_int8_student_learned(deployed):
    act, q, x, y, *_ = deployed
    accuracy = float((torch.from_numpy(_reference(q, x, "xnnpack")).argmax(1) == y).float().mean())
    assert accuracy >= 0.6, f"{act}: QAT model reaches only {accuracy:.0%} (chance 33 %)"


def test_litert_and_onnxruntime_compute_what_qat_trained(deployed):
    """XNNPACK (GELU on LiteRT's builtin table), the reference kernels and onnxruntime (GELU as a Gather on that
    table): each within one output step of the QAT model computing its arithmetic."""
    act, q, x, _, tfl, onx = deployed
    ids = x.numpy()
    rows = {"LiteRT": (LiteRTRunner(tfl).predict(ids), "xnnpack"),
            "LiteRT reference": (LiteRTReferenceRunner(tfl).predict(ids), "reference"),
            "onnxruntime": (OnnxRunner(onx, optimization="basic").predict(ids), "float")}
    for runtime, (out, arithmetic) in rows.items():
        ref = _reference(q, x, arithmetic)
        assert _steps(out, ref, q) <= 1.0 + 1e-3, f"{act} on {runtime}: {_steps(out, ref, q):.2f} steps"
        assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.99


def test_the_file_is_int8_with_the_activation_op(deployed):
    act, _, _, _, tfl, _ = deployed
    r = LiteRTRunner(tfl)
    assert {"gelu": "GELU", "hardswish": "HARD_SWISH"}[act] in r.op_names()
    floats = [t["name"] for t in r.interp.get_tensor_details() if t["dtype"] == np.float32]
    assert not floats, floats


def test_tflite_micro_runs_the_substitute_and_lacks_gelu(deployed):
    """The substitute runs on TFLite Micro within one step of the QAT model's tflm arithmetic; the GELU file does
    not run there (no kernel), which is why the substitute exists."""
    act, q, x, _, tfl, _ = deployed
    if act == "gelu":
        from edgedistill.profile.opsets import runtime_ops

        assert "GELU" not in runtime_ops("tflm") and "GELU" in runtime_ops("litert")
        return
    out = TFLMRunner(tfl).predict(x[:40].numpy())
    assert _steps(out, _reference(q, x[:40], "tflm"), q) <= 1.0 + 1e-3


def test_parity_leaves_tflite_micro_out_for_a_file_it_cannot_load_and_says_why(deployed):
    """A GELU student built for a LiteRT target: its int8 file has no TFLite Micro kernel, so parity runs it on
    LiteRT alone and says so, where it used to fail the whole run after training (TFLite Micro could not load it);
    the substitute's file still gets its TFLite Micro row."""
    from edgedistill.export.artifact import Artifact, TensorSpec
    from edgedistill.export.parity import check_parity, int8_references

    act, q, x, y, tfl, _ = deployed
    art = Artifact("tflite-int8", "tflite", "int8", tfl, tfl.stat().st_size, "", TensorSpec([-1, L], "int32"),
                   TensorSpec([-1, 3], "float32"))
    skipped: list[str] = []
    rows = check_parity([art], None, int8_references(q, x[:40].numpy(), lambda m, t: m(t).detach()), x[:40].numpy(),
                        y[:40].numpy(), float(q.output_q.scale), 40, skipped=skipped)
    runtimes = {r.runtime for r in rows}
    if act == "gelu":
        assert "tflm" not in runtimes and {"litert", "litert-reference"} <= runtimes
        assert len(skipped) == 1 and "no kernel for GELU" in skipped[0] and "--target cortex-m4" in skipped[0]
    else:
        assert "tflm" in runtimes and not skipped
    assert all(r.passed for r in rows)
