"""Which kernel runs a multi-head attention's BATCH_MATMUL on LiteRT decides its rounding: the XNNPACK delegate
takes an int8 BATCH_MATMUL only when its right operand (K for the scores, V for the context) has zero point 0, and
leaves any other to LiteRT's builtin kernel (quantize/xnnpack.py). QAT must follow the grids: a depth-2, two-head
decoder with one layer's K on zero point 0 and the other layer's V on zero point 0 (so every combination of kernel
and role occurs) computes, in the xnnpack arithmetic, the integers the exported file computes on LiteRT with
XNNPACK, and in the reference / tflm arithmetic those of LiteRT's reference kernels and TFLite Micro (whose int8 SUB
forms its multipliers in double: a LayerNorm's x − μ near a tie). Before, QAT computed the builtin kernel for every
BATCH_MATMUL and drifted 4 output steps from the file on a trained decoder of this shape. K and V now get zero point
0 by default (quantize/attention_ops.py), so the test plants the nonzero ones: a user's older QAT checkpoint, or a
grid written by hand, still has them."""

import numpy as np
import pytest
import torch

from edgedistill.distill.trainer import predict_logits
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.ranges import scale_zero_point
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, TFLMRunner
from edgedistill.students.decoder_family import decoder

V, L = 40, 8


def _zero_point_nonzero(q) -> None:
    """Move a grid off zero point 0 (the asymmetric grid of its calibrated range, shifted a code further if that
    happens to be 0): the value the delegate checks."""
    s, z = scale_zero_point(float(q.ranges[0]), float(q.ranges[1]))
    q.scale.fill_(s)
    q.zero_point.fill_(z if z != 0 else -1)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(3)
        m = decoder((L,), V, 32, 2, V, heads=2).eval()
        for p in m.parameters():  # planted: wider weights than the initialisation, so scores spread over the grid
            p.data.normal_(0.0, 0.2)
        g = torch.Generator().manual_seed(3)
        x = torch.randint(1, V, (32, L), generator=g, dtype=torch.int32)
        q = calibrate(to_quant_student(m, "xnnpack"), x)
        attn = [op for op in q.modules() if type(op).__name__ == "Attention"]
        _zero_point_nonzero(attn[0].v.out_q)  # layer 0: scores in XNNPACK, context on the builtin kernel
        _zero_point_nonzero(attn[1].k.out_q)  # layer 1: the reverse
        path = tmp_path_factory.mktemp("attn_kernels") / "student_int8.tflite"
        export_tflite_int8(q, (L,), path)
        return q, attn, x.numpy(), path
    finally:
        torch.set_num_threads(threads)


def _steps(q, arithmetic: str, x: np.ndarray, out: np.ndarray) -> float:
    torch.set_num_threads(1)  # small integer tensors: one thread is fastest beside other jobs (conftest restores)
    q.set_rounding(arithmetic)
    ref = predict_logits(q, torch.from_numpy(x)).numpy()
    return float(np.abs(out - ref).max()) / float(q.output_q.scale)


def test_the_planted_grids_put_each_matmul_role_on_each_kernel(planted):
    _, attn, _, _ = planted
    zero = [[int(a.k.out_q.zero_point) == 0, int(a.v.out_q.zero_point) == 0] for a in attn]
    assert zero == [[True, False], [False, True]], zero


def test_qat_computes_what_litert_xnnpack_computes_when_the_grids_pick_the_kernel(planted):
    q, _, x, path = planted
    assert _steps(q, "xnnpack", x, LiteRTRunner(path).predict(x)) == 0.0


@pytest.mark.parametrize("runner,arithmetic", [(LiteRTReferenceRunner, "reference"), (TFLMRunner, "tflm")])
def test_the_fixed_point_runtimes_compute_the_builtin_kernel_whatever_the_zero_point(planted, runner, arithmetic):
    q, _, x, path = planted
    assert _steps(q, arithmetic, x, runner(path).predict(x)) == 0.0


