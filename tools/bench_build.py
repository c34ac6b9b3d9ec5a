"""Wall-clock of the README's main command on the built-in example, from a cold teacher cache, and of a no-change
re-run (which only re-checks), side by side.

    python tools/bench_build.py [--target android] [--out runs/bench-build]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="android")
    ap.add_argument("--out", default="runs/bench-build")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "EDGEDISTILL_CACHE": cache}
        cmd = [sys.executable, "-m", "edgedistill", "build", "--target", args.target, "--out", args.out, "-q"]
        times = []
        for what in ("cold build", "no-change re-run"):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            times.append((what, time.perf_counter() - t0, proc.returncode))
    m = json.loads((Path(args.out) / "metrics.json").read_text())
    for what, secs, rc in times:
        print(f"{what:<18} {secs:7.1f} s  (exit {rc})")
    t = m["timings"]
    print("stages: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k.endswith("_s")))
    print(f"int8 stage: train {m['int8']['train_s']:.1f} s, export {m['int8']['export_s']:.1f} s, parity "
          f"{m['int8']['parity_s']:.1f} s; student {m['student']['arch']}, int8 {m['int8']['qat_test_acc']:.2f}% vs "
          f"twin {m['int8']['baseline_qat_test_acc']:.2f}%")


if __name__ == "__main__":
    main()
