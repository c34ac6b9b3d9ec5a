"""Throughput of 1 process (2 threads) vs 2 processes (torchrun, gloo, 1 thread each) on the Fashion-MNIST example,
side by side in one run, and the speed-up of the sharded teacher pass.

    python tools/bench_distributed.py [--epochs 2] [--student cnn:width=16,depth=3] [--max-train 30000]

Each configuration is a real `edgedistill distill` run (fixed T and alpha, no twin, fresh teacher cache so the
teacher pass is timed); figures come from its metrics.json: training samples/s of the student and the teacher pass.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(nproc: int, args, root: Path) -> dict:
    out = root / f"p{nproc}"
    common = ["distill", "--data", "builtin:fashion-mnist", "--student", args.student, "--epochs", str(args.epochs),
              "-T", "4", "--alpha", "0.9", "--no-baseline", "-q", "--out", str(out), "--max-train", str(args.max_train),
              "--threads", str(2 // nproc)]
    env = {**os.environ, "EDGEDISTILL_CACHE": str(root / f"cache{nproc}")}
    if nproc == 1:
        cmd = [sys.executable, "-m", "edgedistill", *common]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--rdzv-backend=c10d",
               f"--rdzv-endpoint=127.0.0.1:{_port()}", "-m", "edgedistill", *common]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--student", default="cnn:width=16,depth=3")
    ap.add_argument("--max-train", type=int, default=30000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        res = {n: run(n, args, Path(d)) for n in (1, 2)}
    print(f"{'processes':<10}{'threads each':>13}{'train samples/s':>17}{'teacher pass s':>16}{'test acc':>10}")
    for n, m in res.items():
        print(f"{n:<10}{2 // n:>13}{m['student']['samples_per_s']:>17,.0f}{m['timings']['teacher_logits_s']:>16.2f}"
              f"{m['student']['test_acc']:>9.2f}%")
    s1, s2 = (res[n]["student"]["samples_per_s"] for n in (1, 2))
    t1, t2 = (res[n]["timings"]["teacher_logits_s"] for n in (1, 2))
    print(f"training speed-up 2 vs 1 process: {s2 / s1:.2f}x; sharded teacher pass speed-up: {t1 / t2:.2f}x")


if __name__ == "__main__":
    main()
