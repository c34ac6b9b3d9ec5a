"""The noise of an accuracy measured on a finite test split, and of a difference between two models.

Every accuracy edgedistill reports is k correct out of n test samples: a binomial proportion. Three tools:

* `wilson(k, n)`: the Wilson score interval (Wilson 1927, "Probable inference, the law of succession, and
  statistical inference", JASA 22:209-212; recommended over the normal "Wald" interval by Brown, Cai & DasGupta
  2001, "Interval Estimation for a Binomial Proportion", Statistical Science 16:101-133, because it keeps close to
  its nominal coverage for small n and for p near 0 or 1, where the Wald interval collapses to zero width):

      p̂ = k / n,   z = Φ⁻¹(0.975) = 1.959964
      centre = (p̂ + z² / 2n) / (1 + z² / n)
      half   = z / (1 + z² / n) · sqrt(p̂ (1 − p̂) / n + z² / 4n²)
      interval = [centre − half, centre + half]                  (clipped to [0, 1]; in percent points here)

  k = 0 gives [0, z² / (n + z²)], k = n gives [n / (n + z²), 1]: never a zero-width interval.

* `mcnemar(b, c)`: McNemar's test for two classifiers scored on the *same* test samples (McNemar 1947, "Note on
  the sampling error of the difference between correlated proportions or percentages", Psychometrika 12:153-157;
  for comparing classifiers: Dietterich 1998, "Approximate statistical tests for comparing supervised classification
  learning algorithms", Neural Computation 10:1895-1923). Only discordant samples carry information: b = samples A
  gets right and B wrong, c = the reverse. Under "A and B are equally accurate" each discordant sample is a fair
  coin, so b ~ Binomial(b + c, 1/2). The exact two-sided p-value is

      p = min(1, 2 · Σ_{i=0}^{min(b,c)} C(b+c, i) / 2^(b+c))

  and the mid-p variant (Fagerland, Lydersen & Laake 2013, "The McNemar test for binary matched-pairs data:
  mid-p and asymptotic are better than exact conditional", BMC Med Res Methodol 13:91) subtracts half the
  probability of the observed outcome in each tail: p_mid = p − C(b+c, min(b,c)) / 2^(b+c) for b ≠ c, and 1 for
  b = c. b + c = 0 (the models never disagree) gives p = 1: no evidence of any difference.

* `newcombe(k1, n1, k2, n2)`: a 95 % interval for the difference of two accuracies p1 − p2 from their Wilson
  intervals (Newcombe 1998, "Interval estimation for the difference between independent proportions: comparison of
  eleven methods", Statistics in Medicine 17:873-890, method 10):

      d = p̂1 − p̂2,   [l1, u1], [l2, u2] the Wilson intervals
      lower = d − sqrt((p̂1 − l1)² + (u2 − p̂2)²),   upper = d + sqrt((u1 − p̂1)² + (p̂2 − l2)²)

  It treats the two as independent, which is conservative (wider) when both were measured on the same samples:
  used where per-sample results are not available (two reports compared by the gate).

A result is "within noise" when the 95 % interval still contains the limit it is compared with (or, for a paired
difference, when McNemar's p ≥ 0.05): the test split cannot tell whether the limit was met.

The Wilson interval and the binomial tail are computed by scipy (`scipy.stats.binomtest`, its
`proportion_ci(method="wilson")`, and `scipy.stats.binom`); the formulas above are what those compute and what the
tests check them against by hand. scipy is imported on first use, so importing this module (the gate, `edgedistill
list`) stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # Φ⁻¹(0.975)
ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    """A proportion and its 95 % interval, in percent points: `low <= value <= high`; n samples."""

    value: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


def wilson(k: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for k successes in n trials, in percent points; z is the normal quantile of the
    two-sided level (Z95: 95 %). n = 0 gives [0, 100] (no information). Raises ValueError unless 0 <= k <= n.
    Computed by scipy.stats.binomtest(k, n).proportion_ci(method="wilson"), which pins k = 0 to a lower end of
    exactly 0 and k = n to an upper end of exactly 1, as the formula above does."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:  # scipy refuses n = 0; no sample says nothing
        return Interval(float("nan"), 0.0, 100.0, 0)
    from scipy import stats as sps

    level = 1.0 - 2.0 * float(sps.norm.sf(z))  # the two-sided level whose quantile is z
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    low, high = max(0.0, float(ci.low)), min(1.0, float(ci.high))
    return Interval(100.0 * k / n, 100.0 * low, 100.0 * high, n)


def wilson_from_percent(accuracy: float, n: int) -> Interval:
    """The Wilson interval of an accuracy given in percent over n samples (k = round(accuracy · n / 100))."""
    k = int(round(accuracy * n / 100.0))
    return wilson(min(max(k, 0), n), n)


@dataclass(frozen=True)
class McNemar:
    """Paired comparison of A and B on the same samples: b = only A right, c = only B right."""

    b: int
    c: int
    p_value: float
    mid_p: float

    @property
    def within_noise(self) -> bool:
        """True when the test split gives no evidence (exact two-sided p >= 0.05) that A and B differ."""
        return self.p_value >= ALPHA


def mcnemar(b: int, c: int) -> McNemar:
    """McNemar's exact (conditional binomial) test; two-sided p and mid-p. b + c == 0 gives p = mid_p = 1.
    Raises ValueError for a negative count. The p-value is scipy.stats.binomtest(b, b + c, 1/2)'s two-sided one
    (for p = 1/2 it is twice the smaller tail, capped at 1); mid-p subtracts scipy.stats.binom's P(X = min(b, c))."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0, 1.0)
    from scipy import stats as sps

    p = min(1.0, float(sps.binomtest(int(b), int(n), 0.5, alternative="two-sided").pvalue))
    # mid-p = 2 · (P(X < lo) + P(X = lo) / 2); for b == c that is (1 − point) + point = 1 by symmetry
    mid = 1.0 if b == c else max(0.0, p - float(sps.binom.pmf(min(b, c), n, 0.5)))
    return McNemar(b, c, p, mid)