def _partitions(path) -> int:
    """How many XNNPACK partitions LiteRT cuts the file into (its DELEGATE nodes)."""
    runner = LiteRTRunner(path, threads=1)
    return sum(op["op_name"] == "DELEGATE" for op in runner.interp._get_ops_details())


def test_k_and_v_get_zero_point_0_and_keep_it_through_range_tracking():
    """The default grids: K and V (BATCH_MATMUL's second operands) on zero point 0 after calibration and after
    QAT forward passes whose tracked ranges move (fake.ActQuant._follow re-derives the grid with the same rule); the
    other activations keep asymmetric grids."""
    torch.manual_seed(5)
    m = decoder((L,), V, 32, 1, V, heads=2)
    g = torch.Generator().manual_seed(5)
    x = torch.randint(1, V, (32, L), generator=g, dtype=torch.int32)
    q = calibrate(to_quant_student(m, "xnnpack"), x)
    (attn,) = [op for op in q.modules() if type(op).__name__ == "Attention"]
    scales = (float(attn.k.out_q.scale), float(attn.v.out_q.scale))
    q.set_tracking(True)
    q.train()
    with torch.no_grad():  # K and V three times as wide as calibrated: the tracked ranges must follow
        for layer in (attn.k, attn.v):
            layer.weight.mul_(3.0)
            layer.bias.mul_(3.0)
        for _ in range(20):
            q(x)
    assert (int(attn.k.out_q.zero_point), int(attn.v.out_q.zero_point)) == (0, 0)
    assert (float(attn.k.out_q.scale), float(attn.v.out_q.scale)) != scales  # re-derived, still symmetric
    assert int(attn.q.out_q.zero_point) != 0 or int(attn.out.out_q.zero_point) != 0


def test_xnnpack_takes_the_batch_matmuls_of_the_default_grids(planted, tmp_path):
    """With K and V on zero point 0 LiteRT hands every BATCH_MATMUL to XNNPACK, so the default file has fewer
    partitions than the planted one, whose layer-0 context and layer-1 scores fall to the built-in kernel (each
    built-in op between delegated ones splits a partition)."""
    q, attn, x, planted_path = planted
    saved = [(a, name, getattr(a, name).out_q.scale.clone(), getattr(a, name).out_q.zero_point.clone())
             for a in attn for name in ("k", "v")]
    try:
        for a in attn:
            for name in ("k", "v"):
                grid = getattr(a, name).out_q
                amax = max(abs(float(grid.ranges[0])), abs(float(grid.ranges[1])))
                grid.scale.fill_(amax / 127.0)
                grid.zero_point.fill_(0)
        path = tmp_path / "default_grids.tflite"
        export_tflite_int8(q, (L,), path)
    finally:
        for a, name, scale, zp in saved:
            getattr(a, name).out_q.scale.copy_(scale)
            getattr(a, name).out_q.zero_point.copy_(zp)
    assert _partitions(path) < _partitions(planted_path)


def test_a_checkpoint_with_nonzero_k_and_v_zero_points_keeps_its_grids(planted):
    """A QAT checkpoint from before the zero-point-0 K / V grids rebuilds with its own grids, described (and, if QAT
    resumes, re-derived) by the asymmetric rule it was trained under."""
    from edgedistill.quantize.qat import rebuild_quant_student

    q, attn, x, _ = planted
    float_model = decoder((L,), V, 32, 2, V, heads=2).eval()
    rebuilt = rebuild_quant_student(float_model, q.state_dict(), "xnnpack", torch.from_numpy(x[:1]))
    grids = [op for op in rebuilt.modules() if type(op).__name__ == "Attention"]
    assert int(grids[0].v.out_q.zero_point) == int(attn[0].v.out_q.zero_point) != 0
    assert "symmetric" not in repr(grids[0].v.out_q) and "symmetric" in repr(grids[0].k.out_q)


