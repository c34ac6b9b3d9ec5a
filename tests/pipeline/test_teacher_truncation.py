"""A text teacher that reads fewer tokens than the texts hold (max_position_embeddings of 8 here) labels only their
beginnings. Before, that was silent; now metrics.json records, beside the student's own truncation, how many texts
each teacher reads cut, and one warning says so when it is more than a few per cent. The reference count is the
teacher's tokenizer run directly (no truncation) on the texts the student's byte ids spell."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgedistill.cli import main

transformers = pytest.importorskip("transformers")

WORDS = {"de": ["haus", "garten", "schnell", "wasser", "baum", "strasse"],
         "fr": ["maison", "jardin", "rapide", "eau", "arbre", "rue"],
         "it": ["casa", "giardino", "veloce", "acqua", "albero", "strada"]}


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator([w for ws in WORDS.values() for w in ws] * 4, trainers.WordPieceTrainer(
        vocab_size=100, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return tok


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import torch

    d = tmp_path_factory.mktemp("trunc")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(150):
        lang = sorted(WORDS)[i % 3]
        n = 2 if i % 2 else int(rng.integers(4, 10))  # half the texts short, half past the short teacher's 8
        rows.append({"text": " ".join(rng.choice(WORDS[lang], size=n)), "label": lang})
    (d / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = _tokenizer()
    for positions in (8, 64):
        torch.manual_seed(0)
        cfg = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32,
                                      max_position_embeddings=positions, num_labels=3, pad_token_id=0)
        transformers.BertForSequenceClassification(cfg).eval().save_pretrained(d / f"bert{positions}")
        tok.save(str(d / f"bert{positions}" / "tokenizer.json"))
    return d, [r["text"] for r in rows], tok


def _distill(d, teacher, out, *extra):
    r = CliRunner().invoke(main, ["distill", "--teacher", str(d / teacher), "--data", str(d / "s.jsonl"), "--out",
                                  str(out), "--tokenizer", "bytes", "--student", "textcnn:width=8,depth=1",
                                  "--epochs", "1", "-T", "2", "--alpha", "0.5", "--no-baseline", "-q", *extra],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads((out / "metrics.json").read_text()), r.output


def test_a_short_teacher_s_truncation_is_recorded_beside_the_student_s_and_warned_once(inputs, tmp_path):
    d, texts, tok = inputs
    m, output = _distill(d, "bert8", tmp_path / "short")
    text = m["data"]["text"]
    (rec,) = text["teacher_truncation"]
    assert rec["teacher"] == "bert8" and rec["max_length"] == 8
    # reference: the texts cut to the student's L bytes (what its ids spell), counted by the tokenizer itself
    seen = [t.encode()[: text["max_length"]].decode("utf-8", "ignore") for t in texts]
    tok.no_truncation()
    counts = np.array([len(tok.encode(t).ids) for t in seen])
    assert rec["train"]["samples"] == len(texts) == text["truncation"]["train"]["samples"]
    assert rec["train"]["samples_truncated"] == int((counts > 8).sum()) > 0.3 * len(texts)
    assert rec["train"]["tokens_dropped"] == int(np.maximum(counts - 8, 0).sum())
    warnings = [w for w in m["warnings"] if "bert8" in w]
    assert len(warnings) == 1 and "reads at most 8 tokens" in warnings[0]
    share = f"{100 * rec['train']['fraction_truncated']:.1f} %"
    assert share in warnings[0] and output.count("reads at most 8 tokens") == 1  # printed once
    from edgedistill.report.render import text_lines

    lines = [x for x in text_lines(text) if x.startswith("- teacher bert8")]
    assert lines == [f"- teacher bert8 reads 8 of its own tokens (train): {rec['train']['samples_truncated']:,} of "
                     f"{len(texts):,} texts cut ({share})"]


def test_a_teacher_that_reads_the_whole_texts_is_recorded_without_a_warning(inputs, tmp_path):
    d, _, _ = inputs
    m, _ = _distill(d, "bert64", tmp_path / "long", "--qat", "--qat-epochs", "1")
    (rec,) = m["data"]["text"]["teacher_truncation"]
    assert rec["max_length"] == 64 and rec["train"]["samples_truncated"] == 0
    assert not any("reads at most" in w for w in m["warnings"])
    assert rec["unknown_tokens"] == 0 and rec["teacher_tokens"] > 0  # its vocabulary covers the words
    assert not any("unknown token" in w for w in m["warnings"])
    # the teacher's own length for these texts (as the student's is chosen: the 99th percentile of the training texts'
    # counts, in its tokens): what its latency is timed at, not the student's byte length (a newcomer's report showed
    # the BERT teacher timed at the student's 19)
    from edgedistill.data.sequence_length import choose_max_length

    d, texts, tok = inputs
    seen = [t.encode()[: m["data"]["text"]["max_length"]].decode("utf-8", "ignore") for t in texts]
    tok.no_truncation()
    want = choose_max_length([len(tok.encode(t).ids) for t in seen], cap=64, floor=1)
    assert rec["window"] == want < m["data"]["text"]["max_length"]
    report = json.loads((tmp_path / "long" / "report.json").read_text())
    where = next(r for r in report["models"] if r["name"] == "teacher")["where"]
    assert f"{want} tokens: its own tokens for these texts" in where, where


def test_a_teacher_that_reads_mostly_unknown_tokens_is_warned_once_with_the_share(inputs, tmp_path):
    """CJK without spaces, emoji and punctuation are [UNK] to the teacher's WordPiece vocabulary: its soft targets
    are then near-constant. Reference: the teacher's tokenizer run directly on the texts the student's ids spell."""
    d, _, tok = inputs
    rng = np.random.default_rng(1)
    odd = ["东京大学很好", "😀😀", "!!! ???", "北京欢迎你", "🙂 🎉", "...", "ありがとう"]
    rows = [{"text": " ".join([str(rng.choice(WORDS[lang])), *rng.choice(odd, size=3)]), "label": lang}
            for lang in sorted(WORDS) for _ in range(40)]
    (d / "odd.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = CliRunner().invoke(main, ["distill", "--teacher", str(d / "bert64"), "--data", str(d / "odd.jsonl"), "--out",
                                  str(tmp_path / "odd"), "--tokenizer", "bytes", "--student",
                                  "textcnn:width=8,depth=1", "--epochs", "1", "-T", "2", "--alpha", "0.5",
                                  "--no-baseline", "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "odd" / "metrics.json").read_text())
    text = m["data"]["text"]
    (rec,) = text["teacher_truncation"]
    seen = [t["text"].encode()[: text["max_length"]].decode("utf-8", "ignore") for t in rows]
    tok.no_truncation()
    unk, tokens = tok.token_to_id("[UNK]"), 0
    unknown = 0
    for e in (tok.encode(t) for t in seen):
        tokens += sum(1 for s in e.special_tokens_mask if not s)
        unknown += sum(1 for i, s in zip(e.ids, e.special_tokens_mask) if i == unk and not s)
    assert rec["teacher"] == "bert64" and (rec["unknown_tokens"], rec["teacher_tokens"]) == (unknown, tokens)
    assert rec["train"]["samples"] == len(rows) and unknown / tokens > 0.5
    share = f"{100 * unknown / tokens:.1f} %"
    (warning,) = [w for w in m["warnings"] if "unknown token" in w]
    assert share in warning and "bert64" in warning and "\n" not in warning
    assert r.output.count("as its unknown token") == 1  # printed once
