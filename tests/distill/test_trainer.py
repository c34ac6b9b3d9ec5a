"""Trainer: deterministic for a seed, resumable to the same result, and the twin differs only in the loss."""

import copy

import numpy as np
import pytest
import torch

from edgedistill.data import make_splits, read_dataset
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit
from edgedistill.students import StudentArch, build_student
from edgedistill.teachers import LogitCache, TeacherSpec, load_teacher


def _setup(n=400):
    s = make_splits(read_dataset("builtin:digits"), max_train=n)
    teacher = load_teacher(TeacherSpec("builtin:digits"))
    logits = LogitCache(enabled=False).get(teacher, s.transfer.x)
    data = TrainSet(torch.from_numpy(s.transfer.x), torch.from_numpy(s.transfer.y), logits[None])
    torch.manual_seed(0)
    model = build_student(StudentArch("cnn", 8, 2), s.input_shape, s.num_classes, s.normalizer)
    return data, torch.from_numpy(s.val.x), torch.from_numpy(s.val.y), model


SETTINGS = TrainSettings(epochs=4, batch_size=32, lr=5e-3, seed=1)
KD = Objective(True, "kd", 4.0, 0.7)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.dtype.is_floating_point])


def test_same_seed_same_weights():
    data, vx, vy, m0 = _setup()
    a, b = copy.deepcopy(m0), copy.deepcopy(m0)
    ra, rb = fit(a, data, vx, vy, KD, SETTINGS), fit(b, data, vx, vy, KD, SETTINGS)
    assert torch.equal(_weights(a), _weights(b))
    assert [h.val_acc for h in ra.history] == [h.val_acc for h in rb.history]


def test_student_learns():
    data, vx, vy, m0 = _setup()
    res = fit(m0, data, vx, vy, KD, SETTINGS)
    assert res.best_val_acc > 60.0  # chance is 10%
    assert res.history[-1].train_loss < res.history[0].train_loss


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    data, vx, vy, m0 = _setup()
    full = copy.deepcopy(m0)
    fit(full, data, vx, vy, KD, SETTINGS)

    ckpt = tmp_path / "ckpt.pt"
    interrupted = copy.deepcopy(m0)
    calls = {"n": 0}

    def crash_in_epoch_3(k, loss, val):
        calls["n"] += 1
        steps = (len(data) + SETTINGS.batch_size - 1) // SETTINGS.batch_size
        if val is None and calls["n"] > 2 * (steps + 1) + 3:
            raise KeyboardInterrupt

    try:
        fit(interrupted, data, vx, vy, KD, SETTINGS, checkpoint=ckpt, progress=crash_in_epoch_3)
    except KeyboardInterrupt:
        pass
    assert ckpt.exists()
    resumed = copy.deepcopy(m0)  # a fresh process: initial weights, state comes from the checkpoint
    res = fit(resumed, data, vx, vy, KD, SETTINGS, checkpoint=ckpt)
    assert res.resumed_from_epoch == 2
    assert torch.equal(_weights(resumed), _weights(full))


