"""Where distillation pays most: few labels. Distilled int8 students vs their no-teacher twins, default settings.

    python tools/bench_scarce_labels.py [--sets mnist1d:2.5:u,mnist1d:5:u,mnist1d:10:u,mnist1d:25:u,fashion:1,fashion:3]
                                        [--seeds 0,1,2] [--unlabeled] [--out runs/bench-scarce] [--doc docs/scarce_labels]

Each set NAME:PERCENT keeps PERCENT % of the training labels (a seeded random subset, one per seed) and tests on the
official test split (MNIST-1D: 1,000 signals; Fashion-MNIST: 10,000 images). The teacher is trained on all labels:
MNIST-1D (the `mnist1d` package, generated offline with its default arguments: 4,000 training signals of length
40) gets a 1-D CNN trained here once and exported to ONNX; Fashion-MNIST uses the built-in teacher. The student is
a ~3.7 K-parameter conv1d (width 8, depth 3) on MNIST-1D and the default student on Fashion-MNIST; everything else is
edgedistill's default (training budget sized to the data: 6,000 optimizer steps on these small sets; function
matching: mixup with the teacher labelling the mixed inputs, the twin un-mixed; auto T / alpha scored with held-out
folds; QAT int8). A set NAME:PERCENT:u (or every set, with --unlabeled) keeps the training samples whose labels were
dropped in the data set as unlabelled (y = -1) transfer samples: soft targets only, and the twin never sees them.
The default sets are the issue's benchmark: MNIST-1D with the rest of its training signals unlabelled, Fashion-MNIST
with its labelled samples only.

For every (set, seed) this is one `edgedistill distill --qat` run: the distilled student and its twin share the
architecture, initialisation and data order; the twin learns from the labelled samples only. Finished runs under
--out are reused. Writes DOC.json and DOC.md after every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.config import load_config
from edgedistill.pipeline import distill
from edgedistill.errors import EdgeDistillError

MNIST1D_STUDENT = {"family": "conv1d", "width": 8, "depth": 3}


def mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D with the package's default arguments (seed 42): x (4000, 1, 40), y, x_test (1000, 1, 40), y_test."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    f = lambda a: np.asarray(a, np.float32)[:, None, :]  # noqa: E731
    return f(d["x"]), np.asarray(d["y"], np.int64), f(d["x_test"]), np.asarray(d["y_test"], np.int64)


def fashion_arrays():
    from edgedistill.data import read_dataset

    raw = read_dataset("builtin:fashion-mnist")
    return raw.train.x, raw.train.y, raw.test.x, raw.test.y


class Teacher1D(nn.Module):
    """A 1-D CNN teacher for MNIST-1D (~26 K parameters)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        c = lambda i, o: nn.Sequential(nn.Conv1d(i, o, 3, padding=1), nn.BatchNorm1d(o), nn.ReLU())  # noqa: E731
        self.body = nn.Sequential(c(1, 32), c(32, 32), nn.MaxPool1d(2), c(32, 48), nn.MaxPool1d(2), c(48, 64),
                                  c(64, 64), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(64, classes)

    def forward(self, x):
        return self.head(self.body(x))


def train_mnist1d_teacher(out: Path, x, y, x_test, y_test, epochs: int = 40) -> tuple[Path, float]:
    """Train the teacher on all training labels (seed 0, random shifts of up to 3 steps) and export it to ONNX."""
    path = out / "teacher_mnist1d.onnx"
    meta = out / "teacher_mnist1d.json"
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())["test_acc"]
    torch.manual_seed(0)
    model = Teacher1D()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-4)
    steps = epochs * -(-len(xt) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 64):
            idx = order[i:i + 64]
            xb = torch.roll(xt[idx], int(torch.randint(-3, 4, (1,), generator=g)), dims=2)
            loss = nn.functional.cross_entropy(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = 100.0 * float((model(torch.from_numpy(x_test)).argmax(1) == torch.from_numpy(y_test)).float().mean())
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.zeros(2, 1, x.shape[2]),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    meta.write_text(json.dumps({"test_acc": acc, "epochs": epochs}))
    return path, acc


def labelled_subset(y: np.ndarray, percent: float, seed: int) -> np.ndarray:
    """Indices of a seeded random PERCENT % of the samples (sorted)."""
    k = int(round(len(y) * percent / 100.0))
    return np.sort(np.random.default_rng(1000 + seed).permutation(len(y))[:k])


def write_data(path: Path, x, y, x_test, y_test, keep: np.ndarray, unlabeled: bool) -> None:
    if unlabeled:
        yy = np.full(len(y), -1, np.int64)
        yy[keep] = y[keep]
        np.savez(path, x=x, y=yy, x_test=x_test, y_test=y_test)
    else:
        np.savez(path, x=x[keep], y=y[keep], x_test=x_test, y_test=y_test)


def run_one(name: str, percent: float, seed: int, arrays, teacher: str, args, unlabeled: bool) -> dict:
    x, y, x_test, y_test = arrays
    tag = f"{name}-{percent:g}pct-seed{seed}" + ("-unlabeled" if unlabeled else "")
    out = Path(args.out) / tag
    done = out / "metrics.json"
    if not done.exists() and args.finished_only:
        return {"seed": seed, "not_run": True}
    if not done.exists():
        data = Path(args.out) / f"{tag}.npz"
        keep = labelled_subset(y, percent, seed)
        write_data(data, x, y, x_test, y_test, keep, unlabeled)
        cfg = load_config(None, {
            "data": {"source": str(data)}, "teachers": [{"path": teacher}],
            "student": MNIST1D_STUDENT if name == "mnist1d" else None,
            "train": {"seed": seed, "threads": args.threads},
            "quant": {"qat": True, "formats": ["tflite"]}, "report": False, "out": str(out)})
        try:
            distill(cfg, overwrite=True, show_progress=False)
        except EdgeDistillError as exc:
            return {"seed": seed, "refused": str(exc)}
    m = json.loads(done.read_text())
    q = m["int8"]
    return {"seed": seed, "labels": len(labelled_subset(y, percent, seed)), "unlabeled": unlabeled,
            "params": m["student"]["params"], "teacher": m["teacher"]["test_acc"],
            "int8_student": q["qat_test_acc"], "int8_twin": q["baseline_qat_test_acc"],
            "gain_int8": q["gain_vs_baseline_int8"], "mcnemar_p": q["gain_vs_baseline_int8_test"]["p_value"],
            "float_student": m["student"]["test_acc"], "float_twin": m["baseline"]["test_acc"],
            "objective": {k: m["student"]["objective"][k] for k in ("loss", "temperature", "alpha")},
            "schedule": m["training"].get("schedule"), "tuning_scored_on": (m.get("tuning") or {}).get("scored_on"),
            "seconds": m["timings"]["total_s"]}


def _stats(rows: list[dict], key: str) -> str:
    vals = [r[key] for r in rows if key in r]
    if not vals:
        return "n/a"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.2f} ± {sd:.2f}"


