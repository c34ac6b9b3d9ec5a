"""A deployed file over the target's flash or RAM is said among the run's warnings (printed by the summary), not only
in the report's fit table (pipeline/report.target_fit_warnings)."""

from edgedistill.pipeline.report import target_fit_warnings


def _fit(check, value, limit, passed):
    return {"check": check, "value": value, "limit": limit, "passed": passed}


def test_flash_and_ram_over_their_limits_are_warned_and_nothing_else():
    target = {"name": "cortex-m4", "fit": [_fit("flash", 11_900_000, 1_048_576, False),
                                          _fit("ram", 8_304, 262_144, True), _fit("ops", True, True, True)]}
    (w,) = target_fit_warnings(target)
    assert "11,900,000 B" in w and "cortex-m4's flash (1,048,576 B)" in w
    target["fit"][1] = _fit("ram", 300_000, 262_144, False)
    assert len(target_fit_warnings(target)) == 2


def test_no_target_or_no_figure_warns_nothing():
    assert target_fit_warnings(None) == [] and target_fit_warnings({}) == []
    assert target_fit_warnings({"name": "x", "fit": [_fit("ram", None, 262_144, False),
                                                     _fit("flash", 5, None, True)]}) == []


def test_an_lm_student_slower_than_its_teacher_is_warned_per_runtime():
    from edgedistill.pipeline.lm_speed import slower_than_teacher_warnings

    speed = {"ratio": {"onnxruntime": {"student_tokens_per_s": 720.0, "teacher_tokens_per_s": 1000.0, "ratio": 0.72},
                       "litert": {"student_tokens_per_s": 2000.0, "teacher_tokens_per_s": 1000.0, "ratio": 2.0}}}
    (w,) = slower_than_teacher_warnings(speed)
    assert "0.72x" in w and "onnxruntime" in w
    assert slower_than_teacher_warnings(None) == [] and slower_than_teacher_warnings({"ratio": {}}) == []


def test_an_lm_int8_step_far_slower_than_its_float_twin_is_called_a_disturbed_measurement():
    """A breaking session's busy machine: int8 TFLite 8.4 ms a step against 0.155 ms for the float file, 0.41x the
    teacher; the advice to choose a smaller student would have been wrong."""
    from edgedistill.pipeline.lm_speed import slower_than_teacher_warnings

    speed = {"ratio": {"litert": {"student_tokens_per_s": 119.0, "teacher_tokens_per_s": 288.0, "ratio": 0.41}},
             "int8_over_float": {"litert": 0.0184}}
    (w,) = slower_than_teacher_warnings(speed)
    assert "disturbed measurement" in w and "54x slower than the same network in float32" in w
    assert "Choose a smaller student" not in w
    speed["int8_over_float"]["litert"] = 0.8  # slower than the teacher, not disturbed: the size advice stands
    assert "Choose a smaller student" in slower_than_teacher_warnings(speed)[0]
