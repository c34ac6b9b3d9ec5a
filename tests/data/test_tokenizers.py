"""Student tokenizers: the encode contract for every registered one, the byte round trip, vocabulary pruning against
the teacher tokenizer itself, saved files that reproduce the ids, and the sequence length chosen from the data."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from edgedistill.data.tokenizers import (
    TOKENIZERS,
    ByteTokenizer,
    StudentTokenizer,
    TruncationStats,
    VocabTokenizer,
    choose_max_length,
    load_tokenizer,
    tokenizer_from_dict,
)
from edgedistill.errors import ConfigError, DataError, ModelLoadError

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the cats and the dogs", "a cat, a dog: the park!",
         "the mat in the park"] * 3
TEXTS_UNICODE = ["naïve café", "東京 tower", "emoji 😀 ok", "plain"]


@pytest.fixture(scope="module")
def teacher_json(tmp_path_factory):
    """A real WordPiece tokenizer.json (BERT-style: lower-casing, [CLS] ... [SEP], truncation at 4 tokens set in
    the file), trained here on a few sentences; the student must ignore its special tokens and truncation."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    corpus = ["the cat sat on the mat", "a dog ran in the park", "cats and dogs play", "the zebra grazes far away",
              "an owl hoots at night", "a, b: c!"] * 5
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=120,
                                                              special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.enable_truncation(4)
    path = tmp_path_factory.mktemp("teacher") / "tokenizer.json"
    tok.save(str(path))
    return path


def _teacher(path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    return tok


def _instances(teacher_json):
    return {"bytes": ByteTokenizer(), "vocab": VocabTokenizer.fit(teacher_json, TEXTS)}


@pytest.mark.parametrize("name", TOKENIZERS.names())
def test_every_tokenizer_keeps_the_encode_contract_and_reloads(name, teacher_json, tmp_path):
    tok = _instances(teacher_json)[name]
    assert isinstance(tok, TOKENIZERS.get(name)) and tok.pad_id == 0
    enc = tok.encode(TEXTS, max_length=6)
    assert enc.ids.dtype == np.int32 and enc.ids.shape == (len(TEXTS), 6) and enc.lengths.dtype == np.int64
    for row, n in zip(enc.ids, enc.lengths):
        kept = min(int(n), 6)
        assert (row[:kept] > 0).all() and (row[kept:] == 0).all()  # left-aligned, 0 only as padding
    assert enc.ids.max() < tok.vocab_size
    assert enc.lengths.tolist() == [len(r) for r in tok.token_ids(TEXTS)]
    again = load_tokenizer(tok.save(tmp_path / "tokenizer.json"))
    assert type(again) is type(tok) and again.identity() == tok.identity() and again.vocab_size == tok.vocab_size
    np.testing.assert_array_equal(again.encode(TEXTS, 6).ids, enc.ids)
    assert tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))).identity() == tok.identity()
    steps = tok.device_steps(6)
    assert "int32" in steps and "[1, 6]" in steps and "0 (padding)" in steps
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temporary left behind


def test_bytes_are_utf8_plus_one_and_decode_inverts_encode():
    tok = ByteTokenizer()
    enc = tok.encode(TEXTS_UNICODE, max_length=32)
    for text, row, n in zip(TEXTS_UNICODE, enc.ids, enc.lengths):
        reference = [b + 1 for b in text.encode("utf-8")]
        assert n == len(reference) and row[: len(reference)].tolist() == reference
    assert tok.vocab_size == 257 and tok.decode(enc.ids) == TEXTS_UNICODE
    assert tok.decode(torch.from_numpy(enc.ids[1])) == [TEXTS_UNICODE[1]]


def test_a_character_cut_by_truncation_decodes_without_error():
    tok = ByteTokenizer()
    text = "ab東京"  # 東 and 京 are three bytes each
    enc = tok.encode([text] * 4, max_length=8)
    assert enc.lengths.tolist() == [8] * 4
    for cut, expected in ((2, "ab"), (3, "ab"), (4, "ab"), (5, "ab東"), (7, "ab東")):
        assert tok.decode(tok.encode([text], max_length=cut).ids) == [expected]
    with pytest.raises(ValueError, match="0..256"):
        tok.decode(np.array([[300]]))


