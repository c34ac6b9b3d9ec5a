"""The warning when the distilled student scores below its no-teacher twin covers the deployed int8 pair too (a
float win hid an int8 loss beyond noise on builtin:docs, with no warning)."""

from edgedistill.pipeline.report import int8_gain_warning


def _int8(student: float, twin: float, within_noise: bool, p: float) -> dict:
    return {"qat_test_acc": student, "baseline_qat_test_acc": twin, "gain_vs_baseline_int8": student - twin,
            "gain_vs_baseline_int8_test": {"within_noise": within_noise, "p_value": p, "n": 2400,
                                           "only_first_right": 10, "only_second_right": 74}}


def test_an_int8_loss_beyond_noise_is_reported_as_lost():
    text = int8_gain_warning(_int8(55.0, 57.67, False, 0.0044))
    assert text.startswith("Distillation (int8) LOST to the no-teacher twin (int8) by 2.67 points")


def test_an_int8_loss_within_noise_may_be_chance_and_a_win_says_nothing():
    assert "may be chance" in int8_gain_warning(_int8(55.0, 55.5, True, 0.6))
    assert int8_gain_warning(_int8(56.0, 55.5, True, 0.6)) is None
    assert int8_gain_warning(None) is None and int8_gain_warning({"gain_vs_baseline_int8": None}) is None


def test_the_float_warning_says_float():
    """A build's headline is the deployed int8 figure: a warning about the float student said "the distilled
    student trails" without saying which form, next to an int8 headline with other figures."""
    from edgedistill.pipeline.report import _gain_warning

    text = _gain_warning(80.68, 80.69, _int8(0, 0, True, 0.9)["gain_vs_baseline_int8_test"])
    assert text.startswith("The distilled student (float) trails the no-teacher twin (float) by 0.01 points"), text
