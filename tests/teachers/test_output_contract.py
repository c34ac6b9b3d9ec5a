"""Teacher output contracts: softmax-terminated teachers, several outputs, channels-last inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.data import Split, make_splits
from edgedistill.data.arrays import RawDataset
from edgedistill.pipeline.checks import check_teacher_fits
from edgedistill.errors import DataError
from edgedistill.teachers import TeacherSpec, load_teacher


def _onnx(module: nn.Module, x: torch.Tensor, path, outputs=("y",)) -> str:
    torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, input_names=["x"], output_names=list(outputs),
                      dynamic_axes={"x": {0: "n"}, **{o: {0: "n"} for o in outputs}}, opset_version=17)
    return str(path)


class Net(nn.Module):
    """Features 6 -> embedding 8 -> 4 logits; `mode` picks what forward returns."""

    def __init__(self, mode="logits", k=4):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.fc, self.mode = nn.Linear(6, 8), nn.Linear(8, k), mode

    def forward(self, x):
        e = torch.relu(self.body(x))
        z = self.fc(e) * 3.0
        return {"logits": z, "softmax": torch.softmax(z, -1), "two": (e, z), "twins": (z, z + 1)}[self.mode]


def _splits(k=4, shape=(6,)):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, *shape)).astype(np.float32)
    return make_splits(RawDataset(Split(x, np.arange(80) % k), None, "mem"))


def test_softmax_terminated_onnx_teacher_gives_log_probabilities(tmp_path):
    x = torch.randn(16, 6)
    t = load_teacher(TeacherSpec(_onnx(Net("softmax"), x, tmp_path / "p.onnx")))
    s = _splits()
    check_teacher_fits(t, "raw", s)
    assert t.contract.kind == "probabilities" and "Softmax" in t.contract.detected_by.replace("softmax", "Softmax")
    z = Net("logits").eval()(torch.from_numpy(s.test.x)).detach()
    got = t.logits(s.test.x)
    for temp in (1.0, 4.0):  # softmax(log p / T) == softmax(z / T): the soft targets are the teacher's own
        torch.testing.assert_close(F.softmax(got / temp, -1), F.softmax(z / temp, -1), atol=1e-5, rtol=1e-4)
    assert t.contract.to_dict()["kind"] == "probabilities"


def test_probabilities_found_on_the_data_without_graph_evidence(tmp_path):
    path = tmp_path / "p.pt"
    torch.jit.save(torch.jit.trace(Net("softmax").eval(), torch.randn(2, 6)), str(path))
    t = load_teacher(TeacherSpec(str(path)))
    s = _splits()
    check_teacher_fits(t, "raw", s)
    assert t.contract.kind == "probabilities" and t.contract.detected_by.startswith("data")
    z = Net("logits").eval()(torch.from_numpy(s.val.x)).detach()
    torch.testing.assert_close(F.softmax(t.logits(s.val.x) / 3, -1), F.softmax(z / 3, -1), atol=1e-5, rtol=1e-4)


def test_plain_logits_teacher_is_left_alone(tmp_path):
    x = torch.randn(16, 6)
    t = load_teacher(TeacherSpec(_onnx(Net("logits"), x, tmp_path / "z.onnx")))
    check_teacher_fits(t, "raw", _splits())
    assert t.contract.kind == "logits" and t.contract.layout == "as-is"


def test_two_outputs_pick_the_one_with_one_value_per_class(tmp_path):
    x = torch.randn(16, 6)
    path = _onnx(Net("two"), x, tmp_path / "two.onnx", outputs=("embedding", "logits"))
    t = load_teacher(TeacherSpec(path))
    s = _splits()
    check_teacher_fits(t, "raw", s)
    assert t.contract.index == 1 and t.contract.name == "logits"
    ref = Net("logits").eval()(torch.from_numpy(s.val.x)).detach()
    torch.testing.assert_close(t.logits(s.val.x), ref, atol=1e-5, rtol=1e-5)
    # an explicit choice by name or index; a wrong width is still refused
    t0 = load_teacher(TeacherSpec(path, output="0"))
    with pytest.raises(DataError, match="8"):
        check_teacher_fits(t0, "raw", s)
    t1 = load_teacher(TeacherSpec(path, output="logits"))
    check_teacher_fits(t1, "raw", s)
    assert t1.contract.index == 1
    with pytest.raises(DataError, match="no output named 'nope'"):
        check_teacher_fits(load_teacher(TeacherSpec(path, output="nope")), "raw", s)


def test_ambiguous_outputs_list_names_and_shapes(tmp_path):
    path = _onnx(Net("twins"), torch.randn(4, 6), tmp_path / "tw.onnx", outputs=("a", "b"))
    with pytest.raises(DataError) as err:
        check_teacher_fits(load_teacher(TeacherSpec(path)), "raw", _splits())
    msg = str(err.value)
    assert "'a' (?×4)" in msg and "'b' (?×4)" in msg and "--teacher-output" in msg
    t = load_teacher(TeacherSpec(path, output="1"))
    check_teacher_fits(t, "raw", _splits())
    assert t.contract.name == "b"


class ChannelsLast(nn.Module):
    """Takes N×H×W×C (a TensorFlow-style model)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 5)

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        return self.fc(self.conv(x).mean((2, 3)))


