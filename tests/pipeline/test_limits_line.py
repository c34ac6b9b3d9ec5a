"""build's "  under ..." line gives each resolved limit as a user reads it, at any size."""

from edgedistill.budget import Budget
from edgedistill.pipeline.search import _limits


def test_limits_keep_their_digits_small_or_large():
    line = _limits(Budget.parse("flash=262144B,ram=0.5B,latency=2500ms,macs=2.5"))
    assert line == "flash <= 262,144 B, RAM <= 0.5 B, latency <= 2,500 ms, MACs <= 2.5", line
    assert _limits(Budget.parse("latency=0.25ms")) == "latency <= 0.25 ms"


def test_no_student_fits_names_small_limits_with_their_digits():
    """The refusal when no candidate fits gives the limit as asked (0.5 B, 2.5 MACs), not rounded to 0 / 2."""
    import pytest

    from edgedistill.students.search import InfeasibleBudgetError, search

    for budget, said in ((Budget(ram_bytes=0.5), "the ram limit (0.5 B)"),
                         (Budget(macs=2.5), "the macs limit (2.5 MACs)")):
        with pytest.raises(InfeasibleBudgetError) as err:
            search("image", (1, 8, 8), 10, budget)
        assert said in str(err.value), str(err.value)
