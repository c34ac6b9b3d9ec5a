"""`edgedistill gate OUT/metrics.json` on a real causal-LM build (tests/pipeline/conftest.py's `lm_build`): with no
options it judges the run as the build's own gate did; `--budget` adds perplexity, next-token top-1 / top-3,
tokens/s, latency, MACs per token, flash and RAM limits with the classifier gate's exit codes (0 pass, 1 a row
failed, 2 refused)."""

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from edgedistill.cli import main


def _gate(path, *args, tmp_path):
    junit = tmp_path / "gate.xml"
    r = CliRunner().invoke(main, ["gate", str(path), "--junit", str(junit), *args])
    rows = {}
    if junit.is_file():
        for case in ET.parse(junit).getroot():
            rows[case.get("name")] = case.find("failure") is None
    return r, rows


def test_gate_with_no_options_judges_the_run_as_its_build_did(lm_build, tmp_path):
    r, rows = _gate(lm_build["out"] / "metrics.json", tmp_path=tmp_path)
    built = lm_build["metrics"]["gate"]["checks"]
    assert r.exit_code == lm_build["exit_code"], r.output
    assert rows == {c["name"]: c["passed"] for c in built}
    assert (lm_build["out"] / "gate.md").read_text() == r.output.rstrip("\n") + "\n"


def test_perplexity_and_top_k_limits_judge_the_deployed_int8_figures(lm_build, tmp_path):
    int8 = lm_build["metrics"]["test"]["int8"]
    ppl, top1, top3 = int8["perplexity"]["value"], int8["top1"], int8["top3"]
    met = f"perplexity={ppl * 1.01:.6g},top1={top1 - 0.5:.4g}%,top3={top3 - 0.5:.4g}%"
    r, rows = _gate(lm_build["out"] / "metrics.json", "--budget", met, tmp_path=tmp_path)
    assert rows["test perplexity"] and rows["next-token top-1"] and rows["next-token top-3"], r.output
    assert f"{ppl:.4g}" in r.output and "int8 QAT model" in r.output
    missed = f"perplexity={ppl * 0.99:.6g},top1={min(top1 + 0.5, 100):.4g}%,top3={min(top3 + 0.5, 100):.4g}%"
    r, rows = _gate(lm_build["out"] / "metrics.json", "--budget", missed, tmp_path=tmp_path)
    assert r.exit_code == 1 and not rows["test perplexity"] and not rows["next-token top-1"], r.output
    assert top3 == 100 or not rows["next-token top-3"]


@pytest.mark.parametrize("budget, row", [("tokens_per_s=1000000", "tokens/s"), ("latency=1us", "latency per token"),
                                         ("flash=1KB", "flash"), ("ram=1KB", "ram"), ("macs=1", "macs per token")])
def test_speed_and_size_limits_fail_their_row(lm_build, tmp_path, budget, row):
    r, rows = _gate(lm_build["out"] / "metrics.json", "--budget", budget, tmp_path=tmp_path)
    assert r.exit_code == 1 and rows[row] is False, r.output


def test_the_macs_row_is_the_searched_students_count_per_decoder_step(lm_build, tmp_path):
    macs = lm_build["metrics"]["speed"]["target"]["macs"]
    assert macs == lm_build["metrics"]["search"]["chosen"]["macs"] > 0  # the file's count is what the search costed
    r, rows = _gate(lm_build["out"] / "metrics.json", "--budget", f"macs={macs}", tmp_path=tmp_path)
    assert rows["macs per token"], r.output


def test_a_classifier_limit_on_a_causal_lm_run_fails_as_missing(lm_build, tmp_path):
    r, rows = _gate(lm_build["out"] / "metrics.json", "--budget", "accuracy=50%", tmp_path=tmp_path)
    assert r.exit_code == 1 and rows["accuracy"] is False and "no class accuracy" in r.output, r.output


