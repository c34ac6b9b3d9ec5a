"""Does distillation pay? Distilled int8 QAT students vs their no-teacher twins on Fashion-MNIST, over seeds.

    python tools/bench_kd_gain.py [--seeds 0,1,2] [--students dscnn:13:4,cnn:18:3] [--epochs 30] [--qat-epochs 2]
                                  [--augment none] [--loss auto] [--teacher builtin:fashion-mnist]

The defaults are the measured recipe of docs/distillation_gain.md (~10 K and ~30 K students, 30 + 2 epochs, no
augmentation: augmentation cost these small students more than it helped) with the pipeline's auto search (24 trials
of epochs // 3 epochs); about 18 min (dscnn) and 45 min (cnn) per seed on one core, half of it the trials
(`--tune-epochs 1` cuts that to minutes, but one-epoch trials pick the loss that learns fastest, not the best one).

For every seed and student this is one `edgedistill distill --qat` run: the distilled student and its twin share
the architecture, initialisation, data order, augmentation and epochs (float + QAT); only the loss differs. The
teacher runs on each augmented batch (function matching); its outputs are cached per (seed, recipe), so the second
student of a seed reuses them. Finished runs are kept under --out and reused when the configuration is unchanged,
so an interrupted benchmark picks up where it stopped. With --twins-from DIR, a twin that a finished run under DIR
already trained (same student, seed, data, augmentation, schedule; any teacher or loss) is reused instead of trained
again: training is deterministic on CPU (two such runs wrote byte-identical twin weights), and the JSON records which
run each twin came from. Prints a table and writes JSON + Markdown (docs/).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from edgedistill.cli_args import parse_augment
from edgedistill.config import load_config
from edgedistill.api import distill

from _reuse import finished_metrics, finished_twin


def _run(cfg, twins_from: list[str]) -> tuple[dict, tuple[dict, str] | None]:
    """(metrics, metrics of the run whose twin is reused or None). With --twins-from, a finished run that trained
    this exact twin (same student, seed, data, augmentation, schedule; any teacher) saves training it again."""
    twin = finished_twin(cfg, twins_from) if twins_from else None
    if twin is not None:
        cfg = cfg.model_copy(update={"baseline": False})
    return finished_metrics(cfg) or distill(cfg, overwrite=True, show_progress=False).metrics, twin


def _row(m: dict, twin: tuple[dict, str] | None) -> dict:
    q = m["int8"]
    tfl = next(r for r in q["parity"] if r["artifact"] == "tflite-int8" and r["runtime"] == "litert")
    t = twin[0] if twin else m  # where the twin's figures live
    int8_twin, float_twin = t["int8"]["baseline_qat_test_acc"], t["baseline"]["test_acc"]
    return {
        "params": m["student"]["params"], "objective": m["student"]["objective"],
        "teacher": m["teacher"]["test_acc"],
        "float_student": m["student"]["test_acc"], "float_twin": float_twin,
        "int8_student": q["qat_test_acc"], "int8_twin": int8_twin,
        "int8_student_tflite": tfl["accuracy"], "tflite_agreement": tfl["top1_agreement"],
        "gain_int8": q["qat_test_acc"] - int8_twin, "gain_float": m["student"]["test_acc"] - float_twin,
        "twin_from": twin[1] if twin else None,
        "seconds": m["timings"]["total_s"],
    }


def _stats(vals: list[float]) -> str:
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.2f} ± {sd:.2f}"


def _write(results: dict, args, teachers: list) -> None:
    lines = [
        f"Fashion-MNIST test (10,000 images), int8 QAT students, {args.epochs} float + {args.qat_epochs} QAT epochs, "
        f"augmentation `{args.augment}`, loss `{args.loss}` (T {args.temperature}, alpha {args.alpha}), teacher(s) "
        f"{', '.join(t['path'] for t in teachers)}; seeds {args.seeds}. Twin = same architecture, initialisation, data "
        "order, augmentation and epochs, hard labels only. int8 accuracies are the QAT model (bit-exact with the "
        "int8 TFLite file: the TFLite column runs the exported file in LiteRT).", "",
        "| student | params | seeds | teacher | distilled int8 | int8 TFLite (LiteRT) | twin int8 | gain (points) |"
        " min gain | distilled float | twin float |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, rows in results.items():
        col = lambda k: [r[k] for r in rows]  # noqa: E731
        lines.append(f"| {name} | {rows[0]['params']:,} | {','.join(str(r['seed']) for r in rows)} | "
                     f"{_stats(col('teacher'))} | {_stats(col('int8_student'))} | "
                     f"{_stats(col('int8_student_tflite'))} | {_stats(col('int8_twin'))} | "
                     f"**{_stats(col('gain_int8'))}** | {min(col('gain_int8')):+.2f} | {_stats(col('float_student'))} | "
                     f"{_stats(col('float_twin'))} |")
    table = "\n".join(lines)
    doc = Path(args.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.with_suffix(".json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    doc.with_suffix(".md").write_text("# Distillation gain over the no-teacher twin\n\n"
                                      f"Generated by `python tools/bench_kd_gain.py` (arguments in "
                                      f"{doc.with_suffix('.json').name}).\n\n"
                                      + table + "\n")
    print("\n" + table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--students", default="dscnn:13:4,cnn:18:3", help="family:width:depth, comma-separated")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--augment", default="none")
    ap.add_argument("--loss", default="auto")
    ap.add_argument("--temperature", default="auto")
    ap.add_argument("--alpha", default="auto")
    ap.add_argument("--tune-epochs", type=int, default=None,
                    help="epochs per auto-tuning trial (default: the pipeline's, epochs // 3; 1-epoch trials rank "
                         "losses by how fast they learn, see docs/distillation_gain.md)")
    ap.add_argument("--teacher", action="append", default=None, help="repeat for an ensemble")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="runs/bench-kd-gain")
    ap.add_argument("--doc", default="docs/kd_gain", help="writes DOC.json and DOC.md")
    ap.add_argument("--twins-from", action="append", default=[], metavar="DIR",
                    help="reuse the twin of a finished run under DIR with the same student, seed, data, augmentation "
                         "and schedule (training is deterministic), instead of training it again")
    args = ap.parse_args()
    teachers = [{"path": t} for t in (args.teacher or ["builtin:fashion-mnist"])]
    auto = lambda v: v if v == "auto" else float(v)  # noqa: E731
    results: dict[str, list[dict]] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for spec in args.students.split(","):
            fam, width, depth = spec.split(":")
            name = f"{fam}(width={width}, depth={depth})"
            cfg = load_config(None, {
                "data": {"source": "builtin:fashion-mnist"}, "teachers": teachers,
                "student": {"family": fam, "width": int(width), "depth": int(depth)},
                "augment": parse_augment(args.augment),
                "kd": {"loss": args.loss, "temperature": auto(args.temperature), "alpha": auto(args.alpha),
                       "tune_epochs": args.tune_epochs},
                "train": {"epochs": args.epochs, "seed": seed, "threads": args.threads},
                "quant": {"qat": True, "qat_epochs": args.qat_epochs, "formats": ["tflite"]},
                "report": False, "out": f"{args.out}/{fam}{width}x{depth}-seed{seed}"})
            t0 = time.perf_counter()
            m, twin = _run(cfg, args.twins_from)
            row = _row(m, twin)
            results.setdefault(name, []).append({"seed": seed, **row})
            print(f"seed {seed} {name}: {row['params']:,} params, int8 student {row['int8_student']:.2f}% "
                  f"(TFLite {row['int8_student_tflite']:.2f}%), twin {row['int8_twin']:.2f}%, gain "
                  f"{row['gain_int8']:+.2f} ({row['objective']['loss']} T={row['objective']['temperature']:g} "
                  f"α={row['objective']['alpha']:g}); {time.perf_counter() - t0:.0f} s", flush=True)
            _write(results, args, teachers)  # after every run: an interrupted benchmark still leaves its table
    _write(results, args, teachers)



if __name__ == "__main__":
    main()
