"""`build --task causal-lm --device URL`: the deployed int8 decoder step measured on a device.

The int8 window-step file (student_int8.tflite) runs on the device through the same runners as a classifier build's
(edgedistill/device: local, ssh, adb), fed real test windows of int32 token ids, and must reproduce this machine's
logits within one output step. One step is one generated token, so the device's tokens/s is 1000 / its median
milliseconds a step. Where that file is the one the gate judges (no --kv-cache), the device's figure replaces the
host measurement or the target estimate in the gate's tokens/s and latency rows, as a classifier build's device
latency does; with --kv-cache the gate judges the KV-cache step, which takes its caches as further inputs that the
device runners do not feed, so the device's window-step figure is shown beside it and not judged. A device that
cannot be reached gives a record with status "missing" and a warning, never zeros, and never fails the build.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from edgedistill.pipeline.measure import measure_device
from edgedistill.pipeline.report import DEVICE_WARNINGS

DEVICE_WINDOWS = 32  # test windows fed to the device: its parity with this machine, and its timing runs' inputs
WINDOW_FILE = "student_int8.tflite"


def measure_lm_device(url: str, out: Path, test_ids: np.ndarray, threads: int) -> dict:
    """The run's int8 window-step file on the device at `url`, fed the first DEVICE_WINDOWS test windows
    (`test_ids`: int (N, L) token ids); the device record (pipeline/measure.measure_device) with `tokens_per_s`
    added when measured, or status "missing" when the run has no such file or the device fails."""
    model = Path(out) / WINDOW_FILE
    if not model.exists():
        return {"status": "missing", "url": url, "model": WINDOW_FILE, "error": f"the run has no {WINDOW_FILE}"}
    device = measure_device(url, model, np.ascontiguousarray(test_ids[:DEVICE_WINDOWS], dtype=np.int32), threads)
    if device["status"] == "measured":
        lat = device["latency_ms"]
        ms = lat.get("p50") if lat.get("p50") is not None else lat.get("mean")
        device["tokens_per_s"] = 1000.0 / ms if ms else None
    return device


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
    judged = t is not None and t.get("file") == WINDOW_FILE and bool(device.get("tokens_per_s"))
    if judged:
        lat = device["latency_ms"]
        t["tokens_per_s"] = device["tokens_per_s"]
        t["tokens_per_s_how"] = (f"measured-device ({url}, {WINDOW_FILE}, "
                                 f"{'median' if lat.get('p50') is not None else 'mean'} of {lat.get('runs', '?')} "
                                 "steps)")
    device["judged"] = judged
    ran = str((device.get("runtime") or {}).get("name") or "")
    if target_runtime == "tflm" and "micro" not in ran.lower():
        where = (device.get("device") or {}).get("machine") or "?"
        m["warnings"].append(f"The device {url} ran the int8 step on {ran or 'an unnamed runtime'} ({where}), not "
                             "TFLite Micro as the target does: its tokens/s is that machine's, not the target's.")
    if (device.get("parity") or {}).get("passed") is False:
        m["warnings"].append(f"The device {url} does not reproduce this machine's logits for {WINDOW_FILE} (max "
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
    return [f"Device ({device['runner']['url'] if device.get('runner') else '?'}{'; ' + what if what else ''}): the "
            f"int8 window step ({WINDOW_FILE}) on {runtime.get('name', '?')} {runtime.get('version', '')}, "
            f"{runtime.get('threads', '?')} thread(s), {timing}{spread}, {rate} over {lat.get('runs', '?')} steps "
            f"on {par.get('samples', '?')} test windows; {agrees}. "
            + ("The gate judges this figure." if device.get("judged") else
               "Shown, not judged: " + ("the gate judges the KV-cache step, which the device runners do not feed."
                                        if tps else "no step time to judge."))]


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"
