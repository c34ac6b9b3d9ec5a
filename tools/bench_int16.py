"""int8 against 16×8 forms (quant.int16: "layernorm", "attention", both) on one float transformer student.

For each DATA (a built-in text task): the transformer student `build --family transformer` picks for --target is
trained in float on the labels (the same seeded run for every variant; the comparison is about the int8 graph, not
the teacher), then quantized once per --variants entry from that one float student, each with QAT in the target
runtime's arithmetic (same steps, same seed). Reported per variant: test accuracy of the QAT model (its arithmetic:
what TFLite Micro computes, to the output step, tests/export/test_export_int16.py and
test_export_int16_attention.py) with a Wilson interval, the paired McNemar test against the int8 variant on the same
samples, the share of test samples whose top-1 equals the float student's, the int8 TFLite file's bytes and its
TFLite Micro arena (the recording allocator), and the TFLite Micro file's own accuracy on the first --tflm test
samples. One torch thread.

    python tools/bench_int16.py --data builtin:langid --variants int8,layernorm --out docs/int16.json
    python tools/bench_int16.py --data builtin:langid --variants int8,attention,attention+layernorm \
        --out docs/int16_attention.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgedistill.budget import Budget
from edgedistill.config import load_config
from edgedistill.distill.schedule import resolve_config
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit, predict_logits
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.pipeline.inputs import read_inputs
from edgedistill.pipeline.int8 import qat_rounding
from edgedistill.pipeline.search import choose_student
from edgedistill.profile.tflm_arena import tflm_arena
from edgedistill.quantize.calibrate import calibration_indices
from edgedistill.quantize.qat import qat_distill
from edgedistill.report.noise import paired_gain
from edgedistill.runtimes import TFLMRunner
from edgedistill.stats import wilson
from edgedistill.students import build_student
from edgedistill.targets import load_target

LABELS = Objective(teacher=False)


def _setup(data: str, target_name: str, float_steps: int, qat_steps: int) -> dict:
    config = load_config(None, {"data": {"source": data}, "student": {"family": "transformer"},
                                "quant": {"qat": True}, "target": target_name, "out": "runs/unused"})
    inputs = read_inputs(config)
    target = load_target(target_name)
    found = choose_student(config, Budget.for_target(target, Budget.parse("")), inputs, target)
    s = inputs.splits
    config, _ = resolve_config(config, len(s.transfer))
    settings = TrainSettings.of(config.train, config.augment.recipe())
    labelled = s.transfer.y >= 0
    train = TrainSet(torch.from_numpy(s.transfer.x[labelled]), torch.from_numpy(s.transfer.y[labelled]), None)
    return {"splits": s, "arch": found.chosen.arch, "params": found.chosen.params, "quant": config.quant,
            "rounding": qat_rounding(config.quant.rounding, target), "train": train,
            "float": replace(settings, steps=float_steps, epochs=1, eval_every=None),
            "qat": replace(settings, steps=qat_steps, epochs=1, eval_every=None)}


def _variant(setup: dict, student, int16: tuple[str, ...], out: Path, tflm_n: int, float_pred: np.ndarray) -> dict:
    s, q = setup["splits"], setup["quant"]
    data = setup["train"]
    idx = torch.from_numpy(calibration_indices(len(data), q.calibration_size, 0))
    val = (torch.from_numpy(s.val.x), torch.from_numpy(s.val.y))
    t0 = time.process_time()
    qm, res = qat_distill(student, data, data.x[idx], *val, LABELS, setup["qat"], method=q.calibration,
                          lr_scale=q.qat_lr_scale, rounding=setup["rounding"], input_head=q.input_head,
                          ranges=q.ranges, int16=int16)
    cpu = time.process_time() - t0
    x_te = torch.from_numpy(s.test.x)
    pred = predict_logits(qm, x_te).argmax(1).numpy()
    right = pred == s.test.y
    path = out / f"{'_'.join(('int16',) + int16) if int16 else 'int8'}.tflite"
    art = export_tflite_int8(qm, s.input_shape, path)
    micro = TFLMRunner(path).predict(s.test.x[:tflm_n]).argmax(1) == s.test.y[:tflm_n]
    iv = wilson(int(right.sum()), len(right))
    arena = tflm_arena(path)
    return {"int16": list(int16), "test_acc": 100.0 * right.mean(), "ci95": [iv.low, iv.high],
            "float_top1_agreement": 100.0 * float(np.mean(pred == float_pred)),
            "tflm_acc_first": 100.0 * micro.mean(), "tflm_samples": int(tflm_n), "bytes": art.bytes,
            "arena_bytes": arena.total_bytes, "arena_activation_bytes": arena.activation_bytes,
            "arena_persistent_bytes": arena.persistent_bytes, "qat_steps": res.steps, "qat_cpu_s": cpu,
            "_right": right}


def run(data: str, target: str, float_steps: int, qat_steps: int, tflm_n: int,
        variants: tuple[tuple[str, ...], ...] = ((), ("layernorm",))) -> dict:
    """One DATA: the float student, then each variant (op kinds in 16×8 form; () is int8 and comes first)."""
    setup = _setup(data, target, float_steps, qat_steps)
    s = setup["splits"]
    torch.manual_seed(0)
    student = build_student(setup["arch"], s.input_shape, s.num_classes, s.normalizer, s.vocab_size)
    val = (torch.from_numpy(s.val.x), torch.from_numpy(s.val.y))
    fit(student, setup["train"], *val, LABELS, setup["float"])
    student.eval()
    float_pred = predict_logits(student, torch.from_numpy(s.test.x)).argmax(1).numpy()
    float_right = float_pred == s.test.y
    with tempfile.TemporaryDirectory() as d:
        rows = [_variant(setup, copy.deepcopy(student), int16, Path(d), tflm_n, float_pred) for int16 in variants]
    base = rows[0]["_right"]
    for row in rows[1:]:
        row["vs_int8"] = paired_gain(row["_right"], base)  # McNemar on the same test samples
    for row in rows:
        row.pop("_right")
    return {"data": data, "target": target, "student": setup["arch"].describe(), "params": setup["params"],
            "rounding": setup["rounding"], "test_samples": len(s.test.y), "float_steps": float_steps,
            "float_test_acc": 100.0 * float_right.mean(), "variants": rows}


def _variants(text: str) -> tuple[tuple[str, ...], ...]:
    """"int8,attention,attention+layernorm" -> ((), ("attention",), ("attention", "layernorm")); int8 first."""
    out = tuple(() if v == "int8" else tuple(v.split("+")) for v in text.split(","))
    if not out or out[0] != ():
        raise SystemExit("--variants must start with int8 (the paired tests compare against it)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="builtin:langid")
    ap.add_argument("--target", default="cortex-m4")
    ap.add_argument("--float-steps", type=int, default=600)
    ap.add_argument("--qat-steps", type=int, default=150)
    ap.add_argument("--tflm", type=int, default=300, help="test samples run through TFLite Micro per file")
    ap.add_argument("--variants", default="int8,layernorm",
                    help="comma-separated, int8 first: int8, layernorm, attention, attention+layernorm")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    results = []
    for data in a.data.split(","):
        r = run(data, a.target, a.float_steps, a.qat_steps, a.tflm, _variants(a.variants))
        results.append(r)
        print(f"{data} {r['student']} float {r['float_test_acc']:.2f}%", flush=True)
        for v in r["variants"]:
            print(f"  {'16x8 ' + '+'.join(v['int16']) if v['int16'] else 'int8':25s} {v['test_acc']:.2f}% "
                  f"[{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]  = float top-1 {v['float_top1_agreement']:.2f}%  "
                  f"TFLM {v['tflm_acc_first']:.2f}% "
                  f"({v['tflm_samples']})  {v['bytes']:,} B  arena {v['arena_bytes']:,} B  "
                  f"QAT {v['qat_cpu_s']:.0f} s CPU", flush=True)
            if "vs_int8" in v:
                print(f"    - int8: {json.dumps(v['vs_int8'])}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"threads": 1, "results": results}, indent=1, default=float) + "\n")


if __name__ == "__main__":
    sys.exit(main())
