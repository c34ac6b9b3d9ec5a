"""The float64 requantization (quantize/requant_f64.py) computes the integers of quantize/mcu.py's int64 forms, bit
for bit, and QAT trains the same numbers with it as with the int64 forms alone."""

import numpy as np
import pytest
import torch

from edgedistill.quantize import calibrate, mcu, requant_f64, to_quant_student
from edgedistill.students.text_families import textcnn, transformer

ROUNDINGS = tuple(requant_f64.MULTIPLY_F64)


def _multipliers(seed: int, channels: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    real = np.exp(np.random.default_rng(seed).uniform(np.log(1e-4), np.log(3.0), channels))
    m0, shift = mcu.quantize_multiplier(real)
    return torch.from_numpy(m0), torch.from_numpy(shift)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_float64_forms_equal_the_int64_forms_wherever_the_guard_admits_them(rounding):
    g = torch.Generator().manual_seed(0)
    compared = 0
    for seed in range(120):
        m0, shift = _multipliers(seed)
        offset = int(torch.randint(-128, 128, (1,), generator=g))
        bound = 2 ** 31 - 1
        while bound > 1 and not requant_f64.fits(bound, m0, shift, offset):
            bound //= 2
        if bound <= 1 or (rounding == "single" and int(shift.max()) > 30):
            continue
        acc = torch.randint(-bound, bound + 1, (1000, m0.numel()), generator=g)
        acc[:100] = torch.randint(-600, 600, (100, m0.numel()), generator=g)  # small ones: many ties
        want = mcu.MULTIPLY[rounding](acc, m0, shift) + offset
        assert torch.equal(requant_f64.MULTIPLY_F64[rounding](acc.double(), m0, shift, offset), want.double()), seed
        compared += 1
    assert compared > 100
    # every accumulator of a range, each shift: all the ties of the rounding shifts, both signs
    acc = torch.arange(-40000, 40000)[:, None]
    for shift in range(-14, 3):  # e <= 14: the guard admits offsets up to 128 (module doc)
        for m0 in (1 << 30, (1 << 30) + 1, (1 << 31) - 1):
            m0_t, shift_t = torch.tensor([m0]), torch.tensor([shift])
            assert requant_f64.fits(40000, m0_t, shift_t, -128)
            want = mcu.MULTIPLY[rounding](acc, m0_t, shift_t) - 128
            got = requant_f64.MULTIPLY_F64[rounding](acc.double(), m0_t, shift_t, -128)
            assert torch.equal(got, want.double()), (shift, m0)


def test_the_guard_refuses_sums_float64_cannot_hold_and_the_int64_form_takes_them():
    m0, shift = torch.tensor([(1 << 31) - 1]), torch.tensor([0])
    assert not requant_f64.fits(2.0 ** 23, m0, shift)  # 2^23 · 2^31 > 2^53
    acc = torch.tensor([[2 ** 30 + 12345.0]]).double()  # an accumulator beyond the guard, given as float
    s_w = torch.tensor([0.5])
    got = mcu.requantize_tflm(acc, 1.0, s_w, 2.0 ** 31, 0, "none", "linear", channel_dim=1)
    want = mcu.requantize_tflm(acc.long(), 1.0, s_w, 2.0 ** 31, 0, "none", "linear", channel_dim=1)
    assert torch.equal(got, want)


def _qat_state(family, rounding: str) -> dict:
    """A few QAT steps (Adam, tracked ranges) of a tiny text student; its final state."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    student = family((12,), 3, 16, 1, vocab_size=40).eval()
    ids = torch.randint(1, 40, (48, 12), generator=g, dtype=torch.int32)
    ids[::3, 8:] = 0  # padding: the attention mask's path
    labels = torch.randint(0, 3, (48,), generator=g)
    q = calibrate(to_quant_student(student, rounding=rounding), ids[:32])
    q.set_tracking(True)
    opt = torch.optim.Adam(q.parameters(), 1e-2)
    q.train()
    for step in range(4):
        batch = slice(12 * step, 12 * step + 12)
        loss = torch.nn.functional.cross_entropy(q(ids[batch]), labels[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.clone() for k, v in q.state_dict().items()}


@pytest.mark.parametrize("family", [transformer, textcnn], ids=["transformer", "textcnn"])
@pytest.mark.parametrize("rounding", ["tflm", "reference", "xnnpack"])
def test_qat_trains_bit_identical_numbers_with_and_without_the_float64_forms(family, rounding, monkeypatch):
    torch.set_num_threads(1)
    fast = _qat_state(family, rounding)
    monkeypatch.setattr(requant_f64, "fits", lambda *args, **kwargs: False)  # every requantization in int64
    slow = _qat_state(family, rounding)
    assert fast.keys() == slow.keys()
    for k in fast:
        assert torch.equal(fast[k], slow[k]), k


def test_litert_reference_fully_connected_rounds_at_the_float64_multiplier():
    """A FULLY_CONNECTED output LiteRT's reference kernels wrote on a trained decoder (2026-12-07): its real value
    acc · M lies 4.7e-9 above a tie, so rounding at the 31-bit fixed-point multiplier m0 · 2^(shift − 31) gives
    one code less than LiteRT's 121 − 128 = −7; REFERENCE_ROUNDING rounds at M itself (mcu.py)."""
    import numpy as np

    s_in, s_w, s_out = np.float32(0.03172672), np.float32(0.0013425432), np.float32(0.019923972)
    acc = torch.tensor([[56365.0]])
    code = mcu.requantize_tflm(acc, float(s_in), torch.tensor([s_w]), float(s_out), -128, "relu", "linear",
                               rounding=mcu.REFERENCE_ROUNDING)
    assert code.item() == -7
    single = mcu.requantize_tflm(acc, float(s_in), torch.tensor([s_w]), float(s_out), -128, "relu", "linear",
                                 rounding={**mcu.KERNEL_ROUNDING, "linear": "single"})
    assert single.item() == -8  # the fixed-point single rounding this replaced
