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
    assert "int8 TFLite, TFLite Micro arithmetic" in [m["name"] for m in r["models"]]


def test_a_phone_is_judged_on_litert():
    r = assemble(_metrics(), {}, {"name": "android", "kind": "mobile", "runtime": "litert"})
    assert r["summary"]["accuracy_deployed"] == r["usage"]["accuracy"] == 90.0
    assert r["summary"]["accuracy_deployed_runtime"] == "litert"
    assert "int8 TFLite, TFLite Micro arithmetic" not in [m["name"] for m in r["models"]]


def test_an_old_run_without_the_reference_row_falls_back_to_litert():
    m = _metrics()
    m["int8"]["parity"] = m["int8"]["parity"][:2]
    r = assemble(m, {}, {"name": "cortex-m4", "kind": "mcu", "runtime": "tflm"})
    assert r["summary"]["accuracy_deployed"] == 90.0 and r["summary"]["accuracy_deployed_runtime"] == "litert"
