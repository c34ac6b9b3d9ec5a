"""The KV-cache step's cost predicted from the graph (students/cost_kv.py) against the exported int8 file
(export/kv_cache.py): every op as the latency model reads it, every planned tensor, the arena TFLite Micro's recording
allocator plans, and the file-size bound; one head (FULLY_CONNECTED with runtime weights) and two (BATCH_MATMUL)."""

import pytest
import torch

from edgedistill.export.kv_cache import export_kv_tflite
from edgedistill.profile.cost import tflite_cost, tflite_planned_buffers
from edgedistill.profile.estimate import estimate_latency
from edgedistill.profile.tflm_arena import tflm_arena
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.capture import UnsupportedOpError
from edgedistill.students.cost import graph_cost
from edgedistill.students.cost_kv import kv_graph_cost
from edgedistill.students.decoder_family import decoder
from edgedistill.students.filesize import tflite_size_bound
from edgedistill.students.text_families import transformer
from edgedistill.students.tflm_tail import tflm_tail_bound
from edgedistill.targets import load_target

V, L = 48, 12


def _decoder(width, depth, heads):
    torch.manual_seed(0)
    return decoder((L,), V, width, depth, V, heads=heads).eval()


@pytest.mark.parametrize("width,depth,heads", [(32, 2, 1), (32, 2, 2), (48, 3, 3)])
def test_the_kv_step_costs_exactly_what_its_int8_file_holds(tmp_path, width, depth, heads):
    model = _decoder(width, depth, heads)
    g = kv_graph_cost(model, L)
    path = tmp_path / "kv.tflite"
    export_kv_tflite(calibrate(to_quant_student(model), torch.randint(1, V, (8, L)).int()), path)
    real, planned = tflite_cost(path), tflite_planned_buffers(path)
    assert g.macs == real.macs
    key = lambda b: (b.first, b.last, b.size)  # noqa: E731
    assert sorted(g.buffers, key=key) == sorted(planned, key=key)
    assert g.arena_bytes == real.peak_activation_bytes == tflm_arena(path).activation_bytes
    assert tflm_arena(path).persistent_bytes <= tflm_tail_bound(g) <= 1.3 * tflm_arena(path).persistent_bytes
    assert path.stat().st_size <= tflite_size_bound(g) <= 1.2 * path.stat().st_size
    row = lambda o: (o.op, o.kind, o.macs, o.ops, o.weight_bytes, o.input_bytes, o.output_bytes)  # noqa: E731
    predicted = g.model_cost()
    assert [row(o) for o in predicted.layers] == [row(o) for o in real.layers]
    for name in ("cortex-m4", "cpu"):
        t = load_target(name)
        assert estimate_latency(predicted, t, "int8").total_ms == pytest.approx(
            estimate_latency(real, t, "int8").total_ms, rel=1e-12)


def test_the_kv_step_costs_one_window_position():
    """Per generated token the cached step does the window step's work for one position: its MACs are the window's
    over L (every op is per position, and one query's scores over L slots are a window row's); its tables are the
    window's; its arena holds at least every updated cache (outputs, alive together at the end)."""
    model = _decoder(64, 2, 2)
    kv, window = kv_graph_cost(model, L), graph_cost(model, (L,))
    assert kv.macs * L == window.macs
    assert kv.params == window.params
    assert kv.arena_bytes >= 2 * 2 * L * 64  # depth 2, a key and a value cache each, L × D int8


def test_a_model_without_causal_attention_has_no_kv_step():
    torch.manual_seed(0)
    model = transformer((L,), 4, 32, 1, V).eval()
    with pytest.raises(UnsupportedOpError, match="no KV-cache decoder step"):
        kv_graph_cost(model, L)
