"""Budget strings, and the gate's verdicts, exit codes, JUnit XML and regression checks."""

import copy
import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from edgedistill.budget import Budget
from edgedistill.cli import main
from edgedistill.errors import ConfigError
from edgedistill.gate import Tolerance, gate, junit_xml, load_report, markdown, report_budget

REPORT = {
    "schema_version": 1,
    "usage": {"flash_bytes": 30000, "ram_bytes": 5000, "latency_ms": 2.0, "latency_how": "estimated",
              "macs": 150000, "accuracy": 91.0, "accuracy_drop": 2.0, "parity_passed": True, "ops_supported": True},
    "target": {"name": "cortex-m4", "fit": [{"check": "flash", "value": 30000, "limit": 1048576, "passed": True},
                                            {"check": "ram", "value": 5000, "limit": 262144, "passed": True}]},
}


def test_budget_units():
    b = Budget.parse("flash=64KiB, ram=0.5MB, latency=250us, macs=2M, accuracy=90%, drop=1.5")
    assert b == Budget(65536, 500000, 0.25, 2e6, 90.0, 1.5)
    assert Budget.parse("latency=2s").latency_ms == 2000 and Budget.parse("flash=100B").flash_bytes == 100


@pytest.mark.parametrize("text,needle", [("flash", "key=value"), ("speed=3", "key one of"),
                                         ("flash=lots", "not a number"), ("flash=3 furlongs", "Unknown unit"),
                                         ("accuracy=150", "above 100"), ("drop=101", "above 100"),
                                         ("accuracy=0.95", "accuracy=95%"), ("latency=-1ms", "is negative"),
                                         ("drop=-1", "is negative")])
def test_bad_budget_strings(text, needle):
    with pytest.raises(ConfigError, match=needle):
        Budget.parse(text)


def test_a_low_accuracy_limit_with_its_percent_sign_is_accepted():
    assert Budget.parse("accuracy=0.95%").min_accuracy == 0.95 and Budget.parse("accuracy=100").min_accuracy == 100


def test_tighten_keeps_the_stricter_limit():
    t = Budget(flash_bytes=1e6, ram_bytes=2e5).tighten(Budget(flash_bytes=5e4, ram_bytes=9e9, min_accuracy=80))
    assert (t.flash_bytes, t.ram_bytes, t.min_accuracy) == (5e4, 2e5, 80)


def test_a_microcontrollers_model_gets_its_share_of_flash_unless_the_user_names_a_limit():
    """cortex-m4 has 1 MB of flash and gives the model a quarter of it by default (model_flash_bytes); a user's flash
    limit replaces that default, up to the whole flash and never beyond; targets without a share keep their flash."""
    from edgedistill.targets import load_target

    m4 = load_target("cortex-m4")
    assert (m4.flash_bytes, m4.model_flash_bytes) == (1048576, 262144)
    assert Budget.for_target(m4, Budget()).flash_bytes == 262144
    assert Budget.for_target(m4, Budget.parse("flash=512KiB")).flash_bytes == 524288
    assert Budget.for_target(m4, Budget.parse("flash=100KiB")).flash_bytes == 102400
    assert Budget.for_target(m4, Budget.parse("flash=4MiB")).flash_bytes == 1048576
    assert Budget.for_target(m4, Budget.parse("ram=64KiB")).ram_bytes == 65536
    android = load_target("android")
    assert Budget.for_target(android, Budget()).flash_bytes == android.flash_bytes


def test_a_limit_beyond_the_targets_memory_is_named_with_the_limit_that_applies():
    """build and search keep the target's flash / RAM where the user's is larger (for_target); each such limit gets
    a note (a newcomer's flash=4MB on cortex-m4 was capped without a word)."""
    from edgedistill.targets import load_target

    m4 = load_target("cortex-m4")
    notes = Budget.parse("flash=4MB,ram=1MiB").looser_than(m4)
    assert notes == [f"flash=4,000,000 B is more than cortex-m4's 1,048,576 B of flash; the target's 1,048,576 B is "
                     "the limit.", f"ram=1,048,576 B is more than cortex-m4's {m4.ram_bytes:,} B of ram; the target's "
                     f"{m4.ram_bytes:,} B is the limit."]
    assert Budget.parse("flash=512KiB,ram=64KiB").looser_than(m4) == []
    assert Budget.parse("flash=4MB").looser_than(load_target("cpu")) == []  # no flash limit on the host


