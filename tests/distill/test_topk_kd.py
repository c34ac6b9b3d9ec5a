"""The classifier's KD loss from a top-k teacher cache (distill/topk_table.py, distill/losses.TOPK_SOFT_LOSSES)
against float32 full logits: equal to the full KD loss with k = K; with k < K its soft targets within the store's
stated bound, and its gradient the full KD gradient against the teacher's distribution with the rest shared as the
student shares it (teacher and student normalised over the same k + 1 outcomes; a teacher renormalised over its k
classes alone, the known top-k bug, fails that check). Rows read from a memory-mapped file with pread."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgedistill.distill.losses import distillation_objective
from edgedistill.distill.topk_table import TopKTable
from edgedistill.errors import ConfigError
from edgedistill.teachers.topk_store import encode_topk, topk_bound

TEMPERATURES = (1.0, 2.0, 4.0, 8.0)


def _logits(n, classes, seed, spread=3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, spread, (n, classes)).astype(np.float32) + 25.0
    z[np.arange(n), rng.integers(0, classes, n)] += 8.0
    return z


def _table(tmp_path, z, k):
    """The records written to a file and read back memory-mapped, as the cache does."""
    path = tmp_path / f"top{k}.npy"
    np.save(path, encode_topk(z, k, TEMPERATURES))
    return TopKTable(np.load(path, mmap_mode="r"), TEMPERATURES)


@pytest.mark.parametrize("alpha", [1.0, 0.7])
@pytest.mark.parametrize("t", TEMPERATURES)
def test_with_every_class_the_top_k_loss_is_the_full_kd_loss(tmp_path, t, alpha):
    z, classes = _logits(48, 40, 0), 40
    table = _table(tmp_path, z, classes)
    idx = torch.tensor([5, 0, 47, 3, 3, 20])
    y = torch.tensor([1, -1, 7, 39, 0, 2])  # one unlabelled sample: soft term only for it
    s = torch.from_numpy(_logits(6, classes, 1, spread=2.0)).requires_grad_(True)  # float32, as trained
    batch = table.at(t)[idx]
    got = distillation_objective(s, batch, y, "kd", t, alpha)
    (g_got,) = torch.autograd.grad(got, s)
    # the loss formula alone: full KD on the very logits the store holds (k = K: all of them), to float tolerance
    held = torch.zeros(len(idx), classes).scatter(1, batch.indices, batch.values)
    same = distillation_objective(s, held, y, "kd", t, alpha)
    (g_same,) = torch.autograd.grad(same, s)
    assert abs(got.item() - same.item()) <= 1e-5 * max(1.0, abs(same.item()))
    assert torch.allclose(g_got, g_same, atol=1e-6) and torch.isfinite(g_got).all()
    # and against float32 logits: the storage error only, within the bound ((q - p) T / N per logit, α of it soft)
    want = distillation_objective(s, torch.from_numpy(z)[idx], y, "kd", t, alpha)
    (g_want,) = torch.autograd.grad(want, s)
    assert float((g_got - g_want).abs().max()) <= t * topk_bound(classes) / len(idx)
    assert abs(got.item() - want.item()) <= 1e-3 * abs(want.item())


@pytest.mark.parametrize("k", [4, 32])
def test_below_every_class_the_soft_targets_are_within_the_bound_and_the_gradient_is_the_coarsened_one(tmp_path, k):
    classes = 500
    z = _logits(64, classes, 2)
    table = _table(tmp_path, z, k)
    idx = torch.randperm(64, generator=torch.Generator().manual_seed(0))[:16]
    s = torch.from_numpy(_logits(16, classes, 3, spread=2.0)).double().requires_grad_(True)
    for t in TEMPERATURES:
        batch = table.at(t)[idx]
        p_full = torch.softmax(torch.from_numpy(z[idx.numpy()]).double() / t, 1)  # the independent reference
        norm = torch.logsumexp(torch.cat([batch.values.double() / t, batch.tail_at(t).double()[:, None]], 1), 1)
        p_top = (batch.values.double() / t - norm[:, None]).exp()
        err = max(float((p_top - p_full.gather(1, batch.indices)).abs().max()),
                  float(((batch.tail_at(t).double() - norm).exp() - (1 - p_full.gather(1, batch.indices).sum(1)))
                        .abs().max()))
        assert err <= topk_bound(k), (t, err)

        loss = distillation_objective(s, batch, None, "kd", t, 1.0)
        (grad,) = torch.autograd.grad(loss, s)
        # Reference: full KD against the teacher's float32 distribution over its top k, its rest mass shared among
        # the other classes as the student shares it (detached): the same k + 1 outcome probabilities on both sides
        q = torch.softmax(s.detach() / t, 1)
        rest = torch.ones_like(q, dtype=torch.bool).scatter(1, batch.indices, False)
        q_rest = (q * rest).sum(1, keepdim=True)
        p = torch.where(rest, q / q_rest * (1 - p_full.gather(1, batch.indices).sum(1, keepdim=True)), p_full)
        ref = F.kl_div(F.log_softmax(s / t, 1), p, reduction="batchmean") * t * t
        (g_ref,) = torch.autograd.grad(ref, s)
        assert abs(loss.item() - ref.item()) <= 1e-3 * ref.item(), t
        assert float((grad - g_ref).abs().max()) <= t * topk_bound(k) / len(idx), t  # (q − p) T / N, p within bound
        # the known bug, a teacher renormalised over its k classes, is told apart by this check
        bug = torch.zeros_like(p).scatter(1, batch.indices, torch.softmax(batch.values.double() / t, 1))
        (g_bug,) = torch.autograd.grad(F.kl_div(F.log_softmax(s / t, 1), bug, reduction="batchmean") * t * t, s)
        assert float((g_bug - g_ref).abs().max()) > 10 * t * topk_bound(k) / len(idx), t


def test_an_unstored_temperature_is_refused_in_one_paragraph(tmp_path):
    table = _table(tmp_path, _logits(4, 300, 4), 32)
    with pytest.raises(ConfigError, match=r"T = 1, 2, 4, 8 only.*T = 3"):
        table.at(3.0)


def test_subset_top1_and_tail_mass_against_float32(tmp_path):
    z = _logits(40, 300, 5)
    table = _table(tmp_path, z, 8)
    assert torch.equal(table.top1(), torch.from_numpy(z.argmax(1)))
    sub = table.subset(torch.tensor([3, 1]))
    assert len(sub) == 2 and torch.equal(sub[torch.tensor([0, 1])].indices, table[torch.tensor([3, 1])].indices)
    for t in TEMPERATURES:
        p = torch.softmax(torch.from_numpy(z).double() / t, 1)
        want = float((1 - p.topk(8, 1).values.sum(1)).mean())
        assert abs(table.tail_mass()[f"T={t:g}"] - want) <= topk_bound(8)
