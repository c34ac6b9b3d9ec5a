"""Do the auto T / alpha trials rank what the full run will do? Trial scores vs full-run test accuracy.

    python tools/bench_trial_ranking.py [--sets digits,mnist1d:10:u] [--budgets 100,300,700] [--seeds 0]
                                        [--ceiling-seed 1] [--steps N] [--threads 1]
                                        [--out runs/bench-trial-ranking] [--doc docs/trial_ranking]

For every data set, the kd grid of the auto search (12 (T, alpha) candidates, edgedistill.distill.tuning) and the
no-teacher objective are each trained twice over:

* the full run: the pipeline's own schedule for the data (distill/schedule.py, or --steps), the run's augmentation,
  the weights training keeps (trainer.fit), scored on the test split (float student);
* the trials, at each trial budget (optimizer steps per trial, rounded up to whole epochs of the trial's samples):
  `tuning.tune` itself, exactly as the pipeline runs it (the same subset, scoring folds on small validation splits,
  the reference rule), giving each candidate's trial score.

Spearman's rank correlation (scipy.stats.spearmanr) between the 12 trial scores and the 12 full-run test accuracies
says whether a budget ranks what the full run will do. Its ceiling: with --ceiling-seed, the full runs are repeated
with another training seed (same data, same splits) and the two seeds' test accuracies are correlated: a ranking that
does not repeat across seeds cannot be predicted by any trial. Each trial budget also records the reference trial's
maturity, (score - chance) / (teacher validation accuracy - chance): how far the reference trial got towards the
teacher, the figure a rule to skip an unready search would read.

Sets: `digits` (builtin:digits, its built-in teacher, the default student); `mnist1d:P:u` (MNIST-1D with P % of the
4,000 training labels kept and the rest as unlabelled transfer samples, the 1-D teacher and conv1d student of
tools/bench_scarce_labels.py); `fashion:N` (builtin:fashion-mnist, N training images, the built-in teacher).
Finished pieces are kept in OUT/results.json and reused; DOC.json and DOC.md are written after every piece.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from edgedistill.cli_args import parse_student
from edgedistill.config import load_config
from edgedistill.distill.schedule import resolve_config
from edgedistill.distill.trainer import Objective, TrainSettings, accuracy, fit, predict_logits
from edgedistill.distill.tuning import candidate_objectives, tune
from edgedistill.pipeline.inputs import EvalTensors, read_inputs, student_arch
from edgedistill.pipeline.teacher_outputs import teacher_outputs
from edgedistill.progress import bars
from edgedistill.students import build_student
from edgedistill.teachers import LogitCache


def set_overrides(spec: str, out: Path) -> dict:
    """Config overrides (data, teacher, student) for one set spec."""
    name, *rest = spec.split(":")
    if name == "digits":
        return {"data": {"source": "builtin:digits"}}
    if name == "fashion":
        return {"data": {"source": "builtin:fashion-mnist", "max_train": int(rest[0])}}
    if name == "mnist1d":
        from bench_scarce_labels import MNIST1D_STUDENT, labelled_subset, mnist1d_arrays, train_mnist1d_teacher, \
            write_data

        arrays = mnist1d_arrays()
        teacher, _ = train_mnist1d_teacher(out, *arrays)
        path = out / f"mnist1d-{rest[0]}pct.npz"
        if not path.exists():
            write_data(path, *arrays, labelled_subset(arrays[1], float(rest[0]), 0), rest[1:] == ["u"])
        return {"data": {"source": str(path)}, "teachers": [{"path": str(teacher)}], "student": MNIST1D_STUDENT}
    raise SystemExit(f"unknown set {spec!r}: digits, mnist1d:PERCENT[:u] or fashion:N")


class Bench:
    """One set prepared once: splits, teacher outputs, the resolved schedule and the student builder."""

    def __init__(self, spec: str, args):
        over = set_overrides(spec, Path(args.out))
        if args.student:
            over["student"] = parse_student(args.student)
        cfg = load_config(None, {**over, "report": False, "out": str(Path(args.out)),
                                 "train": {"threads": args.threads, "steps": args.steps, "epochs": args.epochs},
                                 "kd": {"tune_max_samples": args.tune_max_samples}})
        self.spec = spec
        inputs = read_inputs(cfg)
        s = inputs.splits
        self.arch = student_arch(cfg, s)
        cfg, self.schedule = resolve_config(cfg, len(s.transfer))
        self.config = cfg.model_copy(update={"augment": cfg.augment.resolved(len(s.transfer))})
        self.ev = EvalTensors.of(s)
        self.settings = TrainSettings.of(self.config.train, self.config.augment.recipe())
        self.splits = s
        with bars(False) as ui:
            self.data = teacher_outputs(self.config, inputs.teachers, s, self.ev, LogitCache(None),
                                        self.settings.augment.enabled, ui).data
        val_logits = torch.from_numpy(np.asarray(inputs.teachers[0].logits(s.val.x if self.config.teachers[0].input
                                                                            == "raw" else s.normalizer.apply(s.val.x))))
        self.teacher_val = accuracy(val_logits, self.ev.y_val)
        self.candidates = candidate_objectives("kd", "auto", "auto", self.ev.y_transfer is not None)

    def student(self, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        s = self.splits
        return build_student(self.arch, s.input_shape, s.num_classes, s.normalizer)

    def full(self, obj: Objective, seed: int) -> dict:
        model = self.student(seed)
        t0 = time.perf_counter()
        res = fit(model, self.data, self.ev.x_val, self.ev.y_val, obj, replace(self.settings, seed=seed))
        model.load_state_dict(res.best_state)
        return {"test_acc": accuracy(predict_logits(model, self.ev.x_test), self.ev.y_test),
                "val_acc": res.best_val_acc, "seconds": time.perf_counter() - t0}

    def trials(self, steps: int, seed: int) -> dict:
        n = min(len(self.data), self.config.kd.tune_max_samples)
        epochs = max(1, -(-steps // -(-n // self.settings.batch_size)))
        t0 = time.perf_counter()
        res = tune(lambda: self.student(seed), self.data, self.ev.x_val, self.ev.y_val, "kd", "auto", "auto",
                   replace(self.settings, epochs=epochs, seed=seed), self.config.kd.tune_max_samples)
        chance = 100.0 / self.splits.num_classes
        ref = res.trials[res.decision.reference].val_acc
        return {"epochs": epochs, "steps": epochs * -(-n // self.settings.batch_size), "samples": n,
                "scores": [t.val_acc for t in res.trials], "scored_on": res.scored_on, "summary": res.summary(),
                "maturity": (ref - chance) / max(1e-9, self.teacher_val - chance), "seconds": time.perf_counter() - t0}


def rho(a: list[float], b: list[float]) -> float:
    r = spearmanr(a, b).statistic
    return float(r) if r == r else float("nan")  # constant input: undefined


def table(results: dict) -> str:
    lines = ["| set | full run | seed | trial budget | trial steps (share of full) | reference trial score | maturity "
             "| chosen | Spearman ρ (12 kd) | ρ with twin (13) | tuning s |", "|" + "---|" * 11]
    for spec, r in results.items():
        if "meta" not in r:
            continue
        m = r["meta"]
        for seed, full in r.get("full", {}).items():
            if len(full) < len(m["candidates"]) + 1:
                continue
            acc = [full[k]["test_acc"] for k in m["candidates"]] + [full["twin"]["test_acc"]]
            for budget, t in sorted(r.get("trials", {}).get(seed, {}).items(), key=lambda kv: int(kv[0])):
                sc = t["scores"]
                ref = sc[m["candidates"].index("kd T1 a1")]
                lines.append(f"| {spec} | {m['full_steps']} steps, teacher {m['teacher_val']:.1f} % val | {seed} | "
                             f"{budget} | {t['steps']} ({t['steps'] / m['full_steps']:.0%}) | {ref:.1f} % | "
                             f"{t['maturity']:.2f} | {t['summary'].get('chosen', '')} | "
                             f"{rho(sc[:-1], acc[:-1]):+.2f} | {rho(sc, acc):+.2f} | {t['seconds']:.0f} |")
        seeds = [k for k, f in r.get("full", {}).items() if len(f) == len(m["candidates"]) + 1]
        if len(seeds) >= 2:
            a, b = ([r["full"][s][k]["test_acc"] for k in m["candidates"]] for s in seeds[:2])
            lines.append(f"| {spec} | ceiling: full runs, seed {seeds[0]} vs {seeds[1]} | | | | | | | "
                         f"{rho(a, b):+.2f} | | |")
    return "\n".join(lines)


def full_rows(results: dict) -> str:
    lines = []
    for spec, r in results.items():
        for seed, full in r.get("full", {}).items():
            accs = ", ".join(f"{k} {v['test_acc']:.2f}" for k, v in full.items())
            lines.append(f"* {spec}, seed {seed}, full-run test accuracy (float): {accs}")
    return "\n".join(lines)


def save(results: dict, args) -> None:
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1))
    Path(args.doc + ".json").write_text(json.dumps(results, indent=1))
    Path(args.doc + ".md").write_text("# Trial scores vs full-run test accuracy (`tools/bench_trial_ranking.py`)\n\n"
                                      + table(results) + "\n\n" + full_rows(results) + "\n")


def name(o: Objective) -> str:
    return f"{o.loss} T{o.temperature:g} a{o.alpha:g}" if o.teacher else "twin"


def run_full(b: Bench, r: dict, seed: int, args, results: dict) -> None:
    """The full runs of every candidate and the twin for one training seed (finished ones reused)."""
    full = r.setdefault("full", {}).setdefault(str(seed), {})
    for obj in b.candidates + [Objective(teacher=False)]:
        if name(obj) not in full:
            full[name(obj)] = b.full(obj, seed)
            print(f"{b.spec} seed {seed} full {name(obj)}: {full[name(obj)]}", flush=True)
            save(results, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="digits,mnist1d:10:u")
    ap.add_argument("--budgets", default="100,300,700", help="optimizer steps per trial (comma-separated)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--ceiling-seed", type=int, default=None, help="repeat the full runs with this seed")
    ap.add_argument("--steps", type=int, default=None, help="the full run's optimizer steps (default: sized)")
    ap.add_argument("--epochs", type=int, default=None, help="the full run's epochs (default: sized)")
    ap.add_argument("--student", default=None, help="a --student value (default: the data's default student)")
    ap.add_argument("--tune-max-samples", type=int, default=10000, help="kd.tune_max_samples (build's example: 3000)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench-trial-ranking")
    ap.add_argument("--doc", default="docs/trial_ranking")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    for spec in args.sets.split(","):
        b = Bench(spec, args)
        r = results.setdefault(spec, {})
        r["meta"] = {"candidates": [name(o) for o in b.candidates], "full_steps": b.schedule.steps,
                     "schedule": b.schedule.to_dict(), "teacher_val": b.teacher_val, "n_val": len(b.ev.y_val),
                     "n_test": len(b.ev.y_test), "augment": b.settings.augment.describe()}
        seeds = [int(s) for s in args.seeds.split(",")]
        for seed in seeds:
            run_full(b, r, seed, args, results)
            for steps in [int(x) for x in args.budgets.split(",")]:
                trials = r.setdefault("trials", {}).setdefault(str(seed), {})
                if str(steps) not in trials:
                    trials[str(steps)] = b.trials(steps, seed)
                    print(f"{spec} seed {seed} trials {steps}: {trials[str(steps)]}", flush=True)
                    save(results, args)
        if args.ceiling_seed is not None:
            run_full(b, r, args.ceiling_seed, args, results)
    save(results, args)
    print(table(results))


if __name__ == "__main__":
    main()
