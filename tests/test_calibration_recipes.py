from pathlib import Path

import pytest

from edgedistill.config import load_config

RECIPES = sorted((Path(__file__).parents[1] / "calibration").glob("*.toml"))


def test_there_are_recipes_for_the_builtin_examples():
    assert {p.stem for p in RECIPES} >= {"digits", "fashion-mnist"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_is_a_valid_config(path):
    cfg = load_config(path)
    assert cfg.data.source == f"builtin:{path.stem}"
    assert cfg.quant.qat and cfg.quant.calibration in ("minmax", "percentile", "mse")
