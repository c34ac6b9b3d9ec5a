"""pipeline/lm_device.py's bookkeeping: which tokens/s the gate judges after a device measurement, and a re-check
starting again from the host / estimated figure (the measurement itself: tests/pipeline/test_lm_build.py)."""

from edgedistill.pipeline.lm_device import device_markdown, with_lm_device


def _metrics(file="student_int8.tflite"):
    return {"warnings": ["Device figures are missing: old", "kept"],
            "speed": {"target": {"file": file, "tokens_per_s": 40.0, "tokens_per_s_how": "estimated on cortex-m4"}}}


def _device(ms=2.0, passed=True):
    return {"status": "measured", "latency_ms": {"p50": ms, "p90": ms, "mean": ms, "runs": 50},
            "tokens_per_s": 1000.0 / ms, "parity": {"passed": passed, "max_abs_diff": 0.0, "samples": 8},
            "runtime": {"name": "ai-edge-litert", "version": "2", "threads": 1}, "runner": {"url": "local"}}


def test_the_device_figure_replaces_the_judged_window_step_and_a_recheck_starts_again():
    once = with_lm_device(_metrics(), _device(2.0), "local")
    t = once["speed"]["target"]
    assert t["tokens_per_s"] == 500.0 and t["tokens_per_s_how"].startswith("measured-device (local")
    assert once["warnings"] == ["kept"] and once["device"]["judged"]
    again = with_lm_device(once, _device(4.0, passed=False), "local")
    t = again["speed"]["target"]
    assert t["tokens_per_s"] == 250.0 and t["tokens_per_s_host_or_estimate"] == 40.0
    assert any("does not reproduce" in w for w in again["warnings"])
    missing = with_lm_device(again, {"status": "missing", "error": "no route", "url": "ssh://x"}, "ssh://x")
    t = missing["speed"]["target"]
    assert t["tokens_per_s"] == 40.0 and t["tokens_per_s_how"] == "estimated on cortex-m4"
    assert [w for w in missing["warnings"] if w.startswith(("Device", "The device"))] == [
        "Device figures are missing: no route"]
    assert device_markdown(missing["device"]) == ["Device (ssh://x): not measured: no route."]


def test_with_a_kv_cache_step_judged_the_device_window_figure_is_shown_not_judged():
    m = with_lm_device(_metrics("student_kv_int8.tflite"), _device(2.0), "local")
    assert m["speed"]["target"]["tokens_per_s"] == 40.0 and not m["device"]["judged"]
    assert "Shown, not judged" in device_markdown(m["device"])[0]

