"""Fashion-MNIST at three flash budgets: the searched student's int8 TFLite accuracy, the same student trained
without a teacher (int8 QAT twin), and the teacher, side by side.

    python tools/bench_budgets.py [--epochs 5] [--qat-epochs 2] [--budgets 16KiB,64KiB,256KiB]

Each budget is one `edgedistill build --target cortex-m7 --budget flash=...` (same seed, same schedule).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edgedistill.api import build
from edgedistill.config import load_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--budgets", default="16KiB,64KiB,256KiB")
    ap.add_argument("--out", default="runs/bench-budgets")
    args = ap.parse_args()
    rows = []
    for b in args.budgets.split(","):
        t0 = time.perf_counter()
        cfg = load_config(None, {"data": {"source": "builtin:fashion-mnist"}, "train": {"epochs": args.epochs},
                                 "kd": {"tune_max_samples": 5000},
                                 "quant": {"qat": True, "qat_epochs": args.qat_epochs}, "target": "cortex-m7",
                                 "out": f"{args.out}/{b}"})
        res = build(cfg, f"flash={b}", show_progress=False)
        m = json.loads((res.out_dir / "metrics.json").read_text())
        q = m["int8"]
        deployed = next(r for r in q["parity"] if r["artifact"] == "tflite-int8" and r["runtime"] == "litert")
        rows.append((b, res.search.chosen, deployed, q, m, time.perf_counter() - t0))
    print(f"{'flash':<8}{'student':<26}{'params':>8}{'file B':>9}{'int8 TFLite':>13}{'twin int8':>11}"
          f"{'gain':>8}{'teacher':>9}{'build s':>9}")
    for b, c, dep, q, m, secs in rows:
        print(f"{b:<8}{c.arch.describe():<26}{c.params:>8,}{dep['bytes']:>9,}{dep['accuracy']:>12.2f}%"
              f"{q['baseline_qat_test_acc']:>10.2f}%{dep['accuracy'] - q['baseline_qat_test_acc']:>+8.2f}"
              f"{m['teacher']['test_acc']:>8.2f}%{secs:>9.0f}")


if __name__ == "__main__":
    main()
