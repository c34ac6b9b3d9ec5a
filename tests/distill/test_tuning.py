"""The `auto` grid: which (loss, T, alpha) candidates the tuner scores."""

from edgedistill.distill.tuning import candidate_objectives


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
