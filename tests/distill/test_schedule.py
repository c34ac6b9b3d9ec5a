"""The default training budget is sized in optimizer steps from the number of transfer samples."""

import math

import pytest

from edgedistill.config import load_config
from edgedistill.distill.schedule import DEFAULT_EPOCHS, MAX_EPOCHS, MAX_PASSES, MIN_STEPS, resolve, resolve_config
from edgedistill.errors import ConfigError


@pytest.mark.parametrize("n,batch,epochs,qat", [
    (300, 32, 500, 150),     # ceil(300/32) = 10 steps per epoch; 6,000 steps would need 600 epochs: capped at 500
    (360, 32, 500, 150),     # 12 per epoch: 500 epochs = 6,000 steps (MNIST-1D, 400 labels less validation)
    (4000, 64, 96, 29),      # ceil(4000/64) = 63 per epoch; ceil(6000/63) = 96 epochs (6,048 steps, 384 K passes)
    (20000, 128, 20, 6),     # 157 per epoch: 39 epochs for 6,000 steps, but 400 K passes / 20,000 = 20 epochs
    (60000, 128, 10, 3),     # ceil(60000/128) = 469 per epoch: today's 10 epochs (4,690 steps) and 3 QAT epochs
])
def test_sizing_by_hand(n, batch, epochs, qat):
    s = resolve(n)
    per_epoch = math.ceil(n / batch)
    assert (s.batch_size, s.epochs, s.steps_per_epoch, s.qat_epochs) == (batch, epochs, per_epoch, qat)
    assert s.steps == epochs * per_epoch
    assert s.steps >= MIN_STEPS or epochs == MAX_EPOCHS or epochs * n >= MAX_PASSES or epochs == DEFAULT_EPOCHS


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


def test_trial_epochs_are_capped_in_steps():
    from edgedistill.distill.schedule import TRIAL_STEPS, trial_epochs

    # 360 samples at batch 32: 12 steps per epoch; a third of 500 epochs would be 1,992 steps, the cap is 700
    assert trial_epochs(500, 32, 360) == math.ceil(TRIAL_STEPS / 12) == 59
    # 10,000 tuning samples of a 60,000-sample run at batch 128: 79 steps per epoch, 10 // 3 = 3 epochs (237 steps)
    assert trial_epochs(10, 128, 10000) == 3
    assert trial_epochs(2, 32, 100) == 1  # at least one epoch


def test_auto_mixup_is_function_matching_on_small_sets_only():
    from edgedistill.data.augment import FM_BELOW, FM_MIXUP

    aug = load_config(None, {}).augment
    assert aug.mixup == "auto" and aug.recipe().mixup == 0.0  # unresolved auto counts as off
    small, large = aug.resolved(FM_BELOW - 1), aug.resolved(FM_BELOW)
    assert (small.mixup, small.mixup_twin) == (FM_MIXUP, False)  # the teacher's alone
    assert small.recipe().describe() == f"mixup α={FM_MIXUP:g} (with the teacher only)"
    assert large.recipe().mixup == 0.0 and not large.recipe().enabled  # 60,000 samples: off, today's cost
    assert load_config(None, {"augment": {"mixup": 0}}).augment.resolved(400).recipe().mixup == 0.0  # off switch
    given = load_config(None, {"augment": {"mixup": 0.2}}).augment.resolved(400)
    assert (given.mixup, given.mixup_twin) == (0.2, True)  # a user's mixup: both, as before


def test_cli_augment_keeps_auto_mixup_unless_named():
    from edgedistill.cli_args import parse_augment

    assert parse_augment("shift=2")["mixup"] == "auto"
    assert parse_augment("none")["mixup"] == 0.0 and parse_augment("mixup=0")["mixup"] == 0.0
    assert parse_augment("mixup=0.5")["mixup"] == 0.5
