"""Text students: the families build for token ids, the attention mask hides padded keys, and the int8 graph of
each family computes the float model (before training, up to rounding)."""

import pytest
import torch

from edgedistill.distill.trainer import predict_logits
from edgedistill.errors import ConfigError
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students import StudentArch, build_student
from edgedistill.students.layers import MaskedSelfAttention


@pytest.mark.parametrize("family", ["textcnn", "bow", "transformer"])
def test_text_families_take_token_ids_and_track_their_int8_graph(family):
    torch.manual_seed(0)
    m = build_student(StudentArch(family, 32, 2), (20,), 4, None, vocab_size=100).eval()
    x = torch.randint(1, 100, (128, 20), dtype=torch.int32)
    x[::3, 12:] = 0
    assert m(x).shape == (128, 4)
    q = calibrate(to_quant_student(m), x)
    assert q.index_input
    agree = (predict_logits(q, x).argmax(1) == predict_logits(m, x).argmax(1)).float().mean()
    assert agree >= 0.9, agree


def test_array_families_refuse_token_ids_and_text_families_refuse_arrays():
    with pytest.raises(ConfigError, match="does not read token ids"):
        build_student(StudentArch("cnn", 8, 2), (20,), 4, None, vocab_size=100)
    from edgedistill.data import Normalizer

    with pytest.raises(ConfigError, match="reads token ids"):
        build_student(StudentArch("textcnn", 8, 2), (20,), 4, Normalizer([0.0] * 20, [1.0] * 20, "feature"))


def test_padded_keys_get_no_attention():
    """Whatever the token states at padded positions hold, the outputs at the real positions do not change."""
    torch.manual_seed(0)
    attn = MaskedSelfAttention(16, 2).eval()
    ids = torch.tensor([[5, 7, 9, 0, 0, 0]])
    x = torch.randn(1, 6, 16)
    y = attn(x, ids)
    x2 = x.clone()
    x2[:, 3:] = torch.randn(1, 3, 16) * 10
    torch.testing.assert_close(attn(x2, ids)[:, :3], y[:, :3])
    ids_all = torch.tensor([[5, 7, 9, 4, 4, 4]])  # the same states as real tokens do change them
    assert not torch.allclose(attn(x2, ids_all)[:, :3], y[:, :3])


def test_an_input_of_padding_only_attends_uniformly_in_float_as_in_int8():
    """Every key padded: the float attention is finite (it was NaN: softmax over -inf only), the uniform average of
    the values, which is what the int8 graph computes there (every score on its grid's lowest code); and a
    transformer student's QAT model agrees with its float one on such an input."""
    torch.manual_seed(0)
    attn = MaskedSelfAttention(16, 2).eval()
    x, ids = torch.randn(1, 6, 16), torch.zeros(1, 6, dtype=torch.int32)
    with torch.no_grad():
        y = attn(x, ids)
        torch.testing.assert_close(y, attn.out(attn.v(x).mean(1, keepdim=True)).expand_as(y))
    m = build_student(StudentArch("transformer", 32, 2), (20,), 4, None, vocab_size=100).eval()
    x = torch.randint(1, 100, (64, 20), dtype=torch.int32)
    x[::4] = 0  # every fourth input padding only, in calibration too
    q = calibrate(to_quant_student(m), x)
    float_logits, int8_logits = predict_logits(m, x[::4]), predict_logits(q, x[::4])
    assert torch.isfinite(float_logits).all() and torch.isfinite(int8_logits).all()
    torch.testing.assert_close(int8_logits, float_logits, atol=0.15, rtol=0.0)


def test_a_transformer_over_one_token_is_refused():
    """Before: --max-length 1 trained and exported a transformer whose file TFLite Micro could not load (ONE_HOT)."""
    with pytest.raises(ConfigError, match="at least 2 tokens"):
        build_student(StudentArch("transformer", 32, 1), (1,), 3, None, vocab_size=257)
    assert build_student(StudentArch("textcnn", 8, 1), (1,), 3, None, vocab_size=257) is not None
