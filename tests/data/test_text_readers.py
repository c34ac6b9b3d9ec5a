"""Text readers: every layout, unlabelled samples, string and integer labels, and each refusal in one paragraph."""

import json

import numpy as np
import pytest

from edgedistill.data.text_readers import looks_like_text, read_text
from edgedistill.errors import DataError


def _jsonl(path, rows, tail="\n"):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + tail,
                    encoding="utf-8")
    return path


def _refused(path, *needles, **kw) -> str:
    with pytest.raises(DataError) as info:
        read_text(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg  # one paragraph
    for needle in (str(path), *needles):
        assert needle in msg, (needle, msg)
    return msg


def test_jsonl_labels_unlabelled_samples_and_blank_lines(tmp_path):
    rows = [{"text": "good film", "label": "pos"}, {"text": "bad \u2028 film", "label": "neg"},
            {"text": "no label yet", "label": None}, {"text": "empty label", "label": ""},
            {"text": "no label field", "id": 7}, "", {"text": "Grüße, 東京 😀", "label": " pos "}]
    corpus = read_text(_jsonl(tmp_path / "d.jsonl", rows, tail="\n\n"))
    assert corpus.train.texts == ("good film", "bad \u2028 film", "no label yet", "empty label", "no label field",
                                  "Grüße, 東京 😀")
    assert corpus.train.labels == ("pos", "neg", None, None, None, "pos")
    assert corpus.test is None and corpus.class_names == [] and corpus.train.num_labelled == 3
    assert corpus.source == str(tmp_path / "d.jsonl")


def test_jsonl_integer_labels_stay_integers_and_fields_can_be_renamed(tmp_path):
    rows = [{"sentence": "a", "y": 3}, {"sentence": "b", "y": 1.0}, {"sentence": "c", "y": None}]
    corpus = read_text(_jsonl(tmp_path / "d.jsonl", rows), text_field="sentence", label_field="y")
    assert corpus.train.labels == (3, 1, None) and all(type(v) is int for v in corpus.train.labels[:2])


def test_a_file_without_any_label_field_is_unlabelled_unless_the_field_was_named(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "topic": "x"}, {"text": "b", "topic": "y"}])
    assert read_text(path).train.labels is None
    msg = _refused(path, "`label`", "text, topic", label_field="label")
    assert "no line has the label field" in msg


def test_csv_quoted_multiline_fields_and_integer_labels(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"one, two",1\n"multi\nline ""quoted"" text",2\n\nplain,\n', encoding="utf-8")
    corpus = read_text(path)
    assert corpus.train.texts == ("one, two", 'multi\nline "quoted" text', "plain")
    assert corpus.train.labels == (1, 2, None) and type(corpus.train.labels[0]) is int


def test_csv_labels_that_are_not_all_integers_stay_strings(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("label,text\n1,a\n2,b\nspam,c\n", encoding="utf-8")
    assert read_text(path).train.labels == ("1", "2", "spam")


def test_tsv_with_bom_and_crlf(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_bytes("\ufefftext\tlabel\r\nhello, world\tgreeting\r\nbye\tfarewell\r\n".encode())
    corpus = read_text(path)
    assert corpus.train.texts == ("hello, world", "bye") and corpus.train.labels == ("greeting", "farewell")


def test_txt_folder_one_file_per_sample_with_unlabelled_folder(tmp_path):
    for cls, texts in (("spam", ["win money", "free 💰"]), ("ham", ["see you at 5"]), ("unlabeled", ["hmm"])):
        (tmp_path / cls).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / cls / f"{i}.txt").write_text(t, encoding="utf-8")
    (tmp_path / "ham" / "notes.md").write_text("ignored")
    corpus = read_text(tmp_path)
    assert corpus.class_names == ["ham", "spam"]
    assert corpus.train.texts == ("see you at 5", "win money", "free 💰", "hmm")
    assert corpus.train.labels == (0, 1, 1, None)


def test_train_and_test_files_become_the_two_splits(tmp_path):
    _jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}, {"text": "c"}])
    (tmp_path / "test.csv").write_text("text,label\nd,1\ne,0\n", encoding="utf-8")
    corpus = read_text(tmp_path)
    assert corpus.train.labels == (0, 1, None) and corpus.test.texts == ("d", "e") and corpus.test.labels == (1, 0)


def test_csv_integer_labels_are_decided_over_train_and_test_together(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,1\nb,2\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("text,label\nc,1\nd,other\n", encoding="utf-8")
    corpus = read_text(tmp_path)
    assert corpus.train.labels == ("1", "2") and corpus.test.labels == ("1", "other")


def test_looks_like_text_for_each_layout_and_not_for_others(tmp_path):
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.CSV").write_text("")
    (tmp_path / "c.npz").write_bytes(b"")
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "train.tsv").write_text("")
    (tmp_path / "txt" / "pos").mkdir(parents=True)
    (tmp_path / "txt" / "pos" / "1.txt").write_text("x")
    (tmp_path / "img" / "cat").mkdir(parents=True)
    (tmp_path / "img" / "cat" / "1.png").write_bytes(b"")
    assert [looks_like_text(tmp_path / n) for n in ("a.jsonl", "b.CSV", "split", "txt")] == [True] * 4
    assert [looks_like_text(tmp_path / n) for n in ("c.npz", "img", "missing")] == [False] * 3


