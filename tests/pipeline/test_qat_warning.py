"""The warning when the deployed QAT int8 model is worse than plain post-training int8 beyond the test's noise."""

from edgedistill.pipeline.int8 import qat_below_ptq_warning
from edgedistill.report.noise import paired_gain


def _int8(qat_right: list[bool], ptq_right: list[bool]) -> dict:
    n = len(qat_right)
    return {"qat_test_acc": 100 * sum(qat_right) / n, "ptq_test_acc": 100 * sum(ptq_right) / n,
            "qat_vs_ptq_test": paired_gain(qat_right, ptq_right)}


def test_qat_clearly_below_ptq_warns_with_both_figures():
    # 1,000 samples: PTQ right on all, QAT wrong on 102 of them (87.0 vs ... as seen with --qat-epochs 1)
    w = qat_below_ptq_warning(_int8([True] * 898 + [False] * 102, [True] * 1000))
    assert w and "89.80%" in w and "100.00%" in w and "--qat-epochs" in w


def test_no_warning_inside_the_noise_when_qat_wins_or_without_int8():
    assert qat_below_ptq_warning(_int8([True] * 97 + [False] * 3, [True] * 100)) is None  # 3 discordant: p = 0.25
    assert qat_below_ptq_warning(_int8([True] * 100, [True] * 80 + [False] * 20)) is None
    assert qat_below_ptq_warning(None) is None and qat_below_ptq_warning({"qat_test_acc": 90.0}) is None
