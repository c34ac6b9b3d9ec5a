"""report.html rendered by a real headless Chromium: the page shows its three plots (checked on the pixels)."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgedistill.report import assemble, to_html
from edgedistill.report.svg import COLORS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _report() -> dict:
    metrics = {
        "teacher": {"params": 65834, "test_acc": 99.2}, "baseline": {"params": 6000, "test_acc": 96.0},
        "student": {"params": 6000, "test_acc": 97.1}, "gain_vs_baseline": 1.1, "warnings": [],
        "int8": {"parity_passed": True, "ptq_test_acc": 95.5, "qat_test_acc": 96.9, "gain_vs_baseline_int8": 0.8,
                 "parity": [{"artifact": "tflite-int8", "runtime": "litert", "samples": 10, "accuracy": 96.9,
                             "reference_accuracy": 96.9, "top1_agreement": 100.0, "max_abs_logit_diff": 0.0,
                             "bytes": 9000, "checked": True, "passed": True},
                            {"artifact": "onnx-int8", "runtime": "onnxruntime", "samples": 10, "accuracy": 96.9,
                             "reference_accuracy": 96.9, "top1_agreement": 100.0, "max_abs_logit_diff": 0.0,
                             "bytes": 8000, "checked": True, "passed": True}]},
    }
    profiles = {"teacher": {"bytes": 270000, "latency_ms": 0.1, "where": "measured-host"},
                "tflite-float": {"bytes": 30000, "latency_ms": 0.02, "where": "measured-host"},
                "tflite-int8": {"bytes": 9000, "latency_ms": 0.03, "where": "measured-host"},
                "onnx-int8": {"bytes": 8000, "latency_ms": 0.025, "where": "measured-host"}}
    target = {"name": "cortex-m4", "estimate_ms": 2.0, "estimate_model": "roofline", "estimate_error": None,
              "per_op": [{"index": i, "op": op, "ms": ms} for i, (op, ms) in
                         enumerate([("CONV_2D", 1.2), ("MAX_POOL_2D", 0.1), ("FULLY_CONNECTED", 0.3)])],
              "fit": [{"check": "flash", "value": 9000, "limit": 1048576, "passed": True},
                      {"check": "ram", "value": 5000, "limit": 262144, "passed": True}]}
    return assemble(metrics, profiles, target)


def test_html_is_self_contained_with_three_plots():
    page = to_html(_report())
    assert page.count('<svg class="plot"') == 3
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_chromium_renders_the_plots(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):  # CI installs it (.ci/run): a missing browser there is a broken job, not a skip
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    html_path = tmp_path / "report.html"
    html_path.write_text(to_html(_report()))
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1600",
                    f"--screenshot={shot}", html_path.as_uri()], check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    def count(hex_color: str) -> int:
        rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(img - rgb).sum(axis=2) < 30).sum())
    # Scatter points use several palette colours; bars are the first colour; each must cover real area.
    assert count(COLORS[0]) > 2000  # per-layer and budget bars + a scatter point
    assert sum(count(c) > 50 for c in COLORS[1:5]) >= 3  # other scatter points are drawn
    blank = Image.new("RGB", (10, 10), "white")
    assert np.asarray(blank).mean() > img.mean()  # the page is not empty
