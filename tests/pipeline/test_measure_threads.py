"""Host timing of a classifier's files (pipeline/measure.py) follows the user's --threads where given: --threads 1 on
the cpu target (2 threads in its profile) was timed on 2 threads. Without --threads: the target's threads on a host,
one elsewhere. The thread count each figure was timed on is what its `where` names and what the runtime was given."""

import pytest
import torch

from edgedistill.export.registry import export_all
from edgedistill.pipeline.measure import measure_build
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.targets import load_target


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
        x = torch.randn(32, 16)
        out = tmp_path_factory.mktemp("measure")
        arts = export_all(m, calibrate(to_quant_student(m), x), (16,), 3, out, ["onnx", "tflite"], True)

        class OnnxTeacher:  # the fields profile_teacher reads of a loaded ONNX teacher (a real file, onnxruntime)
            is_text, format = False, "onnx"
            files = [next(a.path for a in arts if a.format == "onnx")]

        return {"arts": arts, "teachers": [OnnxTeacher()]}
    finally:
        torch.set_num_threads(threads)


def _counts(measured) -> dict:
    return {name: p["where"] for name, p in measured.profiles.items()}


def test_host_timing_uses_the_users_threads(world):
    cpu = load_target("cpu")
    assert cpu.kind == "host" and cpu.threads != 1  # else the check below could not fail
    m = measure_build(world["arts"], world["teachers"], (16,), cpu, threads=1)
    assert set(m.profiles) == {a.name for a in world["arts"]} | {"teacher"}
    for name, where in _counts(m).items():
        assert where.startswith("measured-host (") and "1 thread)" in where, (name, where)
    # the cpu target's estimate is for its own 2 threads: a 1-thread timing is no ground truth for it
    assert m.target["estimate_error"] is None and m.target["estimate_ms"] > 0


def test_without_threads_the_targets_count_on_a_host_else_one(world):
    cpu = load_target("cpu")
    m = measure_build(world["arts"], world["teachers"], (16,), cpu)
    assert all(f"{cpu.threads} threads)" in w for w in _counts(m).values()), _counts(m)
    assert m.target["estimate_error"] is not None  # timed on the target's own threads: the estimate's check
    m4 = measure_build(world["arts"], [], (16,), load_target("cortex-m4"))
    assert all("1 thread)" in w for w in _counts(m4).values()), _counts(m4)
