"""`build --task causal-lm --device URL`: the deployed int8 decoder step measured on a device.

The int8 file the gate judges runs on the device through the same runners as a classifier build's
(edgedistill/device: local, ssh, adb), fed real test windows of int32 token ids, and must reproduce this machine's
logits within one output step: the window step (student_int8.tflite), or with --kv-cache the KV-cache step
(student_int8_kv.tflite), which the device runs as an app does, one token a step with the caches carried from each
step to the next (device/bench.py; TFLite's benchmark_model on adb is told the token id's and the position's ranges,
as its random inputs would read outside the tables). One step is one generated token, so the device's tokens/s is
1000 / its median milliseconds a step, and it replaces the host measurement or the target estimate in the gate's
tokens/s and latency rows, as a classifier build's device latency does. A device that cannot be reached gives a
record with status "missing" and a warning, never zeros, and never fails the build.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from edgedistill.pipeline.measure import measure_device
from edgedistill.pipeline.report import DEVICE_WARNINGS

DEVICE_WINDOWS = 32  # test windows fed to the device: its parity with this machine, and its timing runs' inputs
WINDOW_FILE = "student_int8.tflite"
KV_FILE = "student_int8_kv.tflite"
STEPS = {WINDOW_FILE: "window step", KV_FILE: "KV-cache step"}


def device_file(metrics: dict) -> str:
    """The int8 TFLite file of a run the device measures: the one the gate judges (metrics.json speed.target.file:
    the KV-cache step's with --kv-cache), else the window step's."""
    judged = ((metrics.get("speed") or {}).get("target") or {}).get("file")
    return judged if judged in STEPS else WINDOW_FILE


def kv_benchmark_flags(model: Path) -> tuple[str, ...]:
    """benchmark_model's flags for a KV-cache step file: every input layer with its shape, the token id within the
    vocabulary (0 … V − 1, V the logits' width) and the position within the window (0 … L − 1); the caches keep
    benchmark_model's random int8 codes, which cost the step the same work."""
    from edgedistill.optional import require

    interp = require("ai_edge_litert.interpreter").Interpreter(model_path=str(model))
    ins, out = interp.get_input_details(), interp.get_output_details()[0]
    vocab, context = int(out["shape"][-1]), int(ins[2]["shape"][2])
    names = ",".join(d["name"] for d in ins)
    shapes = ":".join(",".join(str(int(v)) for v in d["shape"]) for d in ins)
    ranges = f"{ins[0]['name']},0,{vocab - 1}:{ins[1]['name']},0,{context - 1}"
    return (f"--input_layer={names}", f"--input_layer_shape={shapes}", f"--input_layer_value_range={ranges}")


def measure_lm_device(url: str, out: Path, test_ids: np.ndarray, threads: int,
                      name: str = WINDOW_FILE) -> dict:
    """The run's int8 step file `name` (device_file) on the device at `url`, fed the first DEVICE_WINDOWS test windows
    (`test_ids`: int (N, L) token ids); the device record (pipeline/measure.measure_device) with `tokens_per_s`
    added when measured, or status "missing" when the run has no such file or the device fails."""
    model = Path(out) / name
    if not model.exists():
        return {"status": "missing", "url": url, "model": name, "error": f"the run has no {name}"}
    flags = kv_benchmark_flags(model) if name == KV_FILE else ()
    device = measure_device(url, model, np.ascontiguousarray(test_ids[:DEVICE_WINDOWS], dtype=np.int32), threads,
                            benchmark_flags=flags)
    if device["status"] == "measured":
        lat = device["latency_ms"]
        ms = lat.get("p50") if lat.get("p50") is not None else lat.get("mean")
        device["tokens_per_s"] = 1000.0 / ms if ms else None
    return device


def _measured_file(device: dict) -> str:
    """The file a device record is of (its model block's path; a missing record names it as a string)."""
    m = device.get("model")
    return str((m.get("path") if isinstance(m, dict) else m) or WINDOW_FILE)


def with_lm_device(metrics: dict, device: dict, url: str, target_runtime: str | None = None) -> dict:
    """A copy of metrics.json with `device` and, where the device timed the judged file, the gate's tokens/s taken
    from it (module doc). A re-check replaces the previous device figures: the judged figure starts again from the
    host measurement or estimate it had before any device. `target_runtime`: the target profile's runtime ("tflm",
    "litert"); a device that ran another one (a host's LiteRT for a microcontroller target) gets a warning: its
    figure is judged, as the user asked, but it is not the target's."""
    m = copy.deepcopy(metrics)
    device = copy.deepcopy(device)
    t = (m.get("speed") or {}).get("target")
    m["warnings"] = [w for w in m.get("warnings", []) if not w.startswith(DEVICE_WARNINGS)]
    m["device"] = device
    if t is not None:
        t.setdefault("tokens_per_s_host_or_estimate", t.get("tokens_per_s"))
        t.setdefault("tokens_per_s_how_host_or_estimate", t.get("tokens_per_s_how"))
        t["tokens_per_s"], t["tokens_per_s_how"] = (t["tokens_per_s_host_or_estimate"],
                                                    t["tokens_per_s_how_host_or_estimate"])
    if device["status"] != "measured":
        m["warnings"].append(f"Device figures are missing: {device['error']}")
        return m
    name = _measured_file(device)
    judged = t is not None and t.get("file", WINDOW_FILE) == name and bool(device.get("tokens_per_s"))
    if judged:
        lat = device["latency_ms"]
        t["tokens_per_s"] = device["tokens_per_s"]
        t["tokens_per_s_how"] = (f"measured-device ({url}, {name}, "
                                 f"{'median' if lat.get('p50') is not None else 'mean'} of {lat.get('runs', '?')} "
                                 "steps)")
    device["judged"] = judged
    ran = str((device.get("runtime") or {}).get("name") or "")
    if target_runtime == "tflm" and "micro" not in ran.lower():
        where = (device.get("device") or {}).get("machine") or "?"
        m["warnings"].append(f"The device {url} ran the int8 step on {ran or 'an unnamed runtime'} ({where}), not "
                             "TFLite Micro as the target does: its tokens/s is that machine's, not the target's.")
    if (device.get("parity") or {}).get("passed") is False:
        m["warnings"].append(f"The device {url} does not reproduce this machine's logits for {name} (max "
                             f"|diff| {device['parity'].get('max_abs_diff')}, more than one output step).")
    return m


def device_markdown(device: dict | None) -> list[str]:
    """report.md's lines on the device measurement: where, the window step's median and tokens/s, parity."""
    if not device:
        return []
    if device["status"] != "measured":
        return [f"Device ({device.get('url', '?')}): not measured: {device['error']}."]
    lat, par = device.get("latency_ms") or {}, device.get("parity") or {}
    timing = (f"median {_ms(lat.get('p50'))} ms a token" if lat.get("p50") is not None else
              f"mean {_ms(lat.get('mean'))} ms a token (the device gave no median)")
    spread = f" (p90 {_ms(lat['p90'])})" if lat.get("p90") is not None else ""
    tps = device.get("tokens_per_s")
    rate = f"{tps:,.1f} tokens/s" if tps else "no tokens/s (no positive step time)"
    where = device.get("device") or {}
    what = ", ".join(str(where[k]) for k in ("model", "machine", "cpu", "system") if where.get(k))
    agrees = ("its logits reproduce this machine's within one output step" if par.get("passed") else
              f"its logits do NOT reproduce this machine's (max |diff| {par.get('max_abs_diff')})"
              if par.get("passed") is False else "parity not checked")
    runtime = device.get("runtime") or {}
    name = _measured_file(device)
    return [f"Device ({device['runner']['url'] if device.get('runner') else '?'}{'; ' + what if what else ''}): the "
            f"int8 {STEPS.get(name, 'decoder step')} ({name}) on {runtime.get('name', '?')} "
            f"{runtime.get('version', '')}, "
            f"{runtime.get('threads', '?')} thread(s), {timing}{spread}, {rate} over {lat.get('runs', '?')} steps "
            f"on {par.get('samples', '?')} test windows; {agrees}. "
            + ("The gate judges this figure." if device.get("judged") else
               "Shown, not judged: " + ("the gate judges another file of the run." if tps else
                                        "no step time to judge."))]


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"
