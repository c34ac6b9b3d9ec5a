"""The roofline estimate's cost classes (profile/estimate.py): a fully-connected op that uses each weight once (a
classifier's head at batch 1) is a matrix-vector product ("fc"); one that reuses its weights over several rows (a
decoder's projections over its window) or multiplies two activations (attention) is a matrix-matrix product
("matmul"), at its own efficiency; the invoke overhead counts once per model run. Checked on real exported files
against a hand computation of the formula."""

import pytest
import torch

from edgedistill.export.registry import export_all
from edgedistill.profile.cost import OpCost, ModelCost, tflite_cost
from edgedistill.profile.estimate import cost_class, estimate_latency
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students.decoder_family import decoder
from edgedistill.targets import load_target


def _op(op, macs, weight_bytes, kind="fc"):
    return OpCost(0, op, kind, macs, 0, weight_bytes, 64, 64, [])


def test_weight_reuse_decides_gemv_or_gemm():
    assert cost_class(_op("FULLY_CONNECTED", 10 * 64, 10 * 64 + 40)) == "fc"  # 1 row: each weight once
    assert cost_class(_op("FULLY_CONNECTED", 16 * 10 * 64, 10 * 64 + 40)) == "matmul"  # 16 rows share them
    assert cost_class(_op("BATCH_MATMUL", 16 * 16 * 32, 0)) == "matmul"  # two activations
    assert cost_class(_op("CONV_2D", 10, 100, kind="conv")) == "conv"


def _by_hand(cost: ModelCost, t, eff: dict, invoke: float) -> float:
    total = invoke
    for layer in cost.layers:
        work = layer.macs or layer.ops
        total += t.op_overhead_s + max(work / (t.peak_int8_macs_per_s * eff[cost_class(layer)]),
                                       (layer.weight_bytes + layer.input_bytes + layer.output_bytes)
                                       / t.memory_bandwidth_bytes_per_s)
    return total * 1e3


@pytest.fixture(scope="module")
def decoder_cost(tmp_path_factory):
    torch.manual_seed(0)
    m = decoder((16,), 200, 32, 1, 200, heads=2).eval()
    x = torch.randint(1, 200, (16, 16), dtype=torch.int32)
    arts = export_all(m, calibrate(to_quant_student(m), x), (16,), 200, tmp_path_factory.mktemp("dec"), ["tflite"],
                      True)
    return tflite_cost(next(a.path for a in arts if a.precision == "int8"))


def test_a_decoders_projections_and_attention_are_matmuls_at_their_own_efficiency(decoder_cost):
    classes = {cost_class(layer) for layer in decoder_cost.layers}
    assert "matmul" in classes and "fc" not in classes  # every FC runs over the 16-token window
    t = load_target("cpu")
    eff = {**t.efficiency, "matmul": t.efficiency["matmul"]}
    est = estimate_latency(decoder_cost, t, "int8")
    assert est.total_ms == pytest.approx(_by_hand(decoder_cost, t, eff, t.invoke_overhead_s or 0.0), rel=1e-12)


def test_a_profile_without_matmul_costs_them_as_fc_and_without_invoke_overhead_adds_none(decoder_cost):
    t = load_target("cortex-m4")
    assert "matmul" not in t.efficiency and t.invoke_overhead_s is None
    eff = {**t.efficiency, "matmul": t.efficiency["fc"]}
    assert estimate_latency(decoder_cost, t, "int8").total_ms == pytest.approx(
        _by_hand(decoder_cost, t, eff, 0.0), rel=1e-12)
