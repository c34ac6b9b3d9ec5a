"""The device-side benchmark (bench.py) run as the device runs it: a separate Python process, JSON on stdout."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgedistill.device import DeviceRequest, open_runner
from edgedistill.device.runners import BENCH
from edgedistill.device.schema import DeviceBench
from edgedistill.errors import DeviceError


def _bench(tmp_path, model, x, ref=None, *extra):
    np.save(tmp_path / "in.npy", x)
    args = [sys.executable, str(BENCH), str(model), "--inputs", str(tmp_path / "in.npy"), "--runs", "10", *extra]
    if ref is not None:
        np.save(tmp_path / "ref.npy", ref)
        args += ["--reference", str(tmp_path / "ref.npy")]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_bench_json_matches_the_schema_and_parity_passes(tflite_pair, tmp_path):
    rc, doc = _bench(tmp_path, tflite_pair["int8"], tflite_pair["x"], tflite_pair["ref"])
    assert rc == 0
    DeviceBench.model_validate(doc)  # raises on any missing / mistyped field
    lat = doc["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and lat["runs"] == 10
    assert doc["parity"]["passed"] and doc["parity"]["max_abs_diff"] == 0.0 and doc["parity"]["samples"] == 12
    assert doc["model"]["bytes"] == tflite_pair["int8"].stat().st_size
    assert doc["peak_rss_bytes"] > 0 and doc["runtime"]["name"] in ("ai-edge-litert", "tflite-runtime")


def test_bench_parity_fails_for_a_different_model(tflite_pair, tmp_path):
    rc, doc = _bench(tmp_path, tflite_pair["float"], tflite_pair["x"], tflite_pair["ref"])
    assert rc == 0 and doc["parity"]["checked"] and doc["parity"]["passed"] is False
    assert doc["parity"]["max_abs_diff"] > 1e-4


def test_bench_bad_inputs_fail_with_a_step(tflite_pair, tmp_path):
    rc, doc = _bench(tmp_path, tmp_path / "missing.tflite", tflite_pair["x"])
    assert rc == 2 and not doc["ok"] and doc["step"] == "load"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    rc, doc = _bench(tmp_path, bad, tflite_pair["x"])
    assert rc == 2 and doc["step"] == "load"
    rc, doc = _bench(tmp_path, tflite_pair["int8"], tflite_pair["x"], tflite_pair["ref"][:3])
    assert rc == 2 and doc["step"] == "inputs"


def test_local_runner_pins_cores_and_returns_the_document(tflite_pair):
    doc = open_runner("local?cores=0").benchmark(
        DeviceRequest(tflite_pair["int8"], tflite_pair["x"], tflite_pair["ref"], runs=5))
    assert doc["parity"]["passed"] and doc["runner"]["kind"] == "local"


def test_local_runner_rejects_garbage_from_the_device(tflite_pair, tmp_path):
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho 'Segmentation fault (core dumped)'\nexit 139\n")
    fake.chmod(0o755)
    with pytest.raises(DeviceError, match="did not return the benchmark's JSON.*Segmentation"):
        open_runner(f"local?python={fake}").benchmark(DeviceRequest(tflite_pair["int8"], tflite_pair["x"]))
    lying = tmp_path / "lying"
    lying.write_text("#!/bin/sh\necho '{\"schema\": \"edgedistill.device-bench/1\", \"ok\": true, \"device\": {}}'\n")
    lying.chmod(0o755)
    with pytest.raises(DeviceError, match="not a valid benchmark document"):
        open_runner(f"local?python={lying}").benchmark(DeviceRequest(tflite_pair["int8"], tflite_pair["x"]))


def test_unknown_device_url():
    with pytest.raises(DeviceError, match="Unknown device 'telnet://x'"):
        open_runner("telnet://x")
