"""Unlabelled transfer samples (y == -1): the soft loss sees them, the hard loss and the no-teacher twin do not."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.data.augment import Augment
from edgedistill.distill.losses import distillation_objective
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit


def _kd_by_hand(s, t, temp):
    p = F.softmax(t / temp, 1)
    return (p * (p.log() - F.log_softmax(s / temp, 1))).sum(1).mean() * temp * temp


def test_loss_averages_soft_over_all_and_hard_over_the_labelled():
    torch.manual_seed(0)
    s, t = torch.randn(5, 4), torch.randn(5, 4)
    y = torch.tensor([-1, 2, -1, 0, 3])
    got = distillation_objective(s, t, y, "kd", 2.0, 0.7)
    lab = torch.tensor([1, 3, 4])
    ce = -F.log_softmax(s[lab], 1)[torch.arange(3), y[lab]].mean()
    assert float(got) == pytest.approx(float(0.7 * _kd_by_hand(s, t, 2.0) + 0.3 * ce), rel=1e-6)
    no_label = distillation_objective(s, t, torch.full((5,), -1), "kd", 2.0, 0.7)
    assert float(no_label) == pytest.approx(float(0.7 * _kd_by_hand(s, t, 2.0)), rel=1e-6)


def test_gradients_reach_unlabelled_rows_only_through_the_soft_term():
    s = torch.randn(4, 3, requires_grad=True)
    t, y = torch.randn(4, 3), torch.tensor([0, -1, 2, -1])
    distillation_objective(s, None, y, "kd", 1.0, 0.0).backward()  # hard loss only (the twin)
    assert torch.all(s.grad[[1, 3]] == 0) and torch.all(s.grad[[0, 2]].abs().sum(1) > 0)
    s.grad = None
    distillation_objective(s, t, y, "kd", 4.0, 0.5).backward()
    assert torch.all(s.grad.abs().sum(1) > 0)  # every sample, labelled or not, moves through the soft term


class _Seen(nn.Module):
    """A linear classifier that records every input row it sees in training mode."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, 3)
        self.rows: list[torch.Tensor] = []
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.rows.append(x.detach().clone())
            self.calls += 1
        return self.fc(x)


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g)
    y = x.argmax(1)
    y[::4] = -1  # 10 unlabelled samples
    x[y == -1, 0] = 1000.0 + torch.arange(10.0)  # recognisable
    teacher = (5 * torch.eye(3)[x.argmax(1)]).unsqueeze(0)  # one member, N × K
    return TrainSet(x, y, teacher), x[y == -1]


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_tiny_run_student_sees_unlabelled_twin_does_not(mixup):
    data, unlabelled = _data()
    settings = TrainSettings(epochs=3, batch_size=8, lr=1e-2, augment=Augment(mixup=mixup))
    val_x, val_y = data.x[data.y >= 0][:8], data.y[data.y >= 0][:8]
    if mixup:
        return _mixup_run(data, settings)
    student, twin = _Seen(), _Seen()
    fit(student, data, val_x, val_y, Objective(True, "kd", 2.0, 0.5), settings)
    fit(twin, data, val_x, val_y, Objective(teacher=False), settings)
    seen_s, seen_t = torch.cat(student.rows), torch.cat(twin.rows)
    assert (seen_s[:, 0] >= 1000).sum() == 3 * len(unlabelled)  # every unlabelled sample, every epoch
    assert not (seen_t[:, 0] >= 1000).any()  # the twin never sees one
    # exactly the same optimizer budget: 3 epochs × ceil(40 / 8) = 15 steps for both; over the 30 labelled samples
    # that is 3 whole epochs of 4 steps (90 samples) and 3 steps of 8 into a fourth, cut short
    assert student.calls == 15 and twin.calls == 15
    assert len(seen_t) == 3 * 30 + 3 * 8


def _mixup_run(data, settings):
    from edgedistill.teachers.stream import TeacherStream

    stream = TeacherStream(lambda xb: (5 * torch.eye(3)[xb.argmax(1)]).unsqueeze(0), "onehot", None)
    data = TrainSet(data.x, data.y, data.teacher_members, teacher_stream=stream)
    val_x, val_y = data.x[data.y >= 0][:8], data.y[data.y >= 0][:8]
    res = fit(_Seen(), data, val_x, val_y, Objective(True, "kd", 2.0, 0.5), settings)
    assert all(math.isfinite(h.train_loss) for h in res.history)  # mixed unlabelled rows do not break the hard loss
