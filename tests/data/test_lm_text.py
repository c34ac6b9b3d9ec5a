"""The causal-LM corpus layouts: a .txt file (one document a non-blank line), a folder of .txt files (one document
each), JSONL / CSV text fields, a train / test folder; and the refusals, each one paragraph."""

import json

import pytest

from edgedistill.data.lm_text import read_documents
from edgedistill.errors import DataError


def test_txt_file_is_one_document_a_line(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("first doc.\n\n  second doc  \nthird\n")
    d = read_documents(p)
    assert d.train == ("first doc.", "second doc", "third") and d.test is None


def test_folder_of_txt_files_is_one_document_each(tmp_path):
    (tmp_path / "b.txt").write_text("line one\nline two\n")
    (tmp_path / "a.TXT").write_text("alpha")
    (tmp_path / "notes.md").write_text("ignored")
    assert read_documents(tmp_path).train == ("alpha", "line one\nline two")


def test_jsonl_text_field_and_a_named_field(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps({"text": t, "body": t.upper()}) for t in ("one", "two")) + "\n")
    assert read_documents(p).train == ("one", "two")
    assert read_documents(p, text_field="body").train == ("ONE", "TWO")


def test_train_and_test_files_give_the_test_split(tmp_path):
    (tmp_path / "train.txt").write_text("a b\nc d\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": "e f"}) + "\n")
    d = read_documents(tmp_path)
    assert d.train == ("a b", "c d") and d.test == ("e f",) and d.all == ["a b", "c d", "e f"]


@pytest.mark.parametrize("case, words", [("missing", "does not exist"), ("blank", "empty"),
                                         ("empty-folder", "without .txt"), ("test-only", "no train file"),
                                         ("binary", "UTF-8")])
def test_bad_corpora_are_refused_in_one_paragraph(tmp_path, case, words):
    path = tmp_path / "x"
    if case == "blank":
        path = tmp_path / "x.txt"
        path.write_text("\n\n")
    elif case == "empty-folder":
        path.mkdir()
    elif case == "test-only":
        path.mkdir()
        (path / "test.txt").write_text("a b\n")
    elif case == "binary":
        path = tmp_path / "x.txt"
        path.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError) as err:
        read_documents(path)
    assert words in str(err.value) and "\n" not in str(err.value)
