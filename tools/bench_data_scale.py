"""Peak memory, throughput and teacher-cache cost of `edgedistill distill --qat` as the data grows: MNIST-1D written
as folders of x.npy / y.npy at N = 10 K, 100 K and 1 M samples (docs/scale.md).

    python tools/bench_data_scale.py [--sizes 10000,100000,1000000] [--steps 200] [--out docs/scale.json]

Data: MNIST-1D (Greydanus 2020, PyPI `mnist1d`, generated, no download). Generating a sample takes ~0.4 ms in the
package's Python loop, so BASE samples are generated once and larger sets repeat them under augmentation (a seeded
circular shift of up to ±3 positions and Gaussian noise of std 0.05 per copy, vectorised), written piecewise into
memory-mapped .npy files so that writing 1 M samples never holds them in memory. Samples are N×1×40 float32 signals.

Teacher: a small 1-D CNN built and trained here (a few epochs on the first 8,000 base samples), saved as TorchScript.

Each size is one `edgedistill distill --qat --steps S --threads 1` in a subprocess (fixed T and α, no twin, no
augmentation, a fresh teacher cache so the teacher pass is timed). Peak RSS is the child's ru_maxrss from wait4 (the
kernel's high-water mark, file-backed pages of memory-mapped arrays included); samples/s and the teacher-pass time
come from its metrics.json; cache bytes are the files the run left in its cache folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

BASE = 20_000
PIECE = 50_000


def mnist1d_base(n: int = BASE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = n, seed, 1.0
    d = make_dataset(args)
    x = np.concatenate([d["x"], d["x_test"]]) if len(d["x_test"]) else d["x"]
    y = np.concatenate([d["y"], d["y_test"]]) if len(d["y_test"]) else d["y"]
    return x.astype(np.float32)[:, None, :], y.astype(np.int64)


def write_npy_dir(folder: Path, n: int, base_x: np.ndarray, base_y: np.ndarray, seed: int = 0) -> None:
    """x.npy (n×1×40 float32) and y.npy (n int64): the base samples, then shifted, noisy copies, piece by piece."""
    folder.mkdir(parents=True, exist_ok=True)
    x = np.lib.format.open_memmap(folder / "x.npy", "w+", np.float32, (n,) + base_x.shape[1:])
    y = np.lib.format.open_memmap(folder / "y.npy", "w+", np.int64, (n,))
    rng = np.random.default_rng(seed)
    for i in range(0, n, PIECE):
        k = min(PIECE, n - i)
        src = (np.arange(i, i + k)) % len(base_x)
        xb, yb = base_x[src].copy(), base_y[src]
        if i >= len(base_x):  # copies: the base itself is kept as generated
            shifts = rng.integers(-3, 4, k)
            cols = (np.arange(xb.shape[-1])[None, :] - shifts[:, None]) % xb.shape[-1]
            xb = np.take_along_axis(xb[:, 0], cols, axis=1)[:, None]
            xb += rng.normal(0, 0.05, xb.shape).astype(np.float32)
        x[i : i + k], y[i : i + k] = xb, yb
    x.flush()
    y.flush()
    del x, y


class Teacher1D(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(1, 32, 5, padding=2), nn.ReLU(), nn.Conv1d(32, 32, 5, padding=2),
                                  nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(32, 64, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, classes))

    def forward(self, x):
        return self.body(x)


def train_teacher(x: np.ndarray, y: np.ndarray, path: Path, epochs: int = 8) -> float:
    torch.manual_seed(0)
    model = Teacher1D()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    xt, yt = torch.from_numpy(x[:8000]), torch.from_numpy(y[:8000])
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(128):
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x[8000:])).argmax(1).numpy() == y[8000:]).mean())
    torch.jit.script(model).save(str(path))
    return acc


def run_distill(data: Path, teacher: Path, root: Path, steps: int, extra: list[str]) -> dict:
    out, cache = root / "out", root / "cache"
    cmd = [sys.executable, "-m", "edgedistill", "distill", "--data", str(data), "--teacher", str(teacher), "--qat",
           "--steps", str(steps), "--qat-steps", str(max(steps // 4, 1)), "--threads", "1", "-T", "4", "--alpha",
           "0.9", "--no-baseline", "--augment", "none", "-q", "--out", str(out), "--cache-dir", str(cache), *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"distill failed on {data}:\n{err[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    cache_bytes = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    return {"peak_rss_bytes": usage.ru_maxrss * 1024, "wall_s": wall,
            "samples_per_s": m["student"].get("samples_per_s"), "data_share": m["student"].get("data_share"),
            "teacher_pass_s": m["timings"].get("teacher_logits_s"), "cache_bytes": cache_bytes,
            "cache": m.get("teacher_cache"), "test_acc": m["student"].get("test_acc"),
            "int8_test_acc": (m.get("int8") or {}).get("test_acc"), "sizes": m.get("data", {}).get("sizes")}


def cache_precision(teacher: Path, x: np.ndarray) -> dict:
    """The cache's float16-shifted storage against float32 on this teacher's logits over `x`: the largest |Δp| of the
    soft targets and the mean KL(float32 || stored) at each temperature the tuner uses, and top-1 agreement."""
    from edgedistill.distill.tuning import TEMPERATURES
    from edgedistill.teachers.logit_store import decode, encode, form_of, soft_target_bound

    model = torch.jit.load(str(teacher)).eval()
    with torch.no_grad():
        z = torch.cat([model(torch.from_numpy(np.array(x[i : i + 4096]))) for i in range(0, len(x), 4096)]).numpy()
    stored = encode(z)
    back = decode(stored)
    out = {"samples": len(z), "form": form_of(stored), "bytes_per_sample": stored.nbytes / len(z),
           "float32_bytes_per_sample": z.nbytes / len(z), "bound": soft_target_bound(z.shape[1]),
           "top1_agreement": float((back.argmax(1) == z.argmax(1)).mean()), "logit_range": float(np.ptp(z, 1).max()),
           "temperatures": {}}
    for t in TEMPERATURES:
        p32 = torch.softmax(torch.from_numpy(z).double() / t, 1)
        p16 = torch.softmax(torch.from_numpy(back).double() / t, 1)
        kl = (p32 * (p32.log() - p16.log())).sum(1).mean()
        out["temperatures"][str(t)] = {"max_abs_dp": float((p32 - p16).abs().max()), "mean_kl": float(kl)}
    return out


def table(results: dict) -> str:
    """docs/scale.md's table: one row per (measurement label, N), the ratio of peak RSS to the label's smallest N."""
    lines = ["| code | N | data | peak RSS MiB | × smallest N | samples/s | teacher pass s | cache bytes | test acc % |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for label, res in results.items():
        base = res["rows"][0]["peak_rss_bytes"]
        for r in res["rows"]:
            lines.append(f"| {label} | {r['n']:,} | {r.get('form', 'npy')} | {r['peak_rss_bytes'] / 2**20:,.0f} | {r['peak_rss_bytes'] / base:.2f} "
                         f"| {r['samples_per_s'] or 0:,.0f} | {r['teacher_pass_s']:.2f} | {r['cache_bytes']:,} "
                         f"| {r['test_acc']:.2f} |")
    return "\n".join(lines)


def _show(r: dict) -> None:
    print(f"N={r['n']:>9,} {r['form']}  peak RSS {r['peak_rss_bytes'] / 2**20:8,.0f} MiB  "
          f"{r['samples_per_s'] or 0:8,.0f} samples/s  teacher pass {r['teacher_pass_s']:6.2f} s  "
          f"cache {r['cache_bytes'] / 2**20:7.1f} MiB  test {r['test_acc']:.2f}%  wall {r['wall_s']:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--work", type=Path, default=None, help="keep data here (reused across runs) instead of a temp dir")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--label", default="", help="a name for this measurement (before / after)")
    ap.add_argument("--npz-up-to", type=int, default=0, help="also run N up to this as an in-memory .npz")
    ap.add_argument("--table", type=Path, default=None, help="print the Markdown table of this JSON file and exit")
    ap.add_argument("--extra", default="", help="further distill flags, space-separated")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    teacher = work / "teacher1d.pt"
    base_x = base_y = None
    if not teacher.exists() or any(not (work / f"n{n}" / "y.npy").exists() for n in sizes):
        base_x, base_y = mnist1d_base()
    if not teacher.exists():
        print(f"teacher accuracy on base samples 8,000..{BASE:,}: {train_teacher(base_x, base_y, teacher):.2%}")
    prec = cache_precision(teacher, np.load(work / f"n{sizes[-1]}" / "x.npy", mmap_mode="r")[:100_000]) \
        if (work / f"n{sizes[-1]}" / "x.npy").exists() else None
    if prec:
        worst = max(v["max_abs_dp"] for v in prec["temperatures"].values())
        print(f"cache float16-shifted vs float32 on {prec['samples']:,} samples: max |dp| {worst:.2e} (bound "
              f"{prec['bound']:.2e}), top-1 agreement {prec['top1_agreement']:.4%}")
    rows = []
    for n in sizes:
        folder = work / f"n{n}"
        if not (folder / "y.npy").exists():
            write_npy_dir(folder, n, base_x, base_y)
        forms = [("npy", folder)]
        if n <= args.npz_up_to:  # the same arrays read into memory (an .npz is never memory-mapped)
            npz = work / f"n{n}.npz"
            if not npz.exists():
                np.savez(npz, x=np.load(folder / "x.npy"), y=np.load(folder / "y.npy"))
            forms.append(("npz", npz))
        for form, source in forms:
            with tempfile.TemporaryDirectory(dir=work) as d:
                r = {"n": n, "form": form, **run_distill(source, teacher, Path(d), args.steps, args.extra.split())}
            rows.append(r)
            _show(r)
    if args.out:
        prev = json.loads(args.out.read_text()) if args.out.exists() else {}
        prev[args.label or "run"] = {"steps": args.steps, "rows": rows, "cache_precision": prec}
        args.out.write_text(json.dumps(prev, indent=1) + "\n")


if __name__ == "__main__":
    main()
