"""Microcontroller rounding: with rounding="tflm", the QAT model computes TFLite Micro's integers: conv / depthwise
outputs checked tensor by tensor on LiteRT's reference kernels (which TFLite Micro shares for them), HARD_SWISH and
LOGISTIC code by code, and whole graphs (MEAN, ADD, MUL, SE, fully connected) logit by logit on TFLite Micro."""

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgedistill.data import Normalizer
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.mcu import quantize_multiplier
from edgedistill.quantize.ops import QLayer
from edgedistill.runtimes import TFLMRunner
from edgedistill.students import StudentArch, build_student


def test_quantize_multiplier_represents_the_real_multiplier():
    m = np.array([0.5, 0.75, 1e-3, 3.7, 1.0 - 1e-12])
    m0, shift = quantize_multiplier(m)
    assert ((m0 >= 2**30) & (m0 < 2**31)).all()
    np.testing.assert_allclose(m0 * 2.0 ** (shift - 31), m, rtol=1e-9)


def _reference_tensors(path, x: np.ndarray):
    """Every int8 tensor of the reference-kernel interpreter, per sample: {(scale, zp, size): [arrays]}."""
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    s, z = inp["quantization"]
    details = [t for t in it.get_tensor_details() if t["dtype"] == np.int8 and t["quantization"][0] > 0]
    out = {t["index"]: [] for t in details}
    for i in range(len(x)):
        it.set_tensor(inp["index"], np.clip(np.round(x[i:i + 1] / s) + z, -128, 127).astype(np.int8))
        it.invoke()
        for t in details:
            out[t["index"]].append(it.get_tensor(t["index"]).copy())
    return {(float(t["quantization"][0]), int(t["quantization"][1]), int(np.prod(t["shape"]))):
            np.stack(out[t["index"]]).reshape(len(x), -1) for t in details}


@pytest.mark.parametrize("family, shape", [("dscnn", (3, 16, 16)), ("resnet8", (3, 16, 16))])
def test_tflm_rounding_reproduces_every_conv_bit_for_bit(family, shape, tmp_path):
    torch.manual_seed(0)
    norm = Normalizer([0.2] * shape[0], [0.5] * shape[0], "feature" if len(shape) == 1 else "channel")
    m = build_student(StudentArch(family, 8, 3), shape, 5, norm).eval()
    x = torch.rand(60, *shape) * 2 - 0.5
    q = calibrate(to_quant_student(m), x)
    path = tmp_path / "m.tflite"
    export_tflite_int8(q, shape, path)
    ref = _reference_tensors(path, x.numpy())
    outs = {}
    for key, _, _ in q.steps:
        q.ops[key].register_forward_hook(lambda mod, i, o, key=key: outs.__setitem__(key, o.detach()))
    mismatches = {}
    for rounding in ("float", "tflm"):
        q.set_rounding(rounding)
        with torch.no_grad():
            q(x)
        for key, _, _ in q.steps:
            op = q.ops[key]
            if not isinstance(op, QLayer) or op.kind == "linear":
                continue  # LiteRT's reference FULLY_CONNECTED rounds once, TFLite Micro's twice (checked below)
            codes = torch.round(outs[key] / op.grid.scale) + op.grid.zero_point
            if codes.dim() == 4:
                codes = codes.permute(0, 2, 3, 1)  # the file's NHWC
            r = ref[(float(op.grid.scale), int(op.grid.zero_point), int(codes[0].numel()))]
            mismatches[rounding, key] = int((codes.reshape(len(x), -1).numpy() != r).sum())
    tflm = {k: v for (r, k), v in mismatches.items() if r == "tflm"}
    assert tflm and all(v == 0 for v in tflm.values()), mismatches
    # the default rounding does differ from the kernels'
    assert sum(v for (r, _), v in mismatches.items() if r == "float") > 0


