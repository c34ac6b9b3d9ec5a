"""TFLite's 16×8 mode in the quantized graph: the int16 grid, the RSQRT int16 kernels' integers against the runtimes
that run them (LiteRT's table, TFLite Micro's fixed point, every non-negative input code), and a LayerNorm asked for
in int16 that the student does not have is refused instead of silently ignored (litert-torch#627)."""

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed

from edgedistill.errors import ConfigError
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.fake import ActQuant
from edgedistill.quantize.int16_kernels import rsqrt16_litert, rsqrt16_tflm
from edgedistill.quantize.int16_ops import LayerNorm16, Op16
from edgedistill.quantize.ranges import symmetric_int16

_qd = torch.ops.quantized_decomposed


def test_int16_grid_is_symmetric_and_fake_quantizes_on_it():
    s, z = symmetric_int16(-0.5, 2.0)
    assert z == 0 and s == pytest.approx(2.0 / 32767, rel=1e-6)
    q = ActQuant(bits=16)
    q.mode = "observe"
    x = torch.linspace(-0.5, 2.0, 1001)
    q(x)
    q.freeze()
    y = q(x)
    codes = y / q.scale
    assert torch.allclose(codes, codes.round(), atol=1e-3)  # every value on the grid
    assert float((y - x).abs().max()) <= float(q.scale) / 2 + 1e-7  # rounded, never clipped
    assert int(codes.max().round()) == 32767


def _rsqrt_file(tmp_path, s_in: float, s_out: float):
    """A file holding one RSQRT int16 (int16 in, int16 out), converted as the exporter converts."""
    import litert_torch

    from edgedistill.export.tflite_export import _static_qdq_config

    class Rsqrt(nn.Module):
        def forward(self, x):
            x = _qd.dequantize_per_tensor(_qd.quantize_per_tensor(x, s_in, 0, -32768, 32767, torch.int16),
                                          s_in, 0, -32768, 32767, torch.int16)
            y = _qd.quantize_per_tensor(torch.rsqrt(x), s_out, 0, -32768, 32767, torch.int16)
            return _qd.dequantize_per_tensor(y, s_out, 0, -32768, 32767, torch.int16)

    path = tmp_path / "rsqrt16.tflite"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        litert_torch.convert(Rsqrt().eval(), (torch.rand(1, 32768) * s_in * 32767,),
                             quant_config=_static_qdq_config()).export(str(path))
    return path


@pytest.mark.parametrize("s_in, s_out", [(7.7e-5, 5.5e-5), (3.1e-3, 1.2e-4)])
def test_rsqrt16_tables_are_what_the_runtimes_compute(tmp_path, s_in, s_out):
    """Every non-negative int16 code through the file on LiteRT (builtin and reference kernels) and TFLite Micro:
    LiteRT computes rsqrt16_litert's table exactly, TFLite Micro rsqrt16_tflm's integers exactly (and the two
    differ, so each simulation is needed)."""
    from ai_edge_litert import interpreter as litert
    from tflite_micro.python.tflite_micro import runtime as tflm

    path = _rsqrt_file(tmp_path, s_in, s_out)
    codes = np.arange(0, 32768, dtype=np.int16)[None]
    for resolver in (litert.OpResolverType.AUTO, litert.OpResolverType.BUILTIN_REF):
        it = litert.Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        assert i["dtype"] == np.int16 and o["dtype"] == np.int16
        it.set_tensor(i["index"], codes)
        it.invoke()
        got = it.get_tensor(o["index"])[0].astype(np.int64)
        want = rsqrt16_litert(i["quantization"][0], o["quantization"][0])[32768:]
        assert np.array_equal(got, want), resolver
    micro = tflm.Interpreter.from_file(str(path), arena_size=1 << 20)
    micro.set_input(codes, 0)
    micro.invoke()
    got = micro.get_output(0)[0].astype(np.int64)
    want = rsqrt16_tflm(i["quantization"][0], o["quantization"][0])[32768:]
    assert np.array_equal(got, want)
    assert not np.array_equal(want, rsqrt16_litert(i["quantization"][0], o["quantization"][0])[32768:])


class _Tiny(nn.Module):
    def __init__(self, norm: bool = True):
        super().__init__()
        self.embed = nn.Embedding(40, 8, padding_idx=0)
        self.norm = nn.LayerNorm(8) if norm else nn.Identity()
        self.head = nn.Linear(8, 3)

    def forward(self, ids):
        return self.head(self.norm(self.embed(ids)).mean(1))


def test_layernorm_in_int16_is_built_and_calibrated_on_int16_grids():
    torch.manual_seed(0)
    x = torch.randint(1, 40, (64, 6), dtype=torch.int32)
    q = calibrate(to_quant_student(_Tiny(), int16=("layernorm",)), x)
    norms = [op for op in q.ops.values() if isinstance(op, LayerNorm16)]
    assert len(norms) == 1
    inner = [m for m in norms[0].modules() if isinstance(m, Op16)]
    assert sorted(m.kind for m in inner) == ["mean", "mean", "mul", "mul", "rsqrt", "sub"]
    assert all(m.out_q.bits == 16 and int(m.out_q.zero_point) == 0 for m in inner)
    assert norms[0].out_q.bits == 8  # the LayerNorm's output feeds int8 kernels
    ref = calibrate(to_quant_student(_Tiny().eval()), x)  # without int16: the int8 LayerNorm, as before
    assert not any(isinstance(op, LayerNorm16) for op in ref.ops.values())


def test_int16_asked_for_an_op_the_student_lacks_is_refused():
    with pytest.raises(ConfigError, match="no such op"):
        to_quant_student(_Tiny(norm=False), int16=("layernorm",))
    with pytest.raises(ValueError, match="no 16×8 form"):
        to_quant_student(_Tiny(), int16=("softmax",))


def test_saved_16x8_state_rebuilds_as_16x8():
    """`edgedistill export` of a checkpoint rebuilds the QAT graph from its saved state: a state with 16×8
    LayerNorms comes back with them (same outputs), an int8 state without."""
    from edgedistill.quantize.qat import rebuild_quant_student

    torch.manual_seed(0)
    m = _Tiny().eval()
    x = torch.randint(1, 40, (64, 6), dtype=torch.int32)
    for int16, form in (((), "LayerNorm"), (("layernorm",), "LayerNorm16")):
        q = calibrate(to_quant_student(m, "tflm", int16=int16), x)
        q.set_mode("quant")
        back = rebuild_quant_student(m, q.state_dict(), "tflm")
        assert type(back.ops["norm"]).__name__ == form
        assert torch.equal(back(x), q.eval()(x))
