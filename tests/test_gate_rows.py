"""The rows every gate shows: the accuracy drop vs the teacher (with its interval) and the latency measured on this
host and estimated on the target, marked "no limit set" and never failing when no limit was given; the RAM row
names the figure of the target's runtime."""

import copy
import dataclasses
import math
import xml.etree.ElementTree as ET

import pytest
import torch

from edgedistill.budget import Budget
from edgedistill.gate import NO_LIMIT, gate, junit_xml, markdown
from edgedistill.profile.ram import ram_figure
from edgedistill.report.schema import assemble

N = 400
Z = 1.959963984540054
REPORT = {
    "schema_version": 1,
    "usage": {"flash_bytes": 30000, "ram_bytes": 5000, "ram_how": ram_figure("litert"),
              "latency_ms": 2.0, "latency_how": "estimated",
              "latency_host_ms": 0.05, "latency_host_how": "measured-host (litert, 1 threads)",
              "latency_estimate_ms": 2.0, "latency_estimate_how": "estimated on android (roofline model, per op)",
              "macs": 150000, "accuracy": 100 * 360 / N, "accuracy_n": N, "teacher_accuracy": 95.0,
              "teacher_accuracy_n": N, "accuracy_drop": 95.0 - 100 * 360 / N, "parity_passed": True,
              "ops_supported": True},
    "target": {"name": "android", "runtime": "litert", "fit": []},
}


def _row(v, name):
    return next(c for c in v.checks if c.name == name)