def test_search_says_when_a_flash_limit_beyond_the_chip_is_capped():
    r = CliRunner().invoke(main, ["search", "--target", "cortex-m4", "--data", "builtin:digits", "--budget", "flash=2MB"])
    assert r.exit_code == 0 and "more than cortex-m4's 1,048,576 B of flash" in r.output
    assert "flash <= 1,048,576" in r.output


def test_gate_of_a_report_judges_the_flash_the_build_searched_under():
    """`gate report.json` reads the build's own flash limit (search.budget), not only the device's whole flash."""
    rep = {**REPORT, "search": {"budget": {"flash_bytes": 20000, "ram_bytes": None}}}
    assert report_budget(rep) == Budget(flash_bytes=20000, ram_bytes=262144)
    assert not gate(rep, report_budget(rep)).passed and gate(REPORT, report_budget(REPORT)).passed


def test_gate_of_a_report_without_a_search_judges_the_targets_share_of_flash_for_the_model():
    """`distill --target cortex-m4` writes no search; its report records the target's model_flash_bytes, which the
    gate judges as a build would have (a 410 KB file on cortex-m4 is over the 256 KiB share)."""
    rep = copy.deepcopy(REPORT)
    rep["target"]["model_flash_bytes"] = 20000
    assert report_budget(rep).flash_bytes == 20000 and not gate(rep, report_budget(rep)).passed


@pytest.mark.parametrize("edit", [lambda s: s["budget"].update(flash_bytes="lots"),
                                  lambda s: s["budget"].update(flash_bytes=-5),
                                  lambda s: s["budget"].update(ram_bytes=float("nan")), lambda s: s.pop("budget"),
                                  lambda s: s.update(budget=[1])])
def test_a_damaged_search_budget_is_refused_not_loosened_to_the_whole_flash(tmp_path, edit):
    rep = {**copy.deepcopy(REPORT), "search": {"budget": {"flash_bytes": 20000, "ram_bytes": None}}}
    edit(rep["search"])
    path = tmp_path / "report.json"
    path.write_text(json.dumps(rep))
    with pytest.raises(ConfigError, match="search.budget"):
        load_report(path)


def test_gate_pass_and_fail():
    assert gate(REPORT, Budget(flash_bytes=1e6, ram_bytes=1e5)).passed
    v = gate(REPORT, Budget(flash_bytes=1e4, min_accuracy=95))
    failed = {c.name for c in v.checks if not c.passed}
    assert failed == {"flash", "accuracy"}


# every check, the usage value it reads, and a budget that makes the check apply
CHECKS = [("parity", "parity_passed", Budget()), ("ops", "ops_supported", Budget()),
          ("flash", "flash_bytes", Budget(flash_bytes=1e6)), ("ram", "ram_bytes", Budget(ram_bytes=1e6)),
          ("latency", "latency_ms", Budget(latency_ms=5)), ("macs", "macs", Budget(macs=1e9)),
          ("accuracy", "accuracy", Budget(min_accuracy=50)), ("accuracy_drop", "accuracy_drop", Budget(max_accuracy_drop=5))]


@pytest.mark.parametrize("how_missing", ["none", "absent"])
@pytest.mark.parametrize("name,key,budget", CHECKS, ids=[c[0] for c in CHECKS])
def test_missing_value_fails_rather_than_passing_as_zero(name, key, budget, how_missing):
    assert gate(REPORT, budget).passed  # with the value present this budget passes
    rep = copy.deepcopy(REPORT)
    if how_missing == "none":
        rep["usage"][key] = None
    else:
        del rep["usage"][key]
    v = gate(rep, budget)
    c = next(c for c in v.checks if c.name == name)  # the check is there, not dropped
    assert not c.passed and c.value is None and c.how == "missing"
    assert not v.passed and [x.name for x in v.checks if not x.passed] == [name]


