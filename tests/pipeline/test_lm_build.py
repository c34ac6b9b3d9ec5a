"""`edgedistill build --task causal-lm --target cortex-m4` on a tiny GPT-2 teacher (tests/tiny_lm.py): the decoder is
chosen under the microcontroller's budget (the largest that fits, at most half the teacher), trained and deployed
by the causal-LM chain, and the built file meets the budget it was chosen under; a budget no decoder meets is
refused in one paragraph before anything is written."""

import os

import pytest
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.data.tokenizer_base import StudentTokenizer
from edgedistill.profile.tflm_arena import tflm_arena
from edgedistill.targets import load_target
from tiny_lm import LM_BUILD_ARGS

ARGS = LM_BUILD_ARGS


@pytest.fixture
def world(lm_build):
    return lm_build


def test_the_largest_decoder_that_fits_is_chosen_and_trained(world):
    m = world["metrics"]
    s = m["search"]
    chosen = s["chosen"]
    assert chosen["fits"] and chosen["arch"].startswith("decoder(")
    assert chosen["params"] <= s["max_params"] == m["teacher"]["params"] // 2
    for c in s["candidates"]:  # the rule: nothing larger fits
        if c["params"] > chosen["params"]:
            assert c["violations"], c
    assert f"decoder(width={m['student']['width']}, depth={m['student']['depth']}" in chosen["arch"]
    assert m["student"]["params"] == chosen["params"]
    target = load_target("cortex-m4")
    assert s["budget"]["flash_bytes"] == target.model_flash_bytes and s["budget"]["min_tokens_per_s"] == 2
    assert "student:" in world["output"] and (world["out"] / "gate.md").is_file()
    # the summary's title names the command that ran (it said `edgedistill distill` for a build)
    assert "edgedistill build --task causal-lm" in world["output"] and "edgedistill distill" not in world["output"]
    mask = os.umask(0)
    os.umask(mask)  # every published file has the mode of a file the user writes (safetensors' own was 0600)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in world["out"].iterdir() if p.is_file()} == \
        {p.name: oct(0o666 & ~mask) for p in world["out"].iterdir() if p.is_file()}
    assert (world["out"] / "gate.xml").read_text().count("<testcase") == len(m["gate"]["checks"])


def test_the_built_file_meets_the_budget_it_was_chosen_under(world):
    """Independent figures: the file's size on disk and TFLite Micro's own arena for it, against the search's bound
    and the target's limits; the gate judges the estimated tokens/s on the microcontroller."""
    m, out = world["metrics"], world["out"]
    size = (out / "student_int8.tflite").stat().st_size
    tables = StudentTokenizer.load(out / "tokenizer.json").device_bytes()  # the device tokenizer's, beside the file
    chosen = m["search"]["chosen"]
    assert tables > 0 and chosen["tokenizer_bytes"] == tables
    assert size <= chosen["file_bytes"] and chosen["file_bytes"] + tables <= m["search"]["budget"]["flash_bytes"]
    arena = tflm_arena(out / "student_int8.tflite").total_bytes
    assert arena <= load_target("cortex-m4").ram_bytes
    gate = {c["name"]: c for c in m["gate"]["checks"]}
    assert gate["flash"]["judged"] and gate["flash"]["passed"] and gate["flash"]["value"] == size + tables
    assert f"{size:,} B" in gate["flash"]["how"] and f"{tables:,} B" in gate["flash"]["how"]
    assert gate["ram"]["judged"] and gate["ram"]["passed"] and gate["ram"]["value"] == arena
    t = m["speed"]["target"]
    assert "estimated on cortex-m4" in t["tokens_per_s_how"] and t["tokens_per_s"] == pytest.approx(
        1000.0 / t["estimate_ms"])
    assert gate["tokens/s"]["judged"] and gate["tokens/s"]["passed"] == (t["tokens_per_s"] >= 2)
    assert all(r["passed"] for r in m["int8"]["parity"] if r["checked"])


@pytest.mark.parametrize("budget, names", [("flash=2KB", "flash limit"), ("tokens_per_s=1000000", "latency limit")])
def test_a_budget_no_decoder_meets_is_one_paragraph_and_writes_nothing(world, tmp_path, budget, names):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["build", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]),
                                  "--out", str(out), "--budget", budget, *ARGS])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.output.strip().count("\n") == 0, r.output
    assert "No student fits the budget" in r.output and names in r.output, r.output
    assert not out.exists() and not out.with_name("out.partial").exists()