def _md_row(md: str, name: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_without_any_limit_every_gate_shows_drop_latency_and_sizes_and_passes():
    v = gate(REPORT, Budget())
    assert v.passed
    shown = {c.name: c for c in v.checks if not c.judged}
    assert {"accuracy_drop", "latency", "latency:host", "flash", "ram", "macs"} <= set(shown)
    assert all(c.passed and c.limit is None for c in shown.values())
    md = markdown(v)
    name, value, limit, verdict, how = _md_row(md, "accuracy_drop")
    assert (value, limit, verdict) == ("5 points", NO_LIMIT, "not judged")
    # the drop's interval: teacher minus the Wilson interval of 360 / 400, computed here from the formula
    p, z2 = 0.9, Z * Z
    centre = (p + z2 / (2 * N)) / (1 + z2 / N)
    half = Z / (1 + z2 / N) * math.sqrt(p * (1 - p) / N + z2 / (4 * N * N))
    assert f"95% interval [{95 - 100 * (centre + half):.2f}, {95 - 100 * (centre - half):.2f}]" in how
    assert _md_row(md, "latency")[1:4] == ["2 ms", NO_LIMIT, "not judged"]
    assert "estimated on android" in _md_row(md, "latency")[4]
    assert _md_row(md, "latency:host")[1:4] == ["0.05 ms", NO_LIMIT, "not judged"]
    assert "measured-host (litert" in _md_row(md, "latency:host")[4]
    assert not any(c.name == "latency:estimate" for c in v.checks)  # the judged row is already the estimate


def test_junit_lists_the_unlimited_rows_as_passing_cases_that_say_so():
    root = ET.fromstring(junit_xml(gate(REPORT, Budget())))
    assert root.get("failures") == "0"
    cases = {tc.get("name"): tc for tc in root}
    for name in ("accuracy_drop", "latency", "latency:host"):
        assert cases[name].find("failure") is None
        assert f"(limit: {NO_LIMIT})" in cases[name].find("system-out").text
    assert cases["accuracy_drop"].find("system-out").text.startswith("5 points (limit: no limit set)")


@pytest.mark.parametrize("key", ["accuracy_drop", "latency_ms", "latency_host_ms"])
def test_a_missing_figure_without_a_limit_is_shown_missing_and_does_not_fail(key):
    rep = copy.deepcopy(REPORT)
    rep["usage"][key] = None
    v = gate(rep, Budget())
    name = {"accuracy_drop": "accuracy_drop", "latency_ms": "latency", "latency_host_ms": "latency:host"}[key]
    c = _row(v, name)
    assert v.passed and c.passed and not c.judged and c.value is None and c.how == "missing"
    assert _md_row(markdown(v), name)[1:4] == ["missing", NO_LIMIT, "not judged"]


def test_a_limit_judges_its_row_and_only_that_row():
    v = gate(REPORT, Budget(latency_ms=5, max_accuracy_drop=10))
    lat, drop = _row(v, "latency"), _row(v, "accuracy_drop")
    assert lat.judged and lat.passed and lat.limit == 5 and drop.judged and drop.passed and drop.limit == 10
    assert not _row(v, "latency:host").judged
    assert "the latency limit judges the estimated figure" in _row(v, "latency:host").how
    failed = gate(REPORT, Budget(latency_ms=1.0, max_accuracy_drop=1.0))
    assert sorted(c.name for c in failed.checks if not c.passed) == ["accuracy_drop", "latency"]
    slow_host = copy.deepcopy(REPORT)
    slow_host["usage"]["latency_host_ms"] = 900.0  # far above the limit, but the limit judges the target's estimate
    assert gate(slow_host, Budget(latency_ms=5)).passed


@pytest.mark.parametrize("how,shown", [("measured-host", ["latency:estimate"]),
                                       ("measured-device", ["latency:host", "latency:estimate"])])
def test_the_other_latency_figures_follow_what_the_limit_judges(how, shown):
    rep = copy.deepcopy(REPORT)
    rep["usage"]["latency_how"] = how
    v = gate(rep, Budget())
    assert [c.name for c in v.checks if c.name.startswith("latency:")] == shown


def test_a_report_written_before_the_latency_fields_shows_only_the_judged_latency():
    old = copy.deepcopy(REPORT)
    for key in ("latency_host_ms", "latency_host_how", "latency_estimate_ms", "latency_estimate_how", "ram_how"):
        del old["usage"][key]
    v = gate(old, Budget())
    assert v.passed and [c.name for c in v.checks if c.name.startswith("latency")] == ["latency"]
    assert _row(v, "latency").how == "estimated"


@pytest.mark.parametrize("runtime,needle,absent", [
    ("litert", "LiteRT's own arena is not measured", "TFLite Micro arena"),
    ("onnxruntime", "onnxruntime's own arena is not measured", "TFLite Micro arena"),
    ("tflm", "TFLite Micro arena", "not measured")])
def test_the_ram_row_names_the_figure_of_the_targets_runtime(runtime, needle, absent):
    rep = copy.deepcopy(REPORT)
    del rep["usage"]["ram_how"]  # an older report: named from its target's runtime
    rep["target"]["runtime"] = runtime
    how = _row(gate(rep, Budget(ram_bytes=1e6)), "ram").how
    assert needle in how and absent not in how


def _metrics() -> dict:
    row = {"artifact": "tflite-int8", "checked": True, "passed": True, "samples": N, "accuracy_ci95": [86.6, 92.7]}
    return {"teacher": {"params": 1000, "test_acc": 95.0, "test_acc_n": N},
            "student": {"params": 100, "test_acc": 90.5},
            "baseline": {"params": 100, "test_acc": 89.0},
            "int8": {"parity_passed": True, "parity": [{**row, "runtime": "litert", "accuracy": 90.0}]}}


@pytest.mark.parametrize("target,judged,other", [
    ({"name": "android", "kind": "mobile", "runtime": "litert", "estimate_ms": 3.5}, 3.5, ("latency:host", 0.04)),
    ({"name": "cpu", "kind": "host", "runtime": "litert", "estimate_ms": 0.03}, 0.04, ("latency:estimate", 0.03))])
def test_a_report_keeps_both_latencies_and_the_gate_shows_them(target, judged, other):
    profiles = {"tflite-int8": {"bytes": 9000, "latency_ms": 0.04, "where": "measured-host (litert, 1 threads)"}}
    ops = {"check": "ops", "value": "all supported", "limit": None, "passed": True}
    r = assemble(_metrics(), profiles, {**target, "fit": [ops]})
    u = r["usage"]
    assert (u["latency_host_ms"], u["latency_estimate_ms"], u["latency_ms"]) == (0.04, target["estimate_ms"], judged)
    assert u["ram_how"] == ram_figure("litert") and "TFLite Micro arena" not in u["ram_how"]
    v = gate(r, Budget())
    assert v.passed and _row(v, "latency").value == judged and _row(v, other[0]).value == other[1]
    assert _row(v, "accuracy_drop").value == pytest.approx(5.0) and not _row(v, "accuracy_drop").judged


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory):
    from edgedistill.data import Normalizer
    from edgedistill.export.tflite_export import export_tflite_int8
    from edgedistill.quantize import calibrate, to_quant_student
    from edgedistill.students import StudentArch, build_student

    torch.manual_seed(0)
    m = build_student(StudentArch("cnn", 8, 2), (1, 8, 8), 10, Normalizer([0.3], [0.4], "channel")).eval()
    q = calibrate(to_quant_student(m), torch.rand(64, 1, 8, 8))
    art = export_tflite_int8(q, (1, 8, 8), tmp_path_factory.mktemp("ram") / "m_int8.tflite")
    return dataclasses.replace(art, name="tflite-int8")  # the name a build gives the deployed file


