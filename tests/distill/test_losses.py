"""Losses against independent references: Hinton et al. 2015, eq. 2 and eq. 4, and written-out formulas."""

import math

import pytest
import torch

from edgedistill.distill.losses import SOFT_LOSSES, distillation_objective, hinton_kd, logit_mse


def _grad_wrt_student(s, t, temperature):
    s = s.clone().requires_grad_(True)
    hinton_kd(s, t, temperature).backward()
    return s.grad


@pytest.mark.parametrize("T", [1.0, 2.0, 5.0])
def test_kd_gradient_is_q_minus_p_over_T_before_T2(T):
    """Eq. 2: dC/dz_i = (q_i - p_i) / T, with q the student's and p the teacher's softened distribution."""
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(1, 7, generator=g) * 3, torch.randn(1, 7, generator=g) * 3
    q, p = torch.softmax(s / T, 1), torch.softmax(t / T, 1)
    grad = _grad_wrt_student(s, t, T) / (T * T)  # remove the T² factor
    torch.testing.assert_close(grad, (q - p) / T, atol=1e-6, rtol=1e-5)


def test_kd_high_temperature_limit_is_logit_matching():
    """Eq. 4: for large T and zero-mean logits, dC/dz_i ≈ (z_i - v_i) / (N T²)."""
    g = torch.Generator().manual_seed(2)
    N = 10
    s = torch.randn(1, N, generator=g, dtype=torch.float64)
    t = torch.randn(1, N, generator=g, dtype=torch.float64)
    s, t = s - s.mean(), t - t.mean()
    errors = []
    for T in (10.0, 100.0, 1000.0):
        grad = _grad_wrt_student(s, t, T) / (T * T)
        expected = (s - t) / (N * T * T)
        errors.append(float((grad - expected).abs().max() / expected.abs().max()))
    assert errors[1] < 0.03 and errors[2] < 0.003  # error is O(1/T) relative to the gradient's scale
    assert errors[0] > errors[1] > errors[2]


def test_T2_scaling_keeps_soft_gradient_magnitude_across_T():
    """Without T² the soft gradient shrinks like 1/T²; with it, it stays within a small factor."""
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(64, 10, generator=g), torch.randn(64, 10, generator=g)
    norms = {T: float(_grad_wrt_student(s, t, T).norm()) for T in (2.0, 4.0, 8.0, 16.0)}
    assert max(norms.values()) / min(norms.values()) < 1.6
    raw = {T: n / (T * T) for T, n in norms.items()}
    assert raw[2.0] / raw[16.0] > 30  # the unscaled term really does collapse


def test_kd_value_matches_written_out_kl():
    g = torch.Generator().manual_seed(4)
    s, t, T = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), 3.0
    p, q = torch.softmax(t / T, 1), torch.softmax(s / T, 1)
    expected = T * T * (p * (p.log() - q.log())).sum(1).mean()
    torch.testing.assert_close(hinton_kd(s, t, T), expected)
    assert float(hinton_kd(t, t, T)) == pytest.approx(0.0, abs=1e-6)


def test_logit_mse_formula():
    s, t = torch.tensor([[1.0, 2.0], [0.0, -1.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert float(logit_mse(s, t)) == pytest.approx((1 + 4 + 1 + 4) / 4)


def test_objective_mixes_soft_and_hard_by_alpha():
    g = torch.Generator().manual_seed(5)
    s, t, y = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ce = torch.nn.functional.cross_entropy(s, y)
    kd = hinton_kd(s, t, 2.0)
    torch.testing.assert_close(distillation_objective(s, t, y, "kd", 2.0, 0.3), 0.3 * kd + 0.7 * ce)
    torch.testing.assert_close(distillation_objective(s, None, y, "kd", 2.0, 0.3), ce)  # the no-teacher twin
    torch.testing.assert_close(distillation_objective(s, t, None, "kd", 2.0, 0.3), kd)  # unlabeled: soft only


@pytest.mark.parametrize("name", SOFT_LOSSES.names())
def test_every_registered_loss_is_zero_at_agreement_and_positive_otherwise(name):
    fn = SOFT_LOSSES.get(name)
    z = torch.randn(4, 5)
    assert float(fn(z, z, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(fn(z, z.flip(1) * 2, 2.0)) > 1e-3
    assert math.isfinite(float(fn(z * 100, -z * 100, 1.0)))


def test_dkd_parts_recompose_classical_kd():
    """Zhao et al.'s identity: KD = TCKD + (1 − p_t) · NCKD, per sample (T² aside)."""
    from edgedistill.distill.losses import dkd_parts

    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(16, 7, generator=g) * 3, torch.randn(16, 7, generator=g) * 3
    y = torch.randint(0, 7, (16,), generator=g)
    for temp in (1.0, 4.0):
        tckd, nckd = dkd_parts(s, t, temp, y)
        p_target = torch.softmax(t / temp, 1).gather(1, y[:, None])[:, 0]
        kd = torch.nn.functional.kl_div(torch.log_softmax(s / temp, 1), torch.log_softmax(t / temp, 1),
                                        reduction="none", log_target=True).sum(1)
        torch.testing.assert_close(tckd + (1 - p_target) * nckd, kd, rtol=1e-4, atol=1e-5)


def test_standardized_kd_ignores_the_students_logit_scale_and_shift():
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    base = SOFT_LOSSES.get("kd-std")(s, t, 2.0)
    torch.testing.assert_close(SOFT_LOSSES.get("kd-std")(3.0 * s + 1.5, t, 2.0), base, rtol=1e-4, atol=1e-5)
    assert float(hinton_kd(3.0 * s + 1.5, t, 2.0)) != pytest.approx(float(hinton_kd(s, t, 2.0)), rel=1e-3)


def test_objective_takes_mixup_soft_labels():
    g = torch.Generator().manual_seed(6)
    s, t = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 0.8], [0.5, 0.5, 0.0]])
    ce = -(soft * torch.log_softmax(s, 1)).sum(1).mean()
    torch.testing.assert_close(distillation_objective(s, None, soft, "kd", 2.0, 0.5), ce)
    dkd = SOFT_LOSSES.get("dkd")(s, t, 2.0, soft.argmax(1))
    torch.testing.assert_close(distillation_objective(s, t, soft, "dkd", 2.0, 0.5), 0.5 * dkd + 0.5 * ce)
