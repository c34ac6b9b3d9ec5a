"""The causal-LM gate's rows on hand-made metrics: the int8 rise judged only when the run made an int8 model."""

import pytest

from edgedistill.gate_lm import lm_gate


def _metrics(float_ppl, int8_ppl="absent", gain=None):
    test = {"float": {"perplexity": {"value": float_ppl}}}
    if int8_ppl != "absent":
        test["int8"] = {"perplexity": {"value": int8_ppl}}
    gains = {"float": gain, **({"int8": gain} if int8_ppl != "absent" else {})}  # a --qat run has both
    int8 = {"int8": {"parity_passed": True}} if int8_ppl != "absent" else {}  # a published --qat run's parity held
    return {"test": test, "gain_vs_twin": gains if gain else None, **int8}


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


def test_a_qat_run_without_test_int8_fails_as_missing_rather_than_judging_the_float_figures():
    from edgedistill.budget import Budget

    m = _metrics(100.0, gain=GAIN)  # the float student alone would pass every limit below
    m["test"]["float"].update(top1=50.0, top3=70.0)
    m["int8"] = {"rounding": "nearest", "parity_passed": True}  # the run made an int8 model (--qat)
    v = lm_gate(m, Budget.parse("perplexity=120,top1=30%"))
    assert not v.passed
    rise, ppl, top1 = (_row(v, n) for n in ("int8 perplexity rise vs float", "test perplexity", "next-token top-1"))
    assert rise.judged and not rise.passed and "test.int8" in rise.how
    assert ppl.value is None and not ppl.passed and top1.value is None and not top1.passed
    m["int8"] = None  # a float-only run writes `"int8": null`: judged on its float student, as before
    assert lm_gate(m, Budget.parse("perplexity=120,top1=30%")).passed


def test_a_student_worse_than_its_twin_beyond_noise_fails():
    worse = {**GAIN, "gain": -2.0, "low": -3.0, "high": -1.0}
    assert not lm_gate(_metrics(100.0, 101.0, worse)).passed
    within = {**worse, "beyond_noise": False}
    assert lm_gate(_metrics(100.0, 101.0, within)).passed


def test_a_qat_run_is_judged_on_its_int8_gain_over_the_twins_int8_and_says_so():
    worse = {**GAIN, "gain": -2.0, "low": -3.0, "high": -1.0}
    m = _metrics(100.0, 101.0, GAIN)
    m["gain_vs_twin"]["int8"] = worse  # the float student beats its twin; the deployed int8 one loses to the twin's
    row = _row(lm_gate(m), "perplexity gain over the no-teacher twin")
    assert not row.passed and row.value == -2.0 and row.how.startswith("int8 QAT student vs the twin's int8")
    m["gain_vs_twin"] = {"float": worse, "int8": GAIN}  # and the other way round: int8 decides
    row = _row(lm_gate(m), "perplexity gain over the no-teacher twin")
    assert row.passed and row.value == 3.0 and "int8" in row.how
    del m["gain_vs_twin"]["int8"]  # a --qat run without the int8 gain: missing, never the float gain instead
    row = _row(lm_gate(m), "perplexity gain over the no-teacher twin")
    assert not row.passed and row.value is None and "gain_vs_twin.int8" in row.how
    float_only = _row(lm_gate(_metrics(100.0, gain=worse)), "perplexity gain over the no-teacher twin")
    assert not float_only.passed and float_only.value == -2.0 and float_only.how.startswith("float student")


def test_a_declined_twin_is_not_judged_but_lost_twin_figures_fail():
    declined = _metrics(100.0, 101.0)  # --no-baseline: training.twin is null and there is no gain
    declined["training"] = {"student": {"steps": 10}, "twin": None}
    row = _row(lm_gate(declined), "perplexity gain over the no-teacher twin")
    assert row.passed and not row.judged and "--no-baseline" in row.how
    assert lm_gate(declined).passed
    lost = _metrics(100.0, 101.0)  # a twin was trained (its run is recorded) but its gain is missing
    lost["training"] = {"student": {"steps": 10}, "twin": {"steps": 10}}
    row = _row(lm_gate(lost), "perplexity gain over the no-teacher twin")
    assert not row.passed and row.judged and "missing" in row.how
    unknown = _metrics(100.0, 101.0)  # no record of the choice at all: missing, never a pass
    assert not _row(lm_gate(unknown), "perplexity gain over the no-teacher twin").passed


@pytest.mark.parametrize("record", [{}, {"gain": 3.0}, {**GAIN, "gain": "3"}, {**GAIN, "beyond_noise": None}])
def test_an_empty_or_partial_twin_gain_fails_as_missing(record):
    m = _metrics(100.0, 101.0, GAIN)
    m["gain_vs_twin"]["int8"] = record  # hand-edited: a KeyError before
    row = _row(lm_gate(m), "perplexity gain over the no-teacher twin")
    assert not row.passed and row.value is None and "missing" in row.how