@pytest.mark.parametrize("how_missing", ["none", "absent"])
@pytest.mark.parametrize("name,key", [("accuracy", "accuracy"), ("latency", "latency_ms"), ("flash", "flash_bytes")])
def test_missing_value_fails_its_baseline_regression(name, key, how_missing):
    assert gate(REPORT, Budget(), REPORT).passed
    for side in ("current", "baseline"):
        cur, base = copy.deepcopy(REPORT), copy.deepcopy(REPORT)
        rep = cur if side == "current" else base
        if how_missing == "none":
            rep["usage"][key] = None
        else:
            del rep["usage"][key]
        v = gate(cur, Budget(), base)
        c = next(c for c in v.checks if c.name == f"regression:{name}")
        assert not c.passed and c.how.startswith("missing"), (side, c)
        assert not v.passed


def test_a_zero_baseline_figure_is_compared_not_dropped():
    base = copy.deepcopy(REPORT)
    base["usage"]["latency_ms"] = 0.0
    c = next(c for c in gate(REPORT, Budget(), base).checks if c.name == "regression:latency")
    assert c.limit == 0.0 and not c.passed


def test_regression_against_baseline():
    worse = copy.deepcopy(REPORT)
    worse["usage"]["accuracy"] = 90.2  # 0.8 points worse
    assert not gate(worse, Budget(), REPORT, Tolerance(accuracy_points=0.5)).passed
    assert gate(worse, Budget(), REPORT, Tolerance(accuracy_points=1.0)).passed
    slower = copy.deepcopy(REPORT)
    slower["usage"]["latency_ms"] = 2.5
    assert not gate(slower, Budget(), REPORT, Tolerance.parse("latency=10%")).passed


def test_junit_is_valid_xml():
    root = ET.fromstring(junit_xml(gate(REPORT, Budget(flash_bytes=1e4))))
    assert root.tag == "testsuite" and root.get("failures") == "1"
    assert [tc.get("name") for tc in root if tc.find("failure") is not None] == ["flash"]


def test_cli_exit_codes_and_outputs(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT))
    r = CliRunner().invoke(main, ["gate", str(path)])
    assert r.exit_code == 0 and "PASS" in r.output
    junit, summary = tmp_path / "j.xml", tmp_path / "s.md"
    r = CliRunner().invoke(main, ["gate", str(path), "--budget", "flash=16KiB", "--junit", str(junit),
                                  "--summary", str(summary)])
    assert r.exit_code == 1 and "**FAIL**" in r.output
    assert ET.parse(junit).getroot().get("failures") == "1" and "FAIL" in summary.read_text()
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**REPORT, "schema_version": 0}))
    r = CliRunner().invoke(main, ["gate", str(old)])
    assert r.exit_code == 2 and "schema version 0" in r.output
    with pytest.raises(ConfigError, match="does not exist"):
        load_report(tmp_path / "none.json")


@pytest.mark.parametrize("text, needle", [("size=5%,size=6%", "given twice"), ("latency=10", "percent sign"),
                                          ("accuracy=-1", ">= 0"), ("size=nan%", ">= 0"), ("latency=x%", "not a number")])
def test_bad_tolerances_are_refused(text, needle):
    """A bare latency=10 meant +1000 %, a negative accuracy tolerance turned the rule around, a repeated key took
    the last value."""
    with pytest.raises(ConfigError, match=needle):
        Tolerance.parse(text)
    assert Tolerance.parse("accuracy=1,latency=20%,size=5%") == Tolerance(1.0, 0.2, 0.05)


def test_the_gate_table_says_missing_not_none():
    v = gate({**REPORT, "usage": {**REPORT["usage"], "flash_bytes": None}}, Budget(flash_bytes=65536))
    row = next(line for line in markdown(v).splitlines() if line.startswith("| flash "))
    assert "| missing |" in row and "None" not in markdown(v)


