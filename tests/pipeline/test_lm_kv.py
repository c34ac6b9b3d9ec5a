"""--kv-cache where it means nothing is refused in one paragraph before anything runs: a classification task, or a
causal-LM run without QAT (the step is the int8 QAT graph's)."""

import pytest

from edgedistill.config import DistillConfig
from edgedistill.errors import ConfigError
from edgedistill.pipeline.distill import refuse_kv_cache


@pytest.mark.parametrize("task, qat, says", [("classification", True, "causal language model"),
                                             ("causal-lm", False, "add --qat")])
def test_kv_cache_refused_where_it_means_nothing(task, qat, says):
    config = DistillConfig.model_validate({"quant": {"qat": qat, "kv_cache": True}})
    with pytest.raises(ConfigError, match=says):
        refuse_kv_cache(config, task)


def test_kv_cache_off_or_on_a_causal_lm_with_qat_passes():
    refuse_kv_cache(DistillConfig.model_validate({"quant": {"qat": True, "kv_cache": True}}), "causal-lm")
    refuse_kv_cache(DistillConfig.model_validate({"quant": {"qat": False}}), "classification")


KV_ROW = {"artifact": "tflite-int8-kv", "runtime": "litert", "arithmetic": "xnnpack", "step_bound": 1.0,
          "window_agreement": 100.0, "window_max_steps": 0.0, "qat_agreement": 100.0, "qat_max_steps": 0.0}


@pytest.mark.parametrize("failed", [{"qat_max_steps": 3.0}, {"qat_agreement": 97.5},
                                    {"window_max_steps": 2.0}, {"window_agreement": 99.0, "qat_max_steps": 4.0}])
def test_a_kv_failure_names_what_failed_and_what_held(failed):
    from edgedistill.pipeline.lm_kv import kv_failure

    text = kv_failure({**KV_ROW, **failed})
    differs = text.split(";")[0]  # "... differ from X [and from Y]"; what held comes after "it matches"
    window_failed = any(k.startswith("window") for k in failed)
    qat_failed = any(k.startswith("qat") for k in failed)
    assert ("full-window file" in differs) == window_failed and ("QAT model" in differs) == qat_failed, text
    assert ("it matches the full-window file" in text) == (not window_failed), text
    assert ("it matches the QAT model" in text) == (not qat_failed), text
    for key, value in failed.items():
        assert (f"{value:.2f}%" if "agreement" in key else f"{value:.1f} output steps") in text, text


def test_the_lm_parity_failure_gives_next_token_agreement_and_output_steps_not_class_accuracy():
    from edgedistill.export.parity import ParityRow
    from edgedistill.pipeline.lm_int8 import lm_row, parity_failure

    row = ParityRow(artifact="tflite-int8", runtime="tflm", samples=3, accuracy=33.33, reference_accuracy=33.33,
                    top1_agreement=96.875, max_abs_logit_diff=0.4, bytes=1000, checked=True, passed=False,
                    arithmetic="tflm", max_steps=5.0, step_bound=1.0)
    text = parity_failure(lm_row(row.to_dict(), context=16))
    assert "accuracy 33.33" not in text and "vs" not in text, text
    assert "next-token top-1 agreement 96.88% over 48 positions" in text and "5.0 output steps" in text, text
    assert "tflite-int8 on tflm" in text and "bound 1)" in text, text
    float_row = ParityRow(artifact="onnx", runtime="onnxruntime", samples=2, accuracy=50.0, reference_accuracy=50.0,
                          top1_agreement=99.0, max_abs_logit_diff=0.25, bytes=10, checked=True, passed=False)
    assert "logits up to 0.25 apart" in parity_failure(lm_row(float_row.to_dict(), context=8))


def test_the_readme_says_the_kv_step_exists_its_pos_bound_and_what_is_still_missing():
    import re
    from pathlib import Path

    readme = re.sub(r"\s+", " ", (Path(__file__).parents[2] / "README.md").read_text())
    assert "Not there yet: a KV-cache decoder step" not in readme and "not yet: a KV-cache step" not in readme
    assert "0 ≤ pos < L" in readme and "prompt shorter than L" in readme and "sliding KV cache past L" in readme