@pytest.mark.parametrize("target_name", ["android", "cortex-m4"])
def test_the_measured_ram_figure_is_the_one_its_name_says(int8_file, target_name):
    """On a real int8 file: an MCU target's RAM is TFLite Micro's own arena (its recording allocator), a LiteRT
    target's the file's activations as the greedy planner lays them out, and each is named accordingly."""
    from edgedistill.pipeline.measure import target_section
    from edgedistill.profile.cost import tflite_cost
    from edgedistill.profile.tflm_arena import tflm_arena
    from edgedistill.targets import load_target

    target = load_target(target_name)
    sec = target_section([int8_file], target, host_ms=None)
    ram = next(f for f in sec["fit"] if f["check"] == "ram")
    if target.runtime == "tflm":
        expected = tflm_arena(int8_file.path)
        assert ram["value"] == expected.total_bytes > expected.activation_bytes
    else:
        assert ram["value"] == tflite_cost(int8_file.path).peak_activation_bytes
    assert ram["detail"] == sec["ram_figure"] == ram_figure(target.runtime)


def test_the_flash_fit_check_adds_the_tokenizer_tables_to_the_real_file(int8_file):
    """The measure stage's flash check on a real int8 file: its size on disk plus the tables, both parts named."""
    from edgedistill.pipeline.measure import target_section
    from edgedistill.targets import load_target

    size = int8_file.path.stat().st_size
    sec = target_section([int8_file], load_target("cortex-m4"), host_ms=None, tokenizer_bytes=25_000)
    flash = next(f for f in sec["fit"] if f["check"] == "flash")
    assert flash["value"] == size + 25_000 and (sec["file_bytes"], sec["tokenizer_bytes"]) == (size, 25_000)
    assert f"{size:,} B" in flash["detail"] and "25,000 B" in flash["detail"]
    plain = target_section([int8_file], load_target("cortex-m4"), host_ms=None)
    assert next(f for f in plain["fit"] if f["check"] == "flash")["value"] == size


@pytest.mark.parametrize("runtime, named", [("litert-reference", "LiteRT's reference kernels"),
                                            ("litert", "LiteRT with XNNPACK"), (None, None), (["hand", "edit"], None),
                                            ("a|b\n| x", None), ("onnxruntime", None)])
def test_the_accuracy_rows_name_the_runtime_that_measured_them(runtime, named):
    """A microcontroller build's deployed accuracy is measured on LiteRT's reference kernels (TFLite Micro's
    arithmetic), a phone's on LiteRT with XNNPACK: the accuracy rows say which; a report that does not name it (or
    names it wrongly by hand) keeps the plain wording."""
    report = dict(REPORT, summary={"accuracy_deployed_runtime": runtime})
    v = gate(report, Budget(min_accuracy=80.0, max_accuracy_drop=10.0))
    for name in ("accuracy", "accuracy_drop"):
        how = _row(v, name).how
        assert "deployed int8 TFLite" in how
        assert (named in how) if named else (" on " not in how.split(",")[0]), how
