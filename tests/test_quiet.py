"""Third-party noise goes to OUT/third_party.log, edgedistill's own output (and warnings) stays on the terminal."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import edgedistill
from edgedistill import quiet

PKG = Path(edgedistill.__file__).resolve().parent
NOISE = [
    "I0000 00:00:1795987113.341573   17711 flatbuffer_export.cc:4410] Estimated count of arithmetic ops: 308  ops",
    "I0000 00:00:1795987584.419854   22956 port.cc:153] oneDNN custom operations are on. You may see ...",
    "W1129 21:26:31.867000 22956 torch/utils/_pytree.py:630] <enum 'KernelPreference'> is an Enum subclass",
    "Failed to load /venv/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: Could not load",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "/usr/lib/python3.11/copyreg.py:105: FutureWarning: `isinstance(treespec, LeafSpec)` is deprecated\n"
    "  return cls.__new__(cls, *args)\n",
]
KEEP = [
    "error: Teacher file x.onnx does not exist.",
    "distill (T=3, α=0.5)         ━━━━━━━━━━ 1258/1258 0:00:04 loss 2.208  val 61.11%",
    f"{PKG / 'distill' / 'trainer.py'}:12: UserWarning: the schedule is shorter than warm-up",
    "WARNING: Distillation LOST to the no-teacher twin by 0.56 points",
]


@pytest.mark.parametrize("line", NOISE)
def test_noise_is_recognised(line):
    assert quiet.is_noise(line)


@pytest.mark.parametrize("line", KEEP)
def test_own_output_is_not_noise(line):
    assert not quiet.is_noise(line)


def test_capture_routes_fd_and_python_writes(tmp_path, capfd):
    cap = quiet.Capture().start()
    cap.destination = tmp_path
    try:
        os.write(2, (NOISE[0] + "\n").encode())  # what C++ writes on file descriptor 2
        os.write(2, b"a line from a C library that is not noise\n")
        # what Python's default warning display writes (pytest records warnings itself, so write it as it would)
        sys.stderr.write(warnings.formatwarning("deprecated thing", FutureWarning, "/usr/lib/python3.11/copyreg.py",
                                                105))
        sys.stderr.write(warnings.formatwarning("own warning", UserWarning, str(PKG / "gate.py"), 7))
        print("plain stderr text", file=sys.stderr)
    finally:
        cap.stop()
    err = capfd.readouterr().err
    log = (tmp_path / quiet.LOG_NAME).read_text()
    assert "Estimated count" in log and "deprecated thing" in log
    assert "Estimated count" not in err and "deprecated thing" not in err
    assert "not noise" in err and "own warning" in err and "plain stderr text" in err
    assert "own warning" not in log


def test_a_recheck_adds_to_the_published_log_and_the_log_is_no_artifact(tmp_path):
    """A build's re-check (nothing republished) used to replace OUT/third_party.log with its own near-empty log; and
    once a rewritten manifest listed the log, the next re-check found a changed "artifact" and retrained."""
    from edgedistill.pipeline.rundir import artifact_list

    (tmp_path / quiet.LOG_NAME).write_text("the training's converter lines\n")
    (tmp_path / "student_int8.tflite").write_bytes(b"x")
    cap = quiet.Capture().start()
    cap.destination = tmp_path
    try:
        os.write(2, (NOISE[0] + "\n").encode())
    finally:
        cap.stop()
    log = (tmp_path / quiet.LOG_NAME).read_text()
    assert log.startswith("the training's converter lines\n") and "Estimated count" in log
    assert [a["path"] for a in artifact_list(tmp_path)] == ["student_int8.tflite"]


def test_verbose_turns_the_capture_off():
    seen = {}

    @quiet.third_party_to_log
    def cmd():
        seen["active"] = quiet._active is not None

    cmd(verbose=True)
    assert seen["active"] is False
    cmd(verbose=False)
    assert seen["active"] is True and quiet._active is None


@pytest.mark.slow
def test_distill_qat_terminal_is_free_of_third_party_noise(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(PKG.parent), "OMP_NUM_THREADS": "1"}
    # a user's shell, not this test process: imports earlier in the suite set TF_CPP_MIN_LOG_LEVEL=1 (litert-torch),
    # which silences the converter's INFO lines in the child, so the log had nothing to keep
    for name in ("EDGEDISTILL_VERBOSE", "TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "GLOG_minloglevel"):
        env.pop(name, None)
    r = subprocess.run([sys.executable, "-m", "edgedistill", "distill", "--out", str(out), "--epochs", "1", "--qat",
                        "--qat-epochs", "1", "-T", "3", "--alpha", "0.5", "--target", "cortex-m4", "--formats",
                        "tflite"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    terminal = r.stdout + r.stderr
    for needle in ("Failed to load", "absl::InitializeLog", "oneDNN", "FutureWarning", "Estimated count",
                   "INFO: Created TensorFlow Lite"):
        assert needle not in terminal, needle
    assert "teacher logits" in r.stderr and "QAT" in terminal  # progress and the summary still show
    log = (out / quiet.LOG_NAME).read_text()
    assert any(n in log for n in ("Estimated count of arithmetic ops", "absl::InitializeLog", "treespec"))  # kept
    assert json.loads((out / "metrics.json").read_text())["student"]["test_acc"] > 0
