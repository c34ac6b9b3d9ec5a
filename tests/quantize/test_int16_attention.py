"""The int16 attention's kernels (quantize/int16_kernels.py) against the runtimes that run them: SOFTMAX int16 on
LiteRT (builtin and reference kernels) and TFLite Micro equals softmax16 with each runtime's tables to the code, the
two table sets differ (so each runtime needs its own), BATCH_MATMUL int16 equals matmul16 everywhere; and the graph
refuses what the converter cannot write (one head) instead of exporting something else."""

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed

from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.capture import UnsupportedOpError
from edgedistill.quantize.int16_attention import Attention16, MatMul16, Softmax16
from edgedistill.quantize.int16_kernels import matmul16, softmax16_litert, softmax16_tflm
from edgedistill.quantize.qat import rebuild_quant_student
from edgedistill.students.layers import MaskedSelfAttention

_qd = torch.ops.quantized_decomposed


def _q16(x, s):
    return _qd.dequantize_per_tensor(_qd.quantize_per_tensor(x, s, 0, -32768, 32767, torch.int16),
                                     s, 0, -32768, 32767, torch.int16)


def _convert(module, args, path):
    import litert_torch

    from edgedistill.export.tflite_export import _static_qdq_config

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        litert_torch.convert(module.eval(), args, quant_config=_static_qdq_config()).export(str(path))
    return str(path)


def _run(path, inputs):
    """{runtime: int64 output codes} on LiteRT's builtin and reference kernels and TFLite Micro, and the LiteRT
    input / output details."""
    from ai_edge_litert import interpreter as litert
    from tflite_micro.python.tflite_micro import runtime as tflm

    outs = {}
    for name, resolver in (("litert", litert.OpResolverType.AUTO), ("reference", litert.OpResolverType.BUILTIN_REF)):
        it = litert.Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        for d, v in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], v)
        it.invoke()
        outs[name] = it.get_tensor(it.get_output_details()[0]["index"]).astype(np.int64)
    micro = tflm.Interpreter.from_file(path, arena_size=1 << 22)
    for i, v in enumerate(inputs):
        micro.set_input(v, i)
    micro.invoke()
    outs["tflm"] = micro.get_output(0).astype(np.int64)
    return outs, it.get_input_details(), it.get_output_details()


@pytest.mark.parametrize("s_in", [3.3e-4, 4.1e-5])
def test_softmax16_is_what_each_runtime_computes(tmp_path, s_in):
    class Softmax(nn.Module):
        def forward(self, x):
            return _q16(_q16(x, s_in).softmax(-1), 1 / 32768)

    path = _convert(Softmax(), (torch.randn(64, 12),), tmp_path / "softmax16.tflite")
    rng = np.random.default_rng(0)
    codes = rng.integers(-32768, 32767, (64, 12)).astype(np.int16)
    codes[:24] = rng.integers(-3000, 3000, (24, 12))  # rows whose differences stay inside the exp table
    codes[24:30] = rng.integers(0, 3000, (6, 12))
    codes[24:30, 5:] = -32768  # masked keys: the grid's lowest code
    outs, i, o = _run(path, [codes])
    assert i[0]["dtype"] == np.int16 and o[0]["dtype"] == np.int16
    assert o[0]["quantization"] == (1 / 32768, 0)
    s = i[0]["quantization"][0]
    t = torch.from_numpy(codes.astype(np.int64))
    tflm, litert = softmax16_tflm(t, s).numpy(), softmax16_litert(t, s).numpy()
    assert np.array_equal(outs["tflm"], tflm)
    assert np.array_equal(outs["litert"], litert) and np.array_equal(outs["reference"], litert)
    if s_in == 4.1e-5:  # float32 against float64 tables: a code apart somewhere
        assert np.abs(tflm - litert).max() == 1
    if 32768 * s >= 10:  # a masked key 10 or more below its row's maximum keeps the exp table's floor, ~1 code
        assert litert[24:30, 5:].min() >= 0 and litert[24:30, 5:].max() <= 1  # (quantize/int16_attention.py)
    # within 1/1024 of the float softmax everywhere: under the int8 output grid's rounding alone (1/512)
    assert np.abs(litert / 32768 - torch.from_numpy(codes * s).softmax(-1).numpy()).max() < 1 / 1024


