"""The KV-cache decoder step (quantize/kv_step.py, export/kv_cache.py) of a tiny causal decoder trained here on a toy
language: the cached loop, one token per call, gives the full-window step's logits at every position, in QAT's own
arithmetics and on every runtime that runs the exported step (LiteRT with XNNPACK and its reference kernels, TFLite
Micro, onnxruntime's QDQ reference), compared with the full-window file on the same runtime (issue #29's test)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgedistill.agreement import near_tie_agreement
from edgedistill.distill.trainer import predict_logits
from edgedistill.export.kv_cache import export_kv_onnx, export_kv_tflite
from edgedistill.export.parity import _runner, int8_references
from edgedistill.export.registry import export_all
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.capture import UnsupportedOpError
from edgedistill.quantize.kv_step import KVCacheStep
from edgedistill.runtimes import LiteRTRunner
from edgedistill.runtimes.kv_loop import KVStepRunner
from edgedistill.students.decoder_family import decoder
from edgedistill.students.text_families import transformer

V, L = 48, 12


def _sequences(n, g):
    """Arithmetic progressions mod V - 1 (ids 1..V-1): the next token follows from the two before it."""
    start = torch.randint(1, V, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    return ((start + step * torch.arange(L + 1)) % (V - 1) + 1).int()


def _trained(heads: int):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    m = decoder((L,), V, 32, 2, V, heads=heads)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for _ in range(30):
        s = _sequences(32, g)
        loss = F.cross_entropy(m(s[:, :-1]).reshape(-1, V), s[:, 1:].reshape(-1).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    x = _sequences(24, g)[:, :-1]
    x[::4, 8:] = 0  # windows that end before the context does: padding after the last token
    return m, calibrate(to_quant_student(m), x), x


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m, q, x = _trained(heads=2)  # two heads: BATCH_MATMUL in both files
        out = tmp_path_factory.mktemp("kv")
        windows = {a.name: a for a in export_all(m, q, (L,), V, out, ["onnx", "tflite"], True)}
        kv = {"tflite": export_kv_tflite(q, out / "student_int8_kv.tflite"),
              "onnx": export_kv_onnx(q, out / "student_int8_kv.onnx")}
        return m, q, x, windows, kv
    finally:
        torch.set_num_threads(threads)


def _loop(step: KVCacheStep, x: torch.Tensor) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for window in x:
            caches = [torch.zeros(s) for s in step.cache_shapes()]
            rows = []
            for t in range(len(window)):
                y, *caches = step(window[None, t:t + 1], torch.tensor([t], dtype=torch.int32), *caches)
                rows.append(y[0, 0])
            out.append(torch.stack(rows))
    return torch.stack(out)


@pytest.mark.parametrize("rounding", ["float", "tflm", "xnnpack"])
def test_cached_loop_equals_the_window_in_qats_arithmetic(exported, rounding):
    _, q, x, _, _ = exported
    trained = q.rounding
    q.set_rounding(rounding)
    try:
        with torch.no_grad():
            window = q(x[:6])
        loop = _loop(KVCacheStep(q).eval(), x[:6])
    finally:
        q.set_rounding(trained)
    assert torch.equal(loop, window), float((loop - window).abs().max() / float(q.output_q.scale))


@pytest.mark.parametrize("runtime, fmt, window", [("litert", "tflite", "tflite-int8"),
                                                  ("litert-reference", "tflite", "tflite-int8"),
                                                  ("tflm", "tflite", "tflite-int8"),
                                                  ("onnxruntime", "onnx", "onnx-int8")])
def test_exported_step_equals_the_window_file_on_each_runtime(exported, runtime, fmt, window):
    _, q, x, windows, kv = exported
    ids = x.numpy()
    loop = KVStepRunner(kv[fmt].path, runtime, kv[fmt].extra).window_logits(ids)
    full = _runner(runtime, windows[window])
    reference = full.predict(ids)
    step = float(q.output_q.scale)
    assert loop.shape == reference.shape == (len(ids), L, V)
    if fmt == "tflite":
        assert (loop.argmax(-1) == reference.argmax(-1)).all()
    else:  # onnxruntime's float Q/DQ ops may round a logit one step apart: a near-tie may flip, as parity allows
        assert near_tie_agreement(loop.argmax(-1), reference, (full.step_bound + 1e-3) * step) == 100.0
    # the same integers as the window file (LiteRT, TFLite Micro) or the same float QDQ ops (onnxruntime)
    assert np.abs(loop - reference).max() / step <= (0.0 if fmt == "tflite" else full.step_bound), runtime
    # and no further from QAT computing this runtime's arithmetic than the window file is
    qat = int8_references(q, ids, predict_logits)(full.arithmetic)
    assert np.abs(loop - qat).max() <= np.abs(reference - qat).max() + 1e-6 * step


def test_tflite_step_is_int8_with_the_caches_on_the_k_and_v_grids_and_no_scatter(exported):
    _, q, _, _, kv = exported
    art = kv["tflite"]
    step = KVCacheStep(q)
    grids = [(float(g.scale), int(g.zero_point)) for g in step.cache_grids()]
    assert art.extra["input_names"] == ["ids", "pos", "k_0", "v_0", "k_1", "v_1"]
    assert [(s["scale"], s["zero_point"]) for s in art.extra["inputs"][2:]] == grids
    assert all(s["shape"] == [1, 2, L, 16] and s["dtype"] == "int8" for s in art.extra["inputs"][2:])
    assert art.extra["outputs"][0]["shape"] == [1, 1, V] and art.extra["outputs"][0]["dtype"] == "int8"
    ops = set(LiteRTRunner(art.path).op_names())
    assert {"SELECT_V2", "EQUAL", "GREATER", "GATHER_ND", "SOFTMAX", "BATCH_MATMUL"} <= ops, ops
    # what TFLite Micro lacks, or would make the cache update data-dependent, is not in the file
    assert not {"DYNAMIC_UPDATE_SLICE", "SCATTER_ND", "REDUCE_ALL", "WHERE"} & ops, ops


@pytest.mark.parametrize("runtime, fmt", [("tflm", "tflite"), ("onnxruntime", "onnx")])
def test_step_writes_slot_pos_only_and_passes_the_other_slots_through(exported, runtime, fmt):
    art = exported[4][fmt]
    runner = KVStepRunner(art.path, runtime, art.extra)
    rng = np.random.default_rng(0)
    caches = [rng.integers(-128, 128, s["shape"]).astype(np.int8) for s in art.extra["inputs"][2:]]
    _, new = runner.step(5, 7, caches)
    _, again = runner.step(5, 7, [c.copy() for c in runner.caches0])
    keep = np.ones(L, bool)
    keep[7] = False
    for before, after in zip(caches, new):
        assert np.array_equal(after[:, :, keep], before[:, :, keep])
    # slot 7 of the first layer's caches holds this token's own K / V row, whatever the caches held (the first
    # layer's K and V read only this token; later layers' read the attention over the cache)
    for after, fresh in zip(new[:2], again[:2]):
        assert np.array_equal(after[:, :, 7], fresh[:, :, 7])
    assert any(not np.array_equal(a[:, :, 7], f[:, :, 7]) for a, f in zip(new[2:], again[2:]))


def test_a_model_without_a_causal_cache_is_refused_by_name(tmp_path):
    m = transformer((L,), 3, 32, 1, V).eval()  # a text classifier: padding mask, pooled output
    q = calibrate(to_quant_student(m), torch.randint(1, V, (8, L)).int())
    with pytest.raises(UnsupportedOpError, match="no KV-cache decoder step"):
        export_kv_tflite(q, tmp_path / "kv.tflite")
    assert not list(tmp_path.iterdir())
