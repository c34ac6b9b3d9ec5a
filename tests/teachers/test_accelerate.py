"""A torch teacher moves to onnxruntime only when onnxruntime reproduces its logits; otherwise it stays on torch."""

import numpy as np
import torch
from safetensors.torch import save_file

from edgedistill.data import read_dataset
from edgedistill.teachers import TeacherSpec, load_teacher
from edgedistill.teachers.accelerate import OrtRunner


def test_builtin_teacher_runs_on_onnxruntime_with_torchs_answers():
    teacher = load_teacher(TeacherSpec("builtin:digits"))
    x = read_dataset("builtin:digits").train.x[:300]
    got = teacher.logits(x)
    assert teacher.runtime() == "onnxruntime"
    with torch.no_grad():
        ref = teacher.module(torch.from_numpy(x))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(1), ref.argmax(1))


def test_env_switch_keeps_torch(monkeypatch):
    monkeypatch.setenv("EDGEDISTILL_TEACHER_RUNTIME", "torch")
    teacher = load_teacher(TeacherSpec("builtin:digits"))
    teacher.logits(read_dataset("builtin:digits").train.x[:4])
    assert teacher.runtime() == "torch"


class NumpyInside(torch.nn.Module):
    """Leaves the graph (a numpy round trip): the ONNX exporter cannot capture it faithfully."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x):
        y = self.lin(x.flatten(1))
        return y + torch.from_numpy(np.sin(y.detach().numpy()))


def test_module_that_does_not_export_faithfully_stays_on_torch():
    torch.manual_seed(0)
    m = NumpyInside().eval()
    runner = OrtRunner(m)
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    assert runner(x) is None  # the exported graph freezes the numpy branch as a constant: a mismatch, caught
    assert runner.state == "torch"


def test_user_factory_teacher_is_accelerated_and_cached_logits_agree(tmp_path):
    from tiny_models import tiny_cnn

    m = tiny_cnn()
    save_file(m.state_dict(), str(tmp_path / "t.safetensors"))
    teacher = load_teacher(TeacherSpec(str(tmp_path / "t.safetensors"), factory="tiny_models:tiny_cnn"))
    x = np.random.default_rng(1).random((40, 1, 8, 8), dtype=np.float32)
    got = teacher.logits(x)
    with torch.no_grad():
        ref = m.eval()(torch.from_numpy(x))
    assert teacher.runtime() == "onnxruntime"
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