@pytest.mark.parametrize("arithmetic", ["tflm", "reference", "xnnpack"])
def test_causal_mask_add_equals_select(arithmetic):
    """The decoder's TFLite file adds a constant mask where QAT selects the grid's lowest code
    (attention_ops.causal_mask_constant): on every arithmetic, every score code, and scores grids from 1e-4 to 10
    with any zero point, the int8 ADD leaves a visible score's code as it was and saturates a masked one to -128."""
    from edgedistill.quantize.arithmetic import ARITHMETIC
    from edgedistill.quantize.attention_ops import causal_mask_constant

    rng = np.random.default_rng(0)
    codes = torch.arange(-128, 128, dtype=torch.int64)[:, None]
    f32 = lambda v: float(np.float32(v))  # noqa: E731  scales as the file stores them
    for scale in [1e-4, 3.7e-3, 0.0625, 0.4, 10.0, *10.0 ** rng.uniform(-4, 1, 20)]:
        zero_point = int(rng.integers(-128, 128))
        mask, (ms, mz) = causal_mask_constant(torch.tensor([[False, True]]), f32(scale))
        mask_codes = torch.clamp(torch.round(mask / f32(ms)) + mz, -128, 127).long()
        assert mask_codes.tolist() == [[127, -128]]
        grid = (f32(scale), zero_point)
        out = ARITHMETIC.get(arithmetic).binary("add", codes, mask_codes, grid, (f32(ms), mz), grid, "none")
        assert torch.equal(out[:, 0].long(), codes[:, 0]), scale
        assert bool((out[:, 1] == -128).all()), scale


def test_the_decoder_file_masks_by_add_not_select(planted):
    """The causal mask reaches the file as ADD (inside XNNPACK's partitions), with no SELECT_V2 left."""
    ops = LiteRTRunner(planted[3]).op_names()
    assert "SELECT_V2" not in ops and ops.count("SOFTMAX") == 2, ops



def test_a_matmul_multiplier_is_formed_as_each_runtime_forms_it():
    """LiteRT's GetQuantizedConvolutionMultipler (tflite/kernels/kernel_util.cc) multiplies the input scales in
    float32 and divides in double. Observed on ai-edge-litert 2.3.0 (its builtin FULLY_CONNECTED, with and
    without XNNPACK) in a trained decoder's one-head attention: scales 0.003188971 · 0.02327987 / 0.07079723 (these
    float32 values), accumulator 21,456, output zero point 61: LiteRT wrote 84. The double product's multiplier
    (m0 1,152,961,282) gives 83; the float32 product's (1,152,961,311) gives 84 (ruy's two roundings: 11,519.5003
    rounds to 11,520, which is 22.5 after the shift by 9, rounded up)."""
    from edgedistill.quantize import mcu
    from edgedistill.quantize.arithmetic import ARITHMETIC

    sa, sb, so = 0.003188971197232604, 0.023279869928956032, 0.07079722732305527
    assert _m0(mcu.matmul_multiplier(sa, sb, so)) == 1_152_961_311 and _m0(sa * sb / so) == 1_152_961_282
    acc = torch.tensor([[21456.0]], dtype=torch.float64)
    # LiteRT's builtin FULLY_CONNECTED (ruy), which the xnnpack arithmetic computes for a runtime weight operand
    assert int(ARITHMETIC.get("xnnpack").matmul(acc, (sa, -14), (sb, 1), (so, 61), batched=False)) == 84
    assert int(mcu.matmul_tflm(acc, sa * sb / so, 61, False, "ruy")) == 83
    # TFLite Micro (the interpreter installed here) forms the quotient in double: on the decoder that separated the
    # two forms, its logits matched the double form on every test window and the float32 form missed two by 2 steps
    assert ARITHMETIC.get("tflm").matmul_multiplier(sa, sb, so) == sa * sb / so
    assert ARITHMETIC.get("reference").matmul_multiplier(sa, sb, so) == mcu.matmul_multiplier(sa, sb, so)