# ---- refusals: one paragraph each, naming the file and the line ---------------------------------------------------

def test_non_utf8_bytes_name_the_line_and_byte_offset(tmp_path):
    raw = '{"text": "ok", "label": "a"}\n'.encode() + b'{"text": "caf\xe9", "label": "b"}\n'
    (tmp_path / "d.jsonl").write_bytes(raw)
    msg = _refused(tmp_path / "d.jsonl", "line 2", f"byte {raw.index(0xE9)}", "0xe9", "iconv")
    assert "UTF-8" in msg


def test_non_utf8_bytes_in_a_csv_and_in_a_txt_file(tmp_path):
    raw = b"text,label\nfine,a\n\"two\nli\xffnes\",b\n"
    (tmp_path / "d.csv").write_bytes(raw)
    _refused(tmp_path / "d.csv", "line 4", f"byte {raw.index(0xFF)}")
    (tmp_path / "f" / "pos").mkdir(parents=True)
    body = "première ligne\n".encode() + b"seconde \x80\n"
    (tmp_path / "f" / "pos" / "1.txt").write_bytes(body)
    _refused(tmp_path / "f", str(tmp_path / "f" / "pos" / "1.txt"), "line 2", f"byte {body.index(0x80)}")


@pytest.mark.parametrize("line,needles", [
    ('{"text": "", "label": "a"}', ["line 2", "`text` field is empty"]),
    ('{"text": "   ", "label": "a"}', ["line 2", "`text` field is empty"]),
    ('{"body": "x", "label": "a", "id": 3}', ["line 2", "no field `text`", "body, label, id"]),
    ('{"text": "x", "label": "a"', ["line 2", "not valid JSON"]),
    ('["x", "a"]', ["line 2", "JSON array", "object"]),
    ('{"text": 5, "label": "a"}', ["line 2", "JSON number", "string"]),
    ('{"text": "x", "label": true}', ["line 2", "true/false"]),
    ('{"text": "x", "label": 1.5}', ["line 2", "1.5"]),
    ('{"text": "x", "label": 7}', ["line 2", "line 1", "integer", "'a'"]),
    (r'{"text": "half \ud83d a pair", "label": "a"}', ["line 2", "\\ud83d", "surrogate"]),
])
def test_jsonl_refusals(tmp_path, line, needles):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "first", "label": "a"}\n' + line + "\n", encoding="utf-8")
    _refused(path, *needles)


@pytest.mark.parametrize("body,needles", [
    ("text,label\nok,a\n,b\n", ["line 3", "empty"]),
    ("text,label\nok,a\ntoo,many,fields\n", ["line 3", "3 fields", "'too', 'many', 'fields'", "header names 2"]),
    ("text,label\nok,a\nalone\n", ["line 3", "1 field ", "'alone'"]),
    ('text,label\nok,a\n"never closed,b\nmore,c\n', ["line 3", "malformed CSV", "double quote"]),
    ("sentence,label\nok,a\n", ["line 1", "no column `text`", "sentence, label"]),
    ("sentence;label\nok;a\n", ["line 1", "no column `text`", "sentence, label (split at semicolons", "--text-field"]),
    ("text,label\rok,a\r,b\r", ["line 3", "empty"]),  # lines ended by a lone carriage return, counted as lines
    ("", ["no samples"]),
    ("text,label\n\n", ["no samples"]),
])
def test_csv_refusals(tmp_path, body, needles):
    path = tmp_path / "d.csv"
    path.write_text(body, encoding="utf-8")
    _refused(path, *needles)


@pytest.mark.parametrize("name,body", [
    ("semicolons.csv", "text;label\n\"a; b, c\";x\nplain, with comma;y\n"),  # a European spreadsheet's CSV
    ("tabs.csv", "text\tlabel\na; b, c\tx\nplain, with comma\ty\n"),  # tab-separated, named .csv
    ("commas.tsv", 'label,text\nx,"a; b, c"\ny,"plain, with comma"\n'),  # comma-separated, named .tsv
    ("bars.csv", "text|label\na; b, c|x\nplain, with comma|y\n"),
])
def test_the_delimiter_is_the_one_at_which_the_header_names_the_text_column(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    corpus = read_text(path)
    assert corpus.train.texts == ("a; b, c", "plain, with comma") and corpus.train.labels == ("x", "y")


def test_lines_ended_by_a_lone_carriage_return_are_lines(tmp_path):
    """Old Mac OS and some spreadsheet exports end lines with \\r alone: csv refused the file ("new-line character seen
    in unquoted field") and a JSONL file read as one line of several objects. A \\r inside a quoted field stays."""
    path = tmp_path / "d.csv"
    path.write_bytes(b'text,label\r"two\rlines",a\rplain,b\r\r')
    corpus = read_text(path)
    assert corpus.train.texts == ("two\rlines", "plain") and corpus.train.labels == ("a", "b")
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "one", "label": "a"}\r{"text": "two", "label": "b"}\r')
    assert read_text(path).train.texts == ("one", "two")
    path.write_bytes(b'{"text": "one", "label": "a"}\r{"text": "", "label": "b"}\r')
    _refused(path, "line 2", "empty")