def _with_speed(tps, flash=20_000, ram=9_000, ratio=30.0, macs=150_000):
    m = _metrics(100.0, 101.0, GAIN)
    m["speed"] = {"target": {"tokens_per_s": tps, "tokens_per_s_how": "measured-host (litert, 2 threads)",
                             "fit": [{"check": "flash", "value": flash}, {"check": "ram", "value": ram}],
                             "ram_figure": "planned activations", "macs": macs},
                  "ratio": {"litert": {"ratio": ratio, "student_tokens_per_s": tps,
                                       "teacher_tokens_per_s": tps / ratio}}}
    return m


def test_tokens_per_second_is_a_floor_and_latency_per_token_its_reciprocal():
    from edgedistill.budget import Budget

    ok = lm_gate(_with_speed(400.0), budget=Budget.parse("tokens_per_s=300,latency=3ms"))
    assert ok.passed and _row(ok, "tokens/s").judged and _row(ok, "latency per token").value == 2.5
    slow = lm_gate(_with_speed(200.0), budget=Budget.parse("tokens_per_s=300"))
    assert not slow.passed and not _row(slow, "tokens/s").passed
    late = lm_gate(_with_speed(200.0), budget=Budget.parse("latency=4ms"))  # 5 ms a token
    assert not late.passed and not _row(late, "latency per token").passed and _row(late, "tokens/s").passed


def test_size_rows_are_judged_only_under_a_limit_and_the_ratio_is_only_shown():
    from edgedistill.budget import Budget

    shown = lm_gate(_with_speed(400.0, ratio=3.0), budget=Budget())
    assert shown.passed and not _row(shown, "flash").judged and not _row(shown, "tokens/s vs teacher (litert)").judged
    assert _row(shown, "tokens/s vs teacher (litert)").value == 3.0
    tight = lm_gate(_with_speed(400.0), budget=Budget.parse("flash=16KB,ram=16KB"))
    assert not _row(tight, "flash").passed and _row(tight, "ram").passed


def test_a_macs_limit_is_judged_on_the_decoder_steps_count_not_dropped():
    from edgedistill.budget import Budget

    ok = lm_gate(_with_speed(400.0, macs=150_000), budget=Budget.parse("macs=150K"))
    assert ok.passed and _row(ok, "macs per token").judged and _row(ok, "macs per token").value == 150_000
    over = lm_gate(_with_speed(400.0, macs=150_001), budget=Budget.parse("macs=150K"))
    assert not over.passed and not _row(over, "macs per token").passed
    lost = lm_gate(_with_speed(400.0, macs=None), budget=Budget.parse("macs=1M"))  # never passed as zero
    assert not lost.passed and _row(lost, "macs per token").how == "missing"
    assert not _row(lm_gate(_with_speed(400.0), budget=Budget()), "macs per token").judged


def test_a_speed_limit_on_a_run_without_timings_fails_rather_than_passing():
    from edgedistill.budget import Budget

    v = lm_gate(_metrics(100.0, 101.0, GAIN), budget=Budget.parse("tokens_per_s=10"))
    assert not v.passed and _row(v, "tokens/s").value is None and _row(v, "tokens/s").how == "missing"
    assert lm_gate(_metrics(100.0, 101.0, GAIN), budget=Budget()).passed  # no limit: shown as missing, not failed


def _quality(int8_ppl=101.0, top1=40.0, top3=60.0):
    m = _metrics(100.0, int8_ppl, GAIN)
    m["test"]["int8"].update(top1=top1, top3=top3)
    m["test"]["float"].update(top1=top1 + 1, top3=top3 + 1)
    return m


def test_perplexity_is_a_ceiling_and_top_k_floors_on_the_int8_model():
    from edgedistill.budget import Budget

    ok = lm_gate(_quality(), Budget.parse("perplexity=101.0,top1=40%,top3=60"))
    assert ok.passed and all(_row(ok, n).judged for n in ("test perplexity", "next-token top-1", "next-token top-3"))
    assert "int8" in _row(ok, "test perplexity").how
    assert not _row(lm_gate(_quality(), Budget.parse("perplexity=100.9")), "test perplexity").passed
    assert not _row(lm_gate(_quality(), Budget.parse("top1=40.5%")), "next-token top-1").passed
    assert not _row(lm_gate(_quality(), Budget.parse("top3=61")), "next-token top-3").passed
    shown = lm_gate(_quality())
    assert shown.passed and not _row(shown, "next-token top-1").judged and _row(shown, "next-token top-1").value == 40


def test_a_float_only_run_is_judged_on_its_float_student():
    from edgedistill.budget import Budget

    m = _metrics(100.0, gain=GAIN)
    m["test"]["float"].update(top1=30.0, top3=50.0)
    v = lm_gate(m, Budget.parse("perplexity=99,top1=25%"))
    assert not _row(v, "test perplexity").passed and _row(v, "next-token top-1").passed
    assert "float student" in _row(v, "next-token top-1").how


