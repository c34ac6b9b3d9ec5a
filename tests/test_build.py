"""`edgedistill build` end to end on digits: manifest, search in the report, gate, re-run reuse, fail-fast on an
infeasible budget, and resume after SIGINT giving the same artifacts as an uninterrupted build."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.teachers import TeacherSpec, load_teacher
from edgedistill.teachers.base import file_digest

# A fixed objective (-T / --alpha): the automatic choice of T and alpha took 45 % of this build's time; it is run by
# test_cli_distill.py and by the README's own build (test_readme_commands.py).
ARGS = ["build", "--data", "builtin:digits", "--target", "cortex-m4", "--epochs", "3", "--qat-epochs", "1", "-q",
        "-T", "4", "--alpha", "0.9"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "b"
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


@pytest.mark.slow
def test_build_outputs(built):
    out, output = built
    assert f"report: {out / 'report.html'}" in output  # where to look next, named (a newcomer had to find it)
    m = json.loads((out / "manifest.json").read_text())
    assert m["inputs"]["data"]["source"] == "builtin:digits" and len(m["inputs"]["data"]["train_sha256"]) == 64
    assert m["inputs"]["teachers"][0]["files"][0]["sha256"]
    assert m["versions"]["torch"].startswith("2.13") and m["config"]["quant"]["qat"] is True
    names = {a["path"] for a in m["artifacts"]}
    assert {"student_int8.tflite", "student_int8.onnx", "student.safetensors", "metrics.json"} <= names
    for a in m["artifacts"]:
        assert file_digest(out / a["path"]) == a["sha256"]
    rep = json.loads((out / "report.json").read_text())
    s = rep["search"]
    assert s["chosen"]["fits"] and len(s["candidates"]) > 20
    assert all(c["params"] <= s["chosen"]["params"] for c in s["candidates"] if c["fits"])
    # the student is capped at half the teacher's parameters, counted here from the teacher module itself
    teacher = load_teacher(TeacherSpec("builtin:digits")).torch_module()
    cap = sum(p.numel() for p in teacher.parameters()) // 2
    assert s["max_params"] == cap
    assert s["chosen"]["params"] <= cap
    arch = json.loads((out / "metrics.json").read_text())["student"]["arch"]  # the student actually trained
    assert "{family}(width={width}, depth={depth})".format(**arch) == s["chosen"]["arch"]
    assert all(("params" in c["violations"]) == (c["params"] > cap) for c in s["candidates"])
    # on cortex-m4 the cap decides: a larger candidate fits every device limit and is refused only for its size
    assert any(c["violations"] == ["params"] and c["params"] > s["chosen"]["params"] for c in s["candidates"])
    assert "## Student search" in (out / "report.md").read_text()
    assert (out / "gate.xml").exists() and "PASS" in (out / "gate.md").read_text() and "gate: PASS" in output


@pytest.mark.slow
def test_report_says_where_accuracy_and_int8_went(built):
    """Per class: each model's per-class accuracies, weighted by the class counts, give back its overall accuracy and
    the deployed file's confusion rows sum to the class counts; per layer: every int8 op has an SQNR; the search's
    budget and all seven charts are in the page."""
    out, _ = built
    rep = json.loads((out / "report.json").read_text())
    pc = rep["per_class"]
    counts = pc["counts"]
    assert sum(counts) == 359 and pc["class_names"] == [str(i) for i in range(10)]
    overall = {m["name"]: m["accuracy"] for m in rep["models"]}
    overall["int8 (deployed)"] = rep["summary"]["accuracy_deployed"]
    assert set(pc["accuracy"]) == {"teacher", "no-teacher twin (float)", "distilled (float)", "int8 (deployed)"}
    for name, per in pc["accuracy"].items():
        assert abs(sum(a * n for a, n in zip(per, counts)) / sum(counts) - overall[name]) < 1e-4, name
    assert [sum(row) for row in pc["confusion"]] == counts
    layers = rep["int8_layers"]
    assert layers["layers"][0]["name"] == "input" and len(layers["layers"]) > 5
    assert all(-120 <= x["sqnr_db"] <= 120 and 0 <= x["saturation"] <= 1 for x in layers["layers"])
    assert rep["search"]["budget"]["flash_bytes"] == 262144  # cortex-m4: a quarter of its 1 MB flash (model_flash_bytes)
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## Per class" in md and "## Per layer" in md and "**Where int8 went**" in md
    assert page.count('<svg class="plot"') == 7


@pytest.mark.slow
def test_microcontroller_accuracy_is_tflite_micro_arithmetic(built):
    """cortex-m4 runs TFLite Micro: the reported deployed accuracy is the int8 file on TFLite's reference kernels
    (TFLite Micro's rounding) over the whole test split, not XNNPACK's, its parity is judged like every other row,
    and the report says so."""
    out, _ = built
    rep = json.loads((out / "report.json").read_text())
    rows = {(p["artifact"], p["runtime"]): p for p in rep["parity"]}
    ref = rows[("tflite-int8", "litert-reference")]
    assert ref["samples"] == rows[("tflite-int8", "litert")]["samples"] == 359  # the whole split
    assert ref["checked"] and ref["passed"]  # and judged against the QAT model computing TFLite Micro's arithmetic
    assert rep["summary"]["accuracy_deployed_runtime"] == "litert-reference"
    assert rep["summary"]["accuracy_deployed"] == rep["usage"]["accuracy"] == ref["accuracy"]
    assert "deployed int8 (on LiteRT's reference kernels: TFLite Micro's arithmetic within one code)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_rerun_with_nothing_changed_only_rechecks(built):
    out, _ = built
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".tflite", ".safetensors")}
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert r.exit_code == 0 and "nothing changed: re-checked only" in r.output
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".tflite", ".safetensors")}
    assert before == after


@pytest.mark.slow
def test_rerun_notices_a_corrupted_artifact_and_restores_its_bytes(built):
    out, _ = built
    manifest = json.loads((out / "manifest.json").read_text())
    want = next(a["sha256"] for a in manifest["artifacts"] if a["path"] == "student_int8.tflite")
    tfl = out / "student_int8.tflite"
    damaged = bytearray(tfl.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    tfl.write_bytes(bytes(damaged))
    assert file_digest(tfl) != want
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "nothing changed" not in r.output  # it did not take the damaged file as verified
    assert file_digest(tfl) == want  # the same seed and settings rebuild exactly the bytes the manifest records
    for a in json.loads((out / "manifest.json").read_text())["artifacts"]:
        assert file_digest(out / a["path"]) == a["sha256"], a["path"]


@pytest.mark.slow
def test_build_with_a_device_puts_device_figures_in_the_report(built):
    """`--device local` runs the device benchmark in a separate process on the deployed int8 file with real test
    samples; its parity and latency land in the report (and its latency feeds the gate)."""
    out, _ = built
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out), "--device", "local"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    d = rep["device"]
    assert d["status"] == "measured" and d["parity"]["passed"] and d["parity"]["samples"] == 100
    assert rep["usage"]["latency_how"] == "measured-device" and rep["usage"]["latency_ms"] == d["latency_ms"]["p50"]
    assert "## Measured on the device" in (out / "report.md").read_text()
    assert "Measured on the device" in (out / "report.html").read_text()


@pytest.mark.slow
def test_unreachable_device_marks_figures_missing_and_keeps_the_host_report(built):
    out, _ = built
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out), "--device", "ssh://nobody@127.0.0.1:1?connect_timeout=2"])
    assert r.exit_code == 0, r.output  # the host-side gate still decides
    rep = json.loads((out / "report.json").read_text())
    assert rep["device"]["status"] == "missing" and "cannot reach the device" in rep["device"]["error"]
    assert "latency_ms" not in rep["device"]
    assert rep["usage"]["latency_how"] != "measured-device"
    assert any("Device figures are missing" in w for w in rep["warnings"]) and "MISSING" in r.output


@pytest.mark.slow
def test_gate_failure_is_the_exit_code(built):
    """A tighter accuracy budget picks the same student: nothing is retrained, the report's search section records
    the new budget, and the gate fails on it with exit 1."""
    out, _ = built
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".tflite", ".safetensors")}
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out), "--budget", "accuracy=99.99%"])
    assert r.exit_code == 1 and "**FAIL**" in r.output
    assert "nothing retrained" in r.output
    assert before == {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".tflite", ".safetensors")}
    assert json.loads((out / "report.json").read_text())["search"]["budget"]["min_accuracy"] == pytest.approx(99.99)
    assert json.loads((out / "manifest.json").read_text())["budget"]["min_accuracy"] == pytest.approx(99.99)
    for a in json.loads((out / "manifest.json").read_text())["artifacts"]:  # the rewritten report's digests
        assert file_digest(out / a["path"]) == a["sha256"], a["path"]


@pytest.mark.parametrize("limit, needle", [("flash=2KB", "flash"), ("latency=1us", "latency")])
def test_infeasible_budget_fails_before_training(tmp_path, limit, needle):
    """A latency limit no candidate's estimate meets used to train for minutes and then fail the gate."""
    out = tmp_path / "never"
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out), "--budget", limit])
    assert r.exit_code == 2 and r.output.startswith("error: No student fits") and needle in r.output
    assert not out.exists() and not (tmp_path / "never.partial").exists()


