"""Causal-LM windows: every document is cut into windows that give back its tokens, each token after the first is a
target exactly once, and the seeded split is by document (no document straddles two splits), checked against the
byte tokenizer's own encoding of each text."""

import numpy as np
import pytest

from edgedistill.data.byte_tokenizer import ByteTokenizer
from edgedistill.data.lm_windows import IGNORE, SPLITS, document_windows, lm_windows, split_documents
from edgedistill.errors import ConfigError, DataError


def _corpus(n=40, seed=0):
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    # lengths from 1 character to several windows, so short, exact-multiple and long documents all occur
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 30)))) for _ in range(n)] + ["x", "ab", "abcdefgh"]


def _rebuild(w, rows_of_doc):
    """A document's tokens read back from its windows: ids of the first position of each window plus the
    targets, in window order (independent of how the windows were cut)."""
    tokens = [int(w.ids[rows_of_doc[0], 0])]
    for r in rows_of_doc:
        tokens += [int(t) for t in w.targets[r] if t != IGNORE]
    return tokens


@pytest.mark.parametrize("context", [1, 4, 7])
def test_windows_give_back_every_document_and_predict_each_token_once(context):
    tok = ByteTokenizer()
    docs = _corpus()
    s = lm_windows(docs, tok, context, val_fraction=0.2, test_fraction=0.2, seed=3)
    expected = tok.token_ids(docs)
    seen = set()
    for name in SPLITS:
        w = s.split(name)
        assert w.ids.shape == w.targets.shape == (len(w), context) and w.ids.dtype == np.int32
        for d in w.documents:
            rows = np.flatnonzero(w.doc == d)
            assert _rebuild(w, rows) == expected[d].tolist()
            assert w.targets[rows].ravel().tolist().count(IGNORE) == len(rows) * context - (len(expected[d]) - 1)
            seen.add(int(d))
        real = w.targets != IGNORE
        # inside a window, a position's target is the next position's input
        inner = real[:, :-1] & (w.ids[:, 1:] != 0)
        assert np.array_equal(w.targets[:, :-1][inner], w.ids[:, 1:][inner])
        assert np.all(w.ids[~real] == 0)  # padding only where nothing is predicted
        assert np.all(w.ids[real] > 0)
    assert seen == {i for i, e in enumerate(expected) if len(e) >= 2}
    assert s.dropped == (docs.index("x"),)


def test_no_document_straddles_splits_and_the_split_is_seeded():
    tok = ByteTokenizer()
    docs = ["word " * 40 + str(i) for i in range(30)]  # long documents: many windows each
    a = lm_windows(docs, tok, 8, val_fraction=0.2, test_fraction=0.2, seed=11)
    per_split = [set(a.split(n).doc.tolist()) for n in SPLITS]
    assert all(len(a.split(n)) > len(per_split[i]) for i, n in enumerate(SPLITS))  # several windows a document
    assert not (per_split[0] & per_split[1] or per_split[0] & per_split[2] or per_split[1] & per_split[2])
    assert set().union(*per_split) == set(range(30))
    assert [len(p) for p in per_split] == [18, 6, 6]
    b = lm_windows(docs, tok, 8, val_fraction=0.2, test_fraction=0.2, seed=11)
    c = lm_windows(docs, tok, 8, val_fraction=0.2, test_fraction=0.2, seed=12)
    assert all(np.array_equal(a.split(n).ids, b.split(n).ids) for n in SPLITS)
    assert set(c.test.doc.tolist()) != per_split[2]


def test_document_windows_by_hand():
    ids, targets = document_windows(np.array([5, 6, 7, 8, 9]), 3)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert targets.tolist() == [[6, 7, 8], [9, IGNORE, IGNORE]]
    ids, targets = document_windows(np.array([5, 6, 7]), 2)  # n - 1 a multiple of L: no empty window
    assert ids.tolist() == [[5, 6]] and targets.tolist() == [[6, 7]]
    assert document_windows(np.array([5]), 2)[0].shape == (0, 2)


def test_a_given_test_file_is_the_test_split():
    tok = ByteTokenizer()
    train, test = ["alpha beta"] * 10, ["gamma", "delta"]
    s = lm_windows(train, tok, 4, val_fraction=0.2, seed=0, test_documents=test)
    assert set(s.test.doc.tolist()) == {10, 11}
    assert set(s.val.doc.tolist()) | set(s.train.doc.tolist()) == set(range(10))
    assert len(set(s.val.doc.tolist())) == 2


def test_bad_inputs_get_one_clear_error():
    tok = ByteTokenizer()
    with pytest.raises(DataError, match="needs 3 or more"):
        lm_windows(["ab", "cd"], tok, 4, val_fraction=0.1, test_fraction=0.1)
    with pytest.raises(ConfigError, match="positive"):
        lm_windows(["ab"] * 5, tok, 0)
    with pytest.raises(ConfigError, match="leave no documents"):
        split_documents(10, 0.5, 0.5, 0)

    class ZeroTokenizer(ByteTokenizer):
        def token_ids(self, texts):
            return [np.array([3, 0, 4]) for _ in texts]

    with pytest.raises(DataError, match="padding id 0"):
        lm_windows(["a"] * 5, ZeroTokenizer(), 4)
