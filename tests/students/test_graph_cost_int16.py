"""The student search costs the 16×8 form quant.int16 asks for, as the exporter writes it: every planned tensor (its
bytes at 2 per int16 value, its lifetime), every op as the latency model reads it, the arena TFLite Micro plans, and a
file size bound that holds; and the search's RAM figure on a TFLite Micro target is the one the gate judges (the
planned arena and the runtime's own memory), so a transformer it chooses under `ram=` fits when measured."""

import pytest
import torch

from edgedistill.budget import Budget
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.profile.cost import tflite_cost, tflite_planned_buffers
from edgedistill.profile.tflm_arena import tflm_arena
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students import StudentArch, build_student
from edgedistill.students.cost import graph_cost
from edgedistill.students.filesize import tflite_size_bound
from edgedistill.students.search import candidate_cost, search
from edgedistill.students.tflm_tail import tflm_tail_bound
from edgedistill.targets import load_target

VOCAB, LENGTH = 60, 12


def _student(width, depth, **knobs):
    torch.manual_seed(0)
    arch = StudentArch("transformer", width, depth).with_knobs(**knobs)
    return build_student(arch, (LENGTH,), 4, None, vocab_size=VOCAB).eval()


def _export(model, int16, path):
    ids = torch.randint(1, VOCAB, (48, LENGTH), dtype=torch.int32)
    ids[::3, LENGTH // 2:] = 0
    export_tflite_int8(calibrate(to_quant_student(model, int16=int16), ids), (LENGTH,), path)


def test_int16_scores_and_probabilities_take_two_bytes_each():
    """Without exporting: the 16×8 attention's scores and probabilities are 2 bytes per value, so the planned arena
    grows; the int8 form's cost is unchanged by the option's existence."""
    model = _student(32, 1, heads=2)
    g8, g16 = graph_cost(model, (LENGTH,)), graph_cost(model, (LENGTH,), ("attention",))
    probs = [o for o in g16.ops if o.kind == "softmax"]
    assert [o.out_elems for o in probs] == [2 * 2 * LENGTH * LENGTH]  # 2 heads × L × L × 2 bytes
    assert [o.kind for o in g16.ops].count("quantize") == 4  # q, k, v widened; the context narrowed
    assert g16.arena_bytes > g8.arena_bytes and g16.macs == g8.macs


def test_int16_cost_equals_the_exported_file_and_tflite_micro(tmp_path):
    """Both 16×8 forms in one file (the attention's and the LayerNorm's lowerings, students/cost_int16.py)."""
    int16 = ("attention", "layernorm")
    model = _student(32, 1, heads=2)
    g = graph_cost(model, (LENGTH,), int16)
    path = tmp_path / "m.tflite"
    _export(model, int16, path)
    key = lambda b: (b.first, b.last, b.size)  # noqa: E731
    assert sorted(g.buffers, key=key) == sorted(tflite_planned_buffers(path), key=key)
    row = lambda o: (o.op, o.kind, o.macs, o.ops, o.weight_bytes, o.input_bytes, o.output_bytes)  # noqa: E731
    assert [row(o) for o in g.model_cost().layers] == [row(o) for o in tflite_cost(path).layers]
    used = tflm_arena(path)
    assert g.arena_bytes == used.activation_bytes  # TFLite Micro's planner, predicted exactly
    assert used.persistent_bytes <= tflm_tail_bound(g) <= 1.3 * used.persistent_bytes
    assert path.stat().st_size <= tflite_size_bound(g)


def test_the_search_ram_figure_on_tflite_micro_is_what_the_gate_judges():
    """On a tflm target the RAM figure is the planned arena plus the runtime's memory; elsewhere the arena alone
    (profile/ram.py: the figure each runtime's gate row reads)."""
    arch = StudentArch("transformer", 64, 1)
    mcu = candidate_cost(arch, (LENGTH,), 4, load_target("cortex-m4"), VOCAB, ("attention",))
    phone = candidate_cost(arch, (LENGTH,), 4, load_target("android"), VOCAB, ("attention",))
    assert mcu.arena_bytes == phone.arena_bytes and phone.ram_bytes == phone.arena_bytes
    assert mcu.ram_bytes == mcu.arena_bytes + mcu.runtime_bytes and mcu.runtime_bytes > 2 * 2052  # SOFTMAX tables


def test_a_transformer_chosen_under_a_ram_limit_fits_it_on_tflite_micro(tmp_path):
    """The reported failure: 16×8 attention under `ram=` on cortex-m4 chose a transformer that TFLite Micro then
    measured above the limit (its scores at 2 bytes and its runtime memory were not counted). Now the chosen file's
    arena as TFLite Micro measures it (planned tensors and runtime memory) fits the limit."""
    target = load_target("cortex-m4")
    budget = Budget(ram_bytes=36 * 1024)
    res = search("text", (LENGTH,), 4, budget, families=["transformer"], target=target, vocab_size=VOCAB,
                 int16=("attention",))
    assert all(c.arch.width >= 64 for c in res.candidates)  # one head (width < 64) has no 16×8 form: skipped
    c = res.chosen
    path = tmp_path / "chosen.tflite"
    _export(build_student(c.arch, (LENGTH,), 4, None, vocab_size=VOCAB).eval(), ("attention",), path)
    measured = tflm_arena(path)
    assert measured.activation_bytes == c.arena_bytes
    assert measured.total_bytes <= c.ram_bytes <= budget.ram_bytes
    # larger candidates refused on RAM that the planned arena alone (the old figure) would have admitted
    bigger = [o for o in res.candidates if o.params > c.params and o.violations == ("ram",)]
    assert any(o.arena_bytes <= budget.ram_bytes for o in bigger)
