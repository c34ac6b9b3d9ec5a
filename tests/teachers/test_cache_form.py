"""The teacher cache's form (teachers/cache_form.py): every logit for few classes, other losses and ensembles; the
top k and the rest's mass for many classes under KD, at every temperature the automatic search tries; k and the
temperatures in the cache key (tested on the real cache with a torch teacher built in code)."""

import numpy as np
import pytest
import torch

from edgedistill.distill.tuning import LOSS_TEMPERATURES, candidate_objectives
from edgedistill.teachers import LogitCache, TeacherSpec, load_teacher
from edgedistill.teachers.cache_form import MIN_SAVING, TOPK_K, choose_form, full_row_bytes
from edgedistill.teachers.topk_store import topk_bytes

GRID = LOSS_TEMPERATURES["kd"]


def test_the_switch_lies_where_the_full_row_costs_min_saving_times_the_record():
    record = topk_bytes(1000, TOPK_K, len(GRID))
    first = next(k for k in range(2, 5000) if full_row_bytes(k) >= MIN_SAVING * record)
    assert choose_form(first - 1, "kd", "auto", 1, GRID).kind == "full"
    top = choose_form(first, "kd", "auto", 1, GRID)
    assert (top.kind, top.k, top.bytes_per_sample, top.full_bytes_per_sample) == ("top-k", 32, record, 4 + 2 * first)
    assert first == 294 and record == 148  # 4 + 32 · (2 + 2) + 4 · 4 bytes
    assert choose_form(10, "kd", "auto", 1, GRID).kind == "full"
    big = choose_form(1000, "kd", "auto", 1, GRID)
    assert big.full_bytes_per_sample / big.bytes_per_sample > 13


@pytest.mark.parametrize("loss", ["dkd", "kd-std", "mse", "auto"])
def test_losses_that_read_every_logit_keep_the_full_form(loss):
    form = choose_form(1000, loss, "auto", 1, GRID)
    assert form.kind == "full" and loss in form.reason


def test_an_ensemble_keeps_the_full_form():
    assert choose_form(1000, "kd", "auto", 2, GRID).kind == "full"


def test_every_temperature_the_search_tries_is_stored_and_a_fixed_one_too():
    auto = choose_form(1000, "kd", "auto", 1, GRID)
    tried = {o.temperature for o in candidate_objectives("kd", "auto", "auto", True)}
    assert tried and tried <= set(auto.temperatures)
    fixed = choose_form(1000, "kd", 3.0, 1, GRID)
    assert 3.0 in fixed.temperatures and set(GRID) <= set(fixed.temperatures)
    assert fixed.bytes_per_sample == auto.bytes_per_sample + 4  # one float32 tail more


def _teacher(tmp_path, classes=400):
    from safetensors.torch import save_file

    from tiny_models import many_class_teacher

    path = tmp_path / "teacher.safetensors"
    save_file(many_class_teacher(classes).state_dict(), str(path))
    return load_teacher(TeacherSpec(str(path), factory="tiny_models:many_class_teacher"))


def test_k_and_the_temperatures_are_part_of_the_content_hash(tmp_path):
    teacher = _teacher(tmp_path)
    x = np.random.default_rng(0).integers(0, 256, (300, 1, 8, 8), dtype=np.uint8)
    cache = LogitCache(tmp_path / "c", batch_size=128)  # three batches, encoded one by one
    first = cache.get_topk(teacher, x, 32, GRID)
    assert (cache.stats.misses, cache.stats.hits) == (1, 0)
    again = cache.get_topk(teacher, x, 32, GRID)
    assert cache.stats.hits == 1 and np.array_equal(np.asarray(first), np.asarray(again))
    cache.get_topk(teacher, x, 16, GRID)
    cache.get_topk(teacher, x, 32, GRID + (3.0,))
    cache.get(teacher, x)  # the full form of the same teacher and bytes: another entry
    assert (cache.stats.misses, cache.stats.hits) == (4, 1)
    assert len(list((tmp_path / "c").glob("*.npy"))) == 4
    ref = teacher.logits(x).numpy()  # the float32 reference, all classes
    assert np.array_equal(np.asarray(first["indices"])[:, 0], ref.argmax(1))
    assert cache.stats.entries[0] == {"form": "top-k", "bytes": 300 * 148, "samples": 300, "k": 32,
                                      "temperatures": list(GRID), "bytes_per_sample": 148}