def test_bad_budget_string(tmp_path):
    r = CliRunner().invoke(main, [*ARGS, "--out", str(tmp_path / "x"), "--budget", "flash=3 furlongs"])
    assert r.exit_code == 2 and "Unknown unit" in r.output  # 2: an input error, not a FAIL


def test_a_tokens_per_second_budget_on_a_classifier_is_refused_before_training(tmp_path):
    """It used to train, then fail the gate on a figure a classifier never has."""
    out = tmp_path / "x"
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out), "--budget", "tokens_per_s=100"])
    assert r.exit_code == 2 and "tokens_per_s=100" in r.output and "causal" in r.output, r.output
    assert not out.exists() and not (tmp_path / "x.partial").exists()


def test_int16_for_an_op_the_student_lacks_is_refused_before_training(tmp_path):
    """A CNN has no LayerNorm: refused before the teacher pass and the float training (it came after them)."""
    cfg = tmp_path / "q16.toml"
    cfg.write_text('[quant]\nint16 = ["layernorm"]\n')
    out = tmp_path / "x"
    r = CliRunner().invoke(main, ["distill", "--data", "builtin:digits", "--qat", "--epochs", "1", "--threads", "1",
                                  "--config", str(cfg), "--out", str(out), "-q"])
    assert r.exit_code != 0 and "quant.int16" in r.output and "Traceback" not in r.output, r.output
    assert not out.exists() and not list(tmp_path.glob("x.partial/checkpoints/*.pt"))