def test_a_baseline_or_a_hand_edited_run_is_refused_in_one_paragraph(lm_build, tmp_path):
    metrics = lm_build["out"] / "metrics.json"
    r = CliRunner().invoke(main, ["gate", str(metrics), "--baseline", str(metrics)])
    assert r.exit_code == 2 and "--baseline" in r.output and r.output.strip().count("\n") == 0, r.output
    doc = json.loads(metrics.read_text())
    doc["test"]["int8"]["top1"] = "high"
    edited = tmp_path / "metrics.json"
    edited.write_text(json.dumps(doc))
    r = CliRunner().invoke(main, ["gate", str(edited)])
    assert r.exit_code == 2 and "test.int8.top1" in r.output and "Traceback" not in r.output, r.output


def test_a_hand_edited_macs_figure_is_refused(lm_build, tmp_path):
    doc = json.loads((lm_build["out"] / "metrics.json").read_text())
    doc["speed"]["target"]["macs"] = "many"
    edited = tmp_path / "metrics.json"
    edited.write_text(json.dumps(doc))
    r = CliRunner().invoke(main, ["gate", str(edited), "--budget", "macs=2M"])
    assert r.exit_code == 2 and "speed.target.macs" in r.output and "Traceback" not in r.output, r.output


def test_a_loss_to_the_twin_is_warned_and_a_full_length_run_gets_no_short_run_note(lm_build):
    from edgedistill.pipeline.report import TWIN_LOSS

    m = lm_build["metrics"]
    losses = [k for k, g in m["gain_vs_twin"].items() if g["gain"] < 0]
    assert sum(TWIN_LOSS in w for w in m["warnings"]) == len(losses), m["warnings"]
    # "optimizer steps, under half": the short-run note's own words (the slower-than-teacher warning, which a loaded
    # host's timings can raise, also says "under half")
    assert m["training"]["steps"] == 80  # 80 of 70 steps
    assert not any("optimizer steps, under half" in w for w in m["warnings"]), m["warnings"]


def test_the_console_ends_the_gate_rows_with_one_verdict_line(lm_build):
    """A newcomer skimmed `gate PASS: int8 perplexity rise…` first and nearly missed two FAIL rows below it: the
    causal-LM build now prints the classifier build's overall line, naming the failed rows."""
    m = lm_build["metrics"]
    failed = [c["name"] for c in m["gate"]["checks"] if c.get("judged", True) and not c["passed"]]
    want = f"### edgedistill gate: {'PASS' if m['gate']['passed'] else 'FAIL'}" + (
        f" ({', '.join(failed)})" if failed else "")
    assert want in lm_build["output"].splitlines(), lm_build["output"]


@pytest.mark.parametrize("edit, where", [
    (lambda i: i.update(parity=5), "int8.parity"),
    (lambda i: i.update(causality=True), "int8.causality"),
    (lambda i: i.update(causality=[{"passed": "yes"}]), "int8.causality"),
    (lambda i: i.update(parity_passed="false"), "int8.parity_passed"),
    (lambda i: i.update(kv_cache={"parity": 3}), "int8.kv_cache.parity"),
])
def test_a_hand_edited_parity_record_is_refused(lm_build, tmp_path, edit, where):
    """The LM gate's parity row reads int8.parity, .causality and .kv_cache.parity: a wrong type there crashed the
    gate (a traceback, exit 1: read as an ordinary FAIL) or passed it ("false" as a string); it is refused."""
    doc = json.loads((lm_build["out"] / "metrics.json").read_text())
    edit(doc["int8"])
    edited = tmp_path / "metrics.json"
    edited.write_text(json.dumps(doc))
    r = CliRunner().invoke(main, ["gate", str(edited)])
    assert r.exit_code == 2 and where in r.output and "Traceback" not in r.output, r.output


def test_a_failed_causality_row_fails_the_parity_row(lm_build, tmp_path):
    doc = json.loads((lm_build["out"] / "metrics.json").read_text())
    assert doc["int8"]["causality"] and all(r["passed"] for r in doc["int8"]["causality"])
    doc["int8"]["causality"][0]["passed"] = False
    edited = tmp_path / "metrics.json"
    edited.write_text(json.dumps(doc))
    r, rows = _gate(edited, tmp_path=tmp_path)
    assert r.exit_code == 1 and rows["parity"] is False, r.output
