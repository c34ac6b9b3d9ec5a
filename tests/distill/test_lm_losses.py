"""Token-level KD from top-k logits, against independent references: with k = V it is the classifier KD loss
(Hinton et al. 2015, `hinton_kd`) over every position; with k < V it is the KL of the two distributions coarsened to
the teacher's top k and one "rest" bucket, written out here in float64 from the full teacher logits."""

import math

import pytest
import torch
import torch.nn.functional as F

from edgedistill.distill.lm_losses import (IGNORE, TOKEN_LOSSES, next_token_ce, token_kd_objective, top_k_kd,
                                           top_k_logits)
from edgedistill.distill.losses import hinton_kd

TEMPS = (1.0, 2.0, 4.0)


def _logits(seed, n=3, length=5, vocab=11):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, length, vocab, generator=g) * 3, torch.randn(n, length, vocab, generator=g) * 3


@pytest.mark.parametrize("T", TEMPS)
def test_k_equal_to_the_vocabulary_is_the_full_softmax_kd_loss(T):
    s, t = _logits(0)
    teacher = top_k_logits(t, s.shape[-1], TEMPS)
    assert torch.isinf(teacher.tail).all()
    expected = hinton_kd(s.reshape(-1, 11), t.reshape(-1, 11), T)  # batchmean over positions, T² scaled
    torch.testing.assert_close(top_k_kd(s, teacher, T), expected, atol=1e-5, rtol=1e-5)
    # the gradient too: Hinton's eq. 2, (q - p) / T, times T², averaged over the positions
    s1 = s.clone().requires_grad_(True)
    top_k_kd(s1, teacher, T).backward()
    q, p = torch.softmax(s / T, -1), torch.softmax(t / T, -1)
    torch.testing.assert_close(s1.grad, (q - p) * T / (3 * 5), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_k_is_the_kl_of_the_coarsened_distributions(k):
    s, t = _logits(1)
    T = 2.0
    p = torch.softmax(t.double() / T, -1)
    q = torch.softmax(s.double() / T, -1)
    expected = 0.0
    for n in range(3):
        for pos in range(5):
            top = t[n, pos].argsort(descending=True)[:k]
            rest = [j for j in range(11) if j not in set(top.tolist())]
            kl = sum(float(p[n, pos, j] * math.log(p[n, pos, j] / q[n, pos, j])) for j in top)
            pr, qr = float(p[n, pos, rest].sum()), float(q[n, pos, rest].sum())
            expected += kl + pr * math.log(pr / qr)
    expected = expected / 15 * T * T
    got = top_k_kd(s, top_k_logits(t, k, TEMPS), T)
    assert float(got) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    full = hinton_kd(s.reshape(-1, 11), t.reshape(-1, 11), T)
    assert float(got) <= float(full) + 1e-6  # coarsening never increases a KL


def test_objective_mixes_kd_and_next_token_ce_over_positions_with_a_target():
    s, t = _logits(2)
    targets = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(3))
    targets[0, 3:] = IGNORE
    targets[2, 1:] = IGNORE
    keep = targets != IGNORE
    teacher = top_k_logits(t, 11, TEMPS)
    objective = TOKEN_LOSSES.get("token-kd")
    ce = F.cross_entropy(s[keep], targets[keep])
    kd = hinton_kd(s[keep], t[keep], 4.0)
    torch.testing.assert_close(next_token_ce(s, targets), ce)
    torch.testing.assert_close(objective(s, targets, teacher, 4.0, 0.7), 0.7 * kd + 0.3 * ce, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(objective(s, targets, None, 4.0, 0.7), ce)  # the no-teacher twin
    # positions without a target do not count: changing their logits changes nothing
    s2 = s.clone()
    s2[~keep] = torch.randn(int((~keep).sum()), 11) * 10
    torch.testing.assert_close(token_kd_objective(s2, targets, teacher, 4.0, 0.7),
                               token_kd_objective(s, targets, teacher, 4.0, 0.7))


def test_a_temperature_the_teacher_pass_did_not_store_is_refused():
    s, t = _logits(4)
    teacher = top_k_logits(t, 4, TEMPS)
    with pytest.raises(ValueError, match="not T = 3"):
        top_k_kd(s, teacher, 3.0)
    assert teacher.bytes_per_position() == 4 * (4 + 8) + 3 * 4
