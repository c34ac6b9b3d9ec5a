"""Cost accounting checked against the real thing: the .tflite file's buffers, TFLite Micro's recording
allocator, and MACs counted independently on the torch model."""

import pytest
import torch
from torch import nn

from edgedistill.data import Normalizer
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.tflm_arena import tflm_arena
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students import StudentArch, build_student

SHAPES = {"cnn8-digits": ("cnn", 8, (1, 8, 8)), "dscnn8-28px": ("dscnn", 8, (1, 28, 28)),
          "cnn4-28px": ("cnn", 4, (1, 28, 28))}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def model_file(request, tmp_path_factory):
    family, width, shape = SHAPES[request.param]
    torch.manual_seed(0)
    m = build_student(StudentArch(family, width, 3), shape, 10, Normalizer([0.3], [0.4], "channel")).eval()
    q = calibrate(to_quant_student(m), torch.rand(64, *shape))
    path = tmp_path_factory.mktemp(request.param) / "m_int8.tflite"
    export_tflite_int8(q, shape, path)
    return q, shape, path


def _independent_macs(qmodel, shape) -> int:
    """Count MACs with forward hooks on the torch QuantStudent (an independent formula)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        w = mod.weight
        if mod.kind == "linear":
            total += out.shape[0] * w.shape[0] * w.shape[1]
        else:
            total += out.numel() * w.shape[1] * w[0, 0].numel()

    from edgedistill.quantize.qmodel import QLayer

    handles = [m.register_forward_hook(hook) for m in qmodel.modules() if isinstance(m, QLayer)]
    with torch.no_grad():
        qmodel(torch.rand(1, *shape))
    for h in handles:
        h.remove()
    return total


def test_weight_bytes_equal_the_file_buffers(model_file):
    from ai_edge_litert import schema_py_generated as fb

    _, _, path = model_file
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(path.read_bytes(), 0))
    referenced = {t.buffer for t in model.subgraphs[0].tensors}
    buffer_bytes = sum(len(model.buffers[b].data) for b in referenced if model.buffers[b].data is not None)
    assert tflite_cost(path).weight_bytes == buffer_bytes


def test_arena_matches_tflite_micro(model_file):
    _, _, path = model_file
    arena = tflm_arena(path)
    assert tflite_cost(path).peak_activation_bytes == arena.activation_bytes
    assert arena.total_bytes == arena.activation_bytes + arena.persistent_bytes


def test_macs_match_an_independent_count(model_file):
    q, shape, path = model_file
    assert tflite_cost(path).macs == _independent_macs(q, shape)


def test_per_layer_records(model_file):
    _, _, path = model_file
    c = tflite_cost(path)
    assert sum(layer.macs for layer in c.layers) == c.macs
    assert {layer.kind for layer in c.layers} >= {"conv", "fc"} or {"depthwise", "fc"} <= {l.kind for l in c.layers}
    assert c.input_dtype == "int8"


def test_onnx_and_tflite_count_the_same_macs_for_a_transformer(tmp_path):
    """Attention multiplies two activations (Q·Kᵀ, P·V): ONNX's MatMul without an initializer and TFLite's
    BATCH_MATMUL are both counted as output elements × contracted size, so the two files of one student agree."""
    from edgedistill.export.registry import export_all
    from edgedistill.profile.cost_onnx import onnx_cost

    torch.manual_seed(0)
    m = build_student(StudentArch("transformer", 64, 2), (32,), 4, None, vocab_size=300).eval()
    x = torch.randint(1, 300, (64, 32), dtype=torch.int32)
    q = calibrate(to_quant_student(m), x)
    export_all(m, q, (32,), 4, tmp_path, ["onnx", "tflite"], True)
    onnx_c = onnx_cost(tmp_path / "student_int8.onnx")
    tfl_c = tflite_cost(tmp_path / "student_int8.tflite")
    attention = [op for op in onnx_c.layers if op.op == "MatMul" and op.macs and op.output_shape[-1] in (32, 64 // 2)]
    assert attention, [(op.op, op.macs, op.output_shape) for op in onnx_c.layers if op.macs]
    assert onnx_c.macs == tfl_c.macs, (onnx_c.macs, tfl_c.macs)
