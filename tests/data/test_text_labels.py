"""Text labels in the text file's own terms: which field holds them (named by the user when it is not `label`), what
an unusable labelling is called (no label, one class, an unlabelled test file: the field and its fields named, not
the arrays' `y`), -1 as a class (a text marks an unlabelled sample with a null label), and a transfer set's labels
indexed by the data's own classes."""

import json

import numpy as np
import pytest

from edgedistill.data import make_splits, read_dataset
from edgedistill.data.text_encode import encode_corpus
from edgedistill.data.tokenizers import ByteTokenizer
from edgedistill.errors import DataError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _encoded(path, **fields):
    return encode_corpus(read_dataset(str(path), **fields), ByteTokenizer())


def _paragraph(exc: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    assert "`y`" not in msg and "samples" not in msg and "0..K-1" not in msg, msg  # no array wording
    return msg


def test_named_fields_are_read_and_an_unknown_one_lists_the_file_s_fields(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"sentence": f"s{i}", "topic": "ab"[i % 2]} for i in range(20)])
    raw = _encoded(path, text_field="sentence", label_field="topic")
    assert raw.class_names == ["a", "b"] and raw.train.y.tolist() == [0, 1] * 10
    with pytest.raises(DataError) as exc:
        read_dataset(str(path), text_field="text ")
    _paragraph(exc, "no field `text `", "sentence, topic", "--text-field")
    with pytest.raises(DataError) as exc:
        read_dataset(str(path), text_field="sentence", label_field="label")
    _paragraph(exc, "`label`", "sentence, topic", "--label-field")
    csv = tmp_path / "d.csv"
    csv.write_text("id,body,cls\n1,hello,a\n2,world,b\n", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_dataset(str(csv), label_field="cls")
    _paragraph(exc, "no column `text`", "id, body, cls", "--text-field")
    assert read_dataset(str(csv), text_field="body", label_field="cls").train.labels == ("a", "b")


def test_fields_named_for_data_without_fields_are_refused(tmp_path):
    (tmp_path / "pos").mkdir()
    (tmp_path / "pos" / "a.txt").write_text("good", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_dataset(str(tmp_path), label_field="label")
    _paragraph(exc, "folder of .txt files", "label field `label`")
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 3), np.float32), y=np.array([0, 1, 0, 1]))
    for source in (str(tmp_path / "x.npz"), "builtin:digits"):
        with pytest.raises(DataError) as exc:
            read_dataset(source, text_field="body")
        _paragraph(exc, "--text-field 'body'", source)


def test_a_file_whose_texts_have_no_label_says_which_field_it_read(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "cls": "ab"[i % 2]} for i in range(10)])
    with pytest.raises(DataError) as exc:
        _encoded(path)
    _paragraph(exc, "none of its 10 training texts has a label", "field `label`", "text, cls", "--label-field",
               "--transfer")


def test_one_class_names_the_label_and_its_field(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": "spam" if i % 3 else None} for i in range(12)])
    with pytest.raises(DataError) as exc:
        _encoded(path)
    _paragraph(exc, "'spam'", "field `label`", "at least two classes", "--label-field")
    folder = tmp_path / "folder"
    (folder / "pos").mkdir(parents=True)
    (folder / "unlabeled").mkdir()
    for i in range(3):
        (folder / "pos" / f"{i}.txt").write_text("good", encoding="utf-8")
        (folder / "unlabeled" / f"{i}.txt").write_text("hm", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        _encoded(folder)
    _paragraph(exc, "class folder 'pos'", "at least two classes")


def test_an_unlabelled_test_file_is_refused(tmp_path):
    _jsonl(tmp_path / "train.jsonl", [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(10)])
    _jsonl(tmp_path / "test.jsonl", [{"text": f"u{i}"} for i in range(4)])
    with pytest.raises(DataError) as exc:
        _encoded(tmp_path)
    _paragraph(exc, "test file's 4 texts", "field `label`")


def test_minus_one_is_a_class_of_text_data_and_null_is_unlabelled(tmp_path):
    """A sentiment file labelled -1 / 1 used to be read as one class plus unlabelled texts, and refused."""
    rows = [{"text": f"t{i}", "label": [-1, 1, None][i % 3]} for i in range(30)]
    raw = _encoded(_jsonl(tmp_path / "d.jsonl", rows))
    assert raw.class_names == ["-1", "1"]
    assert raw.train.y.tolist() == [0, 1, -1] * 10  # -1 the class is index 0; the null label is unlabelled (-1)
    s = make_splits(raw)
    assert s.num_classes == 2 and list(s.class_names) == ["-1", "1"]
    assert s.summary()["transfer_counts"]["unlabelled"] == 10


def test_a_transfer_set_s_labels_are_indexed_by_the_data_s_classes(tmp_path):
    main = _encoded(_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": "abc"[i % 3]} for i in range(30)]))
    transfer = read_dataset(str(_jsonl(tmp_path / "t.jsonl", [{"text": "x", "label": "c"}, {"text": "y"},
                                                              {"text": "z", "label": "b"}])), label_required=False)
    t = encode_corpus(transfer, ByteTokenizer(), main.text.max_length, classes=list(main.class_names))
    assert t.train.y.tolist() == [2, -1, 1]  # c and b as --data numbers them (alone, the transfer set had b=0, c=1)
    odd = read_dataset(str(_jsonl(tmp_path / "o.jsonl", [{"text": "x", "label": "d"}])))
    with pytest.raises(DataError) as exc:
        encode_corpus(odd, ByteTokenizer(), 8, classes=list(main.class_names))
    _paragraph(exc, "'d'", "'a', 'b', 'c'")
    ints = _encoded(_jsonl(tmp_path / "i.jsonl", [{"text": f"t{i}", "label": i % 2} for i in range(10)]))
    with pytest.raises(DataError) as exc:
        encode_corpus(transfer, ByteTokenizer(), 8, classes=list(ints.class_names))
    _paragraph(exc, "'c' is a string", "integers")
