"""A student edgedistill saved (build directory / student.json) loads as a teacher: the teacher-assistant chain."""

import json

import numpy as np
import pytest
import torch

from edgedistill.data.splits import Normalizer
from edgedistill.errors import ModelLoadError
from edgedistill.students import StudentArch
from edgedistill.students.checkpoint import StudentCheckpoint, save_student
from edgedistill.teachers import TeacherSpec, load_teacher


@pytest.fixture()
def saved_student(tmp_path):
    torch.manual_seed(0)
    ckpt = StudentCheckpoint(StudentArch("cnn", 4, 2), (1, 8, 8), 3, ["a", "b", "c"],
                             Normalizer(mean=[0.5], std=[0.25], axis_kind="channel"))
    model = ckpt.build()
    with torch.no_grad():  # non-trivial BN statistics, so eval mode is visible in the logits
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    save_student(tmp_path / "build", model, ckpt)
    return model.eval(), tmp_path / "build"


@pytest.mark.parametrize("which", ["directory", "json"])
def test_a_saved_student_teaches_with_its_own_normaliser(saved_student, which):
    model, build = saved_student
    teacher = load_teacher(TeacherSpec(path=str(build if which == "directory" else build / "student.json")))
    assert teacher.format == "edgedistill"
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)  # raw samples, as the data holds them
    want = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(np.asarray(teacher.logits(x)), want, rtol=1e-5, atol=1e-5)


def test_teacher_identity_follows_the_weights(saved_student):
    _, build = saved_student
    before = load_teacher(TeacherSpec(path=str(build))).identity()
    weights = build / "student.safetensors"
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    state["head.fc.bias"] = state["head.fc.bias"] + 1.0
    save_file(state, str(weights))
    assert load_teacher(TeacherSpec(path=str(build))).identity() != before


def test_a_damaged_checkpoint_is_a_clear_error(saved_student):
    _, build = saved_student
    meta = json.loads((build / "student.json").read_text())
    meta["arch"]["width"] = 5  # the weights no longer fit
    (build / "student.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="damaged or incomplete"):
        load_teacher(TeacherSpec(path=str(build)))
