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


def test_with_a_kv_cache_step_judged_the_device_figure_of_that_step_is_judged_and_another_file_is_not():
    kv = {**_device(2.0), "model": {"path": "student_int8_kv.tflite"}}
    m = with_lm_device(_metrics("student_int8_kv.tflite"), kv, "local")
    assert m["speed"]["target"]["tokens_per_s"] == 500.0 and m["device"]["judged"]
    assert m["speed"]["target"]["tokens_per_s_how"].startswith("measured-device (local, student_int8_kv.tflite")
    line = device_markdown(m["device"])[0]
    assert "int8 KV-cache step (student_int8_kv.tflite)" in line and "The gate judges this figure." in line
    window = {**_device(2.0), "model": {"path": "student_int8.tflite"}}  # e.g. a record of an older build
    m = with_lm_device(_metrics("student_int8_kv.tflite"), window, "local")
    assert m["speed"]["target"]["tokens_per_s"] == 40.0 and not m["device"]["judged"]
    assert "Shown, not judged: the gate judges another file" in device_markdown(m["device"])[0]


def test_the_device_measures_the_file_the_gate_judges():
    from edgedistill.pipeline.lm_device import device_file

    assert device_file(_metrics("student_int8_kv.tflite")) == "student_int8_kv.tflite"
    assert device_file(_metrics()) == device_file({}) == device_file(_metrics("x.onnx")) == "student_int8.tflite"



def test_a_device_without_a_median_or_p90_still_reports():
    """Android's benchmark_model reports no p90 (device/runners.py); a device may give a mean only."""
    d = _device(2.0)
    d["latency_ms"].update(p90=None, p99=None)
    line = device_markdown(with_lm_device(_metrics(), d, "adb://x")["device"])[0]
    assert "median 2 ms a token" in line and "p90" not in line
    d["latency_ms"]["p50"] = None
    m = with_lm_device(_metrics(), d, "adb://x")
    assert "mean 2 ms a token (the device gave no median)" in device_markdown(m["device"])[0]
    assert m["speed"]["target"]["tokens_per_s_how"].startswith("measured-device (adb://x, student_int8.tflite, mean")


def test_a_device_that_is_not_the_targets_runtime_is_named_in_a_warning():
    d = {**_device(), "device": {"machine": "x86_64"}}
    m = with_lm_device(_metrics(), d, "local", "tflm")
    assert any("not TFLite Micro as the target does" in w and "x86_64" in w for w in m["warnings"])
    assert not any("TFLite Micro" in w for w in with_lm_device(_metrics(), d, "local", "litert")["warnings"])
    again = with_lm_device(m, d, "local", "litert")  # a re-check replaces the device's warnings
    assert not any("TFLite Micro" in w for w in again["warnings"])


def test_an_empty_or_unknown_device_url_is_refused_before_anything_runs(tmp_path):
    from click.testing import CliRunner

    from edgedistill.cli import main

    for url in ("", "foo://bar", "usb"):
        out = tmp_path / "out"
        r = CliRunner().invoke(main, ["build", "--device", url, "--out", str(out), "--quiet"])
        assert r.exit_code == 2, r.output
        assert "--device" in r.output and "Unknown device" in r.output and "Traceback" not in r.output
        assert not out.exists() and not out.with_name("out.partial").exists()


def test_a_device_url_its_runner_cannot_read_is_refused_before_anything_runs(tmp_path):
    """A breaking session's `--device ssh://user@:99999` trained the whole build, then stopped on a ValueError
    traceback; `ssh://` with no host trained, then only warned. Both commands now refuse such URLs first."""
    from click.testing import CliRunner

    from edgedistill.cli import main

    model = tmp_path / "m.tflite"
    model.write_bytes(b"not read")
    for url, says in (("ssh://user@:99999", "Port out of range"), ("ssh://host:abc", "could not be cast"),
                      ("ssh://[::1", "Invalid IPv6 URL"), ("ssh://", "no host in the URL"), ("ssh://h:0", "port 0"),
                      ("ssh://h?timeout=5", "reads no option 'timeout'"), ("local?core=1", "reads no option 'core'"),
                      ("local?cores=99", "not a list of this machine's cores"), ("local?cores=a", "cores=a")):
        out = tmp_path / "out"
        for args in (["build", "--device", url, "--out", str(out), "--quiet"], ["profile", str(model), "--device", url]):
            r = CliRunner().invoke(main, args)
            assert r.exit_code == 2 and says in r.output and r.output.startswith("error: --device"), (args, r.output)
            assert "Traceback" not in r.output and not out.exists()
    from edgedistill.device.runners import check_url

    assert [check_url(u) for u in ("local", "local?cores=0", "ssh://pi@board:2222?key=k&connect_timeout=3",
                                   "adb://emulator-5554?benchmark_model=device:/x")] == ["local", "local", "ssh", "adb"]