def paired_counts(correct_a, correct_b) -> tuple[int, int]:
    """(b, c) from two boolean sequences of per-sample correctness on the same samples (array-likes of equal length)."""
    import numpy as np

    a = np.asarray(correct_a, dtype=bool).ravel()
    bb = np.asarray(correct_b, dtype=bool).ravel()
    if a.shape != bb.shape:
        raise ValueError(f"per-sample results differ in length: {a.shape[0]} vs {bb.shape[0]}")
    return int(np.sum(a & ~bb)), int(np.sum(~a & bb))


def paired_difference(b: int, c: int, n: int, z: float = Z95) -> Interval:
    """95 % interval of p_A − p_B (percent points) for two models scored on the same n samples, from the discordant
    counts b (only A right) and c (only B right): Agresti & Min's adjusted Wald interval (Biometrics 61, 2005,
    "Simple improved confidence intervals for comparing matched proportions": half a count added to each of the four
    cells), clipped to [−100, 100]; the value is the observed (b − c) / n. Raises ValueError for counts that do not
    fit n (negative, or b + c > n)."""
    if b < 0 or c < 0 or n < 1 or b + c > n:
        raise ValueError(f"paired counts must satisfy 0 <= b, c and b + c <= n >= 1, got b={b}, c={c}, n={n}")
    ba, ca, na = b + 0.5, c + 0.5, n + 2.0
    d = (ba - ca) / na
    half = z * math.sqrt(max(0.0, (ba + ca) - (ba - ca) ** 2 / na)) / na
    return Interval(100.0 * (b - c) / n, max(-100.0, 100.0 * (d - half)), min(100.0, 100.0 * (d + half)), n)


def newcombe(k1: int, n1: int, k2: int, n2: int) -> Interval:
    """95 % interval of p1 − p2 (percent points) for two accuracies measured independently (Newcombe method 10);
    `n` of the result is min(n1, n2)."""
    a, b = wilson(k1, n1), wilson(k2, n2)
    d = a.value - b.value
    low = d - math.hypot(a.value - a.low, b.high - b.value)
    high = d + math.hypot(a.high - a.value, b.value - b.low)
    return Interval(d, low, high, min(n1, n2))


def at_least_within_noise(iv: Interval, limit: float) -> tuple[bool, bool]:
    """A one-sided check "value >= limit" on a measured proportion: (passed, within_noise). Passes outright when the
    value meets the limit; passes *within noise* when it does not but the 95 % interval still reaches the limit
    (the test split cannot tell); fails only when the whole interval lies below the limit."""
    if iv.value >= limit:
        return True, False
    return (True, True) if iv.high >= limit else (False, False)


def at_most_within_noise(iv: Interval, limit: float) -> tuple[bool, bool]:
    """The mirror of `at_least_within_noise` for "value <= limit" (a drop or a regression)."""
    if iv.value <= limit:
        return True, False
    return (True, True) if iv.low <= limit else (False, False)