def _rerun(world, tmp_path, *extra):
    """The fixture's build copied to a folder of this test's, then built again with `extra` options."""
    import shutil

    out = tmp_path / "build"
    shutil.copytree(world["out"], out)
    r = CliRunner().invoke(main, ["build", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]),
                                  "--out", str(out), "--budget", "tokens_per_s=2", *ARGS, *extra])
    return r, out


def test_device_measures_the_int8_step_and_the_gate_judges_it(world, tmp_path):
    """`--device local` (this machine through the device runner's separate process, the real LiteRT interpreter) on
    an unchanged build: nothing is trained, the int8 window step runs on the device fed real test windows and
    reproduces this machine's logits, and the gate's tokens/s is the device's (1000 / its median ms a step)."""
    import json

    r, out = _rerun(world, tmp_path, "--device", "local")
    assert r.exit_code in (0, 1), r.output
    m = json.loads((out / "metrics.json").read_text())
    d = m["device"]
    assert d["status"] == "measured" and d["parity"]["passed"] and d["parity"]["samples"] >= 1 and d["judged"]
    assert d["tokens_per_s"] == pytest.approx(1000.0 / d["latency_ms"]["p50"])
    t = m["speed"]["target"]
    assert t["tokens_per_s"] == d["tokens_per_s"] and t["tokens_per_s_how"].startswith("measured-device (local")
    assert "estimated on cortex-m4" in t["tokens_per_s_how_host_or_estimate"]
    gate = {c["name"]: c for c in m["gate"]["checks"]}
    assert gate["tokens/s"]["value"] == d["tokens_per_s"] and "measured-device" in gate["tokens/s"]["how"]
    assert "measured-device" in (out / "gate.md").read_text()
    report = (out / "report.md").read_text()
    assert "Device (local" in report and "The gate judges this figure." in report
    assert "nothing changed: re-checked only" in r.output
    assert "tokens/s" in r.output and "(measured on the device local)" in r.output  # the terminal says where
    # the manifest still verifies the files as they are now (metrics.json and report.md rewritten): a third run
    # trains nothing again
    r2, _ = _rerun_in_place(world, out)
    assert r2.exit_code in (0, 1) and "nothing changed: re-checked only" in r2.output, r2.output


def _rerun_in_place(world, out, *extra):
    return CliRunner().invoke(main, ["build", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]),
                                     "--out", str(out), "--budget", "tokens_per_s=2", *ARGS, *extra]), out


def test_an_unreachable_device_is_a_warning_not_a_failure(world, tmp_path):
    import json

    r, out = _rerun(world, tmp_path, "--device", "ssh://nobody@127.0.0.1:9?connect_timeout=5")
    assert r.exit_code == world["exit_code"], r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["device"]["status"] == "missing" and m["device"]["error"]
    assert any(w.startswith("Device figures are missing") for w in m["warnings"])
    assert m["speed"]["target"]["tokens_per_s"] == world["metrics"]["speed"]["target"]["tokens_per_s"]
    assert "not measured" in (out / "report.md").read_text()


def test_an_unchanged_rebuild_replaces_nothing_so_a_users_file_there_does_not_block_it(world, tmp_path):
    """A breaking session's `gate RUN --junit RUN/junit.xml` and a notes file in the build's folder: the unchanged
    re-run was refused as if it would delete them. It replaces nothing, so it goes on and leaves them; only a build
    that retrains (and so replaces the folder) refuses, naming them."""
    import shutil

    out = tmp_path / "build"
    shutil.copytree(world["out"], out)
    (out / "notes.txt").write_text("mine")
    r, _ = _rerun_in_place(world, out)
    assert r.exit_code == world["exit_code"], r.output
    assert (out / "notes.txt").read_text() == "mine"
    r, _ = _rerun_in_place(world, out, "--seed", "7")  # another seed: retrained, so OUT would be replaced
    assert r.exit_code == 2 and "(notes.txt)" in r.output and "nothing was touched" in r.output, r.output
    assert (out / "notes.txt").read_text() == "mine" and not out.with_name("build.partial").exists()