def test_vocab_keeps_exactly_the_seen_tokens_by_frequency(teacher_json):
    teacher = _teacher(teacher_json)
    unk = teacher.token_to_id("[UNK]")
    counts = Counter(i for t in TEXTS for i in teacher.encode(t, add_special_tokens=False).ids if i != unk)
    expected = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    tok = VocabTokenizer.fit(teacher_json, TEXTS)
    assert list(tok.teacher_ids) == expected and tok.vocab_size == 2 + len(expected)
    enc = tok.encode(TEXTS, max_length=16)
    for text, row, n in zip(TEXTS, enc.ids, enc.lengths):
        teacher_ids = teacher.encode(text, add_special_tokens=False).ids  # no [CLS] / [SEP], no truncation
        assert n == len(teacher_ids) > 4
        assert row[:n].tolist() == [1 if i == unk else 2 + expected.index(i) for i in teacher_ids]
    assert tok.decode(enc.ids[:1]) == [teacher.decode(teacher.encode(TEXTS[0], add_special_tokens=False).ids)]


def test_tokens_outside_the_kept_vocabulary_are_unknown(teacher_json):
    teacher = _teacher(teacher_json)
    tok = VocabTokenizer.fit(teacher_json, TEXTS)
    owl = teacher.encode("owl", add_special_tokens=False).ids  # known to the teacher, absent from TEXTS
    assert teacher.token_to_id("[UNK]") not in owl
    assert tok.encode(["owl"], 4).ids[0, : len(owl)].tolist() == [1] * len(owl)
    assert tok.encode(["Ω"], 4).ids[0, 0] == 1  # unknown to the teacher too
    assert tok.decode(tok.encode(["the Ω cat"], 8).ids) == ["the [UNK] cat"]


def test_vocab_cap_keeps_the_most_frequent_tokens(teacher_json):
    full = VocabTokenizer.fit(teacher_json, TEXTS)
    capped = VocabTokenizer.fit(teacher_json, TEXTS, max_vocab=5)
    assert capped.vocab_size == 5 and capped.teacher_ids == full.teacher_ids[:3]
    assert capped.identity() != full.identity()
    ids = capped.encode(TEXTS, 16).ids
    assert set(np.unique(ids).tolist()) <= {0, 1, 2, 3, 4}
    with pytest.raises(ConfigError, match="at least 3"):
        VocabTokenizer.fit(teacher_json, TEXTS, max_vocab=2)


def test_the_saved_vocab_tokenizer_is_self_contained(teacher_json, tmp_path):
    tok = VocabTokenizer.fit(teacher_json, TEXTS, max_vocab=12)
    copy = tmp_path / "teacher.json"
    copy.write_bytes(teacher_json.read_bytes())
    saved = tok.save(tmp_path / "student_tokenizer.json")
    copy.unlink()  # the teacher's file is gone: the saved one carries it inline
    again = VocabTokenizer.load(saved)
    np.testing.assert_array_equal(again.encode(TEXTS, 16).ids, tok.encode(TEXTS, 16).ids)
    assert again.identity() == tok.identity() and again.tokens()[:2] == ["[PAD]", "[UNK]"]
    with pytest.raises(ModelLoadError, match="not a 'bytes' one"):
        ByteTokenizer.load(saved)


def test_a_teacher_reads_back_what_the_student_saw(teacher_json):
    """decode() gives text that the teacher tokenizes to the same student ids (what soft targets on augmented
    or truncated student inputs need)."""
    tok = VocabTokenizer.fit(teacher_json, TEXTS, max_vocab=8)
    enc = tok.encode(TEXTS, 5)
    np.testing.assert_array_equal(tok.encode(tok.decode(enc.ids), 5).ids, enc.ids)


