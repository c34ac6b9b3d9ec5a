"""Every accuracy in metrics.json carries its Wilson interval and n; the gain carries McNemar; reports show both."""

import torch

from edgedistill.report.noise import annotate_intervals, correct, paired_gain
from edgedistill.report.render import to_markdown
from edgedistill.report.schema import assemble
from edgedistill.stats import mcnemar, wilson


def _metrics(n: int = 80) -> dict:
    row = {"artifact": "tflite-int8", "checked": True, "passed": True, "samples": n, "reference_accuracy": 90.0,
           "top1_agreement": 100.0, "max_abs_logit_diff": 0.0}
    return {"teacher": {"params": 1000, "test_acc": 100 * 76 / n},
            "teachers": [{"name": "t", "test_acc": 100 * 76 / n}],
            "student": {"params": 100, "test_acc": 100 * 73 / n},
            "baseline": {"params": 100, "test_acc": 100 * 65 / n},
            "int8": {"parity_passed": True, "qat_test_acc": 100 * 72 / n, "baseline_qat_test_acc": 100 * 64 / n,
                     "parity": [{**row, "runtime": "litert", "accuracy": 100 * 72 / n}]}}


def test_annotate_reaches_every_test_accuracy_at_any_depth():
    m = annotate_intervals(_metrics(), 80)
    for d, k, key in ((m["teacher"], 76, "test_acc"), (m["teachers"][0], 76, "test_acc"), (m["student"], 73, "test_acc"),
                      (m["int8"], 72, "qat_test_acc"), (m["int8"], 64, "baseline_qat_test_acc")):
        iv = wilson(k, 80)
        assert d[f"{key}_ci95"] == [iv.low, iv.high] and d[f"{key}_n"] == 80
    p = m["int8"]["parity"][0]
    assert p["accuracy_ci95"] == [wilson(72, 80).low, wilson(72, 80).high]


def test_paired_gain_counts_disagreements_on_the_same_samples():
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    logits_a = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1, 2, 1, 1]), 3).float()  # 7 right
    logits_b = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 0, 1, 2, 0, 1]), 3).float()  # 6 right
    ident = torch.nn.Identity()
    g = paired_gain(correct(ident, logits_a, y), correct(ident, logits_b, y))
    assert (g["only_first_right"], g["only_second_right"], g["n"]) == (2, 1, 8)  # samples 1, 2 vs sample 6
    assert g["p_value"] == mcnemar(2, 1).p_value == 1.0 and g["within_noise"]
    assert g["gain_points"] == 100 * 1 / 8


def test_reports_show_intervals_and_the_paired_test():
    m = annotate_intervals(_metrics(), 80)
    m["gain_vs_baseline"] = 10.0
    m["gain_vs_baseline_test"] = {"n": 80, "only_first_right": 9, "only_second_right": 1, "within_noise": False,
                                  "p_value": mcnemar(9, 1).p_value}
    r = assemble(m, {}, {"name": "cpu", "kind": "host", "runtime": "litert"})
    assert r["usage"]["accuracy_n"] == 80 and r["usage"]["accuracy_ci95"] == m["int8"]["parity"][0]["accuracy_ci95"]
    md = to_markdown(r)
    iv = wilson(73, 80)
    assert f"91.25% [{iv.low:.1f}, {iv.high:.1f}]" in md  # the distilled float row
    assert f"McNemar p = {mcnemar(9, 1).p_value:.3g} on 80 test samples: beyond noise" in md


def test_the_qat_vs_ptq_row_carries_its_paired_test():
    """The headline's QAT-vs-PTQ comparison, like the distillation gain, says whether the gap is beyond the test
    split's noise (McNemar on the same test samples: metrics int8.qat_vs_ptq_test)."""
    m = annotate_intervals(_metrics(), 80)
    m["int8"].update(ptq_test_acc=100 * 70 / 80,
                     qat_vs_ptq_test={"n": 80, "only_first_right": 3, "only_second_right": 1, "within_noise": True,
                                      "p_value": mcnemar(3, 1).p_value})
    md = to_markdown(assemble(m, {}, {"name": "cpu", "kind": "host", "runtime": "litert"}))
    (row,) = [line for line in md.splitlines() if "QAT vs PTQ" in line]
    assert f"McNemar p = {mcnemar(3, 1).p_value:.3g} on 80 test samples: within noise" in row


def test_the_twin_gain_carries_its_paired_interval():
    """A newcomer read the classifier's twin gain as "+0.09 points (McNemar p = 0.74)" with no interval, where the
    causal LM's gave one: the gain now carries its paired 95 % interval (stats.paired_difference) in report.md and
    in distill's summary line; a record without the discordant counts (an older report) keeps the test alone."""
    from edgedistill.report.noise import gain_text, paired_interval_text
    from edgedistill.stats import paired_difference

    paired = {"within_noise": True, "p_value": 0.73, "n": 2400, "only_first_right": 40, "only_second_right": 36}
    iv = paired_difference(40, 36, 2400)
    assert paired_interval_text(paired) == f"95 % [{iv.low:+.2f}, {iv.high:+.2f}] points; "
    assert gain_text(paired).startswith(f"95 % [{iv.low:+.2f}, {iv.high:+.2f}] points; McNemar p = 0.73")
    assert paired_interval_text({"within_noise": True, "p_value": 0.73, "n": 2400}) == ""
