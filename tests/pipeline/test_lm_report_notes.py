"""The causal-LM report's note on its int8 rows (pipeline/lm_report.py int8_rows_note)."""


def test_the_lm_report_says_which_qat_steps_computed_the_integers():
    from edgedistill.pipeline.lm_report import int8_rows_note

    def note(share, rounding="tflm"):
        return " ".join(int8_rows_note({"test": {"int8": {}}, "int8": {"qat_steps_run": 300, "rounding": rounding,
                                                                        "exact_share": share}}))

    assert "300 more steps, the last 75 of its 300 steps computing the runtime's integers" in note(0.25)
    assert "300 more steps)" in note(1.0) and "fake-quantized" not in note(1.0)
    assert "fake-quantized" not in note(0.25, "float")
