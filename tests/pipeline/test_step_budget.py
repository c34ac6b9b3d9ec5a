"""`distill --steps N` takes exactly N optimizer steps, mid-epoch if need be, for the student, its twin and (a share)
QAT, on a memory-mapped uint8 x.npy folder; metrics.json records the steps run and config.json the budget."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from edgedistill.cli import main
from edgedistill.config import load_config
from edgedistill.distill.schedule import resolve_config
from tiny_models import tiny_cnn


@pytest.mark.slow
def test_steps_mean_steps_on_a_memory_mapped_uint8_folder(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000  # 2,100 transfer samples at the sized batch 64: 33 steps per epoch, longer than the 20 asked for
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)
    x[:, 0, 0, :] = (y[:, None] * 25).astype(np.uint8)  # a learnable row
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "x.npy", x)
    np.save(data / "y.npy", y)
    teacher = tmp_path / "teacher.safetensors"
    save_file(tiny_cnn().state_dict(), str(teacher))
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--data", str(data), "--teacher", str(teacher), "--teacher-factory",
                                  "tiny_models:tiny_cnn", "--steps", "20", "-T", "4", "--alpha", "0.5", "--qat",
                                  "--formats", "onnx", "--out", str(out), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    sched = m["training"]["schedule"]
    assert (sched["steps_per_epoch"], sched["steps"], sched["exact_steps"]) == (33, 20, True)
    assert m["student"]["steps"] == m["baseline"]["steps"] == 20  # counted by the trainer, not the plan
    assert m["training"]["steps_run"] == {"student": 20, "baseline": 20, "qat_steps_run": 6,
                                          "baseline_qat_steps_run": 6}  # QAT: 0.3 × 20 steps, not 3 epochs (99)
    last = m["student"]["history"][-1]
    assert last["step"] == 20 and last["epoch"] == 1 and last["lr"] == 0.0  # the schedule ends at step 20
    assert m["data"]["val_scored"] == {"samples": 300, "of": 300, "cap": 10000, "seed": 0, "subset": False}
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["train"]["steps"], cfg["train"]["epochs"], cfg["quant"]["qat_steps"]) == (20, "auto", 6)
    _, again = resolve_config(load_config(None, {k: v for k, v in cfg.items() if k != "out"}), 2100)
    assert (again.steps, again.qat_steps) == (20, 6)  # config.json reproduces the budget


def test_validation_scored_at_every_evaluation_is_a_seeded_subset_on_large_data():
    from edgedistill.data import make_splits, read_dataset
    from edgedistill.pipeline.inputs import EvalTensors

    s = make_splits(read_dataset("builtin:digits"))  # 180 validation samples
    whole = EvalTensors.of(s, seed=0)
    assert whole.val_scored["subset"] is False and torch.equal(whole.x_val, torch.from_numpy(s.val.x))
    a, b, c = EvalTensors.of(s, 0, cap=50), EvalTensors.of(s, 0, cap=50), EvalTensors.of(s, 1, cap=50)
    assert a.val_scored == {"samples": 50, "of": len(s.val), "cap": 50, "seed": 0, "subset": True}
    assert torch.equal(a.x_val, b.x_val) and not torch.equal(a.x_val, c.x_val)  # seeded
    rows = {r.tobytes() for r in s.val.x}
    assert all(r.numpy().tobytes() in rows for r in a.x_val)  # validation samples, never others
    assert len(a.x_test) == len(s.test)  # the test split stays whole
