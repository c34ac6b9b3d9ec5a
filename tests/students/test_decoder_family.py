"""The `decoder` student: ids N×L -> logits N×L×V with tied embeddings, causal in float and in its int8 graph, and
the causal mask's headroom: without it a masked key keeps an int8 probability and later tokens leak into earlier
logits (measured on the QAT model computing TFLite Micro's integers, before any file is written)."""

import pytest
import torch

from edgedistill.errors import ConfigError
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.quantize.attention_ops import Attention
from edgedistill.students import STUDENT_FAMILIES, StudentArch, build_student
from edgedistill.students.decoder_family import decoder

V, L = 40, 10


def _later_tokens_changed(ids, t, seed):
    out = ids.clone()
    g = torch.Generator().manual_seed(seed)
    out[:, t + 1:] = torch.randint(1, V, out[:, t + 1:].shape, generator=g, dtype=ids.dtype)
    return out


def _max_leak(model, ids):
    """Largest change of a logit at positions <= t when every token after t changes, over all t."""
    with torch.no_grad():
        base = model(ids)
        return max(float((model(_later_tokens_changed(ids, t, t))[:, :t + 1] - base[:, :t + 1]).abs().max())
                   for t in range(L - 1))


def test_decoder_shapes_tied_embeddings_and_parameter_count():
    torch.manual_seed(0)
    m = build_student(StudentArch("decoder", 32, 2), (L,), V, None, vocab_size=V).eval()
    assert "decoder" in STUDENT_FAMILIES
    ids = torch.randint(1, V, (3, L), dtype=torch.int32)
    assert m(ids).shape == (3, L, V)
    assert m.head.weight is m.embed.weight
    w, f = 32, 4 * 32
    layer = 4 * (w * w + w) + 2 * 2 * w + (w * f + f) + (f * w + w)  # q k v out, two LayerNorms, feed-forward
    assert sum(p.numel() for p in m.parameters()) == V * w + L * w + 2 * layer + 2 * w  # tied: the table once


def test_float_decoder_is_causal_and_reads_earlier_tokens():
    torch.manual_seed(0)
    m = decoder((L,), V, 32, 2, V, heads=2).eval()
    ids = torch.randint(1, V, (8, L), dtype=torch.int32)
    assert _max_leak(m, ids) == 0.0
    with torch.no_grad():  # it is not blind either: an earlier token changes later logits
        changed = ids.clone()
        changed[:, 0] = (changed[:, 0] % (V - 1)) + 1
        assert float((m(changed)[:, 1:] - m(ids)[:, 1:]).abs().max()) > 1e-4


@pytest.mark.parametrize("headroom", [True, False])
def test_int8_graph_is_causal_only_with_the_mask_headroom(headroom):
    torch.manual_seed(0)
    # at initialisation every score lies near 0, so the grid's lowest value (the masked score) is close to each
    # row's maximum: the hard case for the mask
    m = decoder((L,), V, 32, 1, V, heads=2).eval()
    ids = torch.randint(1, V, (16, L), dtype=torch.int32)
    q = to_quant_student(m, rounding="tflm")
    attn = [op for op in q.modules() if isinstance(op, Attention)]
    assert attn and all(op.future is not None for op in attn)
    if not headroom:
        for op in attn:
            op.scores.out_q.headroom_below = 0.0
    calibrate(q, ids)
    leak = _max_leak(q, ids)
    if headroom:
        assert leak == 0.0
    else:
        assert leak > 0.0  # the reason for the headroom: masked keys keep a probability code above zero


def test_decoder_refuses_classification_and_bad_shapes():
    with pytest.raises(ConfigError, match="causal language model"):
        build_student(StudentArch("decoder", 32, 1), (L,), 4, None, vocab_size=V)
    with pytest.raises(ConfigError, match="L >= 2"):
        decoder((1,), V, 32, 1, V)
    with pytest.raises(ConfigError, match="multiple of its 3 heads"):
        decoder((L,), V, 32, 1, V, heads=3)
