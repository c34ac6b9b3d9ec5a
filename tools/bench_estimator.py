"""Estimator error on the `cpu` profile across student sizes, and the fit behind targets/cpu.toml's factors.

    python tools/bench_estimator.py [--runs 300]

Exports int8 TFLite students of 9 sizes (cnn and dscnn families, 1x28x28 input), measures each on LiteRT with
XNNPACK at the profile's thread count (median of timed runs), and estimates each with the roofline model.

1. Error of the profile as committed: median |estimate / measured - 1| over all sizes.
2. A fit of per-op overhead and per-kernel efficiencies (non-negative least squares of measured time on
   n_ops and MACs per kernel kind), scored by leave-one-out cross-validation (each size predicted by a fit on the
   other eight), so the printed error is not the fit's own residual. The all-size fit is printed for cpu.toml.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from edgedistill.data import Normalizer
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.estimate import estimate_latency
from edgedistill.profile.measure import measure
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students import StudentArch, build_student
from edgedistill.targets import load_target

SIZES = [("cnn", 4), ("dscnn", 8), ("cnn", 8), ("dscnn", 16), ("cnn", 16), ("dscnn", 32), ("cnn", 24),
         ("dscnn", 48), ("cnn", 32)]
KINDS = ("conv", "depthwise", "fc")


def features(cost, peak: float) -> np.ndarray:
    macs = {k: sum(layer.macs for layer in cost.layers if layer.kind == k) for k in KINDS}
    other = sum(layer.ops for layer in cost.layers if layer.kind in ("pool", "other"))
    return np.array([len(cost.layers), *(macs[k] / peak for k in KINDS), other / peak])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    target = load_target("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family, width in SIZES:
            torch.manual_seed(0)
            m = build_student(StudentArch(family, width, 3), (1, 28, 28), 10, Normalizer([0.3], [0.4], "channel"))
            q = calibrate(to_quant_student(m.eval()), torch.rand(64, 1, 28, 28))
            path = Path(tmp) / f"{family}{width}.tflite"
            export_tflite_int8(q, (1, 28, 28), path)
            cost = tflite_cost(path)
            meas = measure(path, "litert", threads=target.threads, runs=args.runs, min_seconds=1.0)
            est = estimate_latency(cost, target, "int8")
            rows.append((f"{family}{width}", cost, meas.median_ms, est.total_ms))
    print(f"{'student':<10}{'MACs':>12}{'measured ms':>14}{'estimate ms':>14}{'error':>9}")
    for name, cost, meas, est in rows:
        print(f"{name:<10}{cost.macs:>12,}{meas:>14.4f}{est:>14.4f}{est / meas - 1:>+9.0%}")
    committed = statistics.median(abs(e / m - 1) for _, _, m, e in rows)
    print(f"committed cpu profile: median |estimate/measured - 1| = {committed:.1%} over {len(rows)} sizes (goal <= 25%)")

    peak = target.peak_int8_macs_per_s
    X = np.stack([features(c, peak) for _, c, _, _ in rows])
    y = np.array([m / 1e3 for _, _, m, _ in rows])
    held_out = []
    for i in range(len(rows)):
        keep = np.array([j for j in range(len(rows)) if j != i])
        c_i, _ = nnls(X[keep], y[keep])
        held_out.append(abs(float(X[i] @ c_i) / y[i] - 1))
    print(f"leave-one-out over {len(rows)} sizes: median |error| = {statistics.median(held_out):.1%}, "
          f"max {max(held_out):.1%}")
    coef, _ = nnls(X, y)
    effs = {k: (min(1.0, 1 / c) if c > 0 else 1.0) for k, c in zip((*KINDS, "other"), coef[1:])}
    print(f"fitted: op_overhead_s = {coef[0]:.3g}; efficiency = "
          + "{ " + ", ".join(f"{k} = {v:.3g}" for k, v in effs.items()) + " }")
    fitted = target.model_copy(update={"op_overhead_s": float(coef[0]), "efficiency": {
        **target.efficiency, **{k: max(v, 1e-3) for k, v in effs.items()}, "pool": max(effs["other"], 1e-3)}})
    after = statistics.median(abs(estimate_latency(c, fitted, "int8").total_ms / m - 1) for _, c, m, _ in rows)
    print(f"with the fitted values, all sizes: median |error| = {after:.1%}")


if __name__ == "__main__":
    main()
