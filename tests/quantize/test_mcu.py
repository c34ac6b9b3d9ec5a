"""Microcontroller rounding: with rounding="tflm", every conv / depthwise / linear output of the QAT model is the
integer TFLite's reference kernels (and TFLite Micro) compute, checked tensor by tensor on the real interpreter."""

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


@pytest.mark.parametrize("family, shape", [("mlp", (12,)), ("dscnn", (3, 16, 16))])
def test_tflm_rounding_reproduces_every_layer_bit_for_bit(family, shape, tmp_path):
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
            if not isinstance(op, QLayer) or family == "dscnn" and key == "head_fc":
                continue  # dscnn's classifier reads MEAN's output, whose rounding is not modelled
            codes = torch.round(outs[key] / op.grid.scale) + op.grid.zero_point
            if codes.dim() == 4:
                codes = codes.permute(0, 2, 3, 1)  # the file's NHWC
            r = ref[(float(op.grid.scale), int(op.grid.zero_point), int(codes[0].numel()))]
            mismatches[rounding, key] = int((codes.reshape(len(x), -1).numpy() != r).sum())
    tflm = {k: v for (r, k), v in mismatches.items() if r == "tflm"}
    assert tflm and all(v == 0 for v in tflm.values()), mismatches
    if family == "dscnn":  # depthwise convs: the default rounding does differ from the kernels'
        assert sum(v for (r, _), v in mismatches.items() if r == "float") > 0


def test_tflm_rounding_logits_within_one_step_of_tflite_micro(tmp_path):
    torch.manual_seed(0)
    m = build_student(StudentArch("cnn", 8, 3), (3, 16, 16), 5, Normalizer([0.2] * 3, [0.5] * 3, "channel")).eval()
    x = torch.rand(40, 3, 16, 16) * 2 - 0.5
    q = calibrate(to_quant_student(m, rounding="tflm"), x)
    path = tmp_path / "m.tflite"
    export_tflite_int8(q, (3, 16, 16), path)
    with torch.no_grad():
        ours = q(x).numpy()
    micro = TFLMRunner(path).predict(x.numpy())
    assert np.abs(ours - micro).max() <= 1.01 * float(q.output_q.scale)
    assert (ours.argmax(1) == micro.argmax(1)).mean() >= 0.95


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