def test_matmul16_is_what_every_runtime_computes(tmp_path):
    sa, sb, so = 1 / 32768, 5.1e-4, 2.1e-5

    class MatMul(nn.Module):
        def forward(self, a, b):
            return _q16(_q16(a, sa) @ _q16(b, sb), so)

    path = _convert(MatMul(), (torch.randn(2, 3, 8, 16), torch.randn(2, 3, 16, 8)), tmp_path / "bmm16.tflite")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 32767, (2, 3, 8, 16)).astype(np.int16)
    b = rng.integers(-32768, 32767, (2, 3, 16, 8)).astype(np.int16)
    a[0] //= 64
    b[0] //= 64
    outs, i, o = _run(path, [a, b])
    assert [d["dtype"] for d in i] == [np.int16, np.int16] and o[0]["dtype"] == np.int16
    acc = torch.from_numpy(a.astype(np.int64)) @ torch.from_numpy(b.astype(np.int64))
    m = float(np.float64(i[0]["quantization"][0]) * i[1]["quantization"][0] / o[0]["quantization"][0])
    want = matmul16(acc, m).numpy()
    assert all(np.array_equal(v, want) for v in outs.values()), {k: np.abs(v - want).max() for k, v in outs.items()}
    assert np.abs(want - np.clip(np.round(acc.numpy() * m), -32768, 32767)).max() <= 1


class _Attend(nn.Module):
    def __init__(self, heads: int = 2):
        super().__init__()
        self.embed = nn.Embedding(30, 8, padding_idx=0)
        self.attn = MaskedSelfAttention(8, heads)
        self.head = nn.Linear(8, 3)

    def forward(self, ids):
        x = self.embed(ids)
        return self.head(self.attn(x, ids).mean(1))


def test_int16_attention_is_built_on_int16_grids_and_rebuilt_from_its_state():
    torch.manual_seed(0)
    x = torch.randint(1, 30, (64, 6), dtype=torch.int32)
    x[::2, 4:] = 0
    m = _Attend().eval()
    q = calibrate(to_quant_student(m, "tflm", int16=("attention",)), x)
    attn = [op for op in q.modules() if isinstance(op, Attention16)]
    assert len(attn) == 1
    a = attn[0]
    assert a.scores.out_q.bits == 16 and int(a.scores.out_q.zero_point) == 0
    assert (float(a.softmax.out_q.scale), int(a.softmax.out_q.zero_point)) == (1 / 32768, 0)
    assert a.narrow.out_q.bits == 8 and a.out.in_qs[0] is a.narrow.out_q
    # the masked value −32768 · s lies at least 10 below every score seen (SoftmaxInt16's exp table spans [-10, 0])
    assert 32768 * float(a.scores.out_q.scale) >= 10
    assert sum(isinstance(op, (MatMul16, Softmax16)) for op in q.modules()) == 3
    again = rebuild_quant_student(m, q.state_dict(), "tflm")
    assert any(isinstance(op, Attention16) for op in again.modules())
    assert torch.equal(again(x), q.eval()(x))


def test_one_head_is_refused_in_int16():
    with pytest.raises(UnsupportedOpError, match="two or more heads") as e:
        to_quant_student(_Attend(heads=1).eval(), int16=("attention",))
    assert "heads=2" in str(e.value) and "Supported:" not in str(e.value)  # the way out, not the op list


def test_attention_asked_for_a_student_without_one_is_refused():
    """Not silently int8 (litert-torch#627's failure): the kind is named."""
    from edgedistill.errors import ConfigError

    student = nn.Sequential(nn.Embedding(30, 8), nn.Flatten(), nn.Linear(48, 3)).eval()
    with pytest.raises(ConfigError, match="attention"):
        to_quant_student(student, int16=("attention",))
