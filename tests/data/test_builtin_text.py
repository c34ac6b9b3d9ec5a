"""The built-in text examples, on real installed text: `langid` on Debian's word lists (installed by .ci/run) and
`docs` on the docstrings of the installed libraries. Classes, sizes, one class per text (checked against the raw
files read here), seeded reproducibility, the missing-package errors."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from edgedistill.data import builtin_text
from edgedistill.data.builtin_text import TEXT_DATASETS, WORD_LISTS, langid
from edgedistill.errors import DataError

CODES = ["de", "en", "es", "fr", "it", "nl", "pt"]


def _corpus_or_skip(**kw):
    try:
        return langid(**kw)
    except DataError as exc:
        if os.environ.get("CI"):  # CI installs the word lists: missing there is a broken job, not a skip
            raise
        pytest.skip(f"Debian's word lists are not installed: {exc}")


@pytest.fixture(scope="module")
def corpus():
    return _corpus_or_skip()


def test_classes_sizes_and_balance(corpus):
    assert TEXT_DATASETS.get("langid") is langid
    assert corpus.class_names == CODES and corpus.source == "builtin:langid"
    assert len(corpus.train) == 7 * 8000 and len(corpus.test) == 7 * 2000
    assert Counter(corpus.train.labels) == {c: 8000 for c in CODES}
    assert Counter(corpus.test.labels) == {c: 2000 for c in CODES}
    assert corpus.train.labels[:7] != tuple(sorted(corpus.train.labels[:7]))  # shuffled, not grouped by language


def test_no_word_in_two_classes_nor_in_both_splits(corpus):
    pairs = list(zip(corpus.train.texts + corpus.test.texts, corpus.train.labels + corpus.test.labels))
    words = [w for w, _ in pairs]
    assert len(set(words)) == len(words)  # no duplicate: so no word has two labels, and test shares none with train
    # independently of the reader: every sampled word is absent from every other language's raw list
    raw = {w.code: {line.strip().lower() for line in (Path("/usr/share/dict") / w.file).read_text("utf-8").splitlines()}
           for w in WORD_LISTS} if all((Path("/usr/share/dict") / w.file).is_file() for w in WORD_LISTS) else None
    if raw is None:
        pytest.skip("the word lists live elsewhere (EDGEDISTILL_WORDLISTS)")
    for word, code in pairs[::7]:
        assert word in raw[code], (word, code)
        assert not any(word in raw[other] for other in CODES if other != code), (word, code)


def test_samples_are_normalized_words(corpus):
    for w in corpus.train.texts[:5000]:
        assert w == w.lower() and w.isalpha() and 3 <= len(w) <= 24, w


def test_seeded_reproducibility():
    a = _corpus_or_skip(seed=3, train_per_class=40, test_per_class=10)
    b = _corpus_or_skip(seed=3, train_per_class=40, test_per_class=10)
    c = _corpus_or_skip(seed=4, train_per_class=40, test_per_class=10)
    assert a == b
    assert set(a.train.texts) != set(c.train.texts)


def test_missing_word_lists_name_the_apt_command(tmp_path, monkeypatch):
    have = [w for w in WORD_LISTS if (Path("/usr/share/dict") / w.file).is_file()][:2]
    for w in have:
        shutil.copy(Path("/usr/share/dict") / w.file, tmp_path / w.file)
    monkeypatch.setattr(builtin_text, "DICT_DIRS", ())
    monkeypatch.setenv("EDGEDISTILL_WORDLISTS", str(tmp_path))
    with pytest.raises(DataError) as exc:
        langid()
    msg = str(exc.value)
    assert "\n" not in msg and "apt-get install" in msg
    for w in WORD_LISTS:
        assert (w.package in msg) == (w not in have), w.package


# --- docs: paragraphs of the installed libraries' docstrings ---------------------------------------------------------

LIBRARIES = ["matplotlib", "networkx", "numpy", "scipy", "sklearn", "sympy", "torch", "transformers"]


@pytest.fixture(scope="module")
def docs_corpus():
    from edgedistill.data.builtin_docs import docs

    return docs()


def test_docs_classes_sizes_and_balance(docs_corpus):
    from edgedistill.data.builtin_docs import DOC_SOURCES, docs

    assert TEXT_DATASETS.get("docs") is docs
    assert [s.package for s in DOC_SOURCES] == LIBRARIES
    assert docs_corpus.class_names == LIBRARIES and docs_corpus.source == "builtin:docs"
    assert len(docs_corpus.train) == 8 * 1200 and len(docs_corpus.test) == 8 * 300
    assert Counter(docs_corpus.train.labels) == {c: 1200 for c in LIBRARIES}
    assert Counter(docs_corpus.test.labels) == {c: 300 for c in LIBRARIES}
    assert len(set(docs_corpus.train.labels[:16])) > 2  # shuffled, not grouped by library


def test_docs_texts_are_prose_paragraphs_naming_no_library(docs_corpus):
    """No library named, not even inside an identifier (torchvision, mpl_connect, __sklearn_is_fitted__ gave the
    answer away before): the names as substrings of the lower-cased text, the aliases as letter runs."""
    for t in docs_corpus.train.texts + docs_corpus.test.texts:
        assert 40 <= len(t) <= 320 and t == " ".join(t.split()) and t[0].isupper() and t.endswith("."), t
        assert ">>>" not in t
        low = t.lower()
        assert not [n for n in ("numpy", "scipy", "scikit", "sklearn", "matplotlib", "pyplot", "torch",
                                "transformers", "huggingface", "hugging face", "sympy", "networkx") if n in low], t
        assert not {"np", "nx", "mpl", "plt"} & set(re.split(r"[^A-Za-z]+", t)), t


def _read_sources():
    """Each library's .py files (those the reader chooses) as one string, whitespace runs made one space and
    backslash-newline continuations removed: raw source, not parsed, to find texts in independently."""
    import importlib.util

    from edgedistill.data.builtin_docs import DOC_SOURCES, _source_files

    out = {}
    for s in DOC_SOURCES:
        root = Path(importlib.util.find_spec(s.package).submodule_search_locations[0])
        text = "\n".join(p.read_text("utf-8", errors="replace") for p in _source_files(root, s.subpackages))
        out[s.package] = " ".join(text.replace("\\\n", "").split())
    return out


def test_docs_no_text_in_two_classes_nor_in_both_splits(docs_corpus):
    pairs = list(zip(docs_corpus.train.texts + docs_corpus.test.texts,
                     docs_corpus.train.labels + docs_corpus.test.labels))
    texts = [t for t, _ in pairs]
    assert len(set(texts)) == len(texts)  # so no text has two labels, and the test split shares none with training
    # independently of the parser and its filters: each sampled text is in its own library's source, in no other's
    sources = _read_sources()
    sample = [(t, y) for t, y in pairs if "\\" not in t][::60]  # a backslash may be an escape in the source
    assert len(sample) > 150
    for text, label in sample:
        assert text in sources[label], (text, label)
        assert not [other for other in LIBRARIES if other != label and text in sources[other]], (text, label)


def test_docs_side_of_a_paragraph_is_fixed_by_its_text(docs_corpus):
    """Whichever the seed, a paragraph is only ever drawn into one split (the train / test sides are fixed by the
    text), so a teacher trained on training-side paragraphs has seen no test paragraph of any draw; about
    TEST_SHARE of each library's paragraphs are on the test side."""
    from edgedistill.data.builtin_docs import TEST_SHARE, docs, docs_pools

    other = docs(seed=1)
    train = set(docs_corpus.train.texts) | set(other.train.texts)
    test = set(docs_corpus.test.texts) | set(other.test.texts)
    assert not train & test
    assert len(test) > len(docs_corpus.test) and len(train) > len(docs_corpus.train)  # the draws differ
    everything, teacher_side = docs_pools(), docs_pools("train")
    assert not test & {t for texts in teacher_side.values() for t in texts}
    for label, texts in everything.items():
        assert abs(1 - len(teacher_side[label]) / len(texts) - TEST_SHARE) < 0.03, label


