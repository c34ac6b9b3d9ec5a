"""The default training budget is sized in optimizer steps from the number of transfer samples."""

import math

import pytest

from edgedistill.config import load_config
from edgedistill.distill.schedule import MIN_STEPS, resolve, resolve_config
from edgedistill.errors import ConfigError


@pytest.mark.parametrize("n,batch,epochs,qat", [
    (300, 32, 200, 60),      # ceil(300/32) = 10 steps per epoch; 2,000 steps need 200 epochs
    (4000, 64, 32, 10),      # ceil(4000/64) = 63 per epoch; ceil(2000/63) = 32 epochs (2,016 steps)
    (60000, 128, 10, 3),     # ceil(60000/128) = 469 per epoch: today's 10 epochs (4,690 steps) and 3 QAT epochs
])
def test_sizing_by_hand(n, batch, epochs, qat):
    s = resolve(n)
    per_epoch = math.ceil(n / batch)
    assert (s.batch_size, s.epochs, s.steps_per_epoch, s.qat_epochs) == (batch, epochs, per_epoch, qat)
    assert s.steps == epochs * per_epoch >= MIN_STEPS


def test_tiny_sets_are_capped_and_overrides_win():
    assert resolve(10).epochs == 500  # 1 step per epoch: capped at MAX_EPOCHS
    s = resolve(300, epochs=7)
    assert (s.epochs, s.batch_size, s.steps, s.qat_epochs) == (7, 32, 70, 3)  # explicit epochs: QAT keeps 3
    s = resolve(300, steps=95, batch_size=50)
    assert (s.epochs, s.steps_per_epoch, s.steps) == (16, 6, 96)  # ceil(95 / 6) epochs
    assert resolve(300, qat_epochs=2).qat_epochs == 2
    with pytest.raises(ValueError):
        resolve(300, epochs=3, steps=10)


def test_config_resolution_writes_plain_integers():
    cfg, s = resolve_config(load_config(None, {"train": {"steps": 500}}), 400)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.quant.qat_epochs) == (s.epochs, s.batch_size, s.qat_epochs)
    assert s.epochs == math.ceil(500 / 13) and "steps" not in cfg.model_dump()["train"]
    with pytest.raises(ConfigError, match="epochs or steps"):
        load_config(None, {"train": {"epochs": 3, "steps": 10}})
    with pytest.raises(ConfigError, match="epochs"):
        load_config(None, {"train": {"epochs": 0}})
