"""EMA vs frozen activation ranges during QAT: the same `distill --qat` run twice, quant.ranges = "frozen" and "ema".

    python tools/bench_ranges.py [--sets digits:mbv3:width=1,digits] [--seeds 0] [--threads 1]
                                 [--out runs/bench-ranges] [--doc docs/ranges]

A set is DATA[:STUDENT]: DATA `digits` (builtin:digits and its teacher) or `mnist1d:P:u` (MNIST-1D with P % of the
labels, the rest unlabelled; the teacher and data of tools/bench_scarce_labels.py); STUDENT a --student value
(family:knob=value,...; default: the data's default student). Everything else is the pipeline's default for small
data (the sized schedule: 6,000 float steps, QAT 0.3 x the float epochs, function-matching mixup), except that the
objective is fixed at kd T 1 alpha 1 (the auto search's reference, so the search does not run twice for nothing)
and there is no no-teacher twin (--no-baseline): both arms train the same float student (deterministic, same seed)
and differ in QAT only.

For each arm the script reads metrics.json: int8.qat_test_acc (the QAT model on the test split), int8.ptq_test_acc,
the per-layer saturation and SQNR (int8.layers). It also runs the deployed int8 TFLite file on LiteRT over the test
split and compares the two arms sample by sample (McNemar's exact test, edgedistill.stats): the difference is called
beyond noise only when p < 0.05. Finished runs under --out are reused. Writes DOC.json and DOC.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edgedistill.cli_args import parse_student
from edgedistill.config import load_config
from edgedistill.errors import EdgeDistillError
from edgedistill.pipeline import distill
from edgedistill.pipeline.inputs import read_inputs
from edgedistill.stats import mcnemar, paired_counts

ARMS = ("frozen", "ema")


def data_overrides(data: str, out: Path) -> dict:
    if data == "digits":
        return {"data": {"source": "builtin:digits"}}
    name, percent, *flag = data.split(":")
    if name != "mnist1d":
        raise SystemExit(f"unknown data {data!r}: digits or mnist1d:PERCENT[:u]")
    from bench_scarce_labels import MNIST1D_STUDENT, labelled_subset, mnist1d_arrays, train_mnist1d_teacher, \
        write_data

    arrays = mnist1d_arrays()
    teacher, _ = train_mnist1d_teacher(out, *arrays)
    path = out / f"mnist1d-{percent}pct{'-u' if flag == ['u'] else ''}.npz"
    if not path.exists():
        write_data(path, *arrays, labelled_subset(arrays[1], float(percent), 0), flag == ["u"])
    return {"data": {"source": str(path)}, "teachers": [{"path": str(teacher)}], "student": MNIST1D_STUDENT}


def split_set(spec: str) -> tuple[str, str | None]:
    """'digits:mbv3:width=1' -> ('digits', 'mbv3:width=1'); 'mnist1d:10:u:mbv3_1d' -> ('mnist1d:10:u', 'mbv3_1d')."""
    parts = spec.split(":")
    n = 1 if parts[0] == "digits" else 3 if len(parts) > 2 and parts[2] == "u" else 2
    return ":".join(parts[:n]), ":".join(parts[n:]) or None


def run_arm(spec: str, arm: str, seed: int, args) -> dict:
    data, student = split_set(spec)
    out = Path(args.out) / f"{spec.replace(':', '_').replace('=', '')}-seed{seed}-{arm}"
    over = data_overrides(data, Path(args.out))
    if student:
        over["student"] = parse_student(student)
    cfg = load_config(None, {**over, "train": {"seed": seed, "threads": args.threads},
                             "kd": {"loss": "kd", "temperature": 1.0, "alpha": 1.0}, "baseline": False,
                             "quant": {"qat": True, "ranges": arm, "formats": ["tflite"]}, "report": False,
                             "out": str(out)})
    t0 = time.perf_counter()
    if not (out / "metrics.json").exists():
        try:
            distill(cfg, overwrite=True, show_progress=False)
        except EdgeDistillError as exc:  # a failed parity keeps its outputs in OUT.partial
            print(f"{spec} {arm}: {exc}", flush=True)
            out = out.with_name(out.name + ".partial")
    m = json.loads((out / "metrics.json").read_text())
    q = m["int8"]
    layers = q["layers"]["layers"]
    return {"arm": arm, "seed": seed, "dir": str(out), "qat_test_acc": q["qat_test_acc"],
            "ptq_test_acc": q["ptq_test_acc"], "float_test_acc": q["float_test_acc"],
            "qat_best_val_acc": q["qat_best_val_acc"], "qat_epochs": q["qat_epochs"],
            "saturating": q["layers"]["saturating"], "lowest_sqnr": q["layers"]["lowest_sqnr"],
            "max_saturation": max(r["saturation"] for r in layers),
            "layers": {r["name"]: {"saturation": r["saturation"], "sqnr_db": r["sqnr_db"]} for r in layers},
            "parity_passed": q.get("parity_passed"), "correct": litert_correct(cfg, out),
            "seconds": time.perf_counter() - t0}


def litert_correct(cfg, out: Path) -> list[bool]:
    """Per-test-sample correctness of the deployed int8 TFLite file on LiteRT (XNNPACK)."""
    from edgedistill.runtimes import LiteRTRunner

    s = read_inputs(cfg).splits
    path = next(p for p in sorted(out.glob("*int8*.tflite")) if "baseline" not in p.name)
    pred = LiteRTRunner(path, threads=1).predict_batched(np.ascontiguousarray(s.test.x)).argmax(1)
    return (pred == s.test.y).tolist()


def compare(rows: list[dict]) -> dict:
    a, b = (next(r for r in rows if r["arm"] == arm) for arm in ARMS)
    frozen_only, ema_only = paired_counts(a["correct"], b["correct"])
    test = mcnemar(frozen_only, ema_only)
    acc = lambda r: 100.0 * float(np.mean(r["correct"]))  # noqa: E731
    return {"litert_frozen": acc(a), "litert_ema": acc(b), "ema_minus_frozen": acc(b) - acc(a),
            "frozen_only_right": frozen_only, "ema_only_right": ema_only, "p_value": test.p_value,
            "beyond_noise": not test.within_noise}


def write_doc(results: dict, args) -> None:
    Path(args.doc + ".json").write_text(json.dumps(
        {k: [{kk: vv for kk, vv in r.items() if kk != "correct"} for r in v["arms"]] + [v.get("compare")]
         for k, v in results.items()}, indent=1))
    lines = ["| set | seed | ranges | float | PTQ | QAT (int8.qat_test_acc) | LiteRT int8 file | layers > 1 % "
             "saturating (share) | max saturation | lowest SQNR |", "|" + "---|" * 10]
    for key, v in results.items():
        for r in v["arms"]:
            sat = ", ".join(f"{n} {r['layers'][n]['saturation']:.1%}" for n in r["saturating"]) or "none"
            lw = r["lowest_sqnr"] or {}
            lines.append(f"| {key.rsplit('@', 1)[0]} | {r['seed']} | {r['arm']} | {r['float_test_acc']:.2f} | "
                         f"{r['ptq_test_acc']:.2f} | {r['qat_test_acc']:.2f} | "
                         f"{100.0 * float(np.mean(r['correct'])):.2f} | {sat} | {r['max_saturation']:.1%} | "
                         f"{lw.get('name', '')} {lw.get('sqnr_db', float('nan')):.1f} dB |")
        c = v.get("compare")
        if c:
            lines.append(f"| | | ema − frozen (LiteRT, paired) | | | | {c['ema_minus_frozen']:+.2f} "
                         f"({c['ema_only_right']} vs {c['frozen_only_right']} samples, McNemar p {c['p_value']:.2g}"
                         f"{', beyond noise' if c['beyond_noise'] else ', within noise'}) | | | |")
    Path(args.doc + ".md").write_text("# EMA vs frozen QAT ranges (`tools/bench_ranges.py`)\n\n" + "\n".join(lines)
                                      + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="digits:mbv3:width=1")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench-ranges")
    ap.add_argument("--doc", default="docs/ranges")
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for spec in args.sets.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            rows = [run_arm(spec, arm, seed, args) for arm in ARMS]
            for r in rows:
                print(f"{spec} seed {seed} {r['arm']}: QAT {r['qat_test_acc']:.2f} %, saturating {r['saturating']}, "
                      f"{r['seconds']:.0f} s", flush=True)
            results[f"{spec}@{seed}"] = {"arms": rows, "compare": compare(rows)}
            write_doc(results, args)


if __name__ == "__main__":
    main()