def test_docs_records_versions_and_warns_when_they_differ_from_the_teacher_s(monkeypatch):
    from edgedistill.data import builtin_docs
    from edgedistill.data.builtin_docs import docs, docs_versions, version_warning

    installed = docs_versions()
    assert set(installed) == {s.distribution for s in builtin_docs.DOC_SOURCES}
    assert version_warning(installed, dict(installed)) is None and version_warning(installed, None) is None
    assert version_warning({**installed, "torch": "2.13.0"}, {**installed, "torch": "2.13.0+cpu"}) is None
    older = {**installed, "numpy": "1.26.4"}
    msg = version_warning(installed, older)
    assert "\n" not in msg and f"numpy 1.26.4 -> {installed['numpy']}" in msg and "lock.txt" in msg
    monkeypatch.setattr(builtin_docs, "teacher_versions", lambda: older)
    corpus = docs(train_per_class=20, test_per_class=5)
    assert corpus.provenance == {"package_versions": installed} and corpus.warnings == (msg,)
    monkeypatch.setattr(builtin_docs, "teacher_versions", lambda: dict(installed))
    assert docs(train_per_class=20, test_per_class=5).warnings == ()


def test_docs_corpus_is_the_one_the_committed_teacher_was_trained_on(docs_corpus):
    """The data set must not change silently: with the versions the teacher's log names, the corpus read here is
    byte for byte the one it was trained and tested on (a change to the reader fails here, not in a benchmark)."""
    import json
    from importlib import resources

    from edgedistill.data.builtin_docs import TEACHER_LOG, docs_versions, version_warning

    log = json.loads((resources.files("edgedistill.zoo") / TEACHER_LOG).read_text())
    if version_warning(docs_versions(), log["data_versions"]):
        if os.environ.get("CI"):  # CI installs requirements/lock.txt: other versions there are a broken job
            raise AssertionError((docs_versions(), log["data_versions"]))
        pytest.skip(f"other library versions than the teacher's: {docs_versions()} vs {log['data_versions']}")
    assert docs_corpus.warnings == ()
    assert docs_corpus.digest() == log["data_sha256"]
    assert (len(docs_corpus.train), len(docs_corpus.test)) == (log["train_texts"] + log["val_texts"] - log["pool_texts"],
                                                              log["test_texts"])


