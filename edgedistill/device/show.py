"""The device part of `profile --device` and `build --device`: run the measurement and print what came back."""

from __future__ import annotations

from pathlib import Path

import click

from edgedistill.errors import ConfigError


def target_threads(name: str) -> int:
    from edgedistill.targets import load_target

    return load_target(name).threads


def profile_on_device(url: str, model, inputs_file: str | None, threads: int, runs: int, warmup: int) -> dict:
    import numpy as np

    from edgedistill.device.collect import host_reference, measure_on_device, sample_inputs

    if inputs_file:
        try:
            x = np.load(inputs_file, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--device-inputs {inputs_file} is not a readable .npy array: {exc}.") from None
    else:
        x = sample_inputs(model)
    ref, tolerance = host_reference(model, x)
    return measure_on_device(url, model, x, ref, threads, runs=runs, warmup=warmup,
                             tolerance=tolerance)


def echo_device(d: dict) -> None:
    if d["status"] != "measured":
        click.echo(f"  device {d['url']}: MISSING ({d['error']})")
        return
    lat, dev, par = d["latency_ms"], d["device"], d["parity"]
    what = ", ".join(str(dev[k]) for k in ("model", "cpu", "machine", "system", "android") if dev.get(k))
    p50 = f"p50 {lat['p50']:.4f} ms, " if lat.get("p50") else ""
    click.echo(f"  measured on device {d['runner']['url']} ({what}; {d['runtime']['name']}, "
               f"{d['runtime']['threads']} thread{'s' * (d['runtime']['threads'] != 1)}): {p50}mean "
               f"{lat['mean']:.4f} ms, load {d['load_ms']:.1f} ms"
               + (f", peak RSS {d['peak_rss_bytes']:,} B" if d.get("peak_rss_bytes") else ""))
    verdict = ("outputs match this machine's" if par.get("passed") else
               f"OUTPUTS DIFFER (max |diff| {par.get('max_abs_diff')})") if par["checked"] else \
        f"parity not checked ({par.get('reason', '')})"
    click.echo(f"  device parity: {verdict}")
