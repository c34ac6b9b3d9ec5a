import numpy as np
import torch

from edgedistill.teachers import LogitCache, TeacherSpec, combine, load_teacher


def test_arithmetic_ensemble_matches_hand_computation():
    a = torch.tensor([[2.0, 0.0, -1.0]])
    b = torch.tensor([[0.0, 1.0, 0.0]])
    T = 2.0
    pa = np.exp(a.numpy() / T) / np.exp(a.numpy() / T).sum()
    pb = np.exp(b.numpy() / T) / np.exp(b.numpy() / T).sum()
    z = combine(torch.stack([a, b]), "arithmetic", T)
    np.testing.assert_allclose(torch.softmax(z / T, 1).numpy(), (pa + pb) / 2, rtol=1e-6)


def test_geometric_ensemble_matches_hand_computation():
    a = torch.tensor([[2.0, 0.0, -1.0]])
    b = torch.tensor([[0.0, 1.0, 0.0]])
    la = a.numpy() - np.log(np.exp(a.numpy()).sum())
    lb = b.numpy() - np.log(np.exp(b.numpy()).sum())
    geo = np.exp((la + lb) / 2)
    z = combine(torch.stack([a, b]), "geometric", 1.0)
    np.testing.assert_allclose(torch.softmax(z, 1).numpy(), geo / geo.sum(), rtol=1e-6)


def test_single_member_is_passed_through():
    a = torch.randn(3, 4)
    assert torch.equal(combine(a[None], "geometric", 3.0), a)


def test_cache_computes_once_and_reuses(tmp_path):
    from edgedistill.data import read_dataset

    teacher = load_teacher(TeacherSpec("builtin:digits"))
    x = read_dataset("builtin:digits").train.x[:300]
    cache = LogitCache(tmp_path)
    first = cache.get(teacher, x)
    assert (cache.stats.misses, cache.stats.hits) == (1, 0)
    second = LogitCache(tmp_path).get(teacher, x)  # a fresh process would see the same files
    assert torch.equal(first, second)
    again = LogitCache(tmp_path)
    again.get(teacher, x)
    assert again.stats.hits == 1 and again.stats.misses == 0
    # Different data -> different key -> recomputed.
    other = LogitCache(tmp_path)
    other.get(teacher, x[:100])
    assert other.stats.misses == 1
    # stored float16 relative to each row's maximum (teachers.logit_store): within float16's relative error of that
    ref = teacher.logits(x).numpy()
    spread = np.abs(ref - ref.max(axis=1, keepdims=True))
    assert np.all(np.abs(first.numpy() - ref) <= spread * 2.0 ** -11 + 1e-5)
