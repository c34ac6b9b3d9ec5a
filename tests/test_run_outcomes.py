"""What `distill` promises about its outcome, end to end on digits through the CLI: a parity failure is exit 1 with
the outputs kept in OUT.partial, `--overwrite` replaces the old output only after a run succeeded, and a student
below its no-teacher twin is a warning recorded in metrics.json."""

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.torch import save_file

from edgedistill.cli import main
from edgedistill.export.registry import EXPORTERS
from edgedistill.runtimes import LiteRTRunner
from edgedistill.teachers.base import file_digest
from tiny_models import tiny_cnn

QAT = ["distill", "--data", "builtin:digits", "--max-train", "400", "--epochs", "3", "--batch-size", "32", "--qat",
       "--qat-epochs", "1", "-T", "4", "--alpha", "0.9", "--calibration-size", "200", "--student",
       "cnn:width=8,depth=2", "-q"]


def _scramble_largest_weight(path) -> None:
    """Overwrite the bytes of the file's largest int8 weight tensor with random int8 values: a well-formed file
    that no longer computes what the QAT model computes (a damaged file, found by its bytes, not our exporter)."""
    interp = LiteRTRunner(path).interp
    filters = [op["inputs"][1] for op in interp._get_ops_details()
               if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    w = max((interp.get_tensor(i) for i in filters), key=lambda a: a.size)
    data = path.read_bytes()
    at = data.find(w.tobytes())
    assert w.dtype == np.int8 and w.size >= 100 and at >= 0
    noise = np.random.default_rng(0).integers(-127, 128, w.size, dtype=np.int64).astype(np.int8).tobytes()
    path.write_bytes(data[:at] + noise + data[at + len(noise):])


@pytest.fixture
def damaged_int8_tflite(monkeypatch):
    """The int8 TFLite exporter, followed by damage to the file it wrote."""
    entries = EXPORTERS._entries
    entry = entries["tflite-int8"]

    def write(*args, **kwargs):
        art = entry.obj.write(*args, **kwargs)
        _scramble_largest_weight(art.path)
        return dataclasses.replace(art, sha256=file_digest(art.path))

    monkeypatch.setitem(entries, "tflite-int8", dataclasses.replace(entry, obj=dataclasses.replace(entry.obj,
                                                                                                   write=write)))


@pytest.mark.slow
def test_parity_failure_exits_1_keeps_the_outputs_and_leaves_the_old_output_alone(tmp_path, monkeypatch,
                                                                                  damaged_int8_tflite):
    out, partial = tmp_path / "run", tmp_path / "run.partial"
    _earlier_run_output(out)
    r = CliRunner().invoke(main, [*QAT, "--out", str(out), "--overwrite"])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: Parity check failed") and "Traceback" not in r.output
    assert "tflite-int8 on litert" in r.output and "output steps apart" in r.output and "top-1 agreement" in r.output
    # the failed run's outputs are kept for inspection; the old output is untouched (--overwrite needs success)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "student_previous.txt"]
    assert {"student_int8.tflite", "student_int8.onnx", "metrics.json"} <= {p.name for p in partial.iterdir()}
    q = json.loads((partial / "metrics.json").read_text())["int8"]
    assert q["parity_passed"] is False
    rows = {(p["artifact"], p["runtime"]): p for p in q["parity"]}
    for key in (("tflite-int8", "litert"), ("tflite-int8", "tflm")):  # the damaged file fails on both runtimes
        row = rows[key]
        assert row["checked"] and not row["passed"]
        assert row["accuracy"] < row["reference_accuracy"] - 1.0 and row["top1_agreement"] < 90.0
    assert rows[("onnx-int8", "onnxruntime")]["passed"] and rows[("tflite-float", "litert")]["passed"]

    # the same command with an undamaged exporter succeeds, and only now replaces the old output
    monkeypatch.undo()
    r = CliRunner().invoke(main, [*QAT, "--out", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert not (out / "student_previous.txt").exists() and not partial.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no OUT.old* left behind
    assert json.loads((out / "metrics.json").read_text())["int8"]["parity_passed"] is True


def _earlier_run_output(out):
    """What --overwrite may replace: an earlier run's output (config.json + metrics.json), with a file of its own (a
    name a run writes, rundir.RUN_NAMES: a file of the user's there would be refused, naming it)."""
    out.mkdir()
    for name in ("config.json", "metrics.json"):
        (out / name).write_text("{}")
    (out / "student_previous.txt").write_text("the previous run")


def test_the_removed_accuracy_tolerance_is_refused_with_the_rule_that_replaced_it(tmp_path):
    """Parity no longer allows an accuracy loss: a config still setting quant.int8_tolerance is told the new rule,
    before anything is written."""
    out, cfg = tmp_path / "run", tmp_path / "c.toml"
    cfg.write_text("[quant]\nint8_tolerance = 1.0\n")
    r = CliRunner().invoke(main, [*QAT, "--out", str(out), "--config", str(cfg)])
    assert r.exit_code != 0 and "int8_tolerance was removed" in r.output and "99.9" in r.output, r.output
    assert "Traceback" not in r.output
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_overwrite_replaces_the_old_output_after_success(tmp_path):
    out = tmp_path / "run"
    _earlier_run_output(out)
    args = ["distill", "--data", "builtin:digits", "--max-train", "300", "--epochs", "1", "-T", "4", "--alpha", "0.9",
            "--student", "cnn:width=4,depth=2", "-q", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and "already exists" in r.output and (out / "student_previous.txt").exists()
    r = CliRunner().invoke(main, [*args, "--overwrite"])
    assert r.exit_code == 0, r.output
    assert not (out / "student_previous.txt").exists() and (out / "metrics.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.slow
def test_a_student_below_its_twin_is_a_warning_in_metrics(tmp_path):
    """A teacher with random weights and pure soft targets (alpha 1) teaches nothing about the labels: the twin,
    trained on the labels, ends far above the student, and the run says so instead of hiding it."""
    teacher = tmp_path / "random.safetensors"
    save_file(tiny_cnn(seed=3).state_dict(), str(teacher))
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--data", "builtin:digits", "--max-train", "600", "--epochs", "3",
                                  "--batch-size", "32", "-T", "4", "--alpha", "1", "--teacher", str(teacher),
                                  "--teacher-factory", "tiny_models:tiny_cnn", "--student", "cnn:width=8,depth=2",
                                  "-q", "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    student, twin = m["student"]["test_acc"], m["baseline"]["test_acc"]
    assert twin > student + 20  # the premise: the twin learned the labels, the student learned noise
    assert m["gain_vs_baseline"] == pytest.approx(student - twin)
    lost = [w for w in m["warnings"] if "LOST to the no-teacher twin" in w]
    assert len(lost) == 1 and f"by {twin - student:.2f} points" in lost[0]
    assert "LOST to the no-teacher twin" in r.output  # printed, not only recorded
