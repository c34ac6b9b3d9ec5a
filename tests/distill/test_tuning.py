"""The `auto` grid: which (loss, T, alpha) candidates the tuner scores."""

import pytest
import torch

from edgedistill.distill.tuning import NOISE_Z, candidate_objectives, decide, reference_index


def _grid(loss, t="auto", a="auto", labeled=True):
    return [(o.loss, o.temperature, o.alpha) for o in candidate_objectives(loss, t, a, labeled)]


def test_kd_auto_grid_includes_pure_function_matching():
    grid = _grid("kd")
    assert len(grid) == 12 and len(set(grid)) == 12
    assert ("kd", 1.0, 1.0) in grid and ("kd", 4.0, 0.5) in grid
    assert grid[:3] == [("kd", 1.0, 0.5), ("kd", 1.0, 0.9), ("kd", 1.0, 1.0)]  # ties keep the lower alpha


def test_loss_auto_grid_covers_every_loss_and_alpha():
    grid = _grid("auto")
    assert len(grid) == 24
    assert {g[0] for g in grid} == {"kd", "dkd", "kd-std"}
    assert {g[2] for g in grid} == {0.5, 0.9, 1.0}
    assert ("kd-std", 2.0, 1.0) in grid and ("dkd", 8.0, 1.0) not in grid


def test_without_labels_only_alpha_one_and_fixed_values_are_respected():
    assert {g[2] for g in _grid("kd", labeled=False)} == {1.0} and len(_grid("kd", labeled=False)) == 4
    assert _grid("kd", "2", "0.7") == [("kd", 2.0, 0.7)]
    assert _grid("mse") == [("mse", 1.0, 0.5), ("mse", 1.0, 0.9), ("mse", 1.0, 1.0)]


def _correct(*bits):
    return torch.tensor([bool(b) for b in bits])


def test_decide_keeps_the_reference_when_the_lead_is_within_noise():
    """Two trials that disagree on 2 of 100 images, one each way plus one more: a 1-point lead is noise."""
    ref = _correct(*([1] * 80 + [0] * 20))
    other = ref.clone()
    other[80] = other[81] = True
    other[0] = False  # net +1 image
    d = decide([80.0, 81.0], [ref, other], reference=0)
    assert d.best == 1 and d.difference == pytest.approx(1.0)
    assert d.std_error > d.difference / NOISE_Z and d.chosen == 0


def test_decide_switches_when_the_lead_is_clear():
    """The best trial is right on every image the reference gets right and on 30 more: far beyond the noise."""
    ref = _correct(*([1] * 50 + [0] * 50))
    better = _correct(*([1] * 80 + [0] * 20))
    d = decide([50.0, 80.0], [ref, better], reference=0)
    assert d.difference == pytest.approx(30.0) and d.chosen == 1


def test_decide_when_the_reference_is_best_and_ties_keep_the_earlier():
    a = _correct(1, 1, 0, 0)
    b = _correct(0, 1, 1, 0)
    assert decide([50.0, 50.0], [a, b], reference=1).best == 0  # tie: the earlier
    d = decide([50.0, 25.0], [a, _correct(1, 0, 0, 0)], reference=0)
    assert d.best == d.reference == d.chosen == 0 and d.difference == 0.0


def test_reference_is_pure_function_matching_when_in_the_grid():
    grid = candidate_objectives("auto", "auto", "auto", True)
    assert (grid[reference_index(grid)].loss, grid[reference_index(grid)].temperature,
            grid[reference_index(grid)].alpha) == ("kd", 1.0, 1.0)
    assert reference_index(candidate_objectives("dkd", "auto", "auto", True)) == 0  # not in the grid: the first


def _set(n_labeled=100, n_unlabeled=20):
    from edgedistill.distill.trainer import TrainSet

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_labeled + n_unlabeled, 4, generator=g)
    x[:, 3] = torch.arange(len(x)).float()  # an id, to follow samples across folds
    y = x[:, :3].argmax(1)
    y[n_labeled:] = -1
    return TrainSet(x, y, (3 * torch.eye(3)[x[:, :3].argmax(1)]).unsqueeze(0))


def test_small_validation_adds_folds_that_hold_out_each_labelled_sample_once():
    from edgedistill.distill.tuning import CV_FOLDS, scoring_folds

    data = _set()
    folds = scoring_folds(data, torch.randn(30, 4), torch.zeros(30, dtype=torch.long), seed=0)
    assert len(folds) == 1 + CV_FOLDS
    held = torch.cat([f.x[:, 3] for f in folds[1:]])
    assert sorted(held.tolist()) == list(range(100))  # every labelled sample scored exactly once
    for f in folds[1:]:
        train_ids = set(f.train.x[:, 3].tolist())
        assert not train_ids & set(f.x[:, 3].tolist())  # never trained on what it is scored on
        assert set(range(100, 120)) <= train_ids  # unlabelled samples stay in every fold
        assert len(f.train.teacher_members[0]) == len(f.train)  # teacher outputs follow their samples
    big_val = scoring_folds(data, torch.randn(1000, 4), torch.zeros(1000, dtype=torch.long), seed=0)
    assert len(big_val) == 1  # large validation: the single-split search


def test_tune_scores_on_the_pooled_folds():
    from edgedistill.distill.trainer import TrainSettings
    from edgedistill.distill.tuning import tune

    data = _set()
    val_x = torch.randn(20, 4, generator=torch.Generator().manual_seed(1))
    val_y = val_x[:, :3].argmax(1)
    make = lambda: torch.nn.Linear(4, 3)  # noqa: E731
    torch.manual_seed(0)
    res = tune(make, data, val_x, val_y, "kd", 4.0, "auto", TrainSettings(epochs=40, batch_size=32, lr=0.01), 10000)
    assert not res.skipped  # trials long enough to rank (the reference well above chance)
    assert res.cv_folds == 4 and res.scored_on == 20 + 100 and len(res.trials) == 4  # 3 alphas + the twin
    assert res.summary()["scored_on"] == 120
    for t in res.trials:  # a pooled accuracy is a whole number of the 120 samples
        assert abs(t.val_acc * 120 / 100 - round(t.val_acc * 120 / 100)) < 1e-6


def test_trials_too_short_to_rank_are_skipped_and_the_reference_kept():
    """#30.7: one-epoch trials near chance chose by noise. The reference runs first; below MIN_MATURITY the other
    trials are not run, the reference is kept, and the summary says why."""
    from edgedistill.distill.trainer import TrainSettings
    from edgedistill.distill.tuning import MIN_MATURITY, tune

    data = _set()
    val_x = torch.randn(20, 4, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    seen = []
    res = tune(lambda: torch.nn.Linear(4, 3), data, val_x, val_x[:, :3].argmax(1), "kd", "auto", "auto",
               TrainSettings(epochs=1, batch_size=32), 10000, on_trial=seen.append)
    assert len(seen) == len(res.trials) == 1 and (res.chosen.temperature, res.chosen.alpha) == (1.0, 1.0)
    assert (seen[0].val_acc - 100 / 3) / (100 - 100 / 3) < MIN_MATURITY
    summary = res.summary()
    assert summary["skipped"] and summary["chosen"] == "kd T 1 alpha 1" and "too short to rank" in summary["why"]
