"""Raw-range inputs (issue #30): scikit-learn's breast-cancer measurements (30 features from about 0.001 to 4,254)
plus a constant column, an ONNX MLP teacher trained here. One int8 input scale cannot carry those features; the
float input head (quantize/input_head.py) standardises them in the file, so the int8 file loads on every runtime and
keeps the float student's accuracy. With the head forced off, QAT collapses, and the run fails naming the cause,
before any int8 file is written."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer

from edgedistill.cli import main

ARGS = ["--epochs", "6", "--qat", "--qat-epochs", "2", "-T", "1", "--alpha", "1", "--augment", "none", "-q"]


@pytest.fixture(scope="module")
def raw_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("raw")
    c = load_breast_cancer()
    x = np.concatenate([c.data, np.full((len(c.data), 1), 7.0)], 1).astype(np.float32)  # + a constant column
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm], c.target[perm].astype(np.int64)
    np.savez(d / "cancer.npz", x=x, y=y)
    torch.manual_seed(0)
    mu, sd = torch.tensor(x.mean(0)), torch.tensor(x.std(0) + 1e-6)
    net = torch.nn.Sequential(torch.nn.Linear(31, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(net((torch.from_numpy(x) - mu) / sd), torch.from_numpy(y)).backward()
        opt.step()

    net.requires_grad_(False)

    class Teacher(torch.nn.Module):  # takes the raw measurements, as the user's ONNX model does
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, v):
            return self.net((v - mu) / sd)

    torch.onnx.export(Teacher().eval(), (torch.zeros(2, 31),), str(d / "teacher.onnx"), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return d


@pytest.mark.slow
def test_raw_range_tabular_data_deploys_and_keeps_the_float_accuracy(raw_data, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--data", str(raw_data / "cancer.npz"), "--teacher",
                                  str(raw_data / "teacher.onnx"), "--out", str(out), *ARGS], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    q = json.loads((out / "metrics.json").read_text())["int8"]
    assert q["input_head"] is True  # chosen from the data's ranges
    assert q["parity_passed"] and all(p["passed"] for p in q["parity"] if p["checked"])
    rows = {(p["artifact"], p["runtime"]) for p in q["parity"]}
    assert {("tflite-int8", "litert"), ("tflite-int8", "tflm"), ("onnx-int8", "onnxruntime")} <= rows
    assert abs(q["qat_test_acc"] - q["float_test_acc"]) <= 1.0, q
    assert q["float_test_acc"] >= 90.0  # the float student learned the task (chance: 63 %)
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(out / "student_int8.tflite"))
    assert interp.get_input_details()[0]["dtype"] == np.float32  # raw float samples in, as the device has them
    ops = [o["op_name"] for o in interp._get_ops_details()]
    assert ops[:3] == ["MUL", "ADD", "QUANTIZE"], ops


@pytest.mark.slow
def test_a_forced_collapse_fails_with_its_reason_and_writes_no_int8_file(raw_data, tmp_path):
    out, cfg = tmp_path / "run", tmp_path / "c.toml"
    cfg.write_text('[quant]\ninput_head = "off"\n')
    r = CliRunner().invoke(main, ["distill", "--data", str(raw_data / "cancer.npz"), "--teacher",
                                  str(raw_data / "teacher.onnx"), "--out", str(out), "--config", str(cfg), *ARGS])
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert text.startswith("error: QAT int8 reaches") and "input channels' ranges" in text, r.output
    assert "No int8 file was written" in text and "Traceback" not in r.output
    assert not out.exists()
    left = {p.name for p in (tmp_path / "run.partial").iterdir()} if (tmp_path / "run.partial").exists() else set()
    assert not any("int8" in n or n.endswith((".tflite", ".onnx")) for n in left), left
