"""What people measure on a causal language model: perplexity with a bootstrap interval, next-token top-k accuracy.

Every predicted position (a target that is not IGNORE, edgedistill.data.lm_windows) gives the negative
log-likelihood of the true next token, nll = −log softmax(logits)[target] in nats, and the target's rank: the number
of vocabulary entries whose logit is strictly greater than the target's (0 = the model's first choice; a tie counts
in the target's favour, so an all-equal row ranks every token first).

* Perplexity over M positions: PPL = exp((1/M) Σ nll) (Jelinek et al. 1977; the metric of GPT-2 and DistilGPT2).
  Its 95 % interval is a percentile bootstrap over documents (Efron & Tibshirani 1993, "An Introduction to the
  Bootstrap", ch. 13; resampling whole documents, the independent units, because tokens of one document are
  correlated, as the cluster bootstrap does): draw D documents with replacement from the D documents scored
  (numpy's `default_rng(seed)`), PPL* = exp(Σ_sampled nll / Σ_sampled tokens), B times; the interval is the
  2.5th and 97.5th percentile of the B values (numpy's default linear interpolation).
* Top-k accuracy: the percentage of positions whose target ranks below k. A keyboard shows three suggestions, so
  top-1 and top-3 are reported; with a word-level tokenizer this is next-word accuracy, with sub-word or byte
  tokens it is next-token accuracy (the unit is named in the result).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

IGNORE = -1  # edgedistill.data.lm_windows.IGNORE
BOOTSTRAP_RESAMPLES = 1000
# fewer documents than this and a bootstrap over them cannot measure the noise (one document gives every draw the same
# value, a zero-width interval; with five all favouring one model a sign test is still at p = 0.06): the paired gain
# is then never called beyond noise, and the run warns (pipeline/lm_report.py)
MIN_DOCUMENTS = 5
_CHUNK = 64  # windows scored at a time (bounds the float64 copy of the logits)


@dataclass(frozen=True)
class TokenScores:
    """Per predicted position: `nll` float64 (M,) in nats, `rank` int64 (M,) (0 = top-1), `doc` int64 (M,)."""

    nll: np.ndarray
    rank: np.ndarray
    doc: np.ndarray


@dataclass(frozen=True)
class PerplexityInterval:
    """Perplexity (value) and its percentile-bootstrap interval [low, high] over `documents` documents holding
    `tokens` predicted positions; `resamples` bootstrap draws with `seed`."""

    value: float
    low: float
    high: float
    documents: int
    tokens: int
    resamples: int
    seed: int


@dataclass(frozen=True)
class LMMetrics:
    """Perplexity with its interval, top-1 and top-3 accuracy in percent, and the unit they count."""

    perplexity: PerplexityInterval
    top1: float
    top3: float
    unit: str = "token"

    def to_dict(self) -> dict:
        return asdict(self)


def token_scores(logits: np.ndarray, targets: np.ndarray, doc: np.ndarray) -> TokenScores:
    """Score a split: logits float (W, L, V), targets int (W, L) with IGNORE where none, doc int (W,) the window's
    document. Positions without a target are left out. Raises ValueError for mismatched shapes or a target outside
    0..V-1."""
    logits, targets, doc = np.asarray(logits), np.asarray(targets), np.asarray(doc)
    if logits.ndim != 3 or targets.shape != logits.shape[:2] or doc.shape != logits.shape[:1]:
        raise ValueError(f"need logits (W, L, V), targets (W, L), doc (W,); got {logits.shape}, {targets.shape}, "
                         f"{doc.shape}")
    keep = targets != IGNORE
    if keep.any() and (targets[keep].min() < 0 or targets[keep].max() >= logits.shape[2]):
        raise ValueError(f"targets must lie in 0..{logits.shape[2] - 1} (or be {IGNORE})")
    nll, rank, docs = [], [], []
    for start in range(0, logits.shape[0], _CHUNK):
        rows = logits[start:start + _CHUNK][keep[start:start + _CHUNK]].astype(np.float64)  # (m, V)
        tgt = targets[start:start + _CHUNK][keep[start:start + _CHUNK]].astype(np.int64)
        top = rows.max(1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(rows - top).sum(1))
        picked = rows[np.arange(len(tgt)), tgt]
        nll.append(lse - picked)
        rank.append((rows > picked[:, None]).sum(1))
        docs.append(np.broadcast_to(doc[start:start + _CHUNK, None], keep[start:start + _CHUNK].shape)[
            keep[start:start + _CHUNK]])
    cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
    return TokenScores(cat(nll, np.float64), cat(rank, np.int64), cat(docs, np.int64))


def concat_scores(parts: list[TokenScores]) -> TokenScores:
    """The scores of consecutive batches of windows as one split's (token_scores of the whole split, in order):
    lets a caller score a split batch by batch without holding its (W, L, V) logits."""
    cat = lambda key, dtype: np.concatenate([getattr(p, key) for p in parts]).astype(dtype) if parts \
        else np.zeros(0, dtype)  # noqa: E731
    return TokenScores(cat("nll", np.float64), cat("rank", np.int64), cat("doc", np.int64))


def perplexity(scores: TokenScores) -> float:
    """exp(mean nll); NaN without a predicted position."""
    return float(math.exp(scores.nll.mean())) if scores.nll.size else float("nan")


def perplexity_interval(scores: TokenScores, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                        level: float = 0.95) -> PerplexityInterval:
    """Perplexity and its percentile-bootstrap interval over documents (module doc). Without a position: NaNs."""
    docs, inverse = np.unique(scores.doc, return_inverse=True)
    sums = np.bincount(inverse, weights=scores.nll, minlength=docs.size)
    counts = np.bincount(inverse, minlength=docs.size).astype(np.float64)
    if docs.size == 0:
        return PerplexityInterval(float("nan"), float("nan"), float("nan"), 0, 0, int(resamples), int(seed))
    rng = np.random.default_rng(seed)
    draws = np.empty(int(resamples))
    step = max(1, 2_000_000 // docs.size)  # bound the (draws × documents) index array
    for start in range(0, int(resamples), step):
        idx = rng.integers(0, docs.size, size=(min(step, int(resamples) - start), docs.size))
        draws[start:start + idx.shape[0]] = np.exp(sums[idx].sum(1) / counts[idx].sum(1))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return PerplexityInterval(perplexity(scores), float(low), float(high), int(docs.size), int(scores.nll.size),
                              int(resamples), int(seed))


def top_k_accuracy(scores: TokenScores, k: int) -> float:
    """Percentage of positions whose target ranks among the k first (rank < k); NaN without a position."""
    return float(100.0 * (scores.rank < k).mean()) if scores.rank.size else float("nan")


def lm_metrics(logits: np.ndarray, targets: np.ndarray, doc: np.ndarray, seed: int = 0,
               resamples: int = BOOTSTRAP_RESAMPLES, unit: str = "token") -> LMMetrics:
    """Perplexity with its 95 % interval over documents, top-1 and top-3 accuracy of one split (shapes as in
    token_scores)."""
    return metrics_of(token_scores(logits, targets, doc), seed, resamples, unit)


def metrics_of(scores: TokenScores, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
               unit: str = "token") -> LMMetrics:
    """lm_metrics of a split already scored (token_scores, or concat_scores of its batches)."""
    return LMMetrics(perplexity_interval(scores, resamples, seed), top_k_accuracy(scores, 1),
                     top_k_accuracy(scores, 3), unit)


@dataclass(frozen=True)
class PairedPerplexityGain:
    """Model A against model B on the same positions: `gain` = PPL_B − PPL_A (positive: A is better), its paired
    percentile-bootstrap interval [low, high] over documents, `p_value` the two-sided bootstrap fraction (twice the
    smaller share of draws on either side of 0, at most 1) and `beyond_noise` = the interval excludes 0."""

    gain: float
    low: float
    high: float
    p_value: float
    beyond_noise: bool
    documents: int


def p_text(p_value: float, resamples: int = BOOTSTRAP_RESAMPLES) -> str:
    """'p = 0.034', or 'p < 0.002' where no bootstrap draw fell on the other side of 0: the two-sided bootstrap p
    cannot resolve below 2 / resamples, so 0 is not a value to print."""
    return f"p < {2 / resamples:.2g}" if p_value == 0 else f"p = {p_value:.3g}"


def paired_perplexity_gain(a: TokenScores, b: TokenScores, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                           level: float = 0.95) -> PairedPerplexityGain:
    """The perplexity gain of A over B with a paired bootstrap over documents: each draw resamples the D documents
    once and scores both models on the same draw, PPL* = exp(Σ nll / Σ tokens) per model, gain* = PPL_B* − PPL_A*
    (Efron & Tibshirani 1993, ch. 13, as perplexity_interval; pairing removes the documents' shared difficulty).
    With fewer than MIN_DOCUMENTS documents the interval is given but `beyond_noise` is False and `p_value` 1: so few
    cannot say how noisy the gain is. Raises ValueError unless A and B score the same positions (equal `doc`
    arrays)."""
    if a.doc.shape != b.doc.shape or not np.array_equal(a.doc, b.doc):
        raise ValueError("the two models must be scored on the same positions")
    docs, inverse = np.unique(a.doc, return_inverse=True)
    if docs.size == 0:
        nan = float("nan")
        return PairedPerplexityGain(nan, nan, nan, nan, False, 0)
    sa = np.bincount(inverse, weights=a.nll, minlength=docs.size)
    sb = np.bincount(inverse, weights=b.nll, minlength=docs.size)
    counts = np.bincount(inverse, minlength=docs.size).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = np.empty(int(resamples))
    step = max(1, 2_000_000 // docs.size)
    for start in range(0, int(resamples), step):
        idx = rng.integers(0, docs.size, size=(min(step, int(resamples) - start), docs.size))
        n = counts[idx].sum(1)
        draws[start:start + idx.shape[0]] = np.exp(sb[idx].sum(1) / n) - np.exp(sa[idx].sum(1) / n)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    p = min(1.0, 2.0 * min(float((draws <= 0).mean()), float((draws >= 0).mean())))
    if docs.size < MIN_DOCUMENTS:
        return PairedPerplexityGain(perplexity(b) - perplexity(a), float(low), float(high), 1.0, False,
                                    int(docs.size))
    return PairedPerplexityGain(perplexity(b) - perplexity(a), float(low), float(high), p,
                                bool(low > 0 or high < 0), int(docs.size))
