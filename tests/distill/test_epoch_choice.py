"""Which epoch's weights fit() keeps: the last, unless an earlier one was better on validation beyond its noise."""

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