@pytest.mark.parametrize("edit, needle", [
    (lambda r: r.update(usage=[1, 2]), "`usage` is a list"),
    (lambda r: r["usage"].update(flash_bytes="30000"), "usage.flash_bytes is '30000'"),
    (lambda r: r["usage"].update(flash_bytes=-5), "usage.flash_bytes is -5"),
    (lambda r: r["usage"].update(accuracy=True), "usage.accuracy is True"),
    (lambda r: r["usage"].update(parity_passed="yes"), "usage.parity_passed"),
    (lambda r: r["target"].update(fit={"flash": 1}), "target.fit"),
    (lambda r: r["target"]["fit"][1].update(limit="256KiB"), "ram limit is '256KiB'"),
    (lambda r: r["usage"].update(accuracy=150), "a percentage in [0, 100]"),
    (lambda r: r["usage"].update(accuracy_n=0.5), "a whole number of test samples"),
    (lambda r: r["usage"].update(flash_bytes=10 ** 400), "a finite number"),
    (lambda r: r["usage"].update(teacher_accuracy=95.0, accuracy_drop=-5.0), "contradicts itself"),
    (lambda r: r.update(usage=None), "`usage` is null"),
    (lambda r: r.update(target="cortex-m4"), "`target` is a string")])
def test_a_hand_edited_report_with_wrong_types_is_refused_in_one_paragraph(tmp_path, edit, needle):
    """A report with a string, a negative size or a list where the gate reads a number used to traceback (or pass)."""
    rep = copy.deepcopy(REPORT)
    edit(rep)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(rep))
    r = CliRunner().invoke(main, ["gate", str(path)])
    assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output, r.output
    path.write_text(json.dumps(REPORT))
    assert CliRunner().invoke(main, ["gate", str(path)]).exit_code == 0


def test_a_report_without_any_size_limit_passes_with_a_warning_that_says_so():
    bare = {"schema_version": 1, "usage": {"parity_passed": True, "ops_supported": True}}
    v = gate(bare, report_budget(bare))
    assert v.passed and any("No flash or RAM limit was judged" in w for w in v.warnings)
    assert not gate(REPORT, report_budget(REPORT)).warnings


def test_summary_appends_and_the_help_says_so(tmp_path):
    """CI step summaries collect several steps' Markdown in one file: --summary keeps what is there."""
    path, summary = tmp_path / "report.json", tmp_path / "summary.md"
    path.write_text(json.dumps(REPORT))
    summary.write_text("## earlier step\n")
    for _ in range(2):
        assert CliRunner().invoke(main, ["gate", str(path), "--summary", str(summary)]).exit_code == 0
    text = summary.read_text()
    assert text.startswith("## earlier step\n") and text.count("### edgedistill gate: PASS") == 2
    help_text = " ".join(CliRunner().invoke(main, ["gate", "--help"]).output.split())
    assert "Append the Markdown summary" in help_text and "Write a Markdown summary" not in help_text


def test_tokens_per_second_is_a_floor_that_tightening_raises():
    b = Budget.parse("tokens_per_s=50")
    assert b.min_tokens_per_s == 50 and Budget.parse("tokens_per_s=2k").min_tokens_per_s == 2000
    assert b.tighten(Budget(min_tokens_per_s=80)).min_tokens_per_s == 80
    assert b.tighten(Budget(min_tokens_per_s=20)).min_tokens_per_s == 50