def _m0(multiplier: float) -> int:
    from edgedistill.quantize import mcu

    return int(mcu.quantize_multiplier(np.array([multiplier]))[0][0])


@pytest.mark.parametrize("runner, arithmetic", [(LiteRTRunner, "xnnpack"), (LiteRTReferenceRunner, "reference")])
def test_a_one_head_attention_forms_its_matmul_multiplier_as_the_kernel_does(tmp_path, runner, arithmetic):
    """One head: Q·Kᵀ is a FULLY_CONNECTED with a runtime weight operand, whose multiplier LiteRT forms as
    GetQuantizedConvolutionMultipler does: the input scales' product in float32, then divided in double
    (quantize/mcu.matmul_multiplier). A scores grid is planted where that multiplier and the double product's differ
    in their 31-bit form; on every element of the file's FULLY_CONNECTED output (read from the interpreter, fed 48
    windows) QAT's arithmetic gives the runtime's code. (Random inputs rarely land where the two forms round apart;
    the observed case is the test above.)"""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgedistill.quantize.arithmetic import ARITHMETIC
    from edgedistill.quantize.mcu import matmul_multiplier

    torch.set_num_threads(1)
    torch.manual_seed(5)
    m = decoder((L,), V, 32, 1, V, heads=1).eval()
    for p in m.parameters():
        p.data.normal_(0.0, 0.3)
    x = torch.randint(1, V, (48, L), generator=torch.Generator().manual_seed(5), dtype=torch.int32)
    q = calibrate(to_quant_student(m, arithmetic), x)
    attn = next(op for op in q.modules() if type(op).__name__ == "Attention")
    sa, sb = float(attn.q.out_q.scale), float(attn.k.out_q.scale)
    base = float(attn.scores.out_q.scale) / 8  # a finer grid: larger codes, so near-ties occur
    planted = next(s for s in (float(np.float32(base * (1 + i * 3e-7))) for i in range(2000))
                   if _m0(matmul_multiplier(sa, sb, s)) != _m0(sa * sb / s))
    attn.scores.out_q.scale.fill_(planted)
    path = tmp_path / "one_head.tflite"
    export_tflite_int8(q, (L,), path)
    resolver = {} if runner is LiteRTRunner else {"experimental_op_resolver_type": OpResolverType.BUILTIN_REF}
    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True, num_threads=1, **resolver)
    it.allocate_tensors()
    details = it.get_tensor_details()
    produced = {t for o in it._get_ops_details() for t in o["outputs"]}
    fc = next(o for o in it._get_ops_details() if o["op_name"] == "FULLY_CONNECTED" and o["inputs"][1] in produced)
    grids = [(float(details[i]["quantization_parameters"]["scales"][0]),
              int(details[i]["quantization_parameters"]["zero_points"][0]))
             for i in (fc["inputs"][0], fc["inputs"][1], fc["outputs"][0])]
    assert grids[2][0] == planted
    ours = seen = 0
    for w in x.numpy():
        it.set_tensor(it.get_input_details()[0]["index"], w[None])
        it.invoke()
        a, b, out = (it.get_tensor(i).astype(np.int64) for i in (fc["inputs"][0], fc["inputs"][1], fc["outputs"][0]))
        acc = (a.reshape(-1, a.shape[-1]) - grids[0][1]) @ (b.reshape(-1, b.shape[-1]) - grids[1][1]).T
        acc = torch.from_numpy(acc).double()
        got = torch.from_numpy(out.reshape(acc.shape)).double()
        ours += int((ARITHMETIC.get(arithmetic).matmul(acc, *grids, batched=False).double() != got).sum())
        seen += got.numel()
    assert ours == 0, f"{ours} of {seen} codes differ from {runner.__name__}'s"
