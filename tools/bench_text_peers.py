"""The peer rows of the text benchmark (issue #28, "Targets"), from one finished build, on one thread.

1. ai-edge-quantizer's static int8 PTQ (`recipe.static_wi8_ai8()`) of the build's float `student.tflite`,
   calibrated on seeded training texts, against the build's QAT `student_int8.tflite`: bytes, ops, float ops left,
   test accuracy on LiteRT's reference kernels and on TFLite Micro, McNemar's exact test (tools/_text_peer_ptq.py).
2. The teacher under onnxruntime's dynamic quantization: ONNX export, `quantize_dynamic`, bytes, test accuracy and
   batch-1 host latency beside our int8 files on LiteRT (XNNPACK) and onnxruntime (tools/_text_peer_teacher.py).
3. The transformer student's QAT step against its float step, with a profile (tools/_text_qat_step.py).

The data is read with the build's own config (pipeline.inputs.read_inputs), so the test split and byte encoding
are the build's; the script checks that by reproducing the int8 file's test accuracy from metrics.json and stops
when it does not. The build folder is only read; the files made here go to --work.

    python tools/bench_text_peers.py runs/bench-text/builtin_langid-textcnn-cortex-m4 \\
        --out docs/text_peers.json --md docs/text_peers.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import _text_peer_ptq as ptq  # tools/ is on sys.path when this script runs
import _text_peer_teacher as dyn
import _text_peers_md as md
import _text_qat_step as qat_step
from edgedistill.config import load_config
from edgedistill.pipeline.inputs import read_inputs
from edgedistill.pipeline.text_inputs import teacher_view


def reproduced(got: float, want: float, n: int) -> bool:
    """Two accuracies (percent) over the same n samples that count the same number of right answers."""
    return round(got * n / 100) == round(want * n / 100)


def peer_section(run: Path, inputs, metrics: dict, work: Path, calibration: int, seed: int,
                 tflm_samples: int | None) -> tuple[dict, np.ndarray]:
    s = inputs.splits
    ours, flt = run / "student_int8.tflite", run / "student.tflite"
    pick = np.sort(np.random.default_rng(seed).permutation(len(s.train.x))[:calibration])
    peer = work / ptq.PEER_FILE
    made = ptq.aeq_static_int8(flt, s.train.x[pick], peer)
    inline = ptq.inline_copy(peer, work / ptq.PEER_FILE.replace(".tflite", "_inline.tflite"))
    runs, ours_pred = ptq.compare(ours, peer, inline, s.test.x, s.test.y, tflm_samples)
    got, want = runs["litert-reference"]["ours"]["accuracy"], metrics["int8"]["qat_test_acc"]
    if not reproduced(got, want, len(s.test.y)):
        raise SystemExit(f"our int8 file scores {got:.4f} % here but {want:.4f} % in {run}/metrics.json: the test "
                         "split or its encoding is not the build's; nothing written.")
    t0 = time.perf_counter()
    float_pred = ptq.predictions(flt, "litert", s.test.x)
    float_acc = float((float_pred == s.test.y).mean()) * 100
    files = {"ours": ours, "peer": peer, "peer_inline": inline, "float": flt}
    return {"made": made, "reproduced_int8_accuracy": {"here": got, "metrics_json": want},
            "float_student": {"accuracy_litert": float_acc, "metrics_json": metrics["student"]["test_acc"],
                              "seconds": time.perf_counter() - t0},
            "bytes": {k: v.stat().st_size for k, v in files.items()},
            "ops": {k: ptq.inspect_ops(v) for k, v in files.items() if k != "peer_inline"},
            "offset_buffers": {k: ptq.offset_buffers(v) for k, v in files.items()},
            "arena": _arenas({"ours": ours, "peer_inline": inline}), "runs": runs}, ours_pred


def _arenas(files: dict[str, Path]) -> dict:
    from edgedistill.profile.tflm_arena import tflm_arena

    return {k: tflm_arena(p).__dict__ for k, p in files.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", default="runs/bench-text/builtin_langid-textcnn-cortex-m4",
                    help="a finished text build (student.tflite, student_int8.tflite, config.json, metrics.json)")
    ap.add_argument("--work", default="runs/bench-text-peers", help="where the peer and teacher files are written")
    ap.add_argument("--calibration", type=int, default=500, help="training texts the peer calibrates on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tflm-samples", type=int, default=None, help="test samples run on TFLite Micro (all)")
    ap.add_argument("--latency-samples", type=int, default=200)
    ap.add_argument("--latency-repeats", type=int, default=5)
    ap.add_argument("--family-target", default="cortex-m4", help="target the transformer student is searched for")
    ap.add_argument("--qat-steps", type=int, default=30, help="timed steps per run (after --qat-warmup)")
    ap.add_argument("--qat-warmup", type=int, default=5)
    ap.add_argument("--qat-rounds", type=int, default=2, help="float / QAT runs, alternating")
    ap.add_argument("--profile-steps", type=int, default=8)
    ap.add_argument("--out", default="docs/text_peers.json")
    ap.add_argument("--md", default="docs/text_peers.md")
    a = ap.parse_args()
    torch.set_num_threads(1)
    run, work = Path(a.run), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    metrics = json.loads((run / "metrics.json").read_text())
    config = load_config(run / "config.json")
    t0 = time.perf_counter()
    inputs = read_inputs(config)
    s = inputs.splits
    print(f"data {config.data.source}: {len(s.train.x)} train, {len(s.test.y)} test, L = {s.input_shape[0]}",
          flush=True)
    peer, ours_pred = peer_section(run, inputs, metrics, work, a.calibration, a.seed, a.tflm_samples)
    print(json.dumps(peer["runs"], indent=1), flush=True)
    texts = list(teacher_view(s)(s.test.x))
    ours = {"tflite": run / "student_int8.tflite", "onnx": run / "student_int8.onnx", "pred": ours_pred,
            "ids": s.test.x}
    teacher = dyn.teacher_row(inputs.teachers[0], texts, s.test.y, ours, work / "teacher", a.latency_samples,
                              a.latency_repeats)
    teacher["build_teacher_accuracy"] = metrics["teacher"]["test_acc"]
    print(json.dumps({k: teacher[k] for k in ("bytes", "accuracy", "latency")}, indent=1), flush=True)
    step = qat_step.run(inputs, config.data.source, a.family_target, a.qat_steps, a.qat_warmup, a.qat_rounds,
                        a.profile_steps)
    print(json.dumps(step["steps"], indent=1), flush=True)
    doc = {"run": str(run), "data": config.data.source, "test_n": len(s.test.y), "calibration": a.calibration,
           "seed": a.seed, "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                       "load_average_at_end": os.getloadavg(), "torch_threads": 1},
           "versions": _versions(), "peer_ptq": peer, "teacher_dynamic": teacher, "qat_step": step,
           "seconds": time.perf_counter() - t0}
    Path(a.out).write_text(json.dumps(doc, indent=1, default=str) + "\n")
    Path(a.md).write_text(md.render(doc))
    print(f"wrote {a.out} and {a.md} in {doc['seconds']:.0f} s")


def _versions() -> dict:
    from importlib import metadata

    names = ("ai-edge-quantizer", "ai-edge-litert", "tflite-micro", "onnxruntime", "torch", "transformers")
    return {n: metadata.version(n) for n in names}


if __name__ == "__main__":
    main()
