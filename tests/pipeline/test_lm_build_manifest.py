"""The causal-LM build's manifest (pipeline/lm_manifest.py) on a real tiny build (tests/pipeline/conftest.py's
`lm_build`): re-running the same command trains nothing and leaves every file as it was; a changed option retrains, and
an edited output no longer verifies; the manifest records no absolute path of the teacher's files."""

import json
import shutil
import time

from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.pipeline.report import TWIN_LOSS
from edgedistill.teachers.base import file_digest
from tiny_lm import LM_BUILD_ARGS, LM_BUILD_BUDGET


def _build(world, out, *extra):
    args = ["build", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]), "--out", str(out),
            "--budget", LM_BUILD_BUDGET, *LM_BUILD_ARGS, *extra]
    t0 = time.perf_counter()
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    return r, time.perf_counter() - t0


def _build_under(world, out, budget):
    args = ["build", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]), "--out", str(out),
            "--budget", budget, *LM_BUILD_ARGS]
    return CliRunner().invoke(main, args, catch_exceptions=False), None


def _files(out):
    """Every built file's sha256, inode and mtime; the gate's files (re-derived) and the command's third-party
    log (moved in after each command) left out."""
    return {p.name: (file_digest(p), p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()
            if p.is_file() and not p.name.startswith("gate.") and p.name != "third_party.log"}


def test_the_manifest_records_the_inputs_by_content(lm_build):
    m = json.loads((lm_build["out"] / "manifest.json").read_text())
    files = m["inputs"]["teachers"][0]["files"]
    assert sorted(f["path"] for f in files) == sorted(["config.json", "model.safetensors", "tokenizer.json"])
    for f in files:
        assert f["sha256"] == file_digest(lm_build["teacher"] / f["path"])
    assert m["inputs"]["data"]["source"] == str(lm_build["corpus"])
    assert m["inputs"]["data"]["documents"] == 120 and m["budget"]["min_tokens_per_s"] == 2
    listed = {a["path"] for a in m["artifacts"]}
    assert {"student_int8.tflite", "student_int8.onnx", "metrics.json", "tokenizer.json"} <= listed
    assert not any(n.startswith("gate.") for n in listed)


def test_an_unchanged_rerun_trains_nothing_and_a_changed_option_retrains(lm_build, tmp_path):
    out = tmp_path / "build"
    shutil.copytree(lm_build["out"], out)  # another directory, same files: `out` is no input
    before = _files(out)
    r, seconds = _build(lm_build, out)
    assert r.exit_code == lm_build["exit_code"] and "nothing changed: re-checked only" in r.output, r.output
    after = _files(out)
    assert after == before and "student_int8.tflite" in after  # same bytes, same inodes: nothing republished
    assert (out / "gate.md").read_text() == (lm_build["out"] / "gate.md").read_text()
    built_s = lm_build["metrics"]["timings"]["total_s"]
    print(f"first build {built_s:.1f} s, unchanged re-run {seconds:.1f} s")

    # another budget that picks the same decoder: nothing retrained; metrics.json's search and gate sections,
    # report.md and the manifest follow the new limits; a later re-run under that budget re-checks only
    r, _ = _build_under(lm_build, out, LM_BUILD_BUDGET + ",perplexity=1.01")
    assert r.exit_code == 1 and "nothing retrained" in r.output, r.output
    rebudgeted = _files(out)
    kept = {n for n, v in before.items() if rebudgeted.get(n) == v}
    assert kept == set(before) - {"metrics.json", "report.md", "manifest.json"} and "student_int8.tflite" in kept
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["search"]["budget"]["max_perplexity"] == 1.01
    assert json.loads((out / "manifest.json").read_text())["budget"]["max_perplexity"] == 1.01
    assert any(c["name"] == "test perplexity" and not c["passed"] for c in doc["gate"]["checks"]), doc["gate"]
    r, _ = _build_under(lm_build, out, LM_BUILD_BUDGET + ",perplexity=1.01")
    assert "nothing changed: re-checked only" in r.output and _files(out) == rebudgeted, r.output

    r, _ = _build(lm_build, out, "--steps", "20", "--qat-steps", "5")
    assert "built ->" in r.output, r.output
    redone = json.loads((out / "manifest.json").read_text())
    assert redone["input_hash"] != json.loads((lm_build["out"] / "manifest.json").read_text())["input_hash"]
    short = json.loads((out / "metrics.json").read_text())
    assert short["training"]["steps"] == 20
    # 20 steps is under half the causal LM's default length here (10 passes of 7 batches): a loss to the twin gets
    # the short-run note, and only a loss does
    lost = any(TWIN_LOSS in w for w in short["warnings"])
    assert lost == any(g["gain"] < 0 for g in short["gain_vs_twin"].values())
    assert lost == any("20 optimizer steps, under half the 70" in w for w in short["warnings"]), short["warnings"]


def test_an_edited_output_no_longer_verifies(lm_build, tmp_path):
    from edgedistill.pipeline.lm_manifest import unchanged

    out = tmp_path / "build"
    shutil.copytree(lm_build["out"], out)
    key = json.loads((out / "manifest.json").read_text())["input_hash"]
    assert unchanged(out, key) and not unchanged(out, "0" * 64)
    doc = json.loads((out / "metrics.json").read_text())
    doc["test"]["int8"]["perplexity"]["value"] = 1.0  # a hand edit the gate would otherwise pass
    (out / "metrics.json").write_text(json.dumps(doc))
    assert not unchanged(out, key)