def test_a_resumed_run_s_progress_goes_on_from_where_it_stopped(tmp_path):
    """The bar of a resumed run starts at the checkpoint's samples, not at 0: the interrupted run's reports plus the
    resumed run's add up to the planned total, also counted in steps as progress.step_bar counts them (each epoch's
    last batch is short here, so samples and steps disagree unless the resumed ones are reported epoch by epoch)."""
    from edgedistill.distill.trainer import planned_samples

    data, vx, vy, m0 = _setup()
    ckpt, seen = tmp_path / "ckpt.pt", {"first": [], "second": []}
    per_epoch = -(-len(data) // SETTINGS.batch_size)
    assert len(data) % SETTINGS.batch_size  # a short last batch: samples and steps disagree unless counted right

    def crash_in_epoch_3(k, loss, val):
        seen["first"].append(k)
        if val is None and len(seen["first"]) > 2 * (per_epoch + 1) + 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(copy.deepcopy(m0), data, vx, vy, KD, SETTINGS, checkpoint=ckpt, progress=crash_in_epoch_3)
    res = fit(copy.deepcopy(m0), data, vx, vy, KD, SETTINGS, checkpoint=ckpt,
              progress=lambda k, loss, val: seen["second"].append(k))
    assert res.resumed_from_step == 2 * per_epoch
    assert sum(seen["second"]) == planned_samples(SETTINGS, len(data))
    assert sum(-(-k // SETTINGS.batch_size) for k in seen["second"]) == SETTINGS.epochs * per_epoch


def test_twin_differs_only_in_the_loss():
    """With alpha = 0 the distillation objective is exactly hard-label CE: the twin and a KD run at alpha 0
    then produce identical weights (same init, data order and schedule)."""
    data, vx, vy, m0 = _setup()
    twin, kd0 = copy.deepcopy(m0), copy.deepcopy(m0)
    fit(twin, data, vx, vy, Objective(teacher=False), SETTINGS)
    fit(kd0, data, vx, vy, Objective(True, "kd", 4.0, 0.0), SETTINGS)
    assert torch.equal(_weights(twin), _weights(kd0))
    kd = copy.deepcopy(m0)
    fit(kd, data, vx, vy, KD, SETTINGS)
    assert not torch.equal(_weights(kd), _weights(twin))


def test_foreign_checkpoint_is_ignored(tmp_path):
    data, vx, vy, m0 = _setup(200)
    ckpt = tmp_path / "c.pt"
    fit(copy.deepcopy(m0), data, vx, vy, KD, TrainSettings(epochs=1, batch_size=64, seed=1), checkpoint=ckpt)
    res = fit(copy.deepcopy(m0), data, vx, vy, KD, TrainSettings(epochs=2, batch_size=32, seed=1), checkpoint=ckpt)
    assert res.resumed_from_epoch == 0 and len(res.history) == 2
    assert np.isfinite(res.best_val_acc)


def test_a_loss_that_becomes_nan_stops_training_in_one_paragraph():
    from edgedistill.distill.trainer import TrainingDiverged

    data, vx, vy, m0 = _setup(200)
    data = TrainSet(data.x.clone(), data.y, data.teacher_members)
    data.x[7] = float("nan")
    with pytest.raises(TrainingDiverged) as info:
        fit(copy.deepcopy(m0), data, vx, vy, KD, TrainSettings(epochs=1, batch_size=64, seed=1))
    assert "\n" not in str(info.value) and "the loss became nan" in str(info.value)


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path):
    """Before: the fingerprint held the settings and the sample count only, so a run stopped and restarted on
    other texts (same count, other labels) resumed the other data's weights without a word."""
    data, vx, vy, m0 = _setup(200)
    ckpt = tmp_path / "c.pt"
    settings = TrainSettings(epochs=2, batch_size=64, seed=1)
    fit(copy.deepcopy(m0), data, vx, vy, KD, settings, checkpoint=ckpt)
    assert fit(copy.deepcopy(m0), data, vx, vy, KD, settings, checkpoint=ckpt).resumed_from_epoch == 2
    shuffled = TrainSet(data.x, data.y[torch.randperm(len(data.y), generator=torch.Generator().manual_seed(0))],
                        data.teacher_members)
    res = fit(copy.deepcopy(m0), shuffled, vx, vy, KD, settings, checkpoint=ckpt)
    assert res.resumed_from_epoch == 0 and len(res.history) == 2


def test_a_step_budget_stops_mid_epoch_with_the_schedule_ending_there():
    """400 samples at batch 32 are 13 steps per epoch: 30 steps are 2 epochs and 4 steps of a third. The run used to
    round up to whole epochs (39 steps); now it stops after exactly 30, with the cosine schedule sized to 30."""
    import math

    from edgedistill.distill.optim import cosine

    data, vx, vy, m0 = _setup()
    steps = {"n": 0, "samples": 0}

    def count(k, loss, val):
        if k:
            steps["n"] += 1
            steps["samples"] += k

    settings = TrainSettings(batch_size=32, lr=5e-3, seed=1, steps=30, eval_every=7)
    res = fit(copy.deepcopy(m0), data, vx, vy, KD, settings, progress=count)
    assert steps["n"] == res.steps == 30
    assert steps["samples"] == 2 * len(data) + 4 * 32  # two whole epochs and four batches of the third
    assert [h.step for h in res.history] == [7, 14, 21, 28, 30]  # every 7 steps and after the last
    assert [h.epoch for h in res.history] == [1, 2, 2, 3, 3]  # the epoch each evaluation fell in
    # the learning rate each evaluation recorded is the schedule's at that step (an independent LambdaLR), ending at 0
    ref = cosine(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=5e-3), 30, 5e-3).lr_lambdas[0]
    assert [h.lr for h in res.history] == pytest.approx([5e-3 * ref(h.step) for h in res.history])
    assert res.history[-1].lr == pytest.approx(0.0, abs=1e-12) and res.history[-2].lr > 1e-5
    assert math.isclose(ref(15), 0.5 * (1 + math.cos(math.pi * (15 - 1) / 29)))


def test_the_twin_of_a_step_budget_takes_the_same_steps():
    data, vx, vy, m0 = _setup()
    y = data.y.clone()
    y[::3] = -1  # a third unlabelled: the twin trains on the rest, for exactly the student's 30 steps
    part = TrainSet(data.x, y, data.teacher_members)
    settings = TrainSettings(batch_size=32, lr=5e-3, seed=1, steps=30)
    assert fit(copy.deepcopy(m0), part, vx, vy, Objective(teacher=False), settings).steps == 30
    assert fit(copy.deepcopy(m0), part, vx, vy, KD, settings).steps == 30


@pytest.mark.parametrize("twin_with_shift", [False, True])
def test_a_run_killed_mid_epoch_resumes_from_its_evaluation_point_exactly(tmp_path, twin_with_shift):
    """Checkpoints are written at every evaluation point, mid-epoch ones included: the data order is drawn again
    from the epoch's generator state and (with augmentation) every batch redraws its view from its (seed, epoch, step)."""
    from edgedistill.data.augment import Augment

    data, vx, vy, m0 = _setup()
    objective = Objective(teacher=False) if twin_with_shift else KD
    settings = TrainSettings(batch_size=32, lr=5e-3, seed=1, steps=30, eval_every=7,
                             augment=Augment(shift=1) if twin_with_shift else Augment())
    full = copy.deepcopy(m0)
    res_full = fit(full, data, vx, vy, objective, settings)

    ckpt, calls = tmp_path / "ckpt.pt", {"n": 0}

    def crash_after_step_17(k, loss, val):
        calls["n"] += k > 0
        if calls["n"] == 17:  # the last checkpoint was written after step 14: 1 step into the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(copy.deepcopy(m0), data, vx, vy, objective, settings, checkpoint=ckpt, progress=crash_after_step_17)
    resumed = copy.deepcopy(m0)
    res = fit(resumed, data, vx, vy, objective, settings, checkpoint=ckpt)
    assert (res.resumed_from_step, res.resumed_from_epoch, res.steps) == (14, 1, 30)
    assert torch.equal(_weights(resumed), _weights(full))
    assert [(h.step, h.val_acc, h.train_loss) for h in res.history] == \
        [(h.step, h.val_acc, h.train_loss) for h in res_full.history]
    assert (res.best_step, res.best_val_acc) == (res_full.best_step, res_full.best_val_acc)


def test_samples_in_a_stored_dtype_train_exactly_as_their_float32_values():
    """uint8 samples (a memory-mapped x.npy keeps them so) become float32 batch by batch: the same weights as
    training on the whole set converted to float32 first."""
    data, vx, vy, m0 = _setup(200)
    x8 = torch.round(data.x * 16).to(torch.uint8)  # digits hold 0..16 / 16: exact in uint8
    u8 = TrainSet(x8, data.y, data.teacher_members)
    f32 = TrainSet(x8.to(torch.float32), data.y, data.teacher_members)
    settings = TrainSettings(batch_size=32, lr=5e-3, seed=1, steps=12)
    a, b = copy.deepcopy(m0), copy.deepcopy(m0)
    ra = fit(a, u8, torch.round(vx * 16).to(torch.uint8), vy, KD, settings)
    rb = fit(b, f32, torch.round(vx * 16), vy, KD, settings)
    assert x8.dtype == torch.uint8 and torch.equal(_weights(a), _weights(b))
    assert [h.val_acc for h in ra.history] == [h.val_acc for h in rb.history]
