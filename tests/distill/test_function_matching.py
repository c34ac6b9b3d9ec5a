"""Function matching: with augmentation on, the teacher runs on exactly the batch the student trains on, the
no-teacher twin trains on the same batches, and the teacher's outputs are reused only under the same key."""

import copy

import torch

from edgedistill.data import make_splits, read_dataset
from edgedistill.data.augment import Augment
from edgedistill.distill import trainer as trainer_mod
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit
from edgedistill.students import StudentArch, build_student
from edgedistill.teachers import TeacherSpec, load_teacher
from edgedistill.teachers.stream import TeacherStream
from tiny_models import Recorder

AUG = Augment(shift=1, hflip=False, mixup=0.3)
SETTINGS = TrainSettings(epochs=2, batch_size=50, lr=5e-3, seed=3, augment=AUG)
KD = Objective(True, "kd", 4.0, 0.7)


def _setup(cache_dir=None):
    s = make_splits(read_dataset("builtin:digits"), max_train=300)
    teacher = load_teacher(TeacherSpec("builtin:digits"))
    teacher_inputs = []

    def members(xb):
        teacher_inputs.append(xb.clone())
        return teacher.logits(xb)[None]

    stream = TeacherStream(members, teacher.identity(), cache_dir)
    data = TrainSet(torch.from_numpy(s.transfer.x), torch.from_numpy(s.transfer.y), None, "arithmetic", stream)
    torch.manual_seed(0)
    model = build_student(StudentArch("cnn", 8, 2), s.input_shape, s.num_classes, s.normalizer)
    return data, torch.from_numpy(s.val.x), torch.from_numpy(s.val.y), model, teacher_inputs


def test_teacher_and_student_receive_the_identical_augmented_tensor():
    data, vx, vy, model, teacher_inputs = _setup()
    rec = Recorder(model)
    fit(rec, data, vx, vy, KD, SETTINGS)
    assert len(rec.seen) == len(teacher_inputs) == 2 * 6  # 300 samples / 50 per batch, 2 epochs
    for s_in, t_in in zip(rec.seen, teacher_inputs):
        assert torch.equal(s_in, t_in)
    # and the batches really are augmented (not the raw samples in another order)
    raw = {tuple(r.flatten().tolist()) for r in data.x}
    assert sum(tuple(b.flatten().tolist()) in raw for b in rec.seen[0]) < len(rec.seen[0]) // 2


def test_twin_differs_only_in_the_loss(monkeypatch):
    """Same seed, data order, augmentation and initial weights; only the objective changes."""
    data, vx, vy, model, _ = _setup()
    calls = {"kd": [], "twin": []}
    real = trainer_mod.distillation_objective

    def spy(which):
        def objective(logits, teacher, labels, loss, t, a):
            calls[which].append((labels.clone(), teacher is None))
            return real(logits, teacher, labels, loss, t, a)
        return objective

    recs = {}
    for which, obj in (("kd", KD), ("twin", Objective(teacher=False))):
        monkeypatch.setattr(trainer_mod, "distillation_objective", spy(which))
        recs[which] = Recorder(copy.deepcopy(model))
        fit(recs[which], data, vx, vy, obj, SETTINGS)
    assert len(recs["kd"].seen) == len(recs["twin"].seen)
    for a, b in zip(recs["kd"].seen, recs["twin"].seen):
        assert torch.equal(a, b)
    for (ya, no_t_a), (yb, no_t_b) in zip(calls["kd"], calls["twin"]):
        assert torch.equal(ya, yb)  # identical (mixup-soft) labels
        assert not no_t_a and no_t_b  # the teacher term is the one difference
    assert calls["kd"][0][0].dim() == 2  # mixup made the labels soft


def test_stream_outputs_are_reused_from_disk_and_give_the_same_training(tmp_path):
    data, vx, vy, model, teacher_inputs = _setup(tmp_path)
    first = copy.deepcopy(model)
    fit(first, data, vx, vy, KD, SETTINGS)
    assert data.teacher_stream.stats.computed == 12 and len(teacher_inputs) == 12
    data2, _, _, model2, teacher_inputs2 = _setup(tmp_path)  # a fresh process would look like this
    fit(model2, data2, vx, vy, KD, SETTINGS)
    assert data2.teacher_stream.stats.computed == 0 and data2.teacher_stream.stats.reused == 12
    assert teacher_inputs2 == []
    for a, b in zip(first.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    # another augmentation seed is another stream: the teacher runs again
    data3, _, _, model3, teacher_inputs3 = _setup(tmp_path)
    fit(model3, data3, vx, vy, KD, TrainSettings(epochs=1, batch_size=50, lr=5e-3, seed=4, augment=AUG))
    assert data3.teacher_stream.stats.computed == 6


def test_augmentation_without_a_teacher_stream_is_refused():
    data, vx, vy, model, _ = _setup()
    data = TrainSet(data.x, data.y, torch.zeros(1, len(data), 10))
    try:
        fit(model, data, vx, vy, KD, SETTINGS)
    except ValueError as exc:
        assert "augment" in str(exc)
    else:
        raise AssertionError("augmented training with cached logits must be refused")


def test_teacher_only_mixup_leaves_the_twin_unmixed(monkeypatch):
    """The automatic function-matching mixup (twin_mixup False): the distilled student trains on mixed batches with
    the teacher's outputs on them; the no-teacher twin sees the same shifted batches, un-mixed, with hard labels."""
    data, vx, vy, model, teacher_inputs = _setup()
    aug = Augment(shift=1, mixup=1.0, twin_mixup=False)
    settings = TrainSettings(epochs=1, batch_size=50, lr=5e-3, seed=3, augment=aug)
    labels = {"kd": [], "twin": []}
    real = trainer_mod.distillation_objective
    recs = {}
    for which, obj in (("kd", KD), ("twin", Objective(teacher=False))):
        monkeypatch.setattr(trainer_mod, "distillation_objective",
                            lambda lg, t, y, *a, w=which: labels[w].append(y.clone()) or real(lg, t, y, *a))
        recs[which] = Recorder(copy.deepcopy(model))
        fit(recs[which], data, vx, vy, obj, settings)
    assert all(y.dim() == 2 for y in labels["kd"])  # mixed: soft labels
    assert all(y.dim() == 1 for y in labels["twin"])  # not mixed: class indices
    assert len(teacher_inputs) == 6  # the teacher ran for the distilled student only
    shift_only = TrainSettings(epochs=1, batch_size=50, lr=5e-3, seed=3, augment=Augment(shift=1))
    plain = Recorder(copy.deepcopy(model))
    fit(plain, data, vx, vy, Objective(teacher=False), shift_only)
    for a, b in zip(recs["twin"].seen, plain.seen):
        assert torch.equal(a, b)  # the twin's batches are exactly the shift-only recipe's
    assert aug.for_twin() == Augment(shift=1) and AUG.for_twin() is AUG  # a user's mixup stays shared
