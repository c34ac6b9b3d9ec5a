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
    if saved.model_dump(mode="json") != cfg.model_dump(mode="json"):
        return None
    return json.loads((out / "metrics.json").read_text())