@pytest.mark.slow
def test_sigint_then_resume_gives_the_same_artifacts(tmp_path, built):
    out = tmp_path / "b"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "edgedistill", *ARGS, "--epochs", "3", "--out", str(out)]
    # Ctrl-C in a terminal: the child must start with SIGINT's default disposition. A job launched with `&` from a
    # non-interactive shell (how CI runners often start scripts) inherits SIGINT *ignored*, and Python then never
    # raises KeyboardInterrupt; the build would finish and exit 0, which is what the shell asked for, not a bug.
    # A handled (not ignored) signal is reset to its default at exec, so handle it here while the child starts.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    finally:
        signal.signal(signal.SIGINT, previous)
    ckpt = tmp_path / "b.partial" / "checkpoints" / "student.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "the build never wrote a training checkpoint"
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 130 and "interrupted" in output
    assert not (out / "manifest.json").exists()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["student"]["resumed_from_epoch"] >= 1
    reference, _ = built  # the uninterrupted build with the same seed and settings
    for name in ("student.safetensors", "student_int8.tflite", "student_int8.onnx"):
        assert file_digest(out / name) == file_digest(reference / name), name


def test_a_build_of_other_data_is_never_replaced(tmp_path):
    """Two data paths with one name (a/feat, b/feat) share build's default directory: the second build is refused
    in one paragraph, exit 2, and the first build's files are left as they were."""
    out = tmp_path / "b"
    out.mkdir()
    files = {"manifest.json": json.dumps({"inputs": {"data": {"source": "a/feat"}}}), "config.json": "{}",
             "metrics.json": "{}", "student_int8.tflite": "mine"}
    for name, text in files.items():
        (out / name).write_text(text)
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "holds a build of other data (a/feat)" in r.output and len(r.output.strip().splitlines()) == 1
    assert {p.name: p.read_text() for p in out.iterdir()} == files
    assert not (tmp_path / "b.partial").exists() and not (tmp_path / "b.lock").exists()


def test_a_build_for_another_target_is_never_replaced(tmp_path):
    """An --out given to builds for two targets: the second is refused in one paragraph, exit 2, and the first
    target's build is left as it was (it was replaced without a word)."""
    out = tmp_path / "b"
    out.mkdir()
    files = {"manifest.json": json.dumps({"inputs": {"data": {"source": "builtin:digits"}},
                                          "config": {"target": "android"}}),
             "config.json": "{}", "metrics.json": "{}", "student_int8.tflite": "mine"}
    for name, text in files.items():
        (out / name).write_text(text)
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "holds a build for another target (android)" in r.output and "cortex-m4 here" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert {p.name: p.read_text() for p in out.iterdir()} == files
    assert not (tmp_path / "b.partial").exists() and not (tmp_path / "b.lock").exists()


@pytest.mark.parametrize("manifest", ['{"config": [1, 2]}', '{"config": "cortex-m4"}', '{"inputs": null}',
                                      '{"inputs": {"data": []}}', '5', '{not json', '{"config": {"target": 5}}'])
def test_a_manifest_of_odd_shape_is_refused_in_one_paragraph(tmp_path, manifest):
    """A hand-written or damaged manifest.json in --out crashed the build with a traceback (the target / data check
    read it before the run directory's own checks); now a folder edgedistill did not write is refused as such, and
    one that it did (config.json, metrics.json) with an unreadable manifest is no build of other data or target."""
    out = tmp_path / "b"
    out.mkdir()
    (out / "manifest.json").write_text(manifest)
    r = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert r.exit_code == 2, r.output  # a traceback exits 1
    assert "not an edgedistill output" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert [p.name for p in out.iterdir()] == ["manifest.json"]
