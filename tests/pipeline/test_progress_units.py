"""Training bars count in the budget's unit: `--steps N` shows N steps (0/N ... N/N), image and text runs alike, QAT
its 0.3 × N; a budget in epochs counts samples. Text runs counted samples under --steps (0/3,840 for 30 steps)."""

import io
import re

import pytest
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.progress import LineBars, step_bar


class _UI:
    def __init__(self, out):
        self.bars = LineBars(out)

    def task(self, label, total, val="val {:.2f}%"):
        return self.bars.task(label, total, val)


def test_step_bar_turns_sample_counts_into_steps():
    """One report per optimizer step of k samples (a short last batch, a rank's shard) is one step; a resumed LM run
    reports its finished steps at once as steps × batch samples."""
    out = io.StringIO()
    bar = step_bar(_UI(out), "distill", 10, 64)
    bar(3 * 64)  # resumed at step 3
    for k in (64, 64, 64, 64, 64, 64, 17):
        bar(k, 0.5)
    bar(0, None, 90.0)
    lines = out.getvalue().splitlines()
    assert lines[0] == "distill: started (0/10)" and lines[1].startswith("distill: 3/10 (30%)")
    assert lines[-1].startswith("distill: 10/10 (100%)"), lines


def _training_lines(output: str) -> dict[str, tuple[int, int]]:
    """Each training bar's label -> (last count, total) from the plain progress lines."""
    got = {}
    for label, done, total in re.findall(r"^(distill \(T=[^)]*\)|no-teacher twin|QAT distill): ([\d,]+)/([\d,]+) ",
                                         output, re.M):
        got[label] = (int(done.replace(",", "")), int(total.replace(",", "")))
    return got


@pytest.mark.slow
@pytest.mark.parametrize("data", ["builtin:digits", "builtin:langid"])
def test_steps_budget_bars_count_steps(data, tmp_path):
    argv = ["distill", "--data", data, "--steps", "10", "-T", "2", "--alpha", "0.5", "--threads", "1",
            "--out", str(tmp_path / "run")]
    r = CliRunner().invoke(main, argv + ["--qat", "--formats", "onnx", "--no-baseline"] if data.endswith("digits")
                           else argv, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    bars = _training_lines(r.output)
    assert bars["distill (T=2, α=0.5)"] == (10, 10), bars
    if "no-teacher twin" in bars:
        assert bars["no-teacher twin"] == (10, 10), bars
    if data.endswith("digits"):
        assert bars["QAT distill"] == (3, 3), bars  # 0.3 × 10 steps
