"""Text students, measured: one `edgedistill build` per (family, target) on a text task.

Each build searches its family under the target's budget, distills (float, then QAT int8), exports, checks parity
on the real runtimes and profiles; a finished build is re-checked, not retrained (the build resumes). Per build it
prints and records: the chosen student, parameters, int8 file bytes, arena (the graph's prediction and TFLite
Micro's recording allocator), teacher / twin / float / int8 accuracy with 95 % intervals, the distillation gain
(int8, McNemar p), top-1 agreement and worst step per runtime, and the QAT cost (seconds per training sample of a
QAT epoch against a float epoch, both from the run's own timings).

    python tools/bench_text.py --data builtin:langid --targets cortex-m4 --families textcnn,transformer \
        --out docs/text_runs.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def build(data: str, family: str, target: str, root: Path, extra: list[str], rebuild: bool) -> Path:
    """The output folder of `edgedistill build` for one (family, target): a finished one under `root` is recorded as
    it is unless `rebuild` (then the build re-checks or resumes it). Raises SystemExit when the build fails for a
    reason other than its gate (exit code 1 is a gate verdict and is recorded)."""
    out = root / f"{data.replace(':', '_')}-{family}-{target}"
    if (out / "metrics.json").is_file() and not rebuild:
        return out
    cmd = [sys.executable, "-m", "edgedistill", "build", "--data", data, "--target", target, "--family", family,
           "--out", str(out), "-q", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in (0, 1) or not (out / "metrics.json").is_file():
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return out


def row(out: Path) -> dict:
    from edgedistill.students.checkpoint import load_student
    from edgedistill.students.cost import graph_cost
    from edgedistill.profile.tflm_arena import tflm_arena

    m = json.loads((out / "metrics.json").read_text())
    rep = json.loads((out / "report.json").read_text())
    q, t, sched = m["int8"], m["timings"], m["training"]["schedule"]
    fit = {f["check"]: f for f in (rep.get("target") or {}).get("fit", [])}
    model, ck = load_student(out)
    tflite = [p for p in q["parity"] if p["artifact"] == "tflite-int8"]
    # per training sample: a float epoch trains the student on the transfer set; the QAT run trains student and twin
    float_per_sample = t["distill_s"] / max(sched["epochs"] * sched["samples"], 1)
    qat_per_sample = q["train_s"] / max(2 * q["qat_epochs"] * q["qat_samples"], 1)
    gain = m.get("gain_vs_baseline_test") or {}
    return {"run": str(out), "student": m["student"]["arch"], "params": m["student"]["params"],
            "max_length": ck.input_shape[0], "tokenizer": m["data"]["text"]["tokenizer"],
            "file_bytes": next(a["bytes"] for a in q["artifacts"] if a["name"] == "tflite-int8"),
            "arena_predicted": graph_cost(model.eval(), ck.input_shape).arena_bytes,
            "arena_measured": tflm_arena(out / "student_int8.tflite").activation_bytes,
            "ram_with_runtime": (fit.get("ram") or {}).get("value"),
            "teacher": m["teacher"]["test_acc"], "twin_float": m["baseline"]["test_acc"],
            "float": m["student"]["test_acc"], "int8": q["qat_test_acc"], "int8_ci95": q["qat_test_acc_ci95"],
            "twin_int8": q.get("baseline_qat_test_acc"), "gain_int8": q.get("gain_vs_baseline_int8_test"),
            "gain_float": gain, "test_n": q["qat_test_acc_n"],
            "agreement": {p["runtime"]: p["top1_agreement"] for p in tflite},
            "max_steps": {p["runtime"]: p["max_steps"] for p in tflite}, "parity_passed": q["parity_passed"],
            "qat_s_per_sample_over_float": qat_per_sample / float_per_sample, "rounding": q["rounding"],
            "build_s": t["total_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="builtin:langid")
    ap.add_argument("--targets", default="cortex-m4", help="comma-separated target profiles")
    ap.add_argument("--families", default="textcnn,transformer", help="comma-separated student families")
    ap.add_argument("--root", default="runs/bench-text", help="where the builds are written (and resumed)")
    ap.add_argument("--extra", default="", help="extra build flags, e.g. '--epochs 10'")
    ap.add_argument("--rebuild", action="store_true", help="re-run finished builds (they re-check or resume)")
    ap.add_argument("--out", default="docs/text_runs.json")
    a = ap.parse_args()
    rows = []
    for target in a.targets.split(","):
        for family in a.families.split(","):
            r = row(build(a.data, family, target, Path(a.root), a.extra.split(), a.rebuild))
            rows.append(r)
            print(json.dumps(r), flush=True)
    Path(a.out).write_text(json.dumps({"data": a.data, "rows": rows}, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
