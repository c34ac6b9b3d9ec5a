"""Issue 31's two speed targets, side by side in one run, repeated, medians reported:

(a) streaming costs little: the training step with the memory-mapped loader (a folder of x.npy / y.npy, rows read
    with pread) at most 1.1× the step with the same arrays in memory (.npz), one process, one thread;
(b) two ranks on one machine are not slower in samples/s than one: torchrun --nproc_per_node 2 (gloo, CPU, one
    thread each) against one process with two threads (the same cores) and with one thread.

    PYTHONPATH=. python tools/bench_speed_targets.py [--n 20000] [--steps 150] [--repeats 3] [--out docs/speed.json]

Every configuration is a real `edgedistill distill` run (uint8 3×32×32 samples, a TorchScript CNN teacher built
here, student cnn:width=16,depth=2, batch 128, fixed T and alpha, no twin, no augmentation, 0 DataLoader workers);
the figure is the student's training samples/s from metrics.json (training steps only: validation and the teacher
pass excluded), so step time = batch / samples/s. The teacher cache is shared, so only the first run pays the
teacher pass. Configurations rotate order between repeats; the 1-minute load average is recorded around each run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

CONFIGS = {  # name -> (data form, processes, threads each)
    "in memory (.npz), 1 process x 1 thread": ("npz", 1, 1),
    "memory-mapped (x.npy), 1 process x 1 thread": ("npy", 1, 1),
    "memory-mapped (x.npy), 1 process x 2 threads": ("npy", 1, 2),
    "memory-mapped (x.npy), 2 processes x 1 thread (gloo)": ("npy", 2, 1),
}


def write_data(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    x[:, :, :4, :4] = (y * 25).astype(np.uint8)[:, None, None, None]  # a learnable patch
    (root / "npy").mkdir()
    np.save(root / "npy" / "x.npy", x)
    np.save(root / "npy" / "y.npy", y)
    np.savez(root / "data.npz", x=x, y=y)
    teacher = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                            nn.Linear(256, 10)).eval()
    torch.jit.script(teacher).save(str(root / "teacher.pt"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(root: Path, name: str, steps: int, tag: str) -> dict:
    form, procs, threads = CONFIGS[name]
    out = root / f"out-{tag}"
    data = root / ("npy" if form == "npy" else "data.npz")
    args = ["distill", "--data", str(data), "--teacher", str(root / "teacher.pt"), "--student", "cnn:width=16,depth=2",
            "--steps", str(steps), "--batch-size", "128", "-T", "4", "--alpha", "0.9", "--no-baseline", "--augment",
            "none", "--workers", "0", "--threads", str(threads), "--cache-dir", str(root / "cache"), "-q", "--out",
            str(out), "--overwrite"]
    if procs == 1:
        cmd = [sys.executable, "-m", "edgedistill", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--rdzv-backend=c10d",
               f"--rdzv-endpoint=127.0.0.1:{_port()}", "-m", "edgedistill", *args]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"samples_per_s": m["student"]["samples_per_s"], "data_share": m["student"]["data_share"],
            "world": (m.get("distributed") or {}).get("world_size", 1), "wall_s": time.perf_counter() - t0,
            "load_before": load0, "load_after": os.getloadavg()[0]}


def summarise(runs: dict[str, list[dict]]) -> dict:
    med = {k: statistics.median(r["samples_per_s"] for r in v) for k, v in runs.items()}
    names = list(CONFIGS)
    mem, mapped, two_threads, two_ranks = (med[k] for k in names)
    return {"median_samples_per_s": med,
            "streaming_step_time_ratio": mem / mapped,  # step time mapped / in memory = (1/mapped) / (1/mem)
            "two_ranks_vs_one_process_two_threads": two_ranks / two_threads,
            "two_ranks_vs_one_process_one_thread": two_ranks / mapped,
            "per_repeat_streaming_ratio": [a["samples_per_s"] / b["samples_per_s"]
                                           for a, b in zip(runs[names[0]], runs[names[1]])],
            "per_repeat_two_ranks_ratio": [a["samples_per_s"] / b["samples_per_s"]
                                           for a, b in zip(runs[names[3]], runs[names[2]])]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {k: [] for k in CONFIGS}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write_data(root, args.n)
        run(root, list(CONFIGS)[1], 2, "warm")  # the teacher pass and the page cache, before any timing
        for r in range(args.repeats):
            names = list(CONFIGS)[r % len(CONFIGS):] + list(CONFIGS)[: r % len(CONFIGS)]
            for name in names:
                runs[name].append(run(root, name, args.steps, f"{r}"))
                print(f"repeat {r}: {name}: {runs[name][-1]['samples_per_s']:,.0f} samples/s "
                      f"(load {runs[name][-1]['load_before']:.1f})", flush=True)
    result = {"n": args.n, "steps": args.steps, "repeats": args.repeats, "cores": os.cpu_count(), "runs": runs,
              **summarise(runs)}
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
