"""Student int8 TFLite vs teacher float latency on this machine, side by side, and the student's achieved MAC/s
as a fraction of the host's measured int8 peak (targets/cpu.toml, from tools/measure_host.py).

    python tools/bench_speedup.py runs/fashion            # a directory written by `edgedistill distill --qat`

The teacher is converted to float TFLite (litert-torch) so both are timed by the same runtime (LiteRT, XNNPACK,
the cpu profile's threads), batch 1, median of timed runs after warm-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.measure import measure
from edgedistill.targets import load_target
from edgedistill.teachers import TeacherSpec, load_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--runs", type=int, default=500)
    args = ap.parse_args()
    cfg = json.loads((args.run_dir / "config.json").read_text())
    meta = json.loads((args.run_dir / "student.json").read_text())
    cpu = load_target("cpu")
    t = cfg["teachers"][0]
    teacher = load_teacher(TeacherSpec(t["path"], t["format"], t["factory"], t["factory_kwargs"]))
    from edgedistill.export.tflite_export import export_tflite_float

    student = args.run_dir / "student_int8.tflite"
    with tempfile.TemporaryDirectory() as tmp:
        tpath = export_tflite_float(teacher.torch_module(), tuple(meta["input_shape"]), Path(tmp) / "t.tflite").path
        t_cost, s_cost = tflite_cost(tpath), tflite_cost(student)
        tm = measure(tpath, "litert", threads=cpu.threads, runs=args.runs, min_seconds=2.0)
        sm = measure(student, "litert", threads=cpu.threads, runs=args.runs, min_seconds=2.0)
    print(f"teacher float TFLite : {t_cost.macs:>12,} MACs  median {tm.median_ms:8.4f} ms  p90 {tm.p90_ms:8.4f} ms")
    print(f"student int8 TFLite  : {s_cost.macs:>12,} MACs  median {sm.median_ms:8.4f} ms  p90 {sm.p90_ms:8.4f} ms")
    print(f"speed-up (teacher / student median): {tm.median_ms / sm.median_ms:.1f}x")
    achieved = s_cost.macs / (sm.median_ms / 1e3)
    print(f"student achieved {achieved / 1e9:.2f} G MAC/s = {achieved / cpu.peak_int8_macs_per_s:.1%} of the host's "
          f"measured int8 peak ({cpu.peak_int8_macs_per_s / 1e9:.1f} G MAC/s, targets/cpu.toml)")


if __name__ == "__main__":
    main()
