"""The QAT step against the float step, side by side, for the text students a build picks (issue #28, "QAT step
≤ 1.5× the float step").

For each (data, family) the student is the one `edgedistill build --target TARGET --data DATA [--family FAMILY]`
searches under the target's budget ("auto": the build's default family), trained on the sized schedule's batch; a
float step is `distill.trainer.fit` on the float student, a QAT step `quantize.qat.qat_distill` computing the target
runtime's integers (forward + backward + optimizer step each), both without text views. Steps are timed between the
trainer's per-step progress calls (process CPU time, and wall clock), on one torch thread, runs alternating so a busy
machine slows both alike (tools/_text_qat_step.py). `--profile` adds torch.profiler's top ops and each int8 op
kind's forward time.

    python tools/bench_qat_step.py --cases builtin:langid:transformer,builtin:langid:auto --out qat_step.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

import _text_qat_step as qat_step  # tools/ is on sys.path when this script runs
from edgedistill.budget import Budget
from edgedistill.config import load_config
from edgedistill.distill.schedule import resolve_config
from edgedistill.distill.trainer import TrainSet, TrainSettings
from edgedistill.pipeline.int8 import qat_rounding
from edgedistill.pipeline.inputs import read_inputs
from edgedistill.pipeline.search import choose_student
from edgedistill.pipeline.text_inputs import teacher_input_tag, teacher_view
from edgedistill.targets import load_target
from edgedistill.teachers import LogitCache


def build_setup(inputs, data: str, target_name: str, family: str, steps: int) -> dict:
    """tools/_text_qat_step.build_setup for any family ("auto": the one the build picks)."""
    student = {} if family == "auto" else {"family": family}
    config = load_config(None, {"data": {"source": data}, "student": student, "train": {"epochs": 4},
                                "quant": {"qat": True, "qat_epochs": 1, "qat_max_samples": 20000},
                                "target": target_name, "out": "runs/unused"})
    target = load_target(target_name)
    found = choose_student(config, Budget.for_target(target, Budget.parse("")), inputs, target)
    s = inputs.splits
    config, schedule = resolve_config(config, len(s.transfer))
    # no text views: a view (token dropout, the default below 10,000 texts) adds a teacher pass to float and QAT
    # steps alike, which is not the int8 core's cost
    settings = TrainSettings.of(config.train, config.augment.recipe())
    n = steps * settings.batch_size
    teacher = inputs.teachers[0]
    members = LogitCache(enabled=False).get(teacher, s.transfer.x[:n], teacher_input_tag("raw", s), teacher_view(s))
    arch = found.chosen.arch
    return {"arch": arch, "params": found.chosen.params, "schedule": schedule.to_dict(),
            "settings": replace(settings, epochs=1), "quant": config.quant,
            "rounding": qat_rounding(config.quant.rounding, target),
            "data": TrainSet(torch.from_numpy(s.transfer.x[:n]), torch.from_numpy(s.transfer.y[:n]), members[None]),
            "val": (torch.from_numpy(s.val.x[:256]), torch.from_numpy(s.val.y[:256])),
            "student": lambda: qat_step._student(arch, s), "max_length": s.input_shape[0]}


def measure(setup: dict, warmup: int, rounds: int, profile_steps: int) -> dict:
    r = setup["rounding"]
    steps = qat_step.step_times(setup, (r,), warmup, rounds)
    row = {"student": setup["arch"].describe(), "params": setup["params"], "max_length": setup["max_length"],
           "batch": setup["settings"].batch_size, "rounding": r, "exact_share": setup["quant"].exact_share,
           "float_ms": steps["float"]["cpu_ms"], "float_wall_ms": steps["float"]["wall_ms"],
           "steps_timed": steps["float"]["steps"]}
    for key, label in ((f"qat_{r}", "qat_exact"), (f"qat_{r}_fake", "qat_fake"), (f"qat_{r}_scheduled", "qat")):
        if key in steps:
            row[f"{label}_ms"], row[f"{label}_wall_ms"] = steps[key]["cpu_ms"], steps[key]["wall_ms"]
            row[f"{label}_ratio"] = steps[key]["ratio_cpu"]
    row["ratio"] = row.get("qat_ratio", row["qat_exact_ratio"])
    if profile_steps:
        row["profile"] = qat_step.profile_qat(setup, setup["rounding"], profile_steps)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="builtin:langid:transformer,builtin:langid:auto",
                    help="comma-separated DATA:FAMILY (DATA may hold a colon, e.g. builtin:langid:auto)")
    ap.add_argument("--target", default="cortex-m4")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per run (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="float / QAT runs, alternating")
    ap.add_argument("--profile", type=int, default=0, help="profiled steps per case (0: no profile)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows, read = [], {}
    for case in a.cases.split(","):
        data, family = case.rsplit(":", 1)
        if data not in read:
            config = load_config(None, {"data": {"source": data}, "target": a.target, "out": "runs/unused"})
            read[data] = read_inputs(config)
        t0 = time.perf_counter()
        setup = build_setup(read[data], data, a.target, family, a.warmup + a.steps + 1)
        row = {"data": data, "family": family, **measure(setup, a.warmup, a.rounds, a.profile),
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        detail = (f"QAT exact {row['qat_exact_ms']:6.1f} ms ({row['qat_exact_ratio']:4.2f}×)" +
                  (f", fake-quantized {row['qat_fake_ms']:6.1f} ms ({row['qat_fake_ratio']:4.2f}×), scheduled "
                   f"(exact_share {row['exact_share']:g}) {row['qat_ms']:6.1f} ms" if "qat_fake_ms" in row else ""))
        print(f"{data} {row['student']:36s} L={row['max_length']:<4d} batch {row['batch']:<4d} {row['rounding']:9s} "
              f"float {row['float_ms']:6.1f} ms  {detail}  ratio {row['ratio']:5.2f}", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"threads": 1, "target": a.target, "rows": rows}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
