"""int16 attention (quant.int16 = ["attention"]) through QAT, the ONNX and TFLite writers and every runtime: the file
computes the scores, the mask, SOFTMAX and the context in int16 (tensor types read from the flatbuffer, the boundary
markers gone) and its logits equal the QAT model's to the step on LiteRT (builtin and reference kernels) and TFLite
Micro; ONNX supports it (int16 Q/DQ pairs around float ops), within one step. A padding mask alone, and a causal mask
with the 16×8 LayerNorm beside it."""

import numpy as np
import pytest
import torch
from torch import nn

from edgedistill.distill.trainer import predict_logits
from edgedistill.export.parity import check_parity, int8_references
from edgedistill.export.registry import export_all
from edgedistill.export.tflite_int16 import _load, _opcode, _schema, check_int16
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTRunner
from edgedistill.students.layers import MaskedSelfAttention


class _Block(nn.Module):
    """Embedding + positions, residual two-head self-attention (padding or causal mask), LayerNorm, mean-pooled."""

    def __init__(self, causal: bool):
        super().__init__()
        self.embed = nn.Embedding(60, 16, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(10, 16) * 0.3)
        self.attn = MaskedSelfAttention(16, 2, 10 if causal else None)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 4)

    def forward(self, ids):
        x = self.embed(ids) + self.pos
        return self.head(self.norm(x + self.attn(x, ids)).mean(1))


CASES = {"padding": (False, ("attention",)), "causal+layernorm": (True, ("attention", "layernorm"))}


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory):
    causal, int16 = CASES[request.param]
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("int16attn")
    m = _Block(causal).eval()
    x = torch.randint(1, 60, (240, 10), dtype=torch.int32)
    x[::3, 7:] = 0
    y = torch.randint(0, 4, (240,))
    q = calibrate(to_quant_student(m, "tflm", int16=int16), x)
    q.set_tracking(True)
    q.train()
    opt = torch.optim.Adam(q.parameters(), 1e-2)
    for _ in range(8):  # QAT in TFLite Micro's arithmetic, ranges tracked
        opt.zero_grad()
        nn.functional.cross_entropy(q(x), y).backward()
        opt.step()
    q.set_tracking(False)
    q.eval()
    return m, q, x, export_all(m, q, (10,), 4, d, ["onnx", "tflite"], True), d


def _ops(path):
    """[(op name, input tensors, output tensors)] of the file, tensors as schema objects."""
    s = _schema()
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    model = _load(path)
    g = model.subgraphs[0]
    return [(names[_opcode(model, op)], [g.tensors[int(t)] for t in op.inputs if int(t) >= 0],
             [g.tensors[int(t)] for t in op.outputs]) for op in g.operators]


def test_file_computes_scores_softmax_and_context_in_int16(exported):
    _, q, _, _, d = exported
    path = d / "student_int8.tflite"
    int16 = _schema().TensorType.INT16
    ops = _ops(path)
    by = {}
    for name, ins, outs in ops:
        by.setdefault(name, []).append((ins, outs))
    assert len(by["BATCH_MATMUL"]) == 2 and len(by["SOFTMAX"]) == 1 and len(by["SELECT_V2"]) == 1
    for ins, outs in by["BATCH_MATMUL"]:  # scores Q·Kᵀ and context P·V
        assert [t.type for t in ins] == [int16, int16] and outs[0].type == int16
    (ins, outs), = by["SOFTMAX"]
    assert ins[0].type == int16 and outs[0].type == int16
    assert list(outs[0].quantization.scale) == [1 / 32768] and list(outs[0].quantization.zeroPoint) == [0]
    (ins, outs), = by["SELECT_V2"]  # the mask on the int16 scores grid, its masked value the lowest code
    assert [t.type for t in ins[1:]] == [int16, int16] and outs[0].type == int16
    assert "MAXIMUM" not in by and "MINIMUM" not in by  # the boundary markers are gone
    asked = check_int16(q, path)
    assert asked["BATCH_MATMUL"] == 2 and asked["SOFTMAX"] == 1
    types = {t["dtype"] for t in LiteRTRunner(path).interp.get_tensor_details()}
    assert np.float32 not in types, types


def test_parity_to_the_step_on_every_tflite_runtime(exported):
    m, q, x, arts, _ = exported
    ref_q = int8_references(q, x.numpy(), predict_logits)
    rows = check_parity(arts, predict_logits(m, x).numpy(), ref_q, x.numpy(), ref_q("float").argmax(1),
                        float(q.output_q.scale), 240)
    by = {(r.artifact, r.runtime): r for r in rows}
    for key in [("onnx-int8", "onnxruntime"), ("tflite-int8", "litert"), ("tflite-int8", "litert-reference"),
                ("tflite-int8", "tflm")]:
        assert by[key].passed and by[key].max_steps <= 1 + 1e-3 and by[key].top1_agreement >= 99.0, by[key]
    assert all(r.max_steps == 0 for r in rows if r.artifact == "tflite-int8"), rows
