"""The built-in Fashion-MNIST teachers on the real test split (Debian's dataset-fashion-mnist, installed by .ci/run):
the two-member ensemble is the 'cumbersome model' only if it beats each member (Hinton et al. 2015)."""

import pytest
import torch

from edgedistill.data import read_dataset
from edgedistill.distill.trainer import accuracy
from edgedistill.teachers import TeacherSpec, combine, load_teacher


@pytest.mark.slow
def test_the_builtin_fashion_ensemble_beats_each_member_on_the_test_split():
    test = read_dataset("builtin:fashion-mnist").test
    y = torch.from_numpy(test.y)
    members = []
    for name in ("builtin:fashion-mnist", "builtin:fashion-mnist-s1"):
        t = load_teacher(TeacherSpec(name))
        members.append(torch.cat([t.logits(test.x[i: i + 2000]) for i in range(0, len(test.x), 2000)]))
    accs = [accuracy(m, y) for m in members]
    assert min(accs) > 93.0  # both are trained teachers, not placeholders
    for method in ("arithmetic", "geometric"):
        assert accuracy(combine(torch.stack(members), method, 1.0), y) > max(accs)
