"""QAT of the causal decoder with the token-level KD objective: the int8 graph trains (its loss falls) with its
activation ranges following the training, and stays causal afterwards in TFLite Micro's integer arithmetic: the
causal mask's headroom survives range tracking (quantize/fake.py re-derives the grid with it)."""

import torch

from edgedistill.distill.lm_losses import token_kd_objective, top_k_logits
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students.decoder_family import decoder

V, L = 32, 8


def _sequences(n, g):
    start = torch.randint(1, V, (n, 1), generator=g)
    return ((start + torch.arange(L + 1)) % (V - 1) + 1).int()


def test_decoder_qat_lowers_the_kd_objective_and_stays_causal():
    torch.set_num_threads(1)  # tiny steps: one thread is fastest beside other jobs (conftest restores the count)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    teacher = decoder((L,), V, 32, 1, V, heads=2).eval()
    student = decoder((L,), V, 16, 1, V, heads=1).eval()
    calib = _sequences(64, g)[:, :-1]
    q = calibrate(to_quant_student(student, rounding="tflm"), calib)
    q.set_tracking(True)
    opt = torch.optim.Adam(q.parameters(), 1e-2)
    batch = _sequences(32, g)
    ids, targets = batch[:, :-1], batch[:, 1:].long()
    with torch.no_grad():
        soft = top_k_logits(teacher(ids), 8, (2.0,))
    losses = []
    q.train()
    for _ in range(30):
        loss = token_kd_objective(q(ids), targets, soft, 2.0, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    q.set_tracking(False)
    q.eval()
    assert losses[-1] < 0.85 * losses[0], losses
    with torch.no_grad():
        base = q(ids)
        for t in range(L - 1):
            later = ids.clone()
            later[:, t + 1:] = torch.randint(1, V, later[:, t + 1:].shape, generator=g, dtype=ids.dtype)
            assert float((q(later)[:, :t + 1] - base[:, :t + 1]).abs().max()) == 0.0, t
