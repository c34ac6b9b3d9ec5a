"""Tiny models built in code for tests (importable as a teacher factory: 'tiny_models:tiny_cnn')."""

import torch
from torch import nn


def tiny_cnn(classes: int = 10, seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU-pool-Linear for 1×8×8 input, deterministic weights, eval mode, non-trivial BN stats."""
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 4 * 4, classes),
    )
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.2, 0.2)
        m[1].running_var.uniform_(0.5, 1.5)
    return m.eval()


class Recorder(torch.nn.Module):
    """Wraps the student and keeps every training input it is called with."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        if self.training:
            self.seen.append(x.clone())
        return self.inner(x)


def many_class_teacher(classes: int = 400, seed: int = 0) -> nn.Module:
    """A linear teacher over 1×8×8 uint8-range inputs with `classes` outputs (a many-class cache:
    teachers/cache_form.py): logits = 6 · W (x − 128) / 64 + b, W ~ U(±1/8) as nn.Linear draws it."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, classes))
    with torch.no_grad():
        m[1].weight.mul_(6.0 / 64.0)
        m[1].bias.sub_(128.0 * m[1].weight.sum(1))
    return m.eval()
