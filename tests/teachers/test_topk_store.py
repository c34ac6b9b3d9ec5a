"""The top-k teacher cache for many classes (teachers/topk_store.py) against float32 full logits: the soft targets
over the k + 1 outcomes within the stated bound at every stored temperature, the coarsened KD loss a lower bound of
the full one and equal to it at k = K, and its size."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgedistill.distill.lm_losses import TopKLogits, top_k_kd
from edgedistill.teachers.topk_store import decode_topk, encode_topk, topk_bound, topk_bytes

TEMPERATURES = (1.0, 2.0, 4.0, 8.0)


def _logits(n=64, classes=1000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, classes)).astype(np.float32) + 40.0  # an offset, as real logits have
    z[np.arange(n), rng.integers(0, classes, n)] += 12.0  # a confident class per row
    return z


def _cached(z, k):
    return TopKLogits(*map(torch.from_numpy, decode_topk(encode_topk(z, k, TEMPERATURES), TEMPERATURES)),
                      TEMPERATURES)


@pytest.mark.parametrize("k", [1, 8, 32])
def test_soft_targets_over_k_plus_one_outcomes_match_float32_within_the_bound(k):
    z = _logits()
    top = _cached(z, k)
    for t in TEMPERATURES:
        p_full = torch.softmax(torch.from_numpy(z).double() / t, 1)  # the independent reference, all K classes
        want_top = p_full.gather(1, top.indices)
        want_tail = 1.0 - want_top.sum(1)
        norm = torch.logsumexp(torch.cat([top.values.double() / t, top.tail_at(t).double()[:, None]], 1), 1)
        got_top = (top.values.double() / t - norm[:, None]).exp()
        got_tail = (top.tail_at(t).double() - norm).exp()
        err = max(float((got_top - want_top).abs().max()), float((got_tail - want_tail).abs().max()))
        assert err <= topk_bound(k), (k, t, err)
        assert torch.equal(top.indices, torch.from_numpy(np.argsort(-z, 1, kind="stable")[:, :k]))


def test_the_coarsened_kd_loss_bounds_the_full_one_and_equals_it_with_every_class():
    z = _logits(n=32, classes=200)
    s = torch.from_numpy(_logits(n=32, classes=200, seed=1))
    for t in TEMPERATURES:
        full = F.kl_div(F.log_softmax(s / t, 1), F.log_softmax(torch.from_numpy(z) / t, 1), log_target=True,
                        reduction="batchmean") * t * t
        part = top_k_kd(s, _cached(z, 16), t)
        every = top_k_kd(s, _cached(z, 200), t)  # k = K: the tail is empty (-inf)
        assert float(part) <= float(full) * (1 + 1e-3)  # merging classes cannot increase a KL divergence
        assert abs(float(every) - float(full)) <= 2e-3 * float(full)
        assert float(part) > 0.2 * float(full)  # and it still carries most of the signal here


def test_an_unstored_temperature_is_refused_not_guessed():
    with pytest.raises(ValueError, match="not T = 3"):
        _cached(_logits(n=4, classes=50), 5).tail_at(3.0)


def test_the_store_is_a_fraction_of_the_full_cache():
    assert topk_bytes(1000, 32, 4) == 4 + 32 * 2 + 32 * 2 + 4 * 4 == 148
    assert encode_topk(_logits(n=10), 32, TEMPERATURES).nbytes == 10 * 148
    assert topk_bytes(100_000, 32, 4) == 4 + 32 * 2 + 32 * 4 + 16  # int32 indices past 65,536 classes
