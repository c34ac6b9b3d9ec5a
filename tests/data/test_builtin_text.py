"""The built-in text example `langid`, on Debian's real word lists (installed by .ci/run): classes, sizes, one
language per word (checked against the raw files read here), seeded reproducibility, the missing-package error."""

from __future__ import annotations

import os
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