def test_a_run_directory_is_gated_on_the_file_its_run_wrote(tmp_path):
    """`gate RUN_DIR` reads report.json (a classifier run, whose metrics.json is no causal-LM's) or a causal-LM run's
    metrics.json, judging exactly what the file form judges; a directory holding neither is refused (exit 2)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps(REPORT))
    (run / "metrics.json").write_text(json.dumps({"accuracy": 91.0}))
    for args in ([], ["--budget", "flash=16KiB"]):
        by_dir = CliRunner().invoke(main, ["gate", str(run), *args])
        by_file = CliRunner().invoke(main, ["gate", str(run / "report.json"), *args])
        assert by_dir.exit_code == by_file.exit_code == (1 if args else 0) and by_dir.output == by_file.output
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "metrics.json").write_text(json.dumps({"task": "causal-lm", "test": {"float": {"perplexity": {"value": 9.0}}},
                                                 "gain_vs_twin": {"float": {"gain": 1.0, "low": 0.5, "high": 1.5,
                                                                            "documents": 20, "beyond_noise": True}}}))
    for budget, code in (("perplexity=10", 0), ("perplexity=8", 1)):
        by_dir = CliRunner().invoke(main, ["gate", str(lm), "--budget", budget])
        by_file = CliRunner().invoke(main, ["gate", str(lm / "metrics.json"), "--budget", budget])
        assert by_dir.exit_code == by_file.exit_code == code and by_dir.output == by_file.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["gate", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "without a report.json" in r.output and "Traceback" not in r.output


def test_an_unfinished_run_and_a_directory_holding_two_runs_are_refused(tmp_path):
    """A run that stopped or failed parity keeps its work in OUT.partial: the gate refuses it (directory or a file in
    it), naming the finished directory, rather than passing figures that were never published; a directory holding
    both a causal-LM metrics.json and a classifier report.json is refused as ambiguous. Exit 2, one paragraph."""
    partial = tmp_path / "run.partial"
    partial.mkdir()
    (partial / "report.json").write_text(json.dumps(REPORT))
    for target in (partial, partial / "report.json"):
        r = CliRunner().invoke(main, ["gate", str(target)])
        assert r.exit_code == 2 and "unfinished run" in r.output and str(tmp_path / "run") in r.output, r.output
        assert "Traceback" not in r.output
    both = tmp_path / "both"
    both.mkdir()
    (both / "report.json").write_text(json.dumps(REPORT))
    (both / "metrics.json").write_text(json.dumps({"task": "causal-lm"}))
    r = CliRunner().invoke(main, ["gate", str(both)])
    assert r.exit_code == 2 and "which run to gate is not clear" in r.output
    assert CliRunner().invoke(main, ["gate", str(both / "report.json")]).exit_code == 0


def test_a_causal_lm_baseline_for_a_classifier_report_is_refused_by_kind(tmp_path):
    """A classifier gate given a causal-LM run as --baseline used to say "schema version None ... Re-run the build";
    it now says the two runs are of different kinds."""
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "metrics.json").write_text(json.dumps({"task": "causal-lm"}))
    r = CliRunner().invoke(main, ["gate", str(tmp_path / "report.json"), "--baseline", str(lm)])
    assert r.exit_code == 2 and "same kind" in r.output and "schema version" not in r.output, r.output


def test_a_file_that_is_no_report_gets_its_own_one_line_refusal(tmp_path):
    """A classifier run's metrics.json points at the report.json the gate reads (not "was it written by distill
    --qat?"), a JSON list or a metrics.json with a `task` is not called a report of schema version None."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"schema_version": 1, "teacher": {}, "student": {"test_acc": 9}}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "task.json").write_text(json.dumps({"task": "classification", "student": {}}))
    cases = [(run / "metrics.json", "report.json, which `build` and `distill --qat` write, and this run has none"),
             (tmp_path / "list.json", "holds a list, not a report"),
             (tmp_path / "task.json", "is a classifier run's metrics.json")]
    for path, needle in cases + [(run / "metrics.json", f"gate {run / 'report.json'} or the run directory {run}")]:
        if path == run / "metrics.json" and needle.startswith("gate "):
            (run / "report.json").write_text(json.dumps(REPORT))  # a --qat run: its report is beside it
        r = CliRunner().invoke(main, ["gate", str(path)])
        assert r.exit_code == 2 and needle in r.output and len(r.output.strip().splitlines()) == 1, r.output
        assert "schema version" not in r.output and "usage" not in r.output, r.output
