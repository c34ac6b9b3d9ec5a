"""A tiny causal decoder (trained a few steps on a toy language), exported to float and int8 ONNX and TFLite: every
file is causal on every runtime that runs it (a logit at position t never changes when the tokens after t do), and
the int8 files compute what the QAT model computes in each runtime's arithmetic (export/parity.py's bounds: one
output step on LiteRT and TFLite Micro, onnxruntime's QDQ reference within its own)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgedistill.distill.trainer import predict_logits
from edgedistill.export.parity import _runner, check_parity, int8_references, parity_plan
from edgedistill.export.registry import export_all
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTRunner, TFLMRunner
from edgedistill.students.decoder_family import decoder

V, L = 48, 12


def _sequences(n, g):
    """Arithmetic progressions mod V - 1 (ids 1..V-1): the next token follows from the two before it."""
    start = torch.randint(1, V, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    return ((start + step * torch.arange(L + 1)) % (V - 1) + 1).int()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few hundred tiny steps: one thread is fastest beside other jobs
    try:
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        m = decoder((L,), V, 32, 2, V, heads=2)  # two heads: BATCH_MATMUL in the file
        opt = torch.optim.Adam(m.parameters(), 3e-3)
        for _ in range(30):
            s = _sequences(32, g)
            loss = F.cross_entropy(m(s[:, :-1]).reshape(-1, V), s[:, 1:].reshape(-1).long())
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        x = _sequences(96, g)[:, :-1]
        x[::4, 8:] = 0  # windows that end before the context does: padding after the last token
        q = calibrate(to_quant_student(m), x)
        out = tmp_path_factory.mktemp("decoder")
        arts = export_all(m, q, (L,), V, out, ["onnx", "tflite"], True)
        ref_q = int8_references(q, x.numpy(), predict_logits)
        rows = check_parity(arts, predict_logits(m, x).detach().numpy(), ref_q, x.numpy(),
                            ref_q("float").argmax(-1), float(q.output_q.scale), 96)
        return m, q, x.numpy(), arts, rows, out
    finally:
        torch.set_num_threads(threads)


def test_every_file_runs_n_by_l_by_v_logits_with_parity(exported):
    _, _, x, arts, rows, out = exported
    assert {a.name for a in arts} == {"onnx-float", "onnx-int8", "tflite-float", "tflite-int8"}
    assert all(a.output.shape[1:] == [L, V] for a in arts), [a.output for a in arts]
    checked = {(r.artifact, r.runtime) for r in rows if r.checked}
    assert {("tflite-int8", "litert"), ("tflite-int8", "tflm"), ("tflite-int8", "litert-reference"),
            ("onnx-int8", "onnxruntime")} <= checked
    for r in rows:
        assert r.samples == 96 and (r.passed or not r.checked), r
    ops = LiteRTRunner(out / "student_int8.tflite").op_names()
    # the causal mask is a constant added to the scores: no comparison of the ids and no select is left in the file
    assert {"GATHER_ND", "SOFTMAX", "BATCH_MATMUL", "RSQRT"} <= set(ops), ops
    assert not {"EQUAL", "NOT_EQUAL", "LESS", "SELECT_V2"} & set(ops), ops
    assert TFLMRunner(out / "student_int8.tflite").predict(x[:2]).shape == (2, L, V)


def test_every_exported_file_is_causal_on_every_runtime(exported):
    _, _, x, arts, _, _ = exported
    ids = x[:12]
    rng = np.random.default_rng(0)
    for art, rt in parity_plan(arts):
        runner = _runner(rt, art)
        base = runner.predict(ids)
        for t in range(L - 1):
            later = ids.copy()
            later[:, t + 1:] = rng.integers(1, V, later[:, t + 1:].shape)
            moved = np.abs(runner.predict(later)[:, :t + 1] - base[:, :t + 1]).max()
            # int8: the same integers; float: the same float ops on the same inputs, up to reduction order
            assert moved <= (0.0 if art.precision == "int8" else 1e-5), (art.name, rt, t, moved)
        assert np.abs(runner.predict(later)[:, -1] - base[:, -1]).max() > 0  # the last position does read them


def test_onnxruntime_fuses_the_int8_file_into_integer_kernels(exported, tmp_path):
    """After onnxruntime's full optimization the int8 file runs every linear layer as QGemm and every Add / Mul /
    Where / Softmax / attention MatMul as its QLinear kernel: no float MatMul, Gemm, Add or Mul is left, and Q/DQ
    pairs remain only around the LayerNorms' float ReduceMean / Sub / Sqrt / Reciprocal (which have no integer
    kernel; five DQ a LayerNorm) and at the float output. The writer's uint8 activations make this possible: with
    int8 ones onnxruntime on x86 left the MatMuls whose input feeds several consumers in float and could not fuse
    Adds whose inputs it had converted to uint8 only in part (export/onnx_export.py)."""
    import collections

    import onnx
    import onnxruntime as ort

    _, _, _, arts, _, _ = exported
    path = next(a.path for a in arts if a.name == "onnx-int8")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)
    layer_norms = ops["Sqrt"]
    assert layer_norms == 2 * 2 + 1, ops  # two per block, one before the head
    assert not {"MatMul", "Gemm", "Add", "Mul", "MatMulIntegerToFloat"} & set(ops), ops
    assert ops["QGemm"] == 2 * 6 + 1, ops  # q, k, v, out, ff1, ff2 per block and the head
    assert ops["QLinearMatMul"] == 2 * 2 and ops["QLinearWhere"] == ops["QLinearSoftmax"] == 2, ops
    assert ops["DequantizeLinear"] <= 5 * layer_norms + 1, ops


def test_profile_counts_the_same_macs_in_every_file(exported):
    """The ONNX files' head split is a Reshape whose shape the graph computes (Shape -> Gather -> Concat), so plain
    shape inference left the attention's MatMuls unknown and `profile` counted a fraction of the float file's MACs:
    every file of the decoder now counts what the TFLite file does."""
    from edgedistill.profile.cost import tflite_cost
    from edgedistill.profile.cost_onnx import onnx_cost

    out = exported[5]
    macs = tflite_cost(out / "student_int8.tflite").macs
    assert macs > 0
    assert onnx_cost(out / "student.onnx").macs == macs
    assert onnx_cost(out / "student_int8.onnx").macs == macs
    assert onnx_cost(out / "student_int8.onnx").params <= onnx_cost(out / "student.onnx").params * 1.05
