"""Export structure and parity on real runtimes (onnxruntime, LiteRT, TFLite Micro) with real data (digits)."""

import copy

import numpy as np
import onnx
import pytest
import torch

from edgedistill.data import make_splits, read_dataset
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit, predict_logits
from edgedistill.export.parity import check_parity, int8_references
from edgedistill.export.registry import EXPORTERS, export_all
from edgedistill.quantize import post_training_quantize
from edgedistill.quantize.qat import qat_distill
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, TFLMRunner
from edgedistill.students import StudentArch, build_student


# Every (file, runtime) pair whose parity decides the verdict, TFLite Micro included, and the informational ones.
CHECKED = {("onnx-float", "onnxruntime"), ("onnx-int8", "onnxruntime"), ("tflite-float", "litert"),
           ("tflite-int8", "litert"), ("tflite-int8", "tflm"), ("tflite-int8", "litert-reference")}
INFORMATIONAL = {("onnx-int8", "onnxruntime-fused")}


def _assert_every_checked_row_agrees(rows):
    by = {(r.artifact, r.runtime): r for r in rows}
    assert {k for k, r in by.items() if r.checked} == CHECKED
    for key in CHECKED:
        assert by[key].top1_agreement >= 99.0 and by[key].passed, by[key]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    s = make_splits(read_dataset("builtin:digits"))
    torch.manual_seed(0)
    model = build_student(StudentArch("cnn", 8, 3), s.input_shape, s.num_classes, s.normalizer)
    data = TrainSet(torch.from_numpy(s.train.x), torch.from_numpy(s.train.y), None)
    vx, vy = torch.from_numpy(s.val.x), torch.from_numpy(s.val.y)
    settings = TrainSettings(epochs=6, batch_size=32, lr=5e-3)
    res = fit(model, data, vx, vy, Objective(teacher=False), settings)
    model.load_state_dict(res.best_state)
    model.eval()
    calib = data.x[:256]
    qmodel, _ = qat_distill(model, data, calib, vx, vy, Objective(teacher=False),
                            TrainSettings(epochs=2, batch_size=32, lr=5e-3))
    out = tmp_path_factory.mktemp("export")
    arts = {a.name: a for a in export_all(model, qmodel, s.input_shape, s.num_classes, out, ["onnx", "tflite"], True)}
    return s, model, qmodel, arts


def test_every_exporter_ran(exported):
    _, _, _, arts = exported
    assert set(arts) == set(EXPORTERS.names())
    for a in arts.values():
        assert a.path.exists() and a.bytes == a.path.stat().st_size and len(a.sha256) == 64


def test_int8_onnx_structure(exported):
    _, _, _, arts = exported
    m = onnx.load(str(arts["onnx-int8"].path))
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version >= 17
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    inits = {i.name: i for i in m.graph.initializer}
    weights = [i for n, i in inits.items() if "_w_int8" in n]
    biases = [i for n, i in inits.items() if "_b_int32" in n]
    assert weights and all(w.data_type == onnx.TensorProto.INT8 for w in weights)
    assert biases and all(b.data_type == onnx.TensorProto.INT32 for b in biases)
    assert not [i for i in m.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) >= 2]
    int8_bytes = sum(len(w.raw_data) for w in weights)
    n_weights = sum(int(np.prod(w.dims)) for w in weights)
    assert int8_bytes == n_weights  # one byte per weight, stored as such
    float_model = onnx.load(str(arts["onnx-float"].path))
    float_weight_bytes = sum(len(i.raw_data) for i in float_model.graph.initializer if len(i.dims) >= 2)
    assert float_weight_bytes >= 4 * n_weights - 4 * 16  # float32 file: four bytes per weight (BN folded there too)
    assert arts["onnx-int8"].bytes < arts["onnx-float"].bytes


