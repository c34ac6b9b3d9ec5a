"""The flash a device tokenizer's tables take (StudentTokenizer.device_bytes()): 0 for bytes; for the teacher's
vocabulary, the byte count of the serialisation edgedistill.data.tokenizer_flash states, computed here by hand on
tiny WordPiece, BPE and Unigram tokenizers built in code."""

import pytest

from edgedistill.data.tokenizer_flash import id_width, string_bytes
from edgedistill.data.tokenizers import ByteTokenizer, VocabTokenizer, load_tokenizer

tokenizers = pytest.importorskip("tokenizers")


def _save(tok, path):
    tok.save(str(path))
    return path


def _wordpiece(path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "play": 2, "##ing": 3, "##er": 4, "player": 5, "é": 6, "work": 7}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return _save(tok, path)


def test_the_byte_tokenizer_needs_no_tables():
    assert ByteTokenizer().device_bytes() == 0


def test_wordpiece_counts_every_teacher_string_and_the_id_map(tmp_path):
    tok = VocabTokenizer.fit(_wordpiece(tmp_path / "wp.json"), ["playing", "worker play"])
    assert tok.tokens()[2:] == ["play", "##ing", "##er", "work"]  # by count, ties by teacher id
    # strings: UTF-8 bytes + one length byte each, over all 8 teacher tokens (not only the 4 kept); "é" is 2 bytes
    strings = (5 + 1) + (5 + 1) + (4 + 1) + (5 + 1) + (4 + 1) + (6 + 1) + (2 + 1) + (4 + 1)
    id_map = 8 * 2  # one uint16 student id per teacher id
    t = tok.device_tables()
    assert (t.strings, t.merges, t.scores, t.id_map) == (strings, 0, 0, id_map)
    assert tok.device_bytes() == strings + id_map == 59
    # why the whole vocabulary: "player" is one teacher token, never kept, so training would encode it as unknown;
    # the kept tokens alone would split it into play + ##er, ids the model never saw for that word
    assert tok.encode(["player"], 4).ids.tolist() == [[1, 0, 0, 0]]
    from tokenizers import Tokenizer, models

    kept_only = Tokenizer(models.WordPiece({t: i for i, t in enumerate(tok.tokens())}, unk_token="[UNK]"))
    assert kept_only.encode("player").tokens == ["play", "##er"]
    assert load_tokenizer(tok.save(tmp_path / "student.json")).device_bytes() == 59  # the saved file says the same


def test_bpe_adds_two_ids_per_merge(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "abc": 5}
    tok = Tokenizer(models.BPE(vocab, [("a", "b"), ("ab", "c")], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    student = VocabTokenizer.fit(_save(tok, tmp_path / "bpe.json"), ["abc ab"])
    assert student.vocab_size == 4  # abc, ab kept
    strings = (5 + 1) + 3 * (1 + 1) + (2 + 1) + (3 + 1)
    t = student.device_tables()
    assert (t.strings, t.merges, t.scores, t.id_map) == (strings, 2 * 2 * 2, 0, 6 * 2)
    assert student.device_bytes() == 19 + 8 + 12


def test_unigram_adds_a_float32_score_per_piece(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0), ("ab", -1.5)], unk_id=0))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    student = VocabTokenizer.fit(_save(tok, tmp_path / "uni.json"), ["ab a"])
    t = student.device_tables()
    assert (t.strings, t.merges, t.scores, t.id_map) == ((5 + 1) + 2 + 2 + 3, 0, 4 * 4, 4 * 2)


def test_long_strings_and_large_vocabularies_take_wider_fields():
    assert string_bytes(["x" * 255, "y" * 256]) == (255 + 1) + (256 + 2)
    assert (id_width(65_536), id_width(65_537)) == (2, 4)
