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
