"""Teacher inference: eager torch vs the onnxruntime path edgedistill uses (teachers/accelerate.py), side by side.

    python tools/bench_teacher_runtime.py [--teacher builtin:fashion-mnist] [--samples 10000] [--batch 512]

Prints samples/s for both, their ratio and the largest logit difference, alternating the two 3 times.
"""

from __future__ import annotations

import argparse
import time

import torch

from edgedistill.data import read_dataset
from edgedistill.teachers import TeacherSpec, load_teacher
from edgedistill.teachers.loader import BUILTIN_TEACHERS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="builtin:fashion-mnist")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    teacher = load_teacher(TeacherSpec(args.teacher))
    data = BUILTIN_TEACHERS[args.teacher.split(":", 1)[1]][2]
    x = read_dataset(data).train.x[: args.samples]
    batches = [x[i : i + args.batch] for i in range(0, len(x), args.batch)]
    teacher.logits(batches[0])  # export + equality check happen here, outside the timing
    print(f"{args.teacher}: runtime after the check = {teacher.runtime()} "
          f"(max |Δ| on the probe {teacher.runner.max_abs_diff:.2e}); {torch.get_num_threads()} threads")
    times = {"torch": [], "onnxruntime": []}
    diff = 0.0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            ref = [teacher.module(torch.from_numpy(b)) for b in batches]
        times["torch"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = [teacher.logits(b) for b in batches]
        times["onnxruntime"].append(time.perf_counter() - t0)
        diff = max(diff, max(float((a - b).abs().max()) for a, b in zip(got, ref)))
    best = {k: min(v) for k, v in times.items()}
    for k, v in best.items():
        print(f"  {k:<12} {len(x) / v:>10,.0f} samples/s  (best of {args.repeats})")
    print(f"  speed-up {best['torch'] / best['onnxruntime']:.2f}x; max |logit difference| {diff:.2e}")


if __name__ == "__main__":
    main()
