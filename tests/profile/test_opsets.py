"""Operator support comes from the runtimes (targets/ops/*.json, tools/derive_ops.py), hybrid files are named as
such, and a model that does not fit still gets every figure, its verdict and a non-zero exit."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from edgedistill.cli import main
from edgedistill.errors import ConfigError
from edgedistill.profile.opsets import derive_ops, runtime_ops, target_ops
from edgedistill.profile.precision import tflite_precision
from edgedistill.targets import load_target, profile_files

q = torch.ops.quantized_decomposed


@pytest.mark.parametrize("runtime", ["tflm", "litert"])
def test_stored_op_sets_match_the_installed_runtimes(runtime):
    stored = json.loads((profile_files()["cpu"].parent / "ops" / f"{runtime}.json").read_text())
    assert stored["ops"] == dict(sorted(derive_ops(runtime).to_dict()["ops"].items())), \
        "stale: run tools/derive_ops.py"
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE", "SOFTMAX"} <= set(stored["ops"])


def test_every_target_resolves_and_a_profile_cannot_add_ops():
    for name in profile_files():
        t = load_target(name)
        ops = target_ops(t)
        assert ops is None or ops <= (runtime_ops(t.runtime) or ops)
    m4 = load_target("cortex-m4")
    assert target_ops(m4) == runtime_ops("tflm")
    narrowed = m4.model_copy(update={"ops": ["CONV_2D", "FULLY_CONNECTED"]})
    assert target_ops(narrowed) == {"CONV_2D", "FULLY_CONNECTED"}
    with pytest.raises(ConfigError, match="NOT_AN_OP"):
        target_ops(m4.model_copy(update={"ops": ["CONV_2D", "NOT_AN_OP"]}))


def _fq(v, scale, zero=0):
    return q.dequantize_per_tensor(q.quantize_per_tensor(v, scale, zero, -128, 127, torch.int8), scale, zero,
                                   -128, 127, torch.int8)


class ForeignInt8(nn.Module):
    """conv -> flatten (NCHW order: the converter inserts a TRANSPOSE) -> fc, every tensor int8 (Q/DQ pairs)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc = nn.Conv2d(2, 4, 3), nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        w1 = _fq(self.conv.weight, 0.01)
        w2 = _fq(self.fc.weight, 0.01)
        h = _fq(torch.relu(F.conv2d(_fq(x, 0.02), w1, self.conv.bias)), 0.02)
        return _fq(F.linear(h.flatten(1), w2, self.fc.bias), 0.05)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    litert_torch = pytest.importorskip("litert_torch")
    from edgedistill.export.tflite_export import _static_qdq_config

    d = tmp_path_factory.mktemp("foreign")
    litert_torch.convert(ForeignInt8().eval(), (torch.zeros(1, 2, 8, 8),),
                         quant_config=_static_qdq_config()).export(str(d / "int8.tflite"))
    float_model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    litert_torch.convert(float_model, (torch.zeros(1, 2, 8, 8),)).export(str(d / "float.tflite"))
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(d / "float.tflite"))
    qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    qt.quantize().export_model(str(d / "hybrid.tflite"), overwrite=True)
    return d


def _profile(path, target, tmp_path):
    out = tmp_path / "p.json"
    r = CliRunner().invoke(main, ["profile", str(path), "--target", target, "--runs", "5", "--json", str(out)])
    return r, (json.loads(out.read_text()) if out.exists() else None)


@pytest.mark.slow
def test_foreign_int8_with_transpose_profiles_on_cortex_m4(foreign, tmp_path):
    from edgedistill.runtimes import LiteRTRunner

    path = foreign / "int8.tflite"
    assert "TRANSPOSE" in LiteRTRunner(path).op_names()
    from tflite_micro.python.tflite_micro import runtime  # TFLite Micro itself runs the file

    interp = runtime.Interpreter.from_file(str(path))
    d = interp.get_input_details(0)
    interp.set_input(np.zeros([int(v) for v in d["shape"]], d["dtype"]), 0)
    interp.invoke()
    r, rep = _profile(path, "cortex-m4", tmp_path)
    assert r.exit_code == 0, r.output
    assert "TRANSPOSE" not in r.output
    fit = {f["check"]: f for f in rep["fit"]}
    assert fit["ops"]["passed"] and rep["fits"] is True


@pytest.mark.slow
def test_hybrid_file_is_named_as_such_with_its_float_ops(foreign, tmp_path):
    facts = tflite_precision(foreign / "hybrid.tflite")
    assert facts.precision == "hybrid" and "FULLY_CONNECTED" in facts.int8_weight_ops
    assert tflite_precision(foreign / "float.tflite").precision == "float32"
    r, rep = _profile(foreign / "hybrid.tflite", "cortex-m4", tmp_path)
    assert r.exit_code == 1
    fit = {f["check"]: f for f in rep["fit"]}
    assert fit["ops"]["passed"]  # not an operator problem: TFLM has TRANSPOSE
    assert not fit["precision"]["passed"] and "hybrid" in fit["precision"]["detail"]
    assert "FULLY_CONNECTED" in fit["precision"]["detail"] and "hybrid" in rep["verdict"]
    # every figure it could measure is still there
    assert rep["cost"]["macs"] > 0 and [m["where"] for m in rep["measured"]] == ["measured-host"]


@pytest.mark.slow
def test_model_that_does_not_fit_still_reports_every_figure(foreign, tmp_path):
    tiny = load_target("cortex-m4").model_copy(update={"name": "tiny-m4", "ram_bytes": 64})
    (tmp_path / "targets").mkdir()
    src = profile_files()["cortex-m4"].read_text().replace('name = "cortex-m4"', 'name = "tiny-m4"')
    src = src.replace("ram_bytes = 262144", "ram_bytes = 64")
    (tmp_path / "targets" / "tiny-m4.toml").write_text(src)
    import os

    os.environ["EDGEDISTILL_TARGETS"] = str(tmp_path / "targets")
    try:
        r, rep = _profile(foreign / "int8.tflite", "tiny-m4", tmp_path)
    finally:
        del os.environ["EDGEDISTILL_TARGETS"]
    assert tiny.ram_bytes == 64
    assert r.exit_code == 1 and rep is not None and rep["fits"] is False
    ram = {f["check"]: f for f in rep["fit"]}["ram"]
    assert ram["value"] == rep["tflm_arena"]["total_bytes"] > 64 and not ram["passed"]
    assert f"exceeds 64 B by {ram['value'] - 64:,} B" in rep["verdict"]
    assert [m["where"] for m in rep["measured"]] == ["measured-host", "measured-host-tflm"]
    assert "does not fit tiny-m4" in r.output and "MACs" in r.output
