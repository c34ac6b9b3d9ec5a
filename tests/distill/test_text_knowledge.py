"""Text feature terms: the losses against loop-by-loop references, the student's attention maps against its own
forward, the aligned teacher input against the teacher's own tokenizer, training with each term, and the
refusals (one paragraph, nothing written)."""

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.config import load_config
from edgedistill.distill.text_knowledge import attention_kl, attention_probs, masked_mean, pooled_cosine
from edgedistill.pipeline.inputs import read_inputs
from edgedistill.pipeline.text_features import aligned_encoding, special_tokens, text_features_source
from edgedistill.students.layers import MaskedSelfAttention

pytest.importorskip("transformers")
from tiny_text import save_tiny_bert, write_sentences  # noqa: E402


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("textkd")
    save_tiny_bert(d / "bert", heads=2)
    write_sentences(d / "s.jsonl", n=150)
    return d


def _mask(lengths, length):
    return torch.tensor([[1] * n + [0] * (length - n) for n in lengths])


def test_pooled_cosine_against_a_loop():
    torch.manual_seed(0)
    s, h, mask = torch.randn(3, 5), torch.randn(3, 4, 5), _mask([4, 2, 1], 4)
    ref = []
    for i in range(3):
        t = h[i, : int(mask[i].sum())].mean(0)
        ref.append(1 - float(s[i] @ t) / (float(s[i].norm()) * float(t.norm())))
    assert math.isclose(float(pooled_cosine(s, h, mask)), sum(ref) / 3, rel_tol=1e-5)
    assert torch.allclose(masked_mean(h, mask)[2], h[2, 0])


def _softmax_rows(n, heads, length, mask, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, heads, length, length, generator=g)
    return scores.masked_fill(mask[:, None, None, :] == 0, float("-inf")).softmax(-1)


def _kl_reference(s, t, mask):
    """KL(t || s) per (sample, head, non-padding query) over the non-padding keys, both renormalised there."""
    vals = []
    for i in range(s.shape[0]):
        n = int(mask[i].sum())
        for h in range(s.shape[1]):
            for q in range(n):
                ps, pt = s[i, h, q, :n] / s[i, h, q, :n].sum(), t[i, h, q, :n] / t[i, h, q, :n].sum()
                vals.append(sum(float(a) * math.log(float(a) / float(b)) for a, b in zip(pt, ps) if a > 0))
    return sum(vals) / len(vals)


def test_attention_kl_against_a_loop_equal_and_unequal_heads():
    mask = _mask([5, 3], 5)
    s, t = _softmax_rows(2, 2, 5, mask, 1), _softmax_rows(2, 2, 5, mask, 2)
    assert math.isclose(float(attention_kl(s, t, mask)), _kl_reference(s, t, mask), rel_tol=1e-5)
    t4 = _softmax_rows(2, 4, 5, mask, 3)  # 4 teacher heads, 2 student heads: the heads' mean distributions
    ref = _kl_reference(s.mean(1, keepdim=True), t4.mean(1, keepdim=True), mask)
    assert math.isclose(float(attention_kl(s, t4, mask)), ref, rel_tol=1e-5)
    assert float(attention_kl(s, s, mask)) == pytest.approx(0.0, abs=1e-6)


def test_attention_kl_ignores_padding_and_the_teachers_mass_outside_the_text():
    mask = _mask([4, 2], 6)
    s, t = _softmax_rows(2, 2, 6, mask, 4), _softmax_rows(2, 2, 6, torch.ones(2, 6), 5)  # teacher attends to pads
    base = float(attention_kl(s, t, mask))
    t2 = t.clone()
    t2[1, :, 3:, :] = 0.7  # rows of padded queries, and columns of padded keys, never count
    t2[1, :, :, 2:] = 0.3
    assert float(attention_kl(s, t2, mask)) == pytest.approx(base, rel=1e-6)


