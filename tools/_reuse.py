"""Shared by the benchmarks: reuse a finished run when its saved configuration equals the one asked for."""

from __future__ import annotations

import json
from pathlib import Path

from edgedistill.config import load_config


def finished_metrics(cfg) -> dict | None:
    """metrics.json of cfg.out if that run finished with the same configuration, else None. The saved config is read
    through the current schema, so fields added since keep old runs reusable."""
    out = Path(cfg.out)
    if not (out / "metrics.json").is_file():
        return None
    saved = load_config(None, json.loads((out / "config.json").read_text()))
    if _absolute_out(saved) != _absolute_out(cfg):
        return None
    return json.loads((out / "metrics.json").read_text())


def _absolute_out(cfg) -> dict:
    """The configuration with its output folder resolved: `runs/x` and `/abs/runs/x` are the same run."""
    d = cfg.model_dump(mode="json")
    return {**d, "out": str(Path(d["out"]).resolve())}


# What the no-teacher twin does not depend on: the teacher and the distillation loss, and where the run is written.
TWIN_INDEPENDENT = ("teachers", "ensemble", "kd", "out", "baseline", "report", "cache_dir")


def _twin_view(cfg) -> dict:
    d = cfg.model_dump(mode="json")
    return {k: v for k, v in d.items() if k not in TWIN_INDEPENDENT}


def finished_twin(cfg, search: list[str]) -> tuple[dict, str] | None:
    """metrics.json of a finished run (under any of the `search` folders) whose twin is the one `cfg` would train:
    every setting equal except the teacher, the loss and the paths. Training is deterministic on CPU (same seed, same
    data order, same init; two runs with different teachers gave bit-identical twins), so its twin figures stand for
    this run's. Returns (its metrics, its directory), or None when no such run exists."""
    want = _twin_view(cfg)
    for root in search:
        for conf in sorted(Path(root).glob("*/config.json")):
            if not (conf.parent / "metrics.json").is_file():
                continue
            saved = load_config(None, json.loads(conf.read_text()))
            if saved.baseline and _twin_view(saved) == want:
                return json.loads((conf.parent / "metrics.json").read_text()), str(conf.parent)
    return None
