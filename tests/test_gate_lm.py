"""The causal-LM gate's rows on hand-made metrics: the int8 rise judged only when the run made an int8 model."""

from edgedistill.gate_lm import lm_gate


def _metrics(float_ppl, int8_ppl="absent", gain=None):
    test = {"float": {"perplexity": {"value": float_ppl}}}
    if int8_ppl != "absent":
        test["int8"] = {"perplexity": {"value": int8_ppl}}
    return {"test": test, "gain_vs_twin": {"float": gain} if gain else None}


GAIN = {"gain": 3.0, "beyond_noise": True, "documents": 40, "low": 1.0, "high": 5.0}


def _row(verdict, name):
    return next(c for c in verdict.checks if c.name == name)


def test_int8_rise_within_two_percent_passes_and_beyond_fails():
    ok = lm_gate(_metrics(100.0, 101.5, GAIN))
    assert ok.passed and abs(_row(ok, "int8 perplexity rise vs float").value - 1.5) < 1e-9
    bad = lm_gate(_metrics(100.0, 103.0, GAIN))
    assert not bad.passed and not _row(bad, "int8 perplexity rise vs float").passed


def test_a_float_only_run_leaves_the_int8_rows_unjudged():
    v = lm_gate(_metrics(100.0, gain=GAIN))  # no --qat: no test.int8
    row = _row(v, "int8 perplexity rise vs float")
    assert v.passed and row.judged is False and "no --qat" in row.how


def test_an_int8_run_without_its_figure_fails_rather_than_passing():
    v = lm_gate(_metrics(100.0, None, GAIN))
    assert not v.passed and _row(v, "int8 perplexity rise vs float").value is None


def test_a_student_worse_than_its_twin_beyond_noise_fails():
    worse = {**GAIN, "gain": -2.0, "low": -3.0, "high": -1.0}
    assert not lm_gate(_metrics(100.0, 101.0, worse)).passed
    within = {**worse, "beyond_noise": False}
    assert lm_gate(_metrics(100.0, 101.0, within)).passed