def test_an_empty_jsonl_file_and_an_empty_txt_sample_are_refused(tmp_path):
    (tmp_path / "d.jsonl").write_text("\n\n")
    _refused(tmp_path / "d.jsonl", "no samples")
    (tmp_path / "f" / "neg").mkdir(parents=True)
    (tmp_path / "f" / "neg" / "0.txt").write_text(" \n")
    _refused(tmp_path / "f", str(tmp_path / "f" / "neg" / "0.txt"), "empty")
    (tmp_path / "g" / "neg").mkdir(parents=True)
    _refused(tmp_path / "g", "no .txt files")


def test_integer_and_string_labels_across_train_and_test_are_refused(tmp_path):
    _jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    (tmp_path / "test.csv").write_text("text,label\nc,\nd,pos\n", encoding="utf-8")
    msg = _refused(tmp_path, str(tmp_path / "test.csv"), "line 3", str(tmp_path / "train.jsonl"), "line 1")
    assert "'pos'" in msg


def test_split_folder_refusals(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "test.jsonl").write_text('{"text": "x", "label": 1}\n')
    _refused(tmp_path / "a", "no train file")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "train.jsonl").write_text('{"text": "x", "label": 1}\n')
    (tmp_path / "b" / "train.csv").write_text("text,label\nx,1\n")
    _refused(tmp_path / "b", "train.csv", "train.jsonl", "keep one")
    (tmp_path / "c").mkdir()
    _refused(tmp_path / "c", "neither")
    (tmp_path / "d.txt").write_text("x")
    _refused(tmp_path / "d.txt", "unsupported")


def test_a_large_file_is_read_in_one_streaming_pass(tmp_path, monkeypatch):
    """Files are opened once (no second pass to count lines or sniff types) and hold every line."""
    from pathlib import Path

    n = 20_000
    path = tmp_path / "big.csv"
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, n)
    path.write_text("text,label\n" + "".join(f"sample number {i},{labels[i]}\n" for i in range(n)), encoding="utf-8")
    opened = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    corpus = read_text(path)
    assert opened == [path] and len(corpus.train) == n
    assert corpus.train.texts[-1] == f"sample number {n - 1}" and corpus.train.labels == tuple(labels.tolist())


def test_an_integer_label_beyond_a_class_index_is_refused_or_kept_as_a_name(tmp_path):
    """Before: a JSON label of 10**30 crashed with OverflowError; CSV numbers that large are names, not indices."""
    _refused(_jsonl(tmp_path / "big.jsonl", [{"text": "a", "label": 10**30}, {"text": "b", "label": 1}]),
             "line 1", "too large to be a class index", '"1000000000000000000000000000000"')
    (tmp_path / "big.csv").write_text(f"text,label\na,{10**30}\nb,{10**30 + 1}\n", encoding="utf-8")
    assert read_text(tmp_path / "big.csv").train.labels == (str(10**30), str(10**30 + 1))


def test_txt_suffix_in_any_case_and_a_folder_without_samples_names_both_kinds(tmp_path):
    """Before: `.TXT` files were dropped without a word, and a folder of .md files got the image reader's message."""
    from edgedistill.data import read_dataset

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "1.txt").write_text(f"{cls} one", encoding="utf-8")
        (tmp_path / cls / "2.TXT").write_text(f"{cls} two", encoding="utf-8")
    assert read_text(tmp_path).train.texts == ("a one", "a two", "b one", "b two")
    empty = tmp_path / "md"
    for cls in ("a", "b"):
        (empty / cls / "deeper").mkdir(parents=True)
        (empty / cls / "note.md").write_text("x")
        (empty / cls / "deeper" / "1.txt").write_text("nested")
    with pytest.raises(DataError) as info:
        read_dataset(str(empty))
    assert "no .txt files" in str(info.value) and "nested folders are not read" in str(info.value)


def test_a_test_label_that_no_training_text_has_is_refused(tmp_path):
    """Before: the unseen test class grew the class count and the error blamed the teacher's output shape."""
    from edgedistill.data.text_encode import encode_corpus
    from edgedistill.data.tokenizers import ByteTokenizer

    _jsonl(tmp_path / "train.jsonl", [{"text": "bread", "label": "food"}, {"text": "ball", "label": "sport"}])
    _jsonl(tmp_path / "test.jsonl", [{"text": "tea", "label": "drink"}, {"text": "rice", "label": "food"}])
    with pytest.raises(DataError) as info:
        encode_corpus(read_text(tmp_path), ByteTokenizer(), 8)
    assert "'drink'" in str(info.value) and "no training text has" in str(info.value)