@pytest.mark.parametrize("content,needle", [
    (None, "does not exist"),
    ("{not json", "Cannot read"),
    ('{"tokenizer": "sentencepiece", "format_version": 1}', "'sentencepiece'"),
    ('{"tokenizer": "bytes", "format_version": 9}', "version 9"),
    ('{"tokenizer": "vocab", "format_version": 1, "teacher_ids": [1]}', "malformed"),
    ('[1, 2]', "not a student tokenizer"),
])
def test_bad_tokenizer_files_are_refused_in_one_paragraph(tmp_path, content, needle):
    path = tmp_path / "tok.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ModelLoadError, match=needle) as info:
        load_tokenizer(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_fit_refuses_a_missing_teacher_tokenizer_and_encode_a_zero_length(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        VocabTokenizer.fit(tmp_path / "tokenizer.json", TEXTS)
    with pytest.raises(ConfigError, match="positive"):
        ByteTokenizer().encode(TEXTS, 0)


def test_choose_max_length_is_the_inverted_cdf_against_a_brute_force_count():
    rng = np.random.default_rng(0)
    lengths = rng.geometric(0.05, 997)
    for p in (50.0, 90.0, 95.0, 99.0, 99.9, 100.0):
        brute = min(t for t in np.unique(lengths) if (lengths <= t).sum() * 100 >= p * lengths.size)
        assert choose_max_length(lengths, p, floor=1) == brute
    assert choose_max_length(list(range(1, 101))) == 99
    assert choose_max_length([5] * 95 + [200] * 5, 95) == 8  # the floor lifts 5
    assert choose_max_length([5] * 95 + [200] * 5, 96) == 200
    assert choose_max_length([5] * 95 + [200] * 5, 96, cap=64) == 64
    assert choose_max_length([1, 2, 3], cap=4, floor=8) == 4  # the budget's cap wins over the floor
    with pytest.raises(ConfigError):
        choose_max_length(lengths, 0)
    with pytest.raises(DataError):
        choose_max_length([])


def test_truncation_stats_count_what_encode_cut():
    tok = ByteTokenizer()
    enc = tok.encode(TEXTS_UNICODE, max_length=8)
    stats = TruncationStats.measure(enc.lengths, 8, percentile=99.0)
    sizes = [len(t.encode()) for t in TEXTS_UNICODE]
    assert stats.samples == 4 and stats.samples_truncated == sum(s > 8 for s in sizes)
    assert stats.tokens == sum(sizes) and stats.tokens_dropped == sum(max(s - 8, 0) for s in sizes)
    assert stats.tokens - stats.tokens_dropped == int((enc.ids != 0).sum())
    assert "99th percentile" in stats.describe() and json.dumps(stats.to_dict())


def test_importing_the_tokenizers_module_does_not_import_the_tokenizers_library():
    import subprocess
    import sys

    code = "import sys, edgedistill.data.tokenizers; print('tokenizers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", TOKENIZERS.names())
def test_the_readme_load_works_in_a_fresh_process_that_imports_only_the_base(name, teacher_json, tmp_path):
    """README's decoding example: `StudentTokenizer.load(path)` with nothing else of edgedistill imported."""
    import subprocess
    import sys
    from pathlib import Path

    tok = _instances(teacher_json)[name]
    path = tok.save(tmp_path / "tokenizer.json")
    code = ("import sys; from edgedistill.data.tokenizer_base import StudentTokenizer; "
            f"t = StudentTokenizer.load({str(path)!r}); "
            "print(t.name, t.identity(), t.encode(['the cat'], 4).ids.tolist())")
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split(" ", 2)[:2] == [name, tok.identity()]
    assert run.stdout.split(" ", 2)[2].strip() == str(tok.encode(["the cat"], 4).ids.tolist())


def test_the_registry_holds_both_tokenizers():
    assert TOKENIZERS.names() == ["bytes", "vocab"]
    assert all(issubclass(e.obj, StudentTokenizer) and e.summary for e in TOKENIZERS)


def test_a_text_that_gives_no_tokens_is_one_unknown_id(teacher_json):
    """Zero-width or control characters only pass the readers' non-blank check but give the tokenizer nothing; a
    row of padding alone made attention's softmax NaN and trained a student of NaN weights."""
    tok = VocabTokenizer.fit(teacher_json, TEXTS)
    assert _teacher(teacher_json).encode(" \t ", add_special_tokens=False).ids == []
    assert [t.tolist() for t in tok.token_ids([" \t ", "the cat"])][0] == [1]
    assert tok.encode([" \t "], 4).ids[0].tolist() == [1, 0, 0, 0]


def test_unknown_tokens_are_counted_per_split_and_warned_about(teacher_json):
    """A vocabulary cut to a small training set reads much of the test split as unknown, for the teacher as well:
    the share is recorded per split and a warning says what it costs and how to avoid it."""
    from edgedistill.data.text import TextCorpus, TextSplit
    from edgedistill.data.text_encode import encode_corpus

    corpus = TextCorpus(TextSplit(("the cat sat", "a dog ran"), (0, 1)),
                        TextSplit(("owl owl owl the", "the cat"), (0, 1)), "t", ["x", "y"])
    enc = encode_corpus(corpus, VocabTokenizer.fit(teacher_json, list(corpus.train.texts)), 8).text
    teacher = _teacher(teacher_json)
    test_tokens = [t for s in corpus.test.texts for t in teacher.encode(s, add_special_tokens=False).tokens]
    kept = {t for s in corpus.train.texts for t in teacher.encode(s, add_special_tokens=False).tokens}
    assert enc.unknown["train"] == 0.0
    assert enc.unknown["test"] == pytest.approx(sum(t not in kept for t in test_tokens) / len(test_tokens))
    assert enc.unknown["test"] > 0.05 and "outside the student's vocabulary" in enc.unknown_warning()
    assert encode_corpus(corpus, ByteTokenizer(), 8).text.unknown == {}
