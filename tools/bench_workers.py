"""DataLoader workers side by side: training throughput and the data loader's share of step time with 0, 1, 2 ...
workers, on memory-mapped uint8 images and on the same images in memory (docs/scale.md, "DataLoader workers").

    python tools/bench_workers.py [--n 20000] [--steps 150] [--workers 0,1,2] [--repeats 2] [--out FILE.json]

Data: N random uint8 images of 3×32×32 (CIFAR's size; the pixel values do not matter for timing), written to an
x.npy and read memory-mapped as a folder of .npy files is. Each measurement is one fit() in this process with torch
at 1 thread (the training process's share of a 2-core box; workers take the other core): the no-teacher objective,
a cnn student of width 16 and depth 2, batch 128, augmentation shift ±2 and h-flip (built in the loader), `--steps`
optimizer steps, no validation until the end. The orders of worker counts alternate between repeats, so drifting
load on a shared machine does not favour one count. Reports samples/s and data_share (the seconds a step waited for
its batch over the training seconds), as metrics.json does.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgedistill.data.augment import Augment
from edgedistill.data.mapped import track
from edgedistill.data.splits import Normalizer
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit
from edgedistill.students import StudentArch, build_student


def data(n: int, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    path = folder / "x.npy"
    if not path.exists():
        x = np.lib.format.open_memmap(path, "w+", np.uint8, (n, 3, 32, 32))
        for i in range(0, n, 10_000):
            x[i : i + 10_000] = rng.integers(0, 256, (min(10_000, n - i), 3, 32, 32), dtype=np.uint8)
        x.flush()
        del x
    xm = torch.from_numpy(track(np.load(path, mmap_mode="r")))
    return xm, torch.from_numpy(rng.integers(0, 10, n))


def one(model, x, y, vx, vy, steps: int, workers: int) -> dict:
    settings = TrainSettings(batch_size=128, lr=3e-3, seed=0, steps=steps, eval_every=steps, workers=workers,
                             augment=Augment(shift=2, hflip=True))
    res = fit(copy.deepcopy(model), TrainSet(x, y, None), vx, vy, Objective(teacher=False), settings)
    return {"samples_per_s": res.samples_per_s, "data_share": res.data_s / res.seconds, "seconds": res.seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--student", default="16,2", help="cnn width,depth")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="workers-"))
    work.mkdir(parents=True, exist_ok=True)
    xm, y = data(args.n, work)
    forms = {"memory-mapped uint8": xm, "in memory uint8": xm.clone()}
    torch.manual_seed(0)
    width, depth = (int(v) for v in args.student.split(","))
    model = build_student(StudentArch("cnn", width, depth), (3, 32, 32), 10,
                          Normalizer.fit(np.asarray(xm[:2000], dtype=np.float32)))
    vx, vy = xm[:256].to(torch.float32), y[:256]
    counts = [int(w) for w in args.workers.split(",")]
    runs: dict = {f: {w: [] for w in counts} for f in forms}
    for r in range(args.repeats):
        for form, x in forms.items():
            for w in (counts if r % 2 == 0 else counts[::-1]):
                m = one(model, x, y, vx, vy, args.steps, w)
                runs[form][w].append(m)
                print(f"{form:20s} workers {w}: {m['samples_per_s']:7,.0f} samples/s, data share "
                      f"{m['data_share']:.1%}", flush=True)
    summary = {f: {w: {"samples_per_s": statistics.median(m["samples_per_s"] for m in ms),
                       "data_share": statistics.median(m["data_share"] for m in ms), "runs": ms}
                   for w, ms in by.items()} for f, by in runs.items()}
    print("\n| data | workers | samples/s (median) | data loader's share of step time |\n|---|---:|---:|---:|")
    for f, by in summary.items():
        for w, s in by.items():
            print(f"| {f} | {w} | {s['samples_per_s']:,.0f} | {s['data_share']:.1%} |")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary},
                                       indent=1))


if __name__ == "__main__":
    main()
