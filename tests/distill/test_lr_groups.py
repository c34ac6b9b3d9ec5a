"""Parameter groups by a module's `lr_scale` (distill/optim.lr_groups): the bow student's table learns at 10x the
run's rate, every other parameter at the run's rate, a shared parameter once, and the schedule scales both."""

import pytest
import torch
from torch import nn

from edgedistill.distill.optim import SCHEDULES, lr_groups
from edgedistill.students import StudentArch, build_student
from edgedistill.students.text_families import BOW_LR_SCALE


def test_a_model_without_scales_is_one_group_in_parameter_order():
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    groups = lr_groups(m, 0.01)
    assert len(groups) == 1 and groups[0]["lr"] == 0.01
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in m.parameters()]


def test_a_shared_parameter_is_counted_once():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight  # tied
    b.lr_scale = 5.0
    groups = lr_groups(nn.Sequential(a, b), 1.0)
    flat = [id(p) for g in groups for p in g["params"]]
    assert len(flat) == len(set(flat)) == 3  # the tied weight in a's group, b's bias in its own


def test_the_bow_table_steps_at_its_scale_under_the_schedule():
    model = build_student(StudentArch("bow", 8, 1), (6,), 3, None, vocab_size=20)
    groups = lr_groups(model, 1e-3)
    table = model.features.embed.weight
    (scaled,) = [g for g in groups if any(p is table for p in g["params"])]
    assert scaled["lr"] == 1e-3 * BOW_LR_SCALE and len(scaled["params"]) == 1
    opt = torch.optim.AdamW(groups, lr=1e-3)
    sched = SCHEDULES.get("cosine")(opt, 100, 1e-3)
    for _ in range(10):
        opt.step()
        sched.step()
    ratio = [g["lr"] for g in opt.param_groups]
    assert max(ratio) / min(ratio) == pytest.approx(BOW_LR_SCALE)

