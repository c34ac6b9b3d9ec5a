"""The gate's accuracy checks against the noise of the test split: inside the 95 % interval passes "within noise",
beyond it fails; a split too small to decide a limit gets a warning."""

import copy

from edgedistill.budget import Budget
from edgedistill.gate import Tolerance, gate, markdown
from edgedistill.stats import newcombe, wilson

N = 80
REPORT = {
    "schema_version": 1,
    "usage": {"flash_bytes": 30000, "ram_bytes": 5000, "latency_ms": 2.0, "latency_how": "estimated", "macs": 1.5e5,
              "accuracy": 100 * 70 / N, "accuracy_n": N, "teacher_accuracy": 100 * 74 / N, "teacher_accuracy_n": N,
              "accuracy_drop": 100 * 4 / N, "parity_passed": True, "ops_supported": True},
}


def _check(v, name):
    return next(c for c in v.checks if c.name == name)


def test_min_accuracy_inside_the_interval_passes_within_noise_and_beyond_fails():
    iv = wilson(70, N)  # 87.5 %, about [78.5, 93.1]
    inside = gate(REPORT, Budget(min_accuracy=iv.high - 0.5))
    c = _check(inside, "accuracy")
    assert c.passed and c.within_noise and inside.passed
    assert "pass (within noise)" in markdown(inside) and "test samples would decide" in markdown(inside)
    beyond = gate(REPORT, Budget(min_accuracy=iv.high + 0.5))
    c = _check(beyond, "accuracy")
    assert not c.passed and not c.within_noise and "**FAIL**" in markdown(beyond)
    met = _check(gate(REPORT, Budget(min_accuracy=87.0)), "accuracy")
    assert met.passed and not met.within_noise


def test_drop_inside_the_interval_passes_within_noise_and_beyond_fails():
    iv = wilson(70, N)
    teacher = REPORT["usage"]["teacher_accuracy"]  # 92.5 %, drop 5 points
    inside_limit = teacher - iv.high + 0.5  # deployed must reach teacher - limit = iv.high - 0.5: inside the interval
    c = _check(gate(REPORT, Budget(max_accuracy_drop=inside_limit)), "accuracy_drop")
    assert c.passed and c.within_noise and c.value == REPORT["usage"]["accuracy_drop"]
    beyond_limit = teacher - iv.high - 0.5
    c = _check(gate(REPORT, Budget(max_accuracy_drop=beyond_limit)), "accuracy_drop")
    assert not c.passed and not c.within_noise
    # the row states the drop's interval (teacher minus the deployed interval), not the deployed accuracy's
    assert f"[{teacher - iv.high:.2f}, {teacher - iv.low:.2f}]" in c.how
    assert f"[{iv.low:.2f}, {iv.high:.2f}]" not in c.how
    assert teacher - iv.high <= c.value <= teacher - iv.low


def test_regression_against_a_baseline_uses_the_difference_interval():
    base = copy.deepcopy(REPORT)
    base["usage"]["accuracy"] = 100 * 74 / N  # 92.5 % vs 87.5 %: 5 points worse
    d = newcombe(74, N, 70, N)
    assert d.low < 0.5 < d.value  # at n = 80 a 5-point regression is inside the noise
    v = gate(REPORT, Budget(), base, Tolerance(accuracy_points=0.5))
    c = _check(v, "regression:accuracy")
    assert c.passed and c.within_noise and v.passed
    big = copy.deepcopy(REPORT)
    big["usage"].update(accuracy_n=8000, accuracy=100 * 7000 / 8000)
    base_big = copy.deepcopy(base)
    base_big["usage"].update(accuracy_n=8000, accuracy=100 * 7400 / 8000)
    c = _check(gate(big, Budget(), base_big, Tolerance(accuracy_points=0.5)), "regression:accuracy")
    assert not c.passed and not c.within_noise  # the same 5 points on 8,000 samples is beyond noise


def test_a_split_too_small_for_the_limit_warns_even_when_the_check_passes():
    rep = copy.deepcopy(REPORT)
    rep["usage"].update(accuracy=rep["usage"]["teacher_accuracy"], accuracy_drop=0.0)
    v = gate(rep, Budget(max_accuracy_drop=1.0))
    assert v.passed and not _check(v, "accuracy_drop").within_noise
    assert any("too small to decide a limit of 1 point:" in w for w in v.warnings)
    big = copy.deepcopy(rep)
    big["usage"]["accuracy_n"] = 100_000
    assert not [w for w in gate(big, Budget(max_accuracy_drop=1.0)).warnings if "too small" in w]


def test_reports_without_sample_counts_are_judged_on_point_values():
    old = copy.deepcopy(REPORT)
    for k in ("accuracy_n", "teacher_accuracy_n", "teacher_accuracy"):
        del old["usage"][k]
    c = _check(gate(old, Budget(min_accuracy=88.0)), "accuracy")
    assert not c.passed and not c.within_noise


def test_one_point_is_singular_in_the_gate_table():
    """A drop limit of 1 printed '1 points' in the gate's Markdown."""
    from edgedistill.gate import _fmt

    assert _fmt(1.0, "points") == "1 point" and _fmt(2.5, "points") == "2.5 points" and _fmt(1.0, "B") == "1 B"