def test_prose_paragraphs_keeps_prose_and_drops_tables_code_and_names():
    from edgedistill.data.builtin_docs import prose_paragraphs

    doc = ("Compute the weighted median of the values along an axis.\n\n"
           "Parameters\n----------\nx : array_like\n    Input values, one row per sample.\n\n"
           "The weights need not sum to one; they are normalized before the\nmedian is taken.\n\n"
           ">>> weighted_median([1, 2, 3], [1, 1, 1])\n2\n\n"
           "Examples::\n\n    y = f(x)\n\n"
           "Like numpy.median, but with a weight for each of the values given.\n\n"
           "Short.\n\n"
           "a lower-case start is the rest of a list item or a parameter name, not a sentence.\n\n"
           "A paragraph that runs on without its full stop because a code block follows it here")
    assert prose_paragraphs(doc) == [
        "Compute the weighted median of the values along an axis.",
        "The weights need not sum to one; they are normalized before the median is taken.",
    ]


def test_docs_seeded_reproducibility():
    from edgedistill.data.builtin_docs import DOC_SOURCES, docs, package_paragraphs

    a = docs(seed=3, train_per_class=40, test_per_class=10)
    numpy_source = next(s for s in DOC_SOURCES if s.package == "numpy")
    assert package_paragraphs.__wrapped__(numpy_source) == package_paragraphs(numpy_source)  # files read again
    assert docs(seed=3, train_per_class=40, test_per_class=10) == a
    c = docs(seed=4, train_per_class=40, test_per_class=10)
    assert set(a.train.texts) != set(c.train.texts)
    with pytest.raises(DataError, match="paragraphs of its own"):
        docs(train_per_class=100_000)


@pytest.mark.parametrize("extra, command", [("text", "pip install 'edgedistill[text]'"),
                                            (None, "pip install no-such-docs-dist")])
def test_docs_missing_package_names_the_pip_command(monkeypatch, extra, command):
    from edgedistill.data import builtin_docs
    from edgedistill.errors import MissingDependencyError

    missing = builtin_docs.DocSource("no_such_docs_pkg", "no-such-docs-dist", extra)
    monkeypatch.setattr(builtin_docs, "DOC_SOURCES", (*builtin_docs.DOC_SOURCES, missing))
    with pytest.raises(MissingDependencyError) as exc:
        builtin_docs.docs()
    msg = str(exc.value)
    assert "\n" not in msg and command in msg and "no_such_docs_pkg" in msg
