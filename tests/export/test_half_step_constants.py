"""Constants at half a step: the int8 file holds the codes QAT computed with (issue #28).

A barely-trained transformer on builtin:langid with the teacher's vocabulary (a 1,980 × 32 embedding table) failed
parity by 3 output steps on LiteRT (2 on its reference kernels): one table weight lay within a float32 ulp above a
half step, w / s = −16.5000008. QAT's fake quantization rounds nearbyint(w · (1/s)) in float32, where the product is
exactly −16.5, to the even −16; the converter folds the exported Q/DQ of a constant with MLIR's
UniformQuantizedValueConverter (w / s in double, ties away from zero) into −17. Now every exporter hands the
converter the constants already on their grid (QAT's codes times the scale), which any rounding gives back.

The module built here holds such weights on purpose in the three kinds of int8 constant: the embedding table
(GATHER_ND), a learned position tensor (an int8 constant operand of ADD) and a fully-connected layer's per-channel
weights. The independent check that the case is met: the converter's rounding of the raw weights, written here in
float64, differs from QAT's codes on every one of them."""

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter
from torch import nn

from edgedistill.distill.trainer import predict_logits
from edgedistill.export.parity import check_parity, int8_references
from edgedistill.export.registry import export_all
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.attention_ops import Constant
from edgedistill.quantize.fake import weight_scale
from edgedistill.quantize.ops import QLayer
from edgedistill.quantize.sequence_ops import Embedding, table_codes, table_scale

F32 = np.float32
V, L, D, K = 24, 4, 8, 3


def _half_step_values(scale: float, kmax: int = 125) -> list[float]:
    """float32 values w > 0 whose float32 product w · (1/scale) is exactly k + 1/2 for an even k (so nearbyint gives
    k) while w / scale in float64 exceeds k + 1/2 (so rounding the quotient, ties either way, gives k + 1)."""
    inv = F32(1.0) / F32(scale)
    found = []
    for k in range(0, kmax, 2):
        w = F32((k + 0.5) * scale)
        for _ in range(8):
            w = np.nextafter(w, F32(-np.inf))
        for _ in range(17):
            if F32(w * inv) == F32(k + 0.5) and float(w) / float(scale) > k + 0.5:
                found.append(float(w))
                break
            w = np.nextafter(w, F32(np.inf))
    return found


def _converter_codes(w: np.ndarray, scale, zero_point: int = 0) -> np.ndarray:
    """MLIR's quantizeF32ToInt8: round(w / s + z) in float64, ties away from zero."""
    q = w.astype(np.float64) / np.asarray(scale, np.float64) + zero_point
    return np.sign(q) * np.floor(np.abs(q) + 0.5)


def _fill(shape, values: list[float], amax: float, rng) -> torch.Tensor:
    """Every entry a half-step value of random sign, each row's first entry ±amax (it sets the row's scale)."""
    t = rng.choice(values, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    t.reshape(-1, shape[-1])[:, 0] = amax * rng.choice([-1.0, 1.0], size=t.reshape(-1, shape[-1]).shape[0])
    return torch.tensor(t, dtype=torch.float32)


class HalfSteps(nn.Module):
    """ids N×L -> embedding + learned positions -> flatten -> linear: K logits."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.pos = nn.Parameter(torch.zeros(L, D))
        self.fc = nn.Linear(L * D, K)

    def forward(self, ids):
        return self.fc((self.emb(ids) + self.pos).reshape(ids.shape[0], -1))


@pytest.fixture(scope="module")
def traps():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    m = HalfSteps().eval()
    with torch.no_grad():
        amax = 0.75
        m.emb.weight.copy_(_fill((V, D), _half_step_values(amax / 127), amax, rng))
        s_fc = float(F32(amax) / F32(127))  # weight_scale: max|w| / 127 in float32
        m.fc.weight.copy_(_fill((K, L * D), _half_step_values(s_fc), amax, rng))
        m.fc.bias.zero_()
        m.pos.copy_(torch.linspace(-0.2, 0.2, L * D).view(L, D))
    x = torch.randint(1, V, (300, L), dtype=torch.int32)
    q = calibrate(to_quant_student(m), x)
    pos = next(op for op in q.ops.values() if isinstance(op, Constant))
    s, z = float(pos.out_q.scale), int(pos.out_q.zero_point)
    room = min(127 - z, 128 + z) - 2  # codes k + 1 + z stay on the grid
    values = [v for v in _half_step_values(s) if v / s < room]
    assert len(values) >= 4
    with torch.no_grad():
        pos.value.copy_(torch.tensor(rng.choice(values, size=(L, D)) * rng.choice([-1.0, 1.0], size=(L, D)),
                                     dtype=torch.float32))
    return m, q, x, pos


def test_each_constant_holds_weights_that_the_two_roundings_split(traps):
    _, q, _, pos = traps
    emb = next(op for op in q.ops.values() if isinstance(op, Embedding))
    fc = next(op for op in q.ops.values() if isinstance(op, QLayer))
    w = emb.weight.detach()
    s = table_scale(w)
    assert (_converter_codes(w.numpy(), s) != table_codes(w, s).numpy()).sum() >= V * (D - 1)
    s_w = weight_scale(fc.weight).numpy()[:, None]
    qat_w = np.round(fc.weight.detach().numpy() * (F32(1) / s_w))  # float32 product, ties to even
    assert (_converter_codes(fc.weight.detach().numpy(), s_w) != qat_w).sum() >= K * (L * D - 1)
    sp, zp = float(pos.out_q.scale), int(pos.out_q.zero_point)
    assert (_converter_codes(pos.value.detach().numpy(), sp, zp) != pos.codes().numpy()).all()


def test_the_int8_files_compute_what_qat_computes_on_every_runtime(traps, tmp_path):
    m, q, x, pos = traps
    arts = export_all(m, q, (L,), K, tmp_path, ["onnx", "tflite"], True)
    rows = check_parity(arts, predict_logits(m, x).numpy(), int8_references(q, x.numpy(), predict_logits),
                        x.numpy(), np.zeros(len(x), np.int64), float(q.output_q.scale), 100)
    exact = [r for r in rows if r.artifact == "tflite-int8"]
    assert {r.runtime for r in exact} == {"litert", "litert-reference", "tflm"}
    assert all(r.max_steps == 0 for r in exact), [(r.runtime, r.max_steps) for r in exact]
    (ort,) = [r for r in rows if r.artifact == "onnx-int8" and r.runtime == "onnxruntime"]
    assert ort.max_steps <= 1, ort.max_steps
    # the file's table is QAT's table, code for code
    it = Interpreter(model_path=str(tmp_path / "student_int8.tflite"))
    emb = next(op for op in q.ops.values() if isinstance(op, Embedding))
    table = [it.get_tensor(t["index"]) for t in it.get_tensor_details()
             if tuple(t["shape"]) == (V, D) and t["dtype"] == np.int8]
    assert len(table) == 1
    np.testing.assert_array_equal(table[0], table_codes(emb.weight, table_scale(emb.weight)).numpy())
