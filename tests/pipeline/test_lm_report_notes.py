"""The causal-LM report's notes and warnings (pipeline/lm_report.py): its int8 rows, a test split too small or
mostly unknown."""


def test_the_lm_report_says_which_qat_steps_computed_the_integers():
    from edgedistill.pipeline.lm_report import int8_rows_note

    def note(share, rounding="tflm"):
        return " ".join(int8_rows_note({"test": {"int8": {}}, "int8": {"qat_steps_run": 300, "rounding": rounding,
                                                                        "exact_share": share}}))

    assert "300 more steps, the last 75 of its 300 steps computing the runtime's integers" in note(0.25)
    assert "300 more steps)" in note(1.0) and "fake-quantized" not in note(1.0)
    assert "fake-quantized" not in note(0.25, "float")


def test_a_test_split_too_small_or_mostly_unknown_is_warned_of():
    """A breaking session's one-document test split (13 tokens) and a corpus whose test tokens the student's
    vocabulary did not know (100 % unknown: top-1 100 %) both passed without a word."""
    from types import SimpleNamespace

    import numpy as np

    from edgedistill.pipeline.lm_report import few_documents_warning, unknown_tokens_warning

    split = lambda n: SimpleNamespace(test=SimpleNamespace(documents=np.arange(n)))  # noqa: E731
    one = few_documents_warning(split(1))
    assert "holds 1 document:" in one and "at least 5" in one and "\n" not in one
    assert few_documents_warning(split(5)) is None
    assert "100.0 % of the test tokens are not in the student's vocabulary" in unknown_tokens_warning(100.0)
    assert unknown_tokens_warning(19.9) is None and unknown_tokens_warning(20.0)
