"""A causal-LM student that loses to its no-teacher twin is warned about as a classifier's is (pipeline/report.py's
TWIN_LOSS paragraph), and a short run adds the note that such a comparison says little about a full-length run,
against the causal LM's own default length (10 passes over the training windows)."""

import pytest

from edgedistill.config import DistillConfig
from edgedistill.pipeline.lm_report import twin_loss_warnings
from edgedistill.pipeline.lm_train import AUTO_EPOCHS, default_steps, short_run_note
from edgedistill.pipeline.report import TWIN_LOSS


def _metrics(float_gain, int8_gain=None, beyond=True):
    def g(x):
        return {"gain": x, "low": x - 0.1, "high": x + 0.1, "p_value": 0.01, "beyond_noise": beyond, "documents": 24}

    ppl = lambda v: {"perplexity": {"value": v}}  # noqa: E731
    test = {"float": ppl(3.4), "twin": ppl(3.4 + float_gain)}
    gains = {"float": g(float_gain)}
    if int8_gain is not None:
        test.update(int8=ppl(3.5), twin_int8=ppl(3.5 + int8_gain))
        gains["int8"] = g(int8_gain)
    return {"test": test, "gain_vs_twin": gains}


def test_a_loss_is_warned_per_form_and_a_win_is_not():
    lost = twin_loss_warnings(_metrics(-0.12, -0.11))
    assert len(lost) == 2 and all(TWIN_LOSS in w and "LOST" in w for w in lost)
    assert "(int8)" in lost[1] and "3.500 vs 3.390" in lost[1]
    within = twin_loss_warnings(_metrics(-0.05, beyond=False))
    assert len(within) == 1 and "may be chance" in within[0] and "LOST" not in within[0]
    assert twin_loss_warnings(_metrics(0.2, 0.1)) == []
    assert twin_loss_warnings({"test": {"float": {}}, "gain_vs_twin": {}}) == []  # --no-baseline: no twin


def test_the_short_run_note_counts_against_the_lms_default_length():
    from edgedistill.cli_options import BUILD_EPOCHS

    config = DistillConfig.model_validate({"train": {"steps": 20, "batch_size": 32}})
    assert default_steps(config, 206) == AUTO_EPOCHS * 7  # ceil(206 / 32) = 7 batches a pass
    note = short_run_note(20, default_steps(config, 206))
    assert note and "20 optimizer steps, under half the 70" in note and f"trains {BUILD_EPOCHS} unless" in note
    assert short_run_note(35, 70) is None and short_run_note(80, 70) is None


@pytest.mark.parametrize("batch, windows, steps", [(8, 20, 30), ("auto", 5, 10), ("auto", 100, 40)])
def test_default_steps_uses_the_runs_batch(batch, windows, steps):
    config = DistillConfig.model_validate({"train": {"epochs": 3, "batch_size": batch}})
    assert default_steps(config, windows) == steps
