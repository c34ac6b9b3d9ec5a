"""Budgeted search: the chosen student fits its budget when measured on the exported file; infeasible budgets
fail before any training, naming the limit."""

import re

import pytest
import torch

from edgedistill.budget import Budget
from edgedistill.data import Normalizer
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.tflm_arena import tflm_arena
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students import build_student
from edgedistill.students.search import InfeasibleBudgetError, candidate_cost, search


@pytest.mark.parametrize("flash", [24 * 1024, 48 * 1024])
def test_chosen_student_fits_when_measured_on_the_exported_file(tmp_path, flash):
    budget = Budget(flash_bytes=flash, ram_bytes=16 * 1024)
    res = search("image", (1, 8, 8), 10, budget)
    c = res.chosen
    assert c.fits and len(res.candidates) > 20
    torch.manual_seed(0)
    model = build_student(c.arch, (1, 8, 8), 10, Normalizer([0.3], [0.4], "channel")).eval()
    path = tmp_path / "chosen.tflite"
    export_tflite_int8(calibrate(to_quant_student(model), torch.rand(32, 1, 8, 8)), (1, 8, 8), path)
    cost = tflite_cost(path)
    assert path.stat().st_size <= flash  # the real file, not the estimate
    arena = tflm_arena(path).activation_bytes
    assert arena <= budget.ram_bytes
    assert cost.macs == c.macs and arena == c.arena_bytes  # TFLite Micro's own planner, predicted exactly
    assert 0 <= c.file_bytes - path.stat().st_size <= 4096  # an upper bound, and close
    # Largest capacity that fits: no fitting candidate has more parameters.
    assert all(o.params <= c.params for o in res.candidates if o.fits)


@pytest.mark.slow
@pytest.mark.parametrize("flash, ram", [(64 * 1024, 8 * 1024), (96 * 1024, 24 * 1024)])
def test_text_search_costs_both_families_and_its_choice_fits_when_measured(tmp_path, flash, ram):
    """Token ids (L = 32, 300 ids): textcnn and transformer candidates, costed on their int8 graphs; the chosen
    student's exported file fits, and TFLite Micro plans exactly the predicted arena."""
    budget = Budget(flash_bytes=flash, ram_bytes=ram)
    res = search("text", (32,), 4, budget, families=["textcnn", "transformer"], vocab_size=300)
    c = res.chosen
    assert {o.arch.family for o in res.candidates if o.fits} == {"textcnn", "transformer"}
    torch.manual_seed(0)
    model = build_student(c.arch, (32,), 4, None, vocab_size=300).eval()
    path = tmp_path / "chosen.tflite"
    ids = torch.randint(1, 300, (32, 32), dtype=torch.int32)
    export_tflite_int8(calibrate(to_quant_student(model), ids), (32,), path)
    arena = tflm_arena(path).activation_bytes
    assert path.stat().st_size <= c.file_bytes <= flash and arena == c.arena_bytes <= ram
    assert tflite_cost(path).macs == c.macs
    assert all(o.params <= c.params for o in res.candidates if o.fits)


def test_text_search_needs_the_vocabulary_size():
    from edgedistill.config import ConfigError

    with pytest.raises(ConfigError, match="vocabulary size"):
        search("text", (32,), 4, Budget(flash_bytes=64 * 1024))


def test_a_bigger_budget_never_picks_a_smaller_student():
    small = search("image", (1, 8, 8), 10, Budget(flash_bytes=20_000)).chosen
    big = search("image", (1, 8, 8), 10, Budget(flash_bytes=80_000)).chosen
    assert big.params >= small.params


def test_infeasible_budget_names_the_limit_and_the_smallest_budget():
    with pytest.raises(InfeasibleBudgetError) as info:
        search("image", (1, 28, 28), 10, Budget(flash_bytes=2_000))
    msg = str(info.value)
    assert "flash" in msg and "best candidate needs" in msg
    # the figure it names is the smallest flash budget that works: that budget is feasible, one byte less is not
    figure = int(re.search(r"flash limit .*?best candidate needs ([\d,]+) B", msg).group(1).replace(",", ""))
    assert figure > 2_000
    assert search("image", (1, 28, 28), 10, Budget(flash_bytes=figure)).chosen.file_bytes == figure
    with pytest.raises(InfeasibleBudgetError):
        search("image", (1, 28, 28), 10, Budget(flash_bytes=figure - 1))