def test_student_attention_probs_are_the_ones_its_forward_uses():
    torch.manual_seed(0)
    attn = MaskedSelfAttention(16, 2).eval()
    x, ids = torch.randn(3, 6, 16), torch.tensor([[5, 6, 7, 0, 0, 0], [3, 3, 3, 3, 3, 3], [9, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        p = attention_probs(attn, x, ids)
    assert torch.allclose(p.sum(-1), torch.ones(3, 2, 6)) and float(p[0, :, :, 3:].abs().max()) == 0.0
    ctx = (p @ attn.split(attn.v(x))).transpose(1, 2).reshape(3, 6, 16)
    assert torch.allclose(attn.out(ctx), attn(x, ids), atol=1e-6)


def _vocab_inputs(text_dir, **extra):
    config = load_config(None, {"data": {"source": str(text_dir / "s.jsonl")},
                                "teachers": [{"path": str(text_dir / "bert")}], "student": {"tokenizer": "vocab"},
                                **extra})
    return read_inputs(config)


def test_aligned_teacher_input_is_the_teachers_own_tokenization(text_dir):
    inputs = _vocab_inputs(text_dir)
    teacher, s = inputs.teachers[0], inputs.splits
    ids = s.val.x[:16]
    texts = s.text.tokenizer.decode(ids)
    own = teacher.encode(texts)  # the teacher's tokenizer on the texts: [CLS] ... [SEP], padded to the longest
    prefix, suffix = special_tokens(teacher)
    assert [teacher.tokenizer.tok.id_to_token(i) for i in prefix + suffix] == ["[CLS]", "[SEP]"]
    enc = aligned_encoding(ids, s.text.tokenizer, prefix, suffix, teacher.tokenizer.pad_id)
    width = own.input_ids.shape[1]
    assert np.array_equal(enc.input_ids[:, :width], own.input_ids)
    assert np.array_equal(enc.attention_mask[:, :width], own.attention_mask) and enc.attention_mask[:, width:].sum() == 0
    # the cut attention maps are the teacher's own maps at the student's positions
    cut = text_features_source(teacher, s.text.tokenizer, attention=True)(torch.from_numpy(ids)).attentions[-1]
    full = teacher.features(texts).attentions[-1]
    n = int((ids != 0).sum(1).max())
    assert torch.allclose(cut[:, :, :n, :n], full[:, :, 1:n + 1, 1:n + 1], atol=1e-5)


def _distill(text_dir, out, *extra):
    return CliRunner().invoke(main, ["distill", "--teacher", str(text_dir / "bert"), "--data",
                                     str(text_dir / "s.jsonl"), "--epochs", "2", "-T", "2", "--alpha", "0.5", "-q",
                                     "--out", str(out), *extra])


@pytest.mark.parametrize("extra,term", [
    (["--feature", "loss=cosine", "--tokenizer", "bytes"], "cosine:head.fc->auto"),
    (["--feature", "loss=minilm,weight=2", "--tokenizer", "vocab", "--student", "transformer:width=32,depth=1"],
     "minilm:layers.0.attn->auto"),
])
def test_training_with_a_text_feature_term(text_dir, tmp_path, extra, term):
    r = _distill(text_dir, tmp_path / "o", *extra)
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    history = m["student"]["history"]
    values = [h["terms"][term] for h in history]
    assert all(math.isfinite(v) and v >= 0 for v in values) and values[-1] < values[0]  # the term is being learned
    assert not m["baseline"]["history"][0].get("terms")  # the twin has no teacher, hence no feature terms


@pytest.mark.parametrize("extra,needles", [
    (["--feature", "loss=minilm", "--tokenizer", "bytes", "--student", "transformer:width=32,depth=1"],
     ["positions must align", "bytes", "--tokenizer vocab"]),
    (["--feature", "loss=minilm", "--tokenizer", "vocab", "--student", "textcnn"], ["no self-attention"]),
    (["--feature", "loss=hint,student=head.fc,teacher=bert"], ["cosine, minilm"]),
    (["--feature", "loss=cosine,student=nope"], ["no layer named 'nope'"]),
])
def test_text_feature_refusals_are_one_paragraph(text_dir, tmp_path, extra, needles):
    r = _distill(text_dir, tmp_path / "o", *extra)
    assert r.exit_code != 0 and "Traceback" not in r.output
    for n in needles:
        assert n in r.output, r.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_minilm_is_refused_for_arrays(tmp_path):
    r = CliRunner().invoke(main, ["distill", "--data", "builtin:digits", "--feature", "loss=minilm", "--out",
                                  str(tmp_path / "o")])
    assert r.exit_code != 0 and "minilm is the attention transfer for text students" in r.output
