"""The codes an int8 op keeps for the ops that read its output (ActQuant.remember_codes / cached_codes) are the
integers those ops would compute by dividing and rounding, and QAT trains the same numbers with them as without."""

import pytest
import torch

from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.fake import ActQuant
from edgedistill.students.text_families import textcnn, transformer


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 40, (48, 12), generator=g, dtype=torch.int32)
    ids[::3, 8:] = 0  # padding: the attention mask's path
    return ids, torch.randint(0, 3, (48,), generator=g)


def _quant(family, rounding: str, heads_width: int = 16):
    torch.manual_seed(0)
    student = family((12,), 3, heads_width, 1, vocab_size=40).eval()
    ids, labels = _data()
    q = calibrate(to_quant_student(student, rounding=rounding), ids[:32])
    q.set_tracking(True)
    return q.train(), ids, labels


def _qat_state(family, rounding: str) -> dict:
    """A few QAT steps (Adam, tracked ranges: grids move between steps) of a tiny text student; its final state."""
    q, ids, labels = _quant(family, rounding)
    opt = torch.optim.Adam(q.parameters(), 1e-2)
    for step in range(4):
        batch = slice(12 * step, 12 * step + 12)
        loss = torch.nn.functional.cross_entropy(q(ids[batch]), labels[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.clone() for k, v in q.state_dict().items()}


@pytest.mark.parametrize("family", [transformer, textcnn], ids=["transformer", "textcnn"])
@pytest.mark.parametrize("rounding", ["tflm", "reference", "xnnpack"])
def test_qat_trains_bit_identical_numbers_with_and_without_kept_codes(family, rounding, monkeypatch):
    torch.set_num_threads(1)
    kept = _qat_state(family, rounding)
    monkeypatch.setattr(ActQuant, "cached_codes", lambda self, x: None)  # every op divides and rounds again
    recomputed = _qat_state(family, rounding)
    assert kept.keys() == recomputed.keys()
    for k in kept:
        assert torch.equal(kept[k], recomputed[k]), k


@pytest.mark.parametrize("rounding", ["tflm", "xnnpack"])
def test_every_kept_code_is_the_rounded_value_on_its_grid_and_is_read(rounding, monkeypatch):
    q, ids, labels = _quant(transformer, rounding)
    kept, read = [], []
    remember, cached = ActQuant.remember_codes, ActQuant.cached_codes

    def spy_remember(self, value, codes):
        kept.append((value.detach().clone(), float(self.scale), codes.clone()))
        remember(self, value, codes)

    def spy_cached(self, x):
        got = cached(self, x)
        read.append(got is not None)
        return got
    monkeypatch.setattr(ActQuant, "remember_codes", spy_remember)
    monkeypatch.setattr(ActQuant, "cached_codes", spy_cached)
    torch.nn.functional.cross_entropy(q(ids), labels).backward()
    # QLayer, Binary, MatMul, Softmax outputs and the attention's moved views of them
    assert len(kept) > 20
    for value, scale, codes in kept:
        assert codes.dtype == torch.float32
        assert torch.equal(codes, torch.round(value / scale))
    assert sum(read) > 20 and not all(read)  # read where kept; LayerNorm's constants and RSQRT input are not


def test_cached_codes_answer_only_for_the_value_they_were_kept_for_on_its_scale():
    q = ActQuant()
    q.scale.fill_(0.5)
    value = torch.tensor([1.0, -2.5])
    codes = torch.tensor([2.0, -5.0])
    q.remember_codes(value, codes)
    assert q.cached_codes(value) is codes
    assert q.cached_codes(value.clone()) is None  # equal numbers, another tensor
    q.scale.fill_(0.25)  # the grid moved since: the codes are stale
    assert q.cached_codes(value) is None
    q.scale.fill_(0.5)
    del value  # held weakly: a later tensor at the same address is not mistaken for it
    assert q.cached_codes(torch.tensor([1.0, -2.5])) is None
    assert q.code_bound() == 128
    q.zero_point.fill_(-128)
    assert q.code_bound() == 255
