"""Born-again generations and deep mutual learning (edgedistill.distill.schemes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgedistill.config import load_config
from edgedistill.data import Normalizer
from edgedistill.api import distill
from edgedistill.distill.schemes import fit_mutual, student_as_teacher
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit, predict_logits
from edgedistill.errors import ConfigError
from edgedistill.students import StudentArch, build_student


def _data(n=192, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float() * 0.3
    return x, y


def _model(seed):
    torch.manual_seed(seed)
    return build_student(StudentArch("cnn", 4, 2), (1, 8, 8), 3, Normalizer.fit(_data()[0].numpy()))


def test_student_as_teacher_gives_the_previous_generations_logits_and_leaves_it_alone():
    x, y = _data()
    prev = _model(0)
    before = {k: v.clone() for k, v in prev.state_dict().items()}
    d = student_as_teacher(prev, TrainSet(x, y, None), augmented=False)
    torch.testing.assert_close(d.teacher_members[0], predict_logits(prev, x))
    assert all(torch.equal(before[k], v) for k, v in prev.state_dict().items())


def test_mutual_with_zero_weight_is_independent_training():
    x, y = _data()
    vx, vy = _data(64, seed=1)
    settings = TrainSettings(epochs=2, batch_size=32, seed=3)
    twin = _model(0)
    ref = fit(twin, TrainSet(x, y, None), vx, vy, Objective(teacher=False), settings)
    peers = [_model(0), _model(1)]
    res = fit_mutual(peers, TrainSet(x, y, None), vx, vy, Objective(teacher=False), settings, weight=0.0)
    for k, v in ref.best_state.items():
        torch.testing.assert_close(res[0].best_state[k], v)


def test_mutual_term_makes_the_peers_agree():
    x, y = _data()
    vx, vy = _data(64, seed=1)
    settings = TrainSettings(epochs=3, batch_size=32, seed=3)

    def disagreement(weight):
        peers = [_model(0), _model(1)]
        fit_mutual(peers, TrainSet(x, y, None), vx, vy, Objective(teacher=False), settings, weight=weight)
        p0, p1 = (F.softmax(predict_logits(m, vx), 1) for m in peers)
        return float((p0 - p1).abs().sum(1).mean())

    assert disagreement(5.0) < 0.7 * disagreement(0.0)


@pytest.mark.slow
@pytest.mark.parametrize("scheme,key", [("born-again", "generations"), ("mutual", "peers")])
def test_schemes_run_end_to_end_and_report_every_member(tmp_path, scheme, key):
    cfg = load_config(None, {"data": {"source": "builtin:digits", "max_train": 300}, "student": {"width": 8},
                             "kd": {"temperature": 4.0, "alpha": 0.9, "scheme": scheme},
                             "train": {"epochs": 3, "batch_size": 32}, "out": str(tmp_path / "run")})
    m = distill(cfg, show_progress=False).metrics
    members = m["scheme"][key]
    assert m["scheme"]["scheme"] == scheme and len(members) == 2
    # 10 classes, chance 10 %: every generation / peer learned (~70 % here after 3 short epochs on 300 images)
    assert all(r["test_acc"] > 50.0 and r["val_acc"] > 40.0 for r in members), members
    if scheme == "born-again":  # the final student is the last generation
        assert m["student"]["test_acc"] == pytest.approx(members[-1]["test_acc"])
    else:  # the chosen peer is the best on validation
        assert members[m["scheme"]["chosen"]]["val_acc"] == max(r["val_acc"] for r in members)


def test_mutual_learning_refuses_feature_terms(tmp_path):
    cfg = load_config(None, {"data": {"source": "builtin:digits"}, "kd": {"scheme": "mutual", "features": [
        {"loss": "at", "student": "features.block1", "teacher": "layer1"}]}, "out": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match="Mutual learning"):
        distill(cfg, show_progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_online_teacher_trains_with_the_student_and_the_users_teacher_is_untouched(tmp_path):
    """kd.online_teacher: a copy of the torch teacher joins the peers; its record shows before/after accuracy."""
    from edgedistill.teachers import TeacherSpec, load_teacher

    cfg = load_config(None, {"data": {"source": "builtin:digits", "max_train": 300}, "student": {"width": 8},
                             "kd": {"temperature": 4.0, "alpha": 0.9, "scheme": "mutual", "peers": 2,
                                    "online_teacher": True, "teacher_lr_scale": 0.5},
                             "train": {"epochs": 2}, "out": str(tmp_path / "run")})
    module = load_teacher(TeacherSpec(cfg.teachers[0].path)).torch_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    m = distill(cfg, show_progress=False).metrics
    online = m["scheme"]["online_teacher"]
    assert len(m["scheme"]["peers"]) == 2 and online["lr_scale"] == 0.5
    assert online["before"]["test_acc"] == pytest.approx(m["teacher"]["test_acc"], abs=0.01)
    assert online["after"]["test_acc"] > 50.0  # still a working classifier after training along
    reloaded = load_teacher(TeacherSpec(cfg.teachers[0].path)).torch_module()
    assert all(torch.equal(before[k], v) for k, v in reloaded.state_dict().items())


def test_online_teacher_needs_a_trainable_teacher_and_the_mutual_scheme(tmp_path):
    cfg = {"data": {"source": "builtin:digits"}, "kd": {"online_teacher": True}, "out": str(tmp_path / "a")}
    with pytest.raises(ConfigError, match="needs --scheme mutual"):
        distill(load_config(None, cfg), show_progress=False)
    assert not (tmp_path / "a").exists()