def write_doc(results: dict, args, teachers: dict) -> None:
    doc = Path(args.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.with_suffix(".json").write_text(json.dumps({"results": results, "teachers": teachers}, indent=1))
    lines = ["# Scarce labels: distilled int8 student vs no-teacher twin (default settings)", "",
             f"Teachers trained on all labels: {', '.join(f'{k} {v:.2f} %' for k, v in teachers.items())}. "
             "A set marked `:u` keeps the rest of its training samples as unlabelled transfer samples (y = -1); "
             "the others use their labelled samples only. Mean ± sample std over seeds; int8 = QAT student on the "
             "test split.", "",
             "| set | labels | seeds | int8 student % | int8 twin % | gain (points) | never lost | McNemar p per seed |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for key, rows in results.items():
        missing = [r["seed"] for r in rows if r.get("not_run")]
        rows = [r for r in rows if not r.get("not_run")]
        if not rows:
            lines.append(f"| {key} | | 0 | not run (seeds {', '.join(map(str, missing))}) | | | | |")
            continue
        ok = [r for r in rows if "refused" not in r]
        if not ok:
            lines.append(f"| {key} | | 0 | refused: {rows[0]['refused'][:120]} | | | | |")
            continue
        lines.append(f"| {key} | {ok[0]['labels'] or ''} | {len(ok)} | {_stats(ok, 'int8_student')} | "
                     f"{_stats(ok, 'int8_twin')} | {_stats(ok, 'gain_int8')} | "
                     f"{'yes' if all(r['gain_int8'] >= 0 for r in ok) else 'no'} | "
                     + ", ".join(f"{r['mcnemar_p']:.2g}" for r in ok) + " |")
    doc.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="mnist1d:2.5:u,mnist1d:5:u,mnist1d:10:u,mnist1d:25:u,fashion:1,fashion:3")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--unlabeled", action="store_true", help="every set keeps its unlabelled training samples as "
                    "transfer set (as if each were NAME:PERCENT:u)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1: these students are so "
                    "small that more threads only add contention; 2 threads on a busy 2-core machine were 13x slower)")
    ap.add_argument("--finished-only", action="store_true", help="train nothing: tabulate the runs already under "
                    "--out and list the others as not run")
    ap.add_argument("--out", default="runs/bench-scarce")
    ap.add_argument("--doc", default="docs/scarce_labels")
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    arrays, teachers, teacher_acc, results = {}, {}, {}, {}
    for spec in args.sets.split(","):
        name, percent, *flag = spec.split(":")
        if flag not in ([], ["u"]):
            raise SystemExit(f"set {spec!r}: expected NAME:PERCENT or NAME:PERCENT:u")
        unlabeled = args.unlabeled or flag == ["u"]
        spec = f"{name}:{percent}" + (":u" if unlabeled else "")
        if name not in arrays:
            arrays[name] = mnist1d_arrays() if name == "mnist1d" else fashion_arrays()
            if name == "mnist1d":
                path, acc = train_mnist1d_teacher(Path(args.out), *arrays[name])
                teachers[name], teacher_acc[name] = str(path), acc
            else:
                teachers[name] = "builtin:fashion-mnist"
        for seed in [int(s) for s in args.seeds.split(",")]:
            t0 = time.perf_counter()
            row = run_one(name, float(percent), seed, arrays[name], teachers[name], args, unlabeled)
            if "teacher" in row:
                teacher_acc.setdefault(name, row["teacher"])
            results.setdefault(spec, []).append(row)
            if row.get("not_run"):
                continue
            print(f"{spec} seed {seed}: " + (f"refused: {row['refused']}" if "refused" in row else
                  f"int8 student {row['int8_student']:.2f}%, twin {row['int8_twin']:.2f}%, gain "
                  f"{row['gain_int8']:+.2f} (McNemar p {row['mcnemar_p']:.2g}; {row['objective']}, "
                  f"{row['schedule']['epochs']} epochs at batch {row['schedule']['batch_size']})")
                  + f"; {time.perf_counter() - t0:.0f} s", flush=True)
            write_doc(results, args, teacher_acc)


if __name__ == "__main__":
    main()