def test_a_latency_limit_is_checked_on_each_candidates_estimate_before_training():
    from edgedistill.config import ConfigError
    from edgedistill.targets import load_target

    m4 = load_target("cortex-m4")
    free = search("image", (1, 28, 28), 10, Budget(), target=m4)
    times = sorted(c.latency_ms for c in free.candidates)
    assert all(t > 0 for t in times) and times[0] < times[-1]
    limit = times[len(times) // 2]
    res = search("image", (1, 28, 28), 10, Budget(latency_ms=limit), target=m4)
    assert res.chosen.latency_ms <= limit < free.chosen.latency_ms
    assert all(("latency" in c.violations) == (c.latency_ms > limit) for c in res.candidates)
    # the fastest candidate's estimate is the tightest feasible limit; below it nothing fits, and the error says so
    assert search("image", (1, 28, 28), 10, Budget(latency_ms=times[0]), target=m4).chosen.latency_ms == times[0]
    with pytest.raises(InfeasibleBudgetError) as err:
        search("image", (1, 28, 28), 10, Budget(latency_ms=times[0] * 0.99), target=m4)
    # the remedy named is the latency one (the flash / RAM figures of the smallest candidate would not help)
    assert re.search(rf"the latency limit .*: the best candidate needs {times[0]:.3g} ms \(estimated on cortex-m4\)",
                     str(err.value)) and "flash" not in str(err.value), str(err.value)
    with pytest.raises(ConfigError, match="needs a target"):
        search("image", (1, 28, 28), 10, Budget(latency_ms=5.0))


def test_a_teacher_too_small_for_any_candidate_is_named_as_such():
    with pytest.raises(InfeasibleBudgetError, match=r"half the teacher's parameters, 65\): the smallest candidate has"):
        search("image", (1, 8, 8), 10, Budget(), max_params=65)


def test_limits_each_met_by_some_candidate_but_not_together_are_named_as_a_combination():
    cands = search("image", (1, 28, 28), 10, Budget()).candidates
    f_min = min(c.file_bytes for c in cands)
    ram = min(c.arena_bytes for c in cands if c.file_bytes == f_min) - 1  # the smallest files need more RAM
    assert ram >= min(c.arena_bytes for c in cands)  # ...than some other candidate: each limit alone is feasible
    with pytest.raises(InfeasibleBudgetError, match="all the limits at once"):
        search("image", (1, 28, 28), 10, Budget(flash_bytes=f_min, ram_bytes=ram))


def test_cost_of_a_candidate_is_consistent():
    from edgedistill.students import StudentArch

    a = candidate_cost(StudentArch("cnn", 8, 3), (1, 28, 28), 10)
    b = candidate_cost(StudentArch("cnn", 16, 3), (1, 28, 28), 10)
    assert b.params > a.params and b.macs > a.macs and b.weight_bytes > a.weight_bytes


def test_search_cli():
    from click.testing import CliRunner

    from edgedistill.cli import main

    r = CliRunner().invoke(main, ["search", "--data", "builtin:digits", "--target", "cortex-m4", "--budget", "flash=40KiB"])
    assert r.exit_code == 0, r.output
    assert "<- chosen" in r.output and "rule: most parameters" in r.output
    r = CliRunner().invoke(main, ["search", "--data", "builtin:digits", "--target", "cortex-m4", "--budget", "flash=1KB"])
    assert r.exit_code == 2 and r.output.startswith("error: No student fits") and "flash" in r.output
    r = CliRunner().invoke(main, ["search", "--data", "builtin:digits", "--budget", "flash=lots"])
    assert r.exit_code == 2 and "not a number" in r.output
    # --teacher applies build's cap (half the teacher's parameters), so search and build choose the same student
    r = CliRunner().invoke(main, ["search", "--data", "builtin:digits", "--target", "cortex-m4", "--teacher",
                                  "builtin:digits", "--all"])
    assert r.exit_code == 0 and "params <= " in r.output and "pass --teacher" not in r.output, r.output
    cap = int(re.search(r"params <= ([\d,]+)", r.output).group(1).replace(",", ""))
    rows = [line.split() for line in r.output.splitlines() if re.match(r"^\w+\(width", line)]
    params = {row[0] + row[1]: int(row[2].replace(",", "")) for row in rows}
    chosen = next(row for row in rows if "<- chosen" in " ".join(row))
    assert int(chosen[2].replace(",", "")) == max(p for p in params.values() if p <= cap)


@pytest.mark.slow
def test_reference_families_are_searchable_and_a_bigger_budget_never_picks_less():
    fams = ["resnet8", "mobilenetv1", "mbv3"]
    small = search("image", (3, 32, 32), 10, Budget(flash_bytes=48 * 1024, ram_bytes=64 * 1024), fams)
    big = search("image", (3, 32, 32), 10, Budget(flash_bytes=160 * 1024, ram_bytes=64 * 1024), fams)
    assert {c.arch.family for c in small.candidates} == set(fams)
    assert small.chosen.file_bytes <= 48 * 1024 and small.chosen.arena_bytes <= 64 * 1024
    assert big.chosen.params >= small.chosen.params
    # At MLPerf Tiny's reference size, ResNet-8 is a candidate that fits 160 KB of flash.
    ref = next(c for c in big.candidates if (c.arch.family, c.arch.width, c.arch.depth) == ("resnet8", 16, 3))
    # Parameters as the report counts them: the float model's torch parameters (BatchNorm included; MLPerf's 77,946).
    assert ref.fits and ref.params == 77_946


def test_a_user_student_is_costed_against_the_budget(tmp_path):
    from edgedistill.students import StudentArch

    f = tmp_path / "net.py"
    f.write_text("from torch import nn\n"
                 "def net(num_classes, in_channels, width=8):\n"
                 "    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),\n"
                 "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))\n")
    arch = StudentArch.custom(f"{f}:net", {"width": 8})
    res = search("image", (1, 8, 8), 10, Budget(flash_bytes=64 * 1024), arch=arch)
    assert [c.arch for c in res.candidates] == [arch] and res.chosen.fits
    assert res.chosen.macs == 8 * 8 * 8 * 9 + 8 * 10 + 64  # conv + fc + the normaliser's 1x1 depthwise
    with pytest.raises(InfeasibleBudgetError, match="flash"):
        search("image", (1, 8, 8), 10, Budget(flash_bytes=1000), arch=arch)


def test_the_default_image_search_costs_the_reference_families_and_picks_one_when_it_fits_best():
    from edgedistill.students.search import grid, search_families

    assert search_families("image") == ["cnn", "dscnn", "resnet8", "mobilenetv1", "mbv3"]
    assert search_families("signal") == ["conv1d"] and search_families("features") == ["mlp"]
    # Fashion-MNIST's shape under cortex-m4's limits and the demo teacher's cap (half of 288,170 parameters)
    budget, cap = Budget(flash_bytes=1024 * 1024, ram_bytes=256 * 1024), 144_085
    res = search("image", (1, 28, 28), 10, budget, max_params=cap)
    assert [c.arch for c in res.candidates] == [a for f in search_families("image") for a in grid(f)]
    own = search("image", (1, 28, 28), 10, budget, ["cnn", "dscnn"], max_params=cap)
    # the rule is unchanged: the most parameters that fit; with more candidates it can only pick more
    assert res.chosen.params == max(c.params for c in res.candidates if c.fits) >= own.chosen.params
    assert res.chosen.arch.family in ("resnet8", "mobilenetv1", "mbv3"), res.chosen.arch.describe()
    # a reference candidate that breaks a limit is costed and listed, never chosen, and its violations are real
    broken = [c for c in res.candidates if c.arch.family in ("resnet8", "mobilenetv1", "mbv3") and not c.fits]
    assert broken and res.chosen not in broken
    for c in broken:
        assert set(c.violations) == {k for k, over in (("params", c.params > cap),
                                                       ("flash", c.file_bytes > budget.flash_bytes),
                                                       ("ram", c.arena_bytes > budget.ram_bytes)) if over}


def test_search_costs_on_one_thread_and_gives_the_callers_thread_count_back():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        search("image", (1, 8, 8), 10, Budget(), ["cnn"])
        assert torch.get_num_threads() == 2
        with pytest.raises(InfeasibleBudgetError):
            search("image", (1, 8, 8), 10, Budget(flash_bytes=10), ["cnn"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_with_the_kv_cache_the_search_costs_the_step_the_app_ships():
    """`build --task causal-lm --kv-cache`: candidates are costed as their KV-cache step (students/cost_kv.py), one
    position's work a token, so a per-token latency limit the full-window steps of the larger decoders miss admits a
    larger decoder; its RAM figure includes the caches the app keeps (the gate's KV RAM row), and a RAM limit no KV
    step meets says the caches are counted."""
    from edgedistill.targets import load_target

    target = load_target("cortex-m4")
    args = ("text", (64,), 300)
    kw = dict(families=["decoder"], target=target, vocab_size=300)
    budget = Budget(latency_ms=100.0)
    window = search(*args, budget, **kw).chosen
    kv = search(*args, budget, kv_cache=True, **kw).chosen
    assert window.step == "window" and kv.step == "kv-cache"
    assert kv.params > window.params and kv.latency_ms <= 100.0
    assert candidate_cost(kv.arch, (64,), 300, target, 300).latency_ms > 100.0  # its window step is too slow
    a = kv.arch
    assert kv.cache_bytes == 2 * a.depth * 64 * a.width  # a key and a value cache per layer, L × D int8 each
    assert kv.ram_bytes == kv.arena_bytes + kv.runtime_bytes + kv.cache_bytes
    with pytest.raises(InfeasibleBudgetError, match="its key / value caches included"):
        search(*args, Budget(ram_bytes=1_000), kv_cache=True, **kw)
