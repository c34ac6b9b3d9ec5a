"""Estimator error on the `cpu` profile across student sizes and kinds, and the fit behind targets/cpu.toml's factors.

    python tools/bench_estimator.py [--runs 300]

Exports int8 TFLite students of 9 conv sizes (cnn and dscnn families, 1x28x28 input) and 4 decoder sizes (the
causal-LM student: window L, vocabulary V, width, depth), measures each on LiteRT with XNNPACK at the profile's
thread count (median of timed runs), and estimates each with the roofline model (profile/estimate.py).

1. Error of the profile as committed, per family: median and max |estimate / measured - 1|, and the factor
   max(estimate / measured, measured / estimate).
2. A fit of the invoke overhead, the per-op overhead and the per-kernel efficiencies (conv, depthwise, fc = GEMV,
   matmul = GEMM, other; non-negative least squares of measured time on [1, n_ops, MACs / peak per kernel class,
   other ops / peak]), scored by leave-one-out cross-validation (each model predicted by a fit on the others), so
   the printed error is not the fit's own residual. The all-model fit is printed for cpu.toml. Conv students have
   10-20 ops and decoders 40-200, which is what separates the per-invoke from the per-op overhead (a fit on conv
   students alone put the whole invoke cost on each op, and decoders came out ~10x too slow).
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
from edgedistill.export.registry import export_all
from edgedistill.profile.estimate import cost_class, estimate_latency
from edgedistill.profile.measure import measure
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students import StudentArch, build_student
from edgedistill.students.decoder_family import decoder
from edgedistill.targets import load_target

SIZES = [("cnn", 4), ("dscnn", 8), ("cnn", 8), ("dscnn", 16), ("cnn", 16), ("dscnn", 32), ("cnn", 24),
         ("dscnn", 48), ("cnn", 32)]
DECODERS = [(16, 300, 48, 1), (32, 1000, 64, 2), (32, 2000, 128, 2), (64, 1000, 128, 4)]  # (L, V, width, depth)
CLASSES = ("conv", "depthwise", "fc", "matmul")


def features(cost, peak: float) -> np.ndarray:
    macs = {k: sum(layer.macs for layer in cost.layers if cost_class(layer) == k) for k in CLASSES}
    other = sum(layer.ops for layer in cost.layers if layer.kind in ("pool", "other"))
    return np.array([1.0, len(cost.layers), *(macs[k] / peak for k in CLASSES), other / peak])


def conv_file(family: str, width: int, path: Path) -> Path:
    torch.manual_seed(0)
    m = build_student(StudentArch(family, width, 3), (1, 28, 28), 10, Normalizer([0.3], [0.4], "channel"))
    q = calibrate(to_quant_student(m.eval()), torch.rand(64, 1, 28, 28))
    return export_tflite_int8(q, (1, 28, 28), path).path


def decoder_file(L: int, V: int, width: int, depth: int, directory: Path) -> Path:
    torch.manual_seed(0)
    m = decoder((L,), V, width, depth, V, heads=2).eval()
    x = torch.randint(1, V, (32, L), dtype=torch.int32)
    arts = export_all(m, calibrate(to_quant_student(m), x), (L,), V, directory, ["tflite"], True)
    return next(a.path for a in arts if a.precision == "int8")


def _errors(rows, est_of) -> str:
    out = []
    for fam in ("conv", "decoder"):
        r = [est_of(c) / m for f, _, c, m in rows if f == fam]
        err = [abs(x - 1) for x in r]
        factor = max(max(x, 1 / x) for x in r)
        out.append(f"{fam}: median |error| {statistics.median(err):.0%}, max {max(err):.0%}, worst factor "
                   f"{factor:.2f}x")
    return "; ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    target = load_target("cpu")
    torch.set_num_threads(1)
    rows = []  # (family, name, cost, measured ms)
    with tempfile.TemporaryDirectory() as tmp:
        files = [("conv", f"{f}{w}", conv_file(f, w, Path(tmp) / f"{f}{w}.tflite")) for f, w in SIZES]
        for L, V, w, d in DECODERS:
            (Path(tmp) / f"dec{L}_{V}_{w}_{d}").mkdir()
            files.append(("decoder", f"dec(L={L},V={V},{w}x{d})",
                          decoder_file(L, V, w, d, Path(tmp) / f"dec{L}_{V}_{w}_{d}")))
        for fam, name, path in files:
            meas = measure(path, "litert", threads=target.threads, runs=args.runs, min_seconds=1.0, per_op=False)
            rows.append((fam, name, tflite_cost(path), meas.median_ms))
    print(f"{'model':<24}{'ops':>5}{'MACs':>12}{'measured ms':>13}{'estimate ms':>13}{'error':>9}")
    for fam, name, cost, meas in rows:
        est = estimate_latency(cost, target, "int8").total_ms
        print(f"{name:<24}{len(cost.layers):>5}{cost.macs:>12,}{meas:>13.4f}{est:>13.4f}{est / meas - 1:>+9.0%}")
    print("committed cpu profile: " + _errors(rows, lambda c: estimate_latency(c, target, "int8").total_ms))

    peak = target.peak_int8_macs_per_s
    X = np.stack([features(c, peak) for _, _, c, _ in rows])
    y = np.array([m / 1e3 for *_, m in rows])
    held_out = []
    for i in range(len(rows)):
        keep = np.array([j for j in range(len(rows)) if j != i])
        c_i, _ = nnls(X[keep] / y[keep, None], np.ones(len(keep)))  # relative error: small models weigh the same
        held_out.append(float(X[i] @ c_i) / y[i])
    for fam in ("conv", "decoder"):
        r = [x for (f, *_), x in zip(rows, held_out) if f == fam]
        print(f"leave-one-out, {fam}: median |error| = {statistics.median(abs(x - 1) for x in r):.1%}, worst factor "
              f"{max(max(x, 1 / x) for x in r):.2f}x")
    coef, _ = nnls(X / y[:, None], np.ones(len(rows)))
    effs = {k: (min(1.0, 1 / c) if c > 0 else 1.0) for k, c in zip((*CLASSES, "other"), coef[2:])}
    print(f"fitted: invoke_overhead_s = {coef[0]:.3g}; op_overhead_s = {coef[1]:.3g}; efficiency = "
          + "{ " + ", ".join(f"{k} = {v:.3g}" for k, v in effs.items()) + " }")
    fitted = target.model_copy(update={"invoke_overhead_s": float(coef[0]), "op_overhead_s": float(coef[1]),
                                       "efficiency": {**target.efficiency, **{k: max(v, 1e-3) for k, v in effs.items()},
                                                      "pool": max(effs["other"], 1e-3)}})
    print("with the fitted values, all models: " + _errors(rows, lambda c: estimate_latency(c, fitted, "int8").total_ms))

if __name__ == "__main__":
    main()
