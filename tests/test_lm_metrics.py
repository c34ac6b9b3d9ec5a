"""Perplexity, its bootstrap interval over documents and next-token top-k accuracy, against hand computations and,
for the interval's width, the delta method's standard error of a ratio estimator (an independent formula)."""

import math

import numpy as np
import pytest

from edgedistill.lm_metrics import (IGNORE, TokenScores, lm_metrics, paired_perplexity_gain, perplexity,
                                    perplexity_interval, token_scores, top_k_accuracy)

LN = math.log


def _hand_case():
    # two windows of 3 positions over a vocabulary of 4; rows chosen so softmax is a known fraction
    row = [LN(1), LN(2), LN(3), LN(4)]  # softmax = [0.1, 0.2, 0.3, 0.4]
    logits = np.array([[row, row, row], [row, [0, 0, 0, 0], row]], np.float32)
    targets = np.array([[3, 1, IGNORE], [0, 2, 2]])
    doc = np.array([7, 9])
    return logits, targets, doc


def test_scores_perplexity_and_top_k_by_hand():
    scores = token_scores(*_hand_case())
    nll = [-LN(0.4), -LN(0.2), -LN(0.1), -LN(0.25), -LN(0.3)]
    np.testing.assert_allclose(scores.nll, nll, rtol=1e-6)
    assert scores.rank.tolist() == [0, 2, 3, 0, 1]  # the all-equal row ranks its target first
    assert scores.doc.tolist() == [7, 7, 9, 9, 9]
    assert perplexity(scores) == pytest.approx(math.exp(sum(nll) / 5), rel=1e-6)
    assert top_k_accuracy(scores, 1) == pytest.approx(40.0)
    assert top_k_accuracy(scores, 3) == pytest.approx(80.0)
    m = lm_metrics(*_hand_case(), resamples=200)
    assert (m.top1, m.top3, m.perplexity.tokens, m.perplexity.documents) == (40.0, 80.0, 5, 2)


def test_two_documents_bootstrap_to_the_perplexity_of_each_alone():
    """With two documents a resample is (A, A), (A, B) or (B, B) with probabilities 1/4, 1/2, 1/4, so the 2.5th
    and 97.5th percentiles are the perplexities of A alone and of B alone."""
    scores = token_scores(*_hand_case())
    iv = perplexity_interval(scores, resamples=2000, seed=0)
    ppl_a = math.exp((-LN(0.4) - LN(0.2)) / 2)
    ppl_b = math.exp((-LN(0.1) - LN(0.25) - LN(0.3)) / 3)
    assert iv.low == pytest.approx(min(ppl_a, ppl_b), rel=1e-6)  # float32 logits
    assert iv.high == pytest.approx(max(ppl_a, ppl_b), rel=1e-6)
    assert iv.low < iv.value < iv.high


def test_interval_is_seeded_and_matches_the_delta_method_on_many_documents():
    rng = np.random.default_rng(0)
    docs = 400
    counts = rng.integers(5, 60, docs)
    doc = np.repeat(np.arange(docs), counts)
    level = rng.normal(3.0, 0.4, docs)  # documents differ in difficulty: tokens within one are correlated
    nll = np.clip(level[doc] + rng.normal(0, 1.0, doc.size), 0, None)
    scores = TokenScores(nll, np.zeros(doc.size, np.int64), doc)
    a = perplexity_interval(scores, seed=5)
    assert a == perplexity_interval(scores, seed=5)
    assert a != perplexity_interval(scores, seed=6)
    # delta method for the ratio R = Σ S_d / Σ n_d: se² = Σ (S_d − R n_d)² / (Σ n_d)² (Cochran 1977, eq. 6.13)
    s = np.bincount(doc, weights=nll)
    r = s.sum() / counts.sum()
    se = math.sqrt(((s - r * counts) ** 2).sum()) / counts.sum()
    assert a.value == pytest.approx(math.exp(r))
    assert a.low == pytest.approx(math.exp(r - 1.96 * se), rel=0.01)
    assert a.high == pytest.approx(math.exp(r + 1.96 * se), rel=0.01)


