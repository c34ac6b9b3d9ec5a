"""Training batches through DataLoader workers (edgedistill.distill.loader): the same batches, weights and random
streams with any number of workers, a rank's rows equal to the single-process batch's, exact resume with workers."""

import copy

import numpy as np
import pytest
import torch

from edgedistill.data.augment import Augment
from edgedistill.data.mapped import track
from edgedistill.distill import loader
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit
from edgedistill.students import StudentArch, build_student


def _mapped_set(tmp_path, n=160, seed=0):
    """n uint8 8×8 images, memory-mapped from x.npy (the case workers are for), labels and validation tensors."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = (rng.integers(0, 40, (n, 1, 8, 8)) + 50 * y[:, None, None, None]).astype(np.uint8)  # learnable
    np.save(tmp_path / "x.npy", x)
    xm = torch.from_numpy(track(np.load(tmp_path / "x.npy", mmap_mode="r")))
    assert loader.is_memory_mapped(xm)
    vx = torch.from_numpy(x[:40].astype(np.float32))
    return TrainSet(xm, torch.from_numpy(y), None), vx, torch.from_numpy(y[:40])


def _model(data):
    from edgedistill.data.splits import Normalizer

    torch.manual_seed(0)
    norm = Normalizer.fit(data.x.numpy()[:64].astype(np.float32))
    return build_student(StudentArch("cnn", 4, 1), (1, 8, 8), 4, norm)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.dtype.is_floating_point])


TWIN = Objective(teacher=False)
AUG = Augment(shift=1, hflip=True, mixup=0.5)


def test_workers_change_nothing_but_who_builds_the_batches(tmp_path):
    data, vx, vy = _mapped_set(tmp_path)
    m0 = _model(data)
    runs = {}
    for workers in (0, 2):
        model = copy.deepcopy(m0)
        torch.manual_seed(123)
        res = fit(model, data, vx, vy, TWIN, TrainSettings(batch_size=16, lr=5e-3, seed=3, steps=25, eval_every=10,
                                                            augment=AUG, workers=workers))
        runs[workers] = (_weights(model), [(h.step, h.val_acc, h.train_loss) for h in res.history],
                         torch.get_rng_state(), res.workers)
    (w0, h0, rng0, k0), (w2, h2, rng2, k2) = runs[0], runs[2]
    assert (k0, k2) == (0, 2)
    assert torch.equal(w0, w2) and h0 == h2
    assert torch.equal(rng0, rng2)  # the loader draws nothing from torch's global generator (dropout's, init's)


@pytest.mark.parametrize("aug", [Augment(), Augment(shift=1, hflip=True), AUG])
def test_each_rank_reads_only_its_rows_and_builds_the_single_process_rows(tmp_path, monkeypatch, aug):
    data, _, _ = _mapped_set(tmp_path, n=64)
    idx = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:13]  # odd: ranks get 7 and 6 rows
    whole = loader.Batches(data.x, data.y, aug, 5, slice(0, None, 1))[(2, 9, idx)]
    read = []
    monkeypatch.setattr(loader, "rows_of", lambda x, i: read.append(i) or x[i])
    for rank in (0, 1):
        part = loader.Batches(data.x, data.y, aug, 5, slice(rank, None, 2))[(2, 9, idx)]
        assert torch.equal(part.x, whole.x[rank::2])
        assert torch.equal(part.y, whole.y) and torch.equal(part.idx, idx)  # labels: the global batch's
        mine = set(idx[rank::2].tolist())
        partners = set(idx[whole.mix.perm[rank::2]].tolist()) if aug.mixup else set()
        assert set(read[-1].tolist()) == mine | partners  # its rows and their mixup partners, nothing else
        if not aug.mixup:
            assert len(read[-1]) == len(mine)


def test_a_batch_is_the_same_whatever_was_built_before_it(tmp_path):
    data, _, _ = _mapped_set(tmp_path, n=64)
    b = loader.Batches(data.x, data.y, AUG, 5, slice(0, None, 1))
    idx = torch.arange(20, 36)
    first = b[(0, 3, idx)].x
    b[(0, 4, idx)], b[(7, 3, idx)]
    assert torch.equal(b[(0, 3, idx)].x, first)
    assert not torch.equal(b[(0, 4, idx)].x, first)  # another step draws another view


def test_a_run_with_workers_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    """Workers prefetch batches past the checkpoint; those are lost with the run and built again, identical."""
    data, vx, vy = _mapped_set(tmp_path)
    m0 = _model(data)
    settings = TrainSettings(batch_size=16, lr=5e-3, seed=3, steps=30, eval_every=7, augment=AUG, workers=2)
    full = copy.deepcopy(m0)
    res_full = fit(full, data, vx, vy, TWIN, TrainSettings(**{**settings.__dict__, "workers": 0}))
    ckpt, calls = tmp_path / "ckpt.pt", {"n": 0}

    def crash_after_step_17(k, loss, val):
        calls["n"] += k > 0
        if calls["n"] == 17:  # last checkpoint after step 14, 4 steps into the second epoch of 10
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(copy.deepcopy(m0), data, vx, vy, TWIN, settings, checkpoint=ckpt, progress=crash_after_step_17)
    resumed = copy.deepcopy(m0)
    res = fit(resumed, data, vx, vy, TWIN, settings, checkpoint=ckpt)
    assert (res.resumed_from_step, res.resumed_from_epoch, res.steps) == (14, 1, 30)
    assert torch.equal(_weights(resumed), _weights(full))
    assert [(h.step, h.val_acc, h.train_loss) for h in res.history] == \
        [(h.step, h.val_acc, h.train_loss) for h in res_full.history]


def test_auto_workers_follow_where_the_samples_live_and_the_free_cores(tmp_path, monkeypatch):
    data, _, _ = _mapped_set(tmp_path, n=32)
    for cores, threads, want in ((16, 8, loader.MAPPED_WORKERS), (2, 1, 0), (2, 2, 0), (4, 2, 1)):
        monkeypatch.setattr(loader.os, "sched_getaffinity", lambda pid, c=cores: set(range(c)), raising=False)
        monkeypatch.setattr(loader.torch, "get_num_threads", lambda t=threads: t)
        assert loader.workers_for("auto", data.x) == want, (cores, threads)
        assert loader.workers_for("auto", data.x.clone()) == 0  # in memory: never
    assert loader.workers_for(3, data.x) == 3
