"""Measure this host's peak throughput and memory bandwidth, the figures behind targets/cpu.toml.

    python tools/measure_host.py [--threads 2]

* fp32: a 1024×1024×1024 float32 matmul through LiteRT/XNNPACK-free numpy (BLAS), best of 5 -> FLOP/s and MAC/s.
* int8: an int8 3x3 convolution, 64 -> 64 channels on 56x56 (115.6 M MACs, compute-bound), converted by
  edgedistill's own int8 TFLite exporter and run by LiteRT with XNNPACK -> int8 MAC/s as the runtime achieves it
  (median of timed runs). A batch-1 fully-connected layer would measure memory, not compute.
* bandwidth: copying a 256 MiB buffer with numpy (read + write bytes / s), best of 5.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _best(fn, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fp32_macs(threads: int) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    t = _best(lambda: a @ b)
    return 1024**3 / t


def int8_macs(threads: int) -> float:
    from edgedistill.export.tflite_export import export_tflite_int8
    from edgedistill.quantize import calibrate, to_quant_student
    from edgedistill.runtimes import LiteRTRunner

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU()).eval()
    q = calibrate(to_quant_student(model), torch.randn(8, 64, 56, 56))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conv.tflite"
        export_tflite_int8(q, (64, 56, 56), path)
        runner = LiteRTRunner(path, threads=threads)
        x = np.random.default_rng(0).standard_normal((1, 64, 56, 56)).astype(np.float32)
        for _ in range(5):
            runner.predict(x)
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            runner.predict(x)
            times.append(time.perf_counter() - t0)
    return 56 * 56 * 64 * 64 * 9 / float(np.median(times))


def bandwidth() -> float:
    src = np.ones(256 * 2**20, np.uint8)
    dst = np.empty_like(src)
    t = _best(lambda: np.copyto(dst, src))
    return 2 * src.nbytes / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    out = {
        "host": platform.processor() or platform.machine(), "threads": args.threads,
        "fp32_macs_per_s": fp32_macs(args.threads), "int8_macs_per_s": int8_macs(args.threads),
        "memory_bandwidth_bytes_per_s": bandwidth(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
