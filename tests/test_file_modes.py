"""Published files get the mode any file the user writes gets (0o666 minus the umask): safetensors' save_file and a
NamedTemporaryFile moved into place left 0600, unreadable to the group or a server publishing the run."""

import os
import stat

import pytest
import torch

from edgedistill import quiet
from edgedistill.data.splits import Normalizer
from edgedistill.students import StudentArch, build_student
from edgedistill.students.checkpoint import StudentCheckpoint, load_student, save_student


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_saved_student_has_the_users_file_mode(tmp_path, umask):
    arch = StudentArch("mlp", 8, 1)
    model = build_student(arch, (4,), 3, Normalizer([0.0], [1.0], "feature"))
    normalizer = Normalizer([0.0], [1.0], "feature")
    save_student(tmp_path, model, StudentCheckpoint(arch, (4,), 3, ["a", "b", "c"], normalizer))
    reference = tmp_path / "written_by_open.txt"
    reference.write_text("x")  # an ordinary file: the mode the user expects
    assert _mode(tmp_path / "student.safetensors") == _mode(reference) == 0o666 & ~umask
    loaded, _ = load_student(tmp_path)  # still a checkpoint that loads to the same weights
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_the_kept_third_party_log_has_the_users_file_mode(tmp_path, umask):
    cap = quiet.Capture().start()
    cap.destination = tmp_path
    try:
        os.write(2, b"I0000 00:00:1795987113.341573   17711 flatbuffer_export.cc:4410] Estimated count of ops\n")
    finally:
        cap.stop()
    assert _mode(tmp_path / quiet.LOG_NAME) == 0o666 & ~umask