def test_equal_documents_give_a_zero_width_interval_and_no_positions_give_nan():
    scores = TokenScores(np.full(12, 2.0), np.zeros(12, np.int64), np.repeat(np.arange(4), 3))
    iv = perplexity_interval(scores)
    assert iv.low == pytest.approx(math.exp(2.0)) and iv.high == pytest.approx(math.exp(2.0))
    empty = token_scores(np.zeros((1, 2, 3)), np.full((1, 2), IGNORE), np.array([0]))
    assert empty.nll.size == 0 and math.isnan(perplexity_interval(empty).value)
    with pytest.raises(ValueError, match="targets must lie"):
        token_scores(np.zeros((1, 2, 3)), np.array([[0, 3]]), np.array([0]))


def test_paired_gain_by_hand_with_two_documents():
    """Two documents: a paired resample is (A, A), (A, B) or (B, B) with probabilities 1/4, 1/2, 1/4; A's and B's
    perplexities per document are known, so the gain's percentiles are the gains on A alone and on B alone."""
    doc = np.array([0, 0, 1, 1])
    a = TokenScores(np.array([0.1, 0.3, 1.0, 1.2]), np.zeros(4, np.int64), doc)
    b = TokenScores(np.array([0.2, 0.4, 1.0, 1.0]), np.zeros(4, np.int64), doc)
    g = paired_perplexity_gain(a, b, resamples=4000, seed=1)
    assert g.gain == pytest.approx(math.exp(2.6 / 4) - math.exp(2.6 / 4), abs=1e-12)  # equal totals: no gain
    on_a, on_b = math.exp(0.3) - math.exp(0.2), math.exp(1.0) - math.exp(1.1)  # gain within each document
    assert g.high == pytest.approx(on_a, rel=1e-9) and g.low == pytest.approx(on_b, rel=1e-9)
    assert not g.beyond_noise and g.documents == 2


@pytest.mark.parametrize("documents", [1, 4])
def test_too_few_documents_are_never_beyond_noise(documents):
    """A breaking session's one-document test split: every draw resamples that document, the interval has zero width
    and the bootstrap p was 0, so a 13-token test "beat the twin beyond noise". Below MIN_DOCUMENTS the interval is
    still given, but the gain is not called beyond noise (p = 1); at MIN_DOCUMENTS the same consistent gain is."""
    from edgedistill.lm_metrics import MIN_DOCUMENTS

    def gain(n):
        doc = np.repeat(np.arange(n), 10)
        base = np.random.default_rng(0).gamma(2.0, 0.5, doc.size)
        return paired_perplexity_gain(TokenScores(base, np.zeros(doc.size, np.int64), doc),
                                      TokenScores(base + 0.5, np.zeros(doc.size, np.int64), doc))

    few = gain(documents)
    assert few.gain > 0 and few.low > 0 and not few.beyond_noise and few.p_value == 1.0
    enough = gain(MIN_DOCUMENTS)
    assert enough.beyond_noise and enough.p_value < 0.01 and MIN_DOCUMENTS == 5


def test_paired_gain_sees_a_consistent_small_gain_and_refuses_other_positions():
    rng = np.random.default_rng(0)
    doc = np.repeat(np.arange(50), 20)
    base = rng.gamma(2.0, 0.5, doc.size)
    b = TokenScores(base + 0.05, np.zeros(doc.size, np.int64), doc)  # B is worse by 0.05 nats everywhere
    a = TokenScores(base, np.zeros(doc.size, np.int64), doc)
    g = paired_perplexity_gain(a, b)
    assert g.gain == pytest.approx(perplexity(b) - perplexity(a)) and g.gain > 0
    assert g.beyond_noise and g.low > 0 and g.p_value < 0.01
    assert not paired_perplexity_gain(a, a).beyond_noise
    with pytest.raises(ValueError):
        paired_perplexity_gain(a, TokenScores(base, np.zeros(doc.size, np.int64), doc[::-1].copy()))