def test_int8_tflite_structure(exported):
    _, _, qmodel, arts = exported
    r = LiteRTRunner(arts["tflite-int8"].path)
    assert r.inp["dtype"] == np.int8 and r.out["dtype"] == np.int8
    scale, zp = r.inp["quantization"]
    assert scale == pytest.approx(float(qmodel.input_q.scale)) and zp == int(qmodel.input_q.zero_point)
    assert arts["tflite-int8"].input.scale == pytest.approx(scale)  # recorded for the device app
    ops = r.op_names()
    assert "TRANSPOSE" not in ops  # NHWC kernels throughout, no transpose around convs
    assert set(ops) <= {"RESHAPE", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED"}
    tensors = r.interp.get_tensor_details()
    float_tensors = [t["name"] for t in tensors if t["dtype"] == np.float32]
    assert not float_tensors, float_tensors  # full integer
    assert "TRANSPOSE" not in LiteRTRunner(arts["tflite-float"].path).op_names()


def _init_value(inits, name):
    import onnx.numpy_helper as nh

    return nh.to_array(inits[name])


def test_int8_onnx_biases_lie_on_the_input_times_weight_scale_grid(exported):
    """Read off the file: every Conv / Gemm's bias is int32, dequantized with scale s_in · s_w (per output
    channel) and zero point 0, where s_in is the scale its input activation was dequantized with and s_w its
    weights' scale (the TFLite int8 spec; integer kernels add the bias to the int32 accumulator as it is)."""
    _, _, _, arts = exported
    m = onnx.load(str(arts["onnx-int8"].path))
    inits = {i.name: i for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    layers = [n for n in m.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(layers) >= 4
    for n in layers:
        x_dq, w_dq, b_dq = (producer[i] for i in n.input[:3])
        assert x_dq.op_type == w_dq.op_type == b_dq.op_type == "DequantizeLinear", n.name
        s_in = _init_value(inits, x_dq.input[1])
        s_w = _init_value(inits, w_dq.input[1])
        bias, s_b = _init_value(inits, b_dq.input[0]), _init_value(inits, b_dq.input[1])
        assert bias.dtype == np.int32 and bias.shape == s_w.shape
        np.testing.assert_allclose(s_b, np.float32(s_in) * s_w, rtol=1e-6)
        if len(b_dq.input) > 2:
            assert not _init_value(inits, b_dq.input[2]).any()


def test_int8_tflite_biases_lie_on_the_input_times_weight_scale_grid(exported):
    _, _, _, arts = exported
    interp = LiteRTRunner(arts["tflite-int8"].path).interp
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = [op for op in interp._get_ops_details()
           if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert len(ops) >= 4
    for op in ops:
        x, w, b = (tensors[i] for i in op["inputs"][:3])
        assert (x["dtype"], w["dtype"], b["dtype"]) == (np.int8, np.int8, np.int32), op
        s_in = x["quantization_parameters"]["scales"]
        s_w = w["quantization_parameters"]["scales"]
        s_b = b["quantization_parameters"]["scales"]
        assert len(s_in) == 1 and len(s_b) == len(s_w) == b["shape"][0]
        np.testing.assert_allclose(s_b, s_in[0] * s_w, rtol=1e-6)
        assert not b["quantization_parameters"]["zero_points"].any()
    # the two exporters (ours for ONNX, the LiteRT converter for TFLite) put the same integers on that grid
    tfl = [interp.get_tensor(op["inputs"][2]) for op in ops]
    m = onnx.load(str(arts["onnx-int8"].path))
    inits = {i.name: i for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    onx = [_init_value(inits, producer[n.input[2]].input[0]) for n in m.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(tfl) == len(onx)
    for a, b in zip(tfl, onx):
        np.testing.assert_array_equal(a, b)


def test_parity_on_every_runtime(exported):
    """Every int8 file is compared with the QAT model computing its runtime's arithmetic: LiteRT and TFLite Micro
    equal to the step, onnxruntime's float QDQ reference within its documented bound."""
    s, model, qmodel, arts = exported
    x, y = s.test.x, s.test.y
    ref_f = predict_logits(model, torch.from_numpy(x)).numpy()
    rows = check_parity(list(arts.values()), ref_f, int8_references(qmodel, x, predict_logits), x, y,
                        float(qmodel.output_q.scale), tflm_max_samples=200)
    by = {(r.artifact, r.runtime): r for r in rows}
    assert len(by) == len(rows)  # one row per (file, runtime)
    assert {k for k, r in by.items() if r.checked} == CHECKED
    assert {k for k, r in by.items() if not r.checked} == INFORMATIONAL
    for key in [("onnx-float", "onnxruntime"), ("tflite-float", "litert")]:
        assert by[key].top1_agreement == 100.0 and by[key].max_abs_logit_diff < 1e-3 and by[key].passed
    for key, arithmetic in [(("onnx-int8", "onnxruntime"), "float"), (("tflite-int8", "litert"), "xnnpack"),
                            (("tflite-int8", "tflm"), "tflm"), (("tflite-int8", "litert-reference"), "reference")]:
        r = by[key]
        assert r.passed and r.top1_agreement >= 99.9 and r.arithmetic == arithmetic, r
        assert r.max_steps <= r.step_bound
    for key in [("tflite-int8", "litert"), ("tflite-int8", "tflm"), ("tflite-int8", "litert-reference")]:
        assert by[key].max_steps == 0, by[key]  # the runtime's integers, bit for bit
    assert by[("tflite-int8", "tflm")].samples == 200 and by[("tflite-int8", "litert-reference")].samples == len(x)


def test_reference_kernels_compute_what_tflite_micro_computes(exported):
    """The litert-reference runtime stands in for TFLite Micro on whole test splits: same int8 logits up to one
    output step (the classifier's rounding), where XNNPACK may differ by more on other models."""
    s, _, qmodel, arts = exported
    path = arts["tflite-int8"].path
    x = s.test.x[:200]
    ref = LiteRTReferenceRunner(path).predict_batched(x, batch=64)
    micro = TFLMRunner(path).predict_batched(x, batch=64)
    step = float(qmodel.output_q.scale)
    assert np.abs(ref - micro).max() <= 1.01 * step
    assert (ref.argmax(1) == micro.argmax(1)).mean() >= 0.99


def test_ptq_baseline_is_a_real_quantization(exported):
    s, model, _, _ = exported
    ptq = post_training_quantize(model, torch.from_numpy(s.train.x[:256]))
    x = torch.from_numpy(s.test.x)
    a, b = predict_logits(model, x), predict_logits(ptq, x)
    assert 0 < float((a - b).abs().max()) < 5.0  # quantized, not identical, not broken
    assert float((a.argmax(1) == b.argmax(1)).float().mean()) > 0.9


def test_exporters_do_not_mutate_models(exported, tmp_path):
    s, model, qmodel, _ = exported
    before_f = copy.deepcopy(model.state_dict())
    before_q = copy.deepcopy(qmodel.state_dict())
    modes = [q.mode for q in qmodel.quantizers()]
    export_all(model, qmodel, s.input_shape, s.num_classes, tmp_path, ["onnx"], True)
    assert all(torch.equal(v, before_f[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(v, before_q[k]) for k, v in qmodel.state_dict().items())
    assert [q.mode for q in qmodel.quantizers()] == modes


def test_signal_student_exports_with_parity(tmp_path):
    """N×C×L signals (conv1d family) go through the same int8 path; parity on every runtime."""
    from edgedistill.data import Normalizer
    from edgedistill.quantize import calibrate, to_quant_student

    torch.manual_seed(0)
    m = build_student(StudentArch("conv1d", 8, 3), (3, 64), 5, Normalizer([0.1] * 3, [0.9] * 3, "channel")).eval()
    x = torch.randn(200, 3, 64)
    q = calibrate(to_quant_student(m), x)
    arts = export_all(m, q, (3, 64), 5, tmp_path, ["onnx", "tflite"], True)
    ref_q = int8_references(q, x.numpy(), predict_logits)
    rows = check_parity(arts, predict_logits(m, x).numpy(), ref_q, x.numpy(), ref_q("float").argmax(1),
                        float(q.output_q.scale), 100)
    _assert_every_checked_row_agrees(rows)
    ops = LiteRTRunner(tmp_path / "student_int8.tflite").op_names()
    assert ops.count("TRANSPOSE") <= 2 and ops.count("CONV_2D") == 3  # layout changes only at the ends


def test_feature_vector_mlp_exports_with_parity(tmp_path):
    """N×F feature vectors (mlp family) whose ranges differ 500-fold: the per-feature normalisation becomes the float
    input head (float MUL, ADD, QUANTIZE in the file), exact in float mode; parity on every runtime."""
    from edgedistill.data import Normalizer
    from edgedistill.quantize import calibrate, to_quant_student

    torch.manual_seed(0)
    x = torch.randn(300, 12) * torch.linspace(0.1, 50, 12) + torch.linspace(-5, 5, 12)  # wildly different scales
    norm = Normalizer(x.mean(0).tolist(), x.std(0).tolist(), "feature")
    m = build_student(StudentArch("mlp", 8, 3), (12,), 4, norm).eval()
    q = to_quant_student(m)
    with torch.no_grad():
        torch.testing.assert_close(q(x), m(x), atol=1e-4, rtol=1e-4)  # float mode: the fold is exact
    assert q.head is not None
    calibrate(q, x)
    arts = export_all(m, q, (12,), 4, tmp_path, ["onnx", "tflite"], True)
    ref_q = int8_references(q, x.numpy(), predict_logits)
    rows = check_parity(arts, predict_logits(m, x).numpy(), ref_q, x.numpy(), ref_q("float").argmax(1),
                        float(q.output_q.scale), 100)
    _assert_every_checked_row_agrees(rows)


def test_text_student_exports_with_parity(tmp_path):
    """Token ids (textcnn): an int8 GATHER_ND from the embedding table straight into NHWC 1-D convolutions; the file
    takes int32 ids and holds no float tensor, no requantizing QUANTIZE and no negative-index wrap-around; parity on
    every runtime (LiteRT and TFLite Micro bit for bit)."""
    from edgedistill.quantize import calibrate, to_quant_student

    torch.manual_seed(0)
    m = build_student(StudentArch("textcnn", 8, 2), (24,), 4, None, vocab_size=257).eval()
    x = torch.randint(1, 257, (160, 24), dtype=torch.int32)
    x[torch.arange(160) % 3 == 0, 12:] = 0  # padded texts
    q = calibrate(to_quant_student(m), x)
    assert q.index_input
    arts = export_all(m, q, (24,), 4, tmp_path, ["onnx", "tflite"], True)
    ref_q = int8_references(q, x.numpy(), predict_logits)
    rows = check_parity(arts, predict_logits(m, x).numpy(), ref_q, x.numpy(), ref_q("float").argmax(1),
                        float(q.output_q.scale), 100)
    _assert_every_checked_row_agrees(rows)
    assert all(r.max_steps == 0 for r in rows if r.artifact == "tflite-int8")
    r = LiteRTRunner(tmp_path / "student_int8.tflite")
    ops = r.op_names()
    assert "GATHER_ND" in ops and not {"QUANTIZE", "SELECT", "SELECT_V2", "LESS", "TRANSPOSE"} & set(ops), ops
    assert r.inp["dtype"] == np.int32
    assert not [t["name"] for t in r.interp.get_tensor_details() if t["dtype"] == np.float32]
    # the ops the fixups removed leave no tensor behind (TFLite Micro would plan each in its arena)
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.ModelT.InitFromObj(schema.Model.GetRootAs((tmp_path / "student_int8.tflite").read_bytes(), 0))
    graph = graph.subgraphs[0]
    used = {int(t) for op in graph.operators for t in list(op.inputs) + list(op.outputs)}
    assert used | {int(t) for t in list(graph.inputs) + list(graph.outputs)} == set(range(len(graph.tensors)))


def test_transformer_student_exports_with_parity(tmp_path):
    """The transformer family (embedding + positions, masked multi-head attention, softmax, LayerNorm, ReLU
    feed-forward, mean pooling) in int8: every runtime computes exactly what the QAT model computes in its arithmetic
    (ruy's requantization for LiteRT's runtime-weight FULLY_CONNECTED, the float-table SOFTMAX of LiteRT's optimized
    kernel, gemmlowp's SOFTMAX and the integer RSQRT of the reference kernels and TFLite Micro)."""
    from edgedistill.quantize import calibrate, to_quant_student

    torch.manual_seed(0)
    m = build_student(StudentArch("transformer", 32, 2), (16,), 5, None, vocab_size=257).eval()
    x = torch.randint(1, 257, (240, 16), dtype=torch.int32)
    x[::2, 10:] = 0  # padded texts: the attention mask matters
    q = calibrate(to_quant_student(m), x)
    arts = export_all(m, q, (16,), 5, tmp_path, ["onnx", "tflite"], True)
    ref_q = int8_references(q, x.numpy(), predict_logits)
    rows = check_parity(arts, predict_logits(m, x).numpy(), ref_q, x.numpy(), ref_q("float").argmax(1),
                        float(q.output_q.scale), 120)
    _assert_every_checked_row_agrees(rows)
    assert all(r.max_steps == 0 for r in rows if r.artifact == "tflite-int8"), rows
    ops = LiteRTRunner(tmp_path / "student_int8.tflite").op_names()
    assert {"GATHER_ND", "SOFTMAX", "SELECT_V2", "RSQRT", "FULLY_CONNECTED"} <= set(ops), ops


class _ReadsTheBatchSize(torch.nn.Module):
    """A user's text module that flattens by `ids.shape[0]` (or `ids.size(0)`): a shape read of the token ids."""

    def __init__(self, size_call: bool):
        super().__init__()
        self.emb, self.fc, self.size_call = torch.nn.Embedding(60, 8), torch.nn.Linear(8 * 12, 3), size_call

    def forward(self, ids):
        n = ids.size(0) if self.size_call else ids.shape[0]
        return self.fc(torch.relu(self.emb(ids)).reshape(n, -1))


@pytest.mark.parametrize("size_call", [False, True], ids=["shape", "size"])
def test_token_ids_read_for_their_shape_stay_token_ids(tmp_path, size_call):
    """Before: a shape read counted as a float use of the input, so the ids were quantized as samples and the
    export failed with a traceback. Trained a few steps, the int8 file takes int32 ids and every runtime computes
    the QAT model's arithmetic exactly."""
    from edgedistill.quantize import calibrate, to_quant_student

    torch.manual_seed(0)
    m = _ReadsTheBatchSize(size_call)
    x = torch.randint(0, 60, (240, 12), dtype=torch.int32)
    y = (x[:, 0] % 3).long()
    fit(m, TrainSet(x, y, None), x[:40], y[:40], Objective(teacher=False), TrainSettings(epochs=3, batch_size=32))
    m.eval()
    q = calibrate(to_quant_student(m), x)
    assert q.input_q is None  # token ids: gathered, never quantized
    arts = export_all(m, q, (12,), 3, tmp_path, ["tflite"], True)
    ref_q = int8_references(q, x.numpy(), predict_logits)
    rows = check_parity(arts, predict_logits(m, x).numpy(), ref_q, x.numpy(), y.numpy(), float(q.output_q.scale),
                        120)
    int8 = [r for r in rows if r.artifact == "tflite-int8"]
    assert {r.runtime for r in int8} >= {"litert", "litert-reference", "tflm"}
    assert all(r.passed and r.max_steps == 0 for r in int8), int8
    assert LiteRTRunner(tmp_path / "student_int8.tflite").inp["dtype"] == np.int32


class _Branchy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot capture it
            return self.fc(x)
        return -self.fc(x)


def test_float_tflite_of_a_student_with_control_flow_is_refused_in_one_paragraph(tmp_path, capfd):
    """torch.export printed the half-captured graph twice and raised a 17-line guard error (about 280 lines through
    the CLI); now one paragraph that names the cause, and no file or temporary is left."""
    from edgedistill.export.tflite_export import export_tflite_float
    from edgedistill.quantize.capture import UnsupportedOpError

    with pytest.raises(UnsupportedOpError) as err:
        export_tflite_float(_Branchy(), (8,), tmp_path / "f.tflite")
    msg = str(err.value)
    assert "control flow" in msg and "GuardOnDataDependentSymNode" in msg and len(msg.splitlines()) == 1
    assert "def forward" not in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []
