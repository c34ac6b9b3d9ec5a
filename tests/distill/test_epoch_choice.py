"""Which epoch's weights fit() keeps: the last, unless an earlier one was better on validation beyond its noise."""

import copy

import torch

from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit, keep_last_epoch
from edgedistill.stats import wilson


def test_rule_against_the_wilson_interval():
    hi = wilson(32, 40).high  # last epoch 80 % on 40 samples: the interval reaches about 89.5 %
    assert keep_last_epoch(hi - 0.1, 80.0, 40)
    assert keep_last_epoch(hi + 0.1, 80.0, 40)  # above the interval, but < 4 samples: McNemar can never reject
    assert not keep_last_epoch(95.0, 80.0, 40)  # 38 vs 32 of 40: 6 samples and above the interval
    assert keep_last_epoch(92.5, 80.0, 40)  # 37 vs 32: 5 samples are too few
    assert wilson(39, 40).high < 100.0 and keep_last_epoch(100.0, 97.5, 40)  # 40/40 vs 39/40: one sample
    assert not keep_last_epoch(80.3, 80.0, 100_000)  # 300 samples on 100,000: beyond both bars
    assert not keep_last_epoch(85.0, 80.0, 10_000)  # 5 points on 10,000 samples is beyond noise: keep the best
    assert keep_last_epoch(80.0, 82.5, 40)  # the last is the best


def test_fit_returns_the_last_weights_when_the_lead_is_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x[:, :3].argmax(1)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    res = fit(model, TrainSet(x, y, None), x[:5], y[:5], Objective(teacher=False),
              TrainSettings(epochs=6, batch_size=16, lr=0.05))
    last = res.history[-1]
    best = max(h.val_acc for h in res.history)
    assert keep_last_epoch(best, last.val_acc, 5)  # 5 validation samples: any lead is noise
    assert res.best_epoch == 6 and res.best_val_acc == last.val_acc
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in res.best_state.items())


def _separable(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, x[:, :3].argmax(1)


def test_score_start_keeps_the_starting_weights_when_training_only_loses():
    """QAT's case (quantize/qat.py): the model starts good and training (here on shifted labels) wrecks it; with
    score_start the starting weights come back as epoch 0, without it the wrecked last epoch is kept."""
    x, y = _separable()
    good = torch.nn.Linear(4, 3)
    with torch.no_grad():
        good.weight.zero_()
        good.weight[:, :3] = torch.eye(3) * 5
        good.bias.zero_()
    wrong = TrainSet(x, (y + 1) % 3, None)
    settings = TrainSettings(epochs=2, batch_size=16, lr=0.5)
    res = fit(copy.deepcopy(good), wrong, x, y, Objective(teacher=False), settings, score_start=True)
    assert res.best_epoch == 0 and res.best_val_acc == 100.0
    assert all(torch.equal(v, good.state_dict()[k]) for k, v in res.best_state.items())
    lost = fit(copy.deepcopy(good), wrong, x, y, Objective(teacher=False), settings)
    assert lost.best_epoch >= 1 and lost.best_val_acc < 50.0


def test_score_start_keeps_training_that_helps():
    x, y = _separable()
    torch.manual_seed(0)
    res = fit(torch.nn.Linear(4, 3), TrainSet(x, y, None), x, y, Objective(teacher=False),
              TrainSettings(epochs=4, batch_size=16, lr=0.1), score_start=True)
    assert res.best_epoch == 4 and res.best_val_acc > 90.0
