"""The adb runner against a stand-in `adb` put first on PATH. No phone is available here: the stand-in answers the
adb commands the runner issues and replays a recorded-format `benchmark_model` output (tests/device/data), so this
checks the command sequence, the parsing and the error paths, not a real device's numbers."""

import json
from pathlib import Path

import pytest

from edgedistill.device import DeviceRequest, open_runner
from edgedistill.device.runners import parse_benchmark_model
from edgedistill.errors import DeviceError

RECORDED = Path(__file__).with_name("data") / "benchmark_model_output.txt"

FAKE_ADB = r'''#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
log = os.environ["FAKE_ADB_LOG"]
with open(log, "a") as fh:
    fh.write(json.dumps(args) + "\n")
if args[:1] == ["-s"]:
    serial, args = args[1], args[2:]
    if serial != "emulator-5554":
        print(f"adb: device '{serial}' not found", file=sys.stderr); sys.exit(1)
mode = os.environ.get("FAKE_ADB_MODE", "ok")
cmd = args[0]
if cmd == "get-state":
    print("offline" if mode == "offline" else "device"); sys.exit(0)
if cmd == "push":
    print(f"{args[1]}: 1 file pushed, 0 skipped."); sys.exit(0)
if cmd == "shell":
    if args[1] == "getprop":
        print({"ro.product.model": "Pixel 7", "ro.product.manufacturer": "Google",
               "ro.build.version.release": "14", "ro.product.cpu.abi": "arm64-v8a"}.get(args[2], "")); sys.exit(0)
    if args[1] in ("mkdir", "chmod", "rm"):
        sys.exit(0)
    if args[1].endswith("benchmark_model"):
        if mode == "garbage":
            print("/system/bin/sh: benchmark_model: can't execute: Exec format error"); sys.exit(126)
        if mode == "nooutput":
            print("INFO: STARTING!"); sys.exit(0)
        print(open(os.environ["FAKE_ADB_REPLAY"]).read()); sys.exit(0)
print("unexpected adb call", args, file=sys.stderr); sys.exit(2)
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB)
    adb.chmod(0o755)
    tool = tmp_path / "benchmark_model"
    tool.write_bytes(b"\x7fELF stand-in")
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    monkeypatch.setenv("FAKE_ADB_REPLAY", str(RECORDED))
    return {"log": tmp_path / "adb.log", "tool": tool}


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_parse_recorded_benchmark_model_output():
    f = parse_benchmark_model(RECORDED.read_text())
    assert f["avg_us"] == pytest.approx(39.1871) and f["init_us"] == 1873
    assert f["count"] == 24813 and f["min_us"] == 30 and f["max_us"] == 412  # the measured runs, not the warm-up
    assert f["median_us"] == 38 and f["p95_us"] == 49
    assert f["peak_memory_mb"] == pytest.approx(4.86719) and f["memory_delta_mb"] == pytest.approx(1.89062)


def test_adb_runner_pushes_runs_parses_and_cleans_up(fake_adb, tflite_pair):
    doc = open_runner(f"adb://emulator-5554?benchmark_model={fake_adb['tool']}").benchmark(
        DeviceRequest(tflite_pair["int8"], tflite_pair["x"], threads=4, warmup=3, runs=20))
    assert doc["device"] == {"system": "Android", "model": "Pixel 7", "manufacturer": "Google", "android": "14",
                             "abi": "arm64-v8a"}
    assert doc["latency_ms"]["mean"] == pytest.approx(0.0391871) and doc["latency_ms"]["p50"] == pytest.approx(0.038)
    assert doc["load_ms"] == pytest.approx(1.873) and doc["peak_rss_bytes"] == int(4.86719 * 2**20)
    assert doc["parity"] == {"checked": False, "reason": "benchmark_model feeds random inputs and returns no outputs"}
    calls = _calls(fake_adb["log"])
    assert all(c[:2] == ["-s", "emulator-5554"] for c in calls)
    run = next(c for c in calls if c[2] == "shell" and c[3].endswith("benchmark_model"))
    assert run[4:] == ["--graph=/data/local/tmp/edgedistill/m_int8.tflite", "--num_threads=4", "--warmup_runs=3",
                       "--num_runs=20"]
    assert ["-s", "emulator-5554", "push", str(tflite_pair["int8"]), "/data/local/tmp/edgedistill/m_int8.tflite"] in calls
    assert calls[-1][2:] == ["shell", "rm", "-rf", "/data/local/tmp/edgedistill"]


@pytest.mark.parametrize("mode,message", [
    ("offline", "the device is 'offline'"),
    ("garbage", "running benchmark_model failed: /system/bin/sh: benchmark_model: can't execute"),
    ("nooutput", "no inference timings"),
])
def test_adb_runner_error_paths(fake_adb, tflite_pair, monkeypatch, mode, message):
    monkeypatch.setenv("FAKE_ADB_MODE", mode)
    with pytest.raises(DeviceError, match=message.replace("(", r"\(")):
        open_runner(f"adb://emulator-5554?benchmark_model={fake_adb['tool']}").benchmark(
            DeviceRequest(tflite_pair["int8"], tflite_pair["x"]))


def test_adb_runner_unknown_serial_and_missing_tool(fake_adb, tflite_pair):
    with pytest.raises(DeviceError, match="connecting failed: adb: device 'R58M' not found"):
        open_runner(f"adb://R58M?benchmark_model={fake_adb['tool']}").benchmark(
            DeviceRequest(tflite_pair["int8"], tflite_pair["x"]))
    with pytest.raises(DeviceError, match=r"\?benchmark_model=PATH"):
        open_runner("adb://emulator-5554").benchmark(DeviceRequest(tflite_pair["int8"], tflite_pair["x"]))


def test_adb_runner_passes_benchmark_model_the_requests_flags(fake_adb, tflite_pair):
    """A KV-cache step's input layers and value ranges (pipeline/lm_device.kv_benchmark_flags) reach benchmark_model
    after the standard flags."""
    flags = ("--input_layer=ids,pos", "--input_layer_shape=1,1:1", "--input_layer_value_range=ids,0,47:pos,0,11")
    open_runner(f"adb://emulator-5554?benchmark_model={fake_adb['tool']}").benchmark(
        DeviceRequest(tflite_pair["int8"], tflite_pair["x"], benchmark_flags=flags))
    run = next(c for c in _calls(fake_adb["log"]) if c[2] == "shell" and c[3].endswith("benchmark_model"))
    assert tuple(run[-3:]) == flags and run[-4].startswith("--num_runs=")