@pytest.mark.parametrize("family, shape", [("cnn", (3, 16, 16)), ("mlp", (12,)), ("mbv3", (3, 16, 16)),
                                           ("resnet8_1d", (2, 32))])
def test_tflm_rounding_logits_equal_tflite_micro(family, shape, tmp_path):
    """Every int8 logit of the QAT model equals TFLite Micro's (fully connected, MEAN, ADD, MUL, hardswish,
    hardsigmoid SE), where the default rounding differs."""
    torch.manual_seed(0)
    norm = Normalizer([0.2] * shape[0], [0.5] * shape[0], "feature" if len(shape) == 1 else "channel")
    m = build_student(StudentArch(family, 8, 2), shape, 5, norm).eval()
    x = torch.rand(80, *shape) * 2 - 0.5
    q = calibrate(to_quant_student(m, rounding="tflm"), x)
    path = tmp_path / "m.tflite"
    export_tflite_int8(q, shape, path)
    with torch.no_grad():
        ours = q(x).numpy()
    micro = TFLMRunner(path).predict(x.numpy())
    step = float(q.output_q.scale)
    np.testing.assert_array_equal(np.round(ours / step), np.round(micro / step))


@pytest.mark.parametrize("kind", ["sigmoid", "hardswish"])
def test_activation_tables_equal_tflite_micro_code_by_code(kind, tmp_path):
    """A 1×1 conv whose output sweeps the int8 range into LOGISTIC / HARD_SWISH, the model's output: every output
    code on TFLite Micro equals the table's entry for its input code, and the QAT model's."""
    from torch import nn
    from edgedistill.quantize.mcu import hard_swish_table, logistic_table
    from edgedistill.quantize.ops import Activation

    m = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Sigmoid() if kind == "sigmoid" else nn.Hardswish()).eval()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([6.0, -4.0]).view(2, 1, 1, 1))
        m[0].bias.copy_(torch.tensor([0.0, 1.0]))
    x = torch.linspace(-1, 1, 400).view(400, 1, 1, 1)
    q = calibrate(to_quant_student(m, rounding="tflm"), x)
    path = tmp_path / "a.tflite"
    export_tflite_int8(q, (1, 1, 1), path)
    a = next(op for op in q.ops.values() if isinstance(op, Activation))
    (si, zi), (so, zo) = [(float(g.scale), int(g.zero_point)) for g in (a.in_qs[0], a.out_q)]
    table = logistic_table(si, zi) if kind == "sigmoid" else hard_swish_table(si, zi, so, zo)
    seen = {}
    a.register_forward_pre_hook(lambda mod, inp: seen.__setitem__("in", inp[0].detach()))
    with torch.no_grad():
        ours = q(x).reshape(400, 2).numpy()
    codes_in = (torch.round(seen["in"] / si) + zi).long().reshape(400, 2).numpy()
    micro = np.round(TFLMRunner(path).predict(x.numpy()).reshape(len(x), -1) / so + zo).astype(int)  # N×C×1×1
    assert len(np.unique(codes_in)) > 200  # most input codes are exercised
    np.testing.assert_array_equal(table[codes_in + 128], micro)
    np.testing.assert_array_equal(np.round(ours / so + zo).astype(int), micro)


def test_tflm_rounding_trains():
    """The straight-through gradient still flows with TFLM rounding (QAT steps change the weights)."""
    torch.manual_seed(0)
    m = build_student(StudentArch("dscnn", 8, 2), (1, 8, 8), 3, Normalizer([0.5], [0.25], "channel")).eval()
    x = torch.rand(32, 1, 8, 8)
    q = calibrate(to_quant_student(m, rounding="tflm"), x)
    before = [p.detach().clone() for p in q.parameters()]
    loss = torch.nn.functional.cross_entropy(q(x), torch.arange(32) % 3)
    loss.backward()
    torch.optim.SGD(q.parameters(), lr=0.1).step()
    assert any(not torch.equal(a, b) for a, b in zip(before, q.parameters()))