def test_channels_last_teacher_is_fed_transposed_samples(tmp_path):
    path = _onnx(ChannelsLast(), torch.randn(2, 8, 10, 3), tmp_path / "nhwc.onnx")
    t = load_teacher(TeacherSpec(path))
    s = _splits(k=5, shape=(3, 8, 10))
    check_teacher_fits(t, "raw", s)
    assert t.contract.layout == "NHWC" and "channels-last" in t.contract.to_dict()["layout"]
    ref = ChannelsLast().eval()(torch.from_numpy(s.val.x).permute(0, 2, 3, 1)).detach()
    torch.testing.assert_close(t.logits(s.val.x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_int8_tflite_softmax_output_is_dequantized_then_logged(tmp_path):
    litert_torch = pytest.importorskip("litert_torch")
    from edgedistill.export.tflite_export import _static_qdq_config

    q = torch.ops.quantized_decomposed

    def fq(v, scale, zero):
        return q.dequantize_per_tensor(q.quantize_per_tensor(v, scale, zero, -128, 127, torch.int8), scale, zero,
                                       -128, 127, torch.int8)

    class QNet(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(6, 4)

        def forward(self, x):
            w = q.dequantize_per_tensor(q.quantize_per_tensor(self.fc.weight, 0.01, 0, -127, 127, torch.int8),
                                        0.01, 0, -127, 127, torch.int8)
            z = fq(F.linear(fq(x, 0.05, 0), w, self.fc.bias), 0.1, 0)
            return fq(torch.softmax(z, -1), 1 / 256, -128)

    path = tmp_path / "sm.tflite"
    litert_torch.convert(QNet().eval(), (torch.zeros(1, 6),), quant_config=_static_qdq_config()).export(str(path))
    t = load_teacher(TeacherSpec(str(path)))
    s = _splits()
    check_teacher_fits(t, "raw", s)
    c = t.contract
    assert c.kind == "probabilities" and "softmax" in c.detected_by and c.outputs[0].quant_step == 1 / 256
    raw = t.raw_outputs(s.val.x[:8])[0]
    assert raw.dtype == np.float32 and np.all(raw >= 0) and np.allclose(raw.sum(1), 1, atol=4 / 256)
    np.testing.assert_allclose(t.logits(s.val.x[:8]).numpy(), np.log(np.maximum(raw, 1 / 512)), rtol=1e-5)


class Folding(nn.Module):
    """Expects 6 features per sample; fed 12 it folds them into twice as many rows."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(x.reshape(-1, 6))


def test_a_teacher_fed_the_wrong_input_shape_is_named_as_such_not_as_a_class_count(tmp_path):
    """The right number of logits but one row per sample lost: the message used to say "outputs of shape (4,) ... but
    the data has 4 classes", which points at the wrong cause."""
    path = tmp_path / "fold.pt"
    torch.jit.save(torch.jit.trace(Folding().eval(), torch.randn(2, 6)), str(path))
    with pytest.raises(DataError) as err:
        check_teacher_fits(load_teacher(TeacherSpec(str(path))), "raw", _splits(shape=(12,)))
    msg = str(err.value)
    assert "one row per sample" in msg and "(12,)" in msg and "classes" not in msg, msg
    check_teacher_fits(load_teacher(TeacherSpec(str(path))), "raw", _splits())
