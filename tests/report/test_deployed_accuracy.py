"""Which runtime's accuracy the report calls "deployed": the target's arithmetic."""

from edgedistill.report.schema import assemble


def _metrics() -> dict:
    row = {"artifact": "tflite-int8", "checked": True, "passed": True}
    return {"teacher": {"params": 1000, "test_acc": 95.0}, "student": {"params": 100, "test_acc": 90.0},
            "baseline": {"params": 100, "test_acc": 89.0},
            "int8": {"parity_passed": True, "parity": [
                {**row, "runtime": "litert", "accuracy": 90.0},
                {**row, "runtime": "tflm", "accuracy": 89.5},
                {**row, "runtime": "litert-reference", "accuracy": 89.2, "checked": False}]}}


def test_a_microcontroller_is_judged_on_tflite_micro_arithmetic():
    r = assemble(_metrics(), {}, {"name": "cortex-m4", "kind": "mcu", "runtime": "tflm"})
    assert r["summary"]["accuracy_deployed"] == r["usage"]["accuracy"] == 89.2
    assert r["summary"]["accuracy_deployed_runtime"] == "litert-reference"
    assert "int8 TFLite on LiteRT's reference kernels (TFLite Micro's arithmetic within one code)" in [m["name"] for m in r["models"]]


def test_a_phone_is_judged_on_litert():
    r = assemble(_metrics(), {}, {"name": "android", "kind": "mobile", "runtime": "litert"})
    assert r["summary"]["accuracy_deployed"] == r["usage"]["accuracy"] == 90.0
    assert r["summary"]["accuracy_deployed_runtime"] == "litert"
    assert "int8 TFLite on LiteRT's reference kernels (TFLite Micro's arithmetic within one code)" not in [m["name"] for m in r["models"]]


def test_an_old_run_without_the_reference_row_falls_back_to_litert():
    m = _metrics()
    m["int8"]["parity"] = m["int8"]["parity"][:2]
    r = assemble(m, {}, {"name": "cortex-m4", "kind": "mcu", "runtime": "tflm"})
    assert r["summary"]["accuracy_deployed"] == 90.0 and r["summary"]["accuracy_deployed_runtime"] == "litert"


def test_int8_files_with_16x8_parts_say_so_in_the_json_markdown_and_html():
    """quant.int16's op kinds (metrics.json's int8.int16) reach report.json's summary, the model rows and the
    headline of report.md and report.html; before, only metrics.json said the file was 16×8."""
    from edgedistill.report.render import to_html, to_markdown

    m = _metrics()
    m["int8"]["int16"] = ["attention", "layernorm"]
    for p in m["int8"]["parity"]:  # the fields the parity table prints
        p.update(samples=10, reference_accuracy=p["accuracy"], top1_agreement=100.0, max_steps=0.0)
    r = assemble(m, {}, {"name": "cortex-m4", "kind": "mcu", "runtime": "tflm"})
    assert r["summary"]["int16"] == ["attention", "layernorm"]
    assert "int8 (16×8 attention, LayerNorm) TFLite on LiteRT's reference kernels (TFLite Micro's arithmetic within one code)" in [x["name"] for x in r["models"]]
    assert "deployed int8 (16×8 attention, LayerNorm)" in to_markdown(r)
    assert "deployed int8 (16×8 attention, LayerNorm)" in to_html(r)
    m["int8"]["int16"] = []
    plain = assemble(m, {}, {"name": "cortex-m4", "kind": "mcu", "runtime": "tflm"})
    assert plain["summary"]["int16"] == [] and "16×8" not in to_markdown(plain)


def test_a_parity_row_on_fewer_samples_says_its_accuracy_is_on_those_only():
    """A newcomer read three 'deployed' accuracies on a microcontroller report: the headline's, LiteRT's, and TFLite
    Micro's parity row on its first 1,000 samples. The row's subset is now said under the table."""
    from edgedistill.report.render import _subset_note

    rows = [{"runtime": "litert", "samples": 6000}, {"runtime": "litert-reference", "samples": 6000},
            {"runtime": "tflm", "samples": 1000}]
    note = " ".join(_subset_note(rows))
    assert "tflm (1,000 samples) row ran the first samples of the 6,000" in note
    assert _subset_note(rows[:2]) == []


def test_only_timed_files_carry_a_measured_latency():
    """The reference-kernels row is an accuracy run in TFLite Micro's arithmetic: it carried the XNNPACK timing of
    the same file, labelled measured (a newcomer read it as a copy). It now carries the file's bytes and says it was
    not timed; the no-teacher twin's row says its speed is the distilled float student's file (the same network)."""
    timed = {"bytes": 5000, "latency_ms": 0.008, "where": "measured-host (litert, 1 thread)"}
    profiles = {"tflite-int8": timed, "tflite-float": {**timed, "bytes": 20000, "latency_ms": 0.036}}
    r = assemble(_metrics(), profiles, {"name": "cortex-m4", "kind": "mcu", "runtime": "tflm"})
    rows = {m["name"]: m for m in r["models"]}
    ref = rows["int8 TFLite on LiteRT's reference kernels (TFLite Micro's arithmetic within one code)"]
    assert ref.get("latency_ms") is None and ref["bytes"] == 5000 and ref["where"].startswith("not timed")
    assert rows["int8 TFLite"]["latency_ms"] == 0.008
    twin = rows["no-teacher twin (float)"]
    assert twin["latency_ms"] == 0.036 and "the distilled float student's file" in twin["where"]


def test_no_twin_row_figures_without_a_twin():
    """--no-baseline trains no twin: its row carried the distilled student's file bytes and latency anyway."""
    m = _metrics()
    m["baseline"] = None
    timed = {"bytes": 20000, "latency_ms": 0.036, "where": "measured-host (litert, 1 thread)"}
    r = assemble(m, {"tflite-float": timed, "tflite-int8": timed}, {"name": "cortex-m4", "kind": "mcu",
                                                                     "runtime": "tflm"})
    twin = next(x for x in r["models"] if x["name"] == "no-teacher twin (float)")
    assert twin.get("latency_ms") is None and twin.get("bytes") is None
    from edgedistill.report.render import to_markdown

    for row in m["int8"]["parity"]:  # the fields the parity table prints
        row.update(samples=10, reference_accuracy=row["accuracy"], top1_agreement=100.0, max_steps=0.0)
    md = to_markdown(assemble(m, {}, {"name": "cortex-m4", "kind": "mcu", "runtime": "tflm"}))
    assert "not measured: no twin was trained without a teacher (--no-baseline)" in md  # not "n/a int8, n/a float"
