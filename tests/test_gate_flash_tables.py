"""Flash is the model file plus the tables the student's tokenizer reads on the device: the report records both parts
and their sum, the gate judges the sum and names both parts, and a report whose parts contradict its sum is refused."""

import copy
import json
import xml.etree.ElementTree as ET

from click.testing import CliRunner

from edgedistill.budget import Budget
from edgedistill.cli import main
from edgedistill.gate import gate, junit_xml, markdown
from edgedistill.gate_lm import speed_rows
from edgedistill.pipeline.report import target_fit_warnings
from edgedistill.report.render import to_html, to_markdown
from edgedistill.report.schema import assemble

FILE, TABLES, LIMIT = 10_000, 8_000, 16_000  # the file alone fits the limit; file + tables do not


def _report(tables):
    metrics = {"teacher": {"params": 1000, "test_acc": 95.0}, "student": {"params": 100, "test_acc": 90.0},
               "int8": {"parity_passed": True, "parity": []}}
    profiles = {"tflite-int8": {"bytes": FILE, "latency_ms": 0.1, "where": "measured-host"}}
    target = {"name": "cortex-m4", "kind": "mcu", "runtime": "tflm", "tokenizer_bytes": tables,
              "file_bytes": FILE, "fit": [{"check": "ops", "value": "all supported", "limit": None, "passed": True}]}
    return assemble(metrics, profiles, target)


def _flash(v):
    return next(c for c in v.checks if c.name == "flash")


def test_the_report_adds_the_tables_to_the_file_and_the_gate_judges_the_sum():
    rep = _report(TABLES)
    assert {k: rep["usage"][k] for k in ("flash_bytes", "file_bytes", "tokenizer_bytes")} == {
        "flash_bytes": FILE + TABLES, "file_bytes": FILE, "tokenizer_bytes": TABLES}
    check = _flash(gate(rep, Budget(flash_bytes=LIMIT)))
    assert not check.passed and check.value == FILE + TABLES > LIMIT >= FILE
    assert "10,000 B" in check.how and "tokenizer tables 8,000 B" in check.how
    # the failure as CI shows it: JUnit's failure message and the Markdown row name both parts
    case = next(c for c in ET.fromstring(junit_xml(gate(rep, Budget(flash_bytes=LIMIT)))) if c.get("name") == "flash")
    message = case.find("failure").get("message")
    assert "18,000 B vs limit 16,000 B" in message and "10,000 B" in message and "8,000 B" in message
    row = next(x for x in markdown(gate(rep, Budget(flash_bytes=LIMIT))).splitlines() if x.startswith("| flash |"))
    assert "FAIL" in row and "tokenizer tables 8,000 B" in row
    # the same file without tables (the byte tokenizer): it fits, so the tables alone decided
    bytes_rep = _report(0)
    assert _flash(gate(bytes_rep, Budget(flash_bytes=LIMIT))).passed and bytes_rep["usage"]["flash_bytes"] == FILE


def test_data_without_a_tokenizer_keeps_the_file_alone():
    rep = _report(None)
    assert rep["usage"]["flash_bytes"] == FILE and rep["usage"]["tokenizer_bytes"] is None
    assert _flash(gate(rep, Budget(flash_bytes=LIMIT))).how == "int8 TFLite file bytes"
    assert "tokenizer tables" not in to_markdown(rep)


def test_the_markdown_and_html_reports_state_both_parts():
    rep = _report(TABLES)
    line = "flash: 10,000 B model + 8,000 B tokenizer tables"
    assert line in to_markdown(rep) and line in to_html(rep)


def test_a_report_whose_flash_is_not_its_parts_sum_is_refused(tmp_path):
    rep = _report(TABLES)
    rep["usage"]["flash_bytes"] = FILE  # a hand edit that drops the tables
    path = tmp_path / "report.json"
    path.write_text(json.dumps(rep))
    r = CliRunner().invoke(main, ["gate", str(path)])
    assert r.exit_code == 2 and "contradicts itself" in r.output and "Traceback" not in r.output, r.output
    path.write_text(json.dumps(_report(TABLES)))
    r = CliRunner().invoke(main, ["gate", str(path), "--budget", "flash=16000B"])
    assert r.exit_code == 1 and "tokenizer tables 8,000 B" in r.output, r.output


def test_the_fit_warning_and_the_causal_lm_gate_name_both_parts():
    section = {"name": "cortex-m4", "file_bytes": FILE, "tokenizer_bytes": TABLES,
               "fit": [{"check": "flash", "value": FILE + TABLES, "limit": LIMIT, "passed": False}]}
    (warning,) = target_fit_warnings(section)
    assert "(10,000 B)" in warning and "tables (8,000 B)" in warning and "18,000 B" in warning
    row = next(c for c in speed_rows({"speed": {"target": copy.deepcopy(section)}}, Budget(flash_bytes=LIMIT))
               if c.name == "flash")
    assert not row.passed and "10,000 B" in row.how and "tokenizer tables 8,000 B" in row.how


def test_a_baseline_written_before_the_tables_counted_compares_model_files():
    """`gate --baseline` with a report an earlier version wrote (flash_bytes = the file; no file_bytes or
    tokenizer_bytes) failed regression:flash for an unchanged text build: the new flash adds the tables. The model
    files are compared then, and the row says so; a current baseline compares the sums."""
    rep = _report(TABLES)
    old = copy.deepcopy(rep)
    old["usage"]["flash_bytes"] = FILE
    del old["usage"]["file_bytes"], old["usage"]["tokenizer_bytes"]
    row = next(c for c in gate(rep, Budget(), baseline=old).checks if c.name == "regression:flash")
    assert row.passed and row.value == FILE and "before flash counted the tokenizer's tables" in row.how
    grown = copy.deepcopy(rep)
    grown["usage"].update(file_bytes=2 * FILE, flash_bytes=2 * FILE + TABLES)
    assert not next(c for c in gate(grown, Budget(), baseline=old).checks if c.name == "regression:flash").passed
    row = next(c for c in gate(rep, Budget(), baseline=rep).checks if c.name == "regression:flash")
    assert row.passed and row.value == FILE + TABLES and "before flash" not in row.how


def test_byte_counts_that_are_not_whole_numbers_are_refused(tmp_path):
    """usage.file_bytes 10,000.5 was refused as a sum that 'makes' a truncated figure, and tokenizer_bytes 8,000.9
    passed: a byte count is a whole number or the report is refused, naming the field."""
    for key, value in (("file_bytes", FILE + 0.5), ("tokenizer_bytes", TABLES + 0.9)):
        rep = _report(TABLES)
        rep["usage"][key] = value  # flash_bytes stays whole: the field's own check speaks before the sum's
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(rep))
        r = CliRunner().invoke(main, ["gate", str(path)])
        assert r.exit_code == 2 and f"usage.{key} is {value!r}; the gate needs a whole number of bytes" in r.output