def test_the_int8_rise_limit_comes_from_the_budget():
    from edgedistill.budget import Budget

    assert not lm_gate(_metrics(100.0, 101.5, GAIN), Budget.parse("int8_rise=1%")).passed
    assert lm_gate(_metrics(100.0, 104.0, GAIN), Budget.parse("int8_rise=5%")).passed


def test_a_classifier_limit_fails_as_missing_and_a_causal_lm_limit_on_a_classifier_too():
    from edgedistill.budget import Budget
    from edgedistill.gate import gate

    v = lm_gate(_quality(), Budget.parse("drop=1"))
    assert not v.passed and _row(v, "drop").value is None
    report = {"usage": {"parity_passed": True, "ops_supported": True, "flash_bytes": 1000, "ram_bytes": 100,
                        "latency_ms": 1.0, "macs": 10, "accuracy": 90.0, "teacher_accuracy": 91.0}}
    for key in ("perplexity=10", "top1=30%", "top3=30%", "int8_rise=2%", "tokens_per_s=5"):
        c = gate(report, Budget.parse(key))
        assert not c.passed and any(r.value is None and "classifier report has no" in r.how for r in c.checks), key


@pytest.mark.parametrize("text", ["top1=0.3", "top3=150%", "perplexity=-3", "perplexity=40ms", "perplexity=0",
                                  "perplexity=0.5", "perplexity=1e999", "latency=nan", "tokens_per_s=inf",
                                  "flash=-1KB"])
def test_causal_lm_budget_keys_refuse_a_mistake(text):
    from edgedistill.budget import Budget
    from edgedistill.errors import ConfigError

    with pytest.raises(ConfigError):
        Budget.parse(text)


def test_the_terminal_summary_marks_estimated_speed_rows(capsys):
    """A microcontroller's tokens/s is the target's estimate, not a measurement: the build's last lines say so
    (cli_summary.print_lm_summary), and a figure measured on this host keeps its plain line."""
    from edgedistill.cli_summary import print_lm_summary

    checks = [{"name": "tokens/s", "value": 1.2, "unit": "/s", "passed": True, "judged": False,
               "how": "estimated on cortex-m4 (roofline)"},
              {"name": "flash", "value": 5000, "unit": "B", "passed": True, "judged": False,
               "how": "int8 TFLite file 5,000 B"}]
    print_lm_summary({"test": {}, "gain_vs_twin": None, "gate": {"checks": checks, "passed": True}}, "runs/x", "build")
    out = capsys.readouterr().out
    assert "gate not judged: tokens/s = 1.2 tokens/s (estimated on cortex-m4)" in out, out
    assert "gate not judged: flash = 5,000 B\n" in out, out


@pytest.mark.parametrize("int8, passed", [({"parity_passed": True}, True), ({"parity_passed": False}, False),
                                          ({}, False),
                                          ({"parity_passed": True, "parity": [{"checked": True, "passed": False}]},
                                           False),
                                          ({"parity_passed": True, "causality": [{"passed": False}]}, False),
                                          ({"parity_passed": True, "parity": [{"checked": False, "passed": False}]},
                                           True)])
def test_the_lm_gate_judges_parity_and_causality(int8, passed):
    """A causal-LM run refuses to publish files that fail parity or the causality probe, so a metrics.json whose
    rows say they failed (edited, or written elsewhere) fails the gate's parity row, as a classifier's does; an
    informational row (onnxruntime's fused kernels) does not count."""
    m = dict(_metrics(100.0, 101.0, GAIN), int8=int8)
    assert _row(lm_gate(m), "parity").passed is passed
    assert lm_gate(_metrics(100.0, gain=GAIN)).checks[1].name != "parity"  # a float-only run has no int8 files


def test_a_run_whose_files_failed_parity_fails_on_parity_alone():
    """A newcomer's failed build showed flash and ram 'missing ... FAIL' beside the parity failure: one failure read
    as three. The files were never sized or timed because parity failed; those rows now say so, unjudged."""
    from edgedistill.budget import Budget

    m = _metrics(100.0, 101.0, GAIN)
    m["int8"] = {"parity_passed": False, "parity": [{"artifact": "tflite-int8", "runtime": "litert", "checked": True,
                                                     "passed": False, "top1_agreement": 100.0, "max_steps": 2.0}]}
    v = lm_gate(m, Budget.parse("flash=1MB,ram=256KB,tokens_per_s=2"))
    assert not v.passed
    for name in ("flash", "ram", "tokens/s"):
        row = _row(v, name)
        assert row.judged is False and "failed parity" in row.how
    assert [c.name for c in v.checks if c.judged and not c.passed] == [
        c.name for c in v.checks if c.judged and not c.passed and "parity" in c.name]
