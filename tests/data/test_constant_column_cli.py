"""Tabular data with a constant column: `distill --qat` must export int8 files that load, with finite scales."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main


@pytest.mark.slow
def test_constant_column_gives_loadable_int8_files_with_finite_scales(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.5)
    x[:, 3] = 4.0  # zero variance
    np.savez(tmp_path / "tab.npz", x=x, y=y)
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
    torch.onnx.export(teacher, (torch.zeros(2, 8),), str(tmp_path / "t.onnx"), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--data", str(tmp_path / "tab.npz"), "--teacher", str(tmp_path / "t.onnx"),
                                  "--out", str(out), "--epochs", "2", "--qat", "--qat-epochs", "1", "-T", "3",
                                  "--alpha", "0.5", "--no-baseline", "--target", "cpu", "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output  # before: "failed to create XNNPACK runtime ... failed to prepare"
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(out / "student_int8.tflite"))
    interp.allocate_tensors()
    for t in interp.get_tensor_details():
        scales = t["quantization_parameters"]["scales"]
        assert np.all(np.isfinite(scales)) and np.all(scales > 0), t["name"]
    import json

    norm = json.loads((out / "student.json").read_text())["normalizer"]
    assert norm["std"][3] == 1.0 and all(s > 0 for s in norm["std"])
