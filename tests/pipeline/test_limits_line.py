"""build's "  under ..." line gives each resolved limit as a user reads it, at any size."""

from edgedistill.budget import Budget
from edgedistill.pipeline.search import _limits


def test_limits_keep_their_digits_small_or_large():
    line = _limits(Budget.parse("flash=262144B,ram=0.5B,latency=2500ms,macs=2.5"))
    assert line == "flash <= 262,144 B, RAM <= 0.5 B, latency <= 2,500 ms, MACs <= 2.5", line
    assert _limits(Budget.parse("latency=0.25ms")) == "latency <= 0.25 ms"
