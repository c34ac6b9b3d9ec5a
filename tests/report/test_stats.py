"""Wilson interval, McNemar's exact test and the Newcombe difference interval against hand computations.

edgedistill.stats computes the first two with scipy; the references here are the closed-form Wilson formula and
exact integer binomial sums, written out independently of scipy."""

import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from scipy.special import ndtri

from edgedistill.stats import (Z95, at_least_within_noise, at_most_within_noise, mcnemar, newcombe,
                                      paired_counts, wilson, wilson_from_percent)


def test_wilson_8_of_10_by_hand():
    z2 = Z95 ** 2
    centre = (0.8 + z2 / 20) / (1 + z2 / 10)
    half = Z95 / (1 + z2 / 10) * math.sqrt(0.8 * 0.2 / 10 + z2 / 400)
    iv = wilson(8, 10)
    assert iv.value == pytest.approx(80.0)
    assert iv.low == pytest.approx(100 * (centre - half)) and iv.high == pytest.approx(100 * (centre + half))
    assert (round(iv.low, 2), round(iv.high, 2)) == (49.02, 94.33)  # the textbook value (Brown, Cai & DasGupta)


def test_wilson_at_zero_and_n_is_never_degenerate():
    z2 = Z95 ** 2
    lo = wilson(0, 10)
    assert lo.low == 0.0 and lo.high == pytest.approx(100 * z2 / (10 + z2))  # 27.75 %
    hi = wilson(10, 10)
    assert hi.high == 100.0 and hi.low == pytest.approx(100 * 10 / (10 + z2))  # 72.25 %
    assert wilson(0, 0).low == 0.0 and wilson(0, 0).high == 100.0
    with pytest.raises(ValueError):
        wilson(11, 10)


def _wilson_by_hand(k, n, z=Z95):
    p, z2 = k / n, z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return 100 * (0.0 if k == 0 else centre - half), 100 * (1.0 if k == n else centre + half)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (1, 7), (37, 80), (79, 80), (3521, 3600), (9047, 10000),
                                 (59999, 60000)])
def test_wilson_agrees_with_the_formula(k, n):
    iv = wilson(k, n)
    low, high = _wilson_by_hand(k, n)
    assert iv.value == pytest.approx(100 * k / n) and iv.n == n
    assert iv.low == pytest.approx(low, abs=1e-9) and iv.high == pytest.approx(high, abs=1e-9)


def test_wilson_other_levels_follow_z():
    assert Z95 == pytest.approx(float(ndtri(0.975)), rel=1e-15)
    iv = wilson(8, 10, z=1.0)  # about a 68.3 % interval: narrower than the 95 % one
    low, high = _wilson_by_hand(8, 10, z=1.0)
    assert iv.low == pytest.approx(low, abs=1e-9) and iv.high == pytest.approx(high, abs=1e-9)
    assert wilson(8, 10).low < iv.low < iv.high < wilson(8, 10).high


def test_importing_stats_does_not_import_scipy():
    code = "import sys, edgedistill.stats, edgedistill.gate\nprint('scipy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_wilson_from_percent_recovers_the_count():
    assert wilson_from_percent(100 * 73 / 80, 80) == wilson(73, 80)
    assert wilson_from_percent(91.25000381, 80) == wilson(73, 80)  # float32 mean


def test_mcnemar_by_hand():
    r = mcnemar(0, 5)  # five discordant samples, all one way: 2 · (1/2)^5
    assert r.p_value == pytest.approx(2 / 32) and r.mid_p == pytest.approx(1 / 32) and r.within_noise
    r = mcnemar(1, 9)  # 2 · (C(10,0) + C(10,1)) / 2^10
    assert r.p_value == pytest.approx(22 / 1024) and r.mid_p == pytest.approx(12 / 1024) and not r.within_noise
    assert mcnemar(9, 1).p_value == r.p_value  # symmetric


def test_mcnemar_without_disagreements_and_ties():
    for b, c in ((0, 0), (3, 3)):
        r = mcnemar(b, c)
        assert r.p_value == 1.0 and r.mid_p == pytest.approx(1.0) and r.within_noise


def _mcnemar_by_hand(b, c):
    """Exact rationals: p = min(1, 2 · P(X <= min(b, c))), mid-p = p − P(X = min(b, c)), X ~ Binomial(b + c, 1/2)."""
    n, lo = b + c, min(b, c)
    tail = Fraction(sum(math.comb(n, i) for i in range(lo + 1)), 2 ** n)
    p = min(Fraction(1), 2 * tail)
    return float(p), 1.0 if b == c else float(p - Fraction(math.comb(n, lo), 2 ** n))


@pytest.mark.parametrize("b,c", [(0, 1), (2, 11), (7, 8), (40, 62), (1800, 2000), (12, 0)])
def test_mcnemar_agrees_with_exact_sums(b, c):
    r = mcnemar(b, c)
    p, mid = _mcnemar_by_hand(b, c)
    assert r.p_value == pytest.approx(p, rel=1e-9) and r.mid_p == pytest.approx(mid, rel=1e-9)
    assert 0.0 <= r.mid_p <= r.p_value <= 1.0


def test_mcnemar_far_beyond_noise_underflows_to_zero_not_an_error():
    r = mcnemar(5000, 0)  # 2 · 0.5^5000 is below the smallest double
    assert r.p_value == 0.0 and r.mid_p == 0.0 and not r.within_noise
    with pytest.raises(ValueError):
        mcnemar(-1, 3)


def test_paired_counts():
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([1, 0, 1, 0, 0], bool)
    assert paired_counts(a, b) == (2, 1)
    with pytest.raises(ValueError):
        paired_counts(a, b[:3])


def test_newcombe_by_hand():
    a, b = wilson(90, 100), wilson(80, 100)
    iv = newcombe(90, 100, 80, 100)
    assert iv.value == pytest.approx(10.0)
    assert iv.low == pytest.approx(10 - math.hypot(a.value - a.low, b.high - b.value))
    assert iv.high == pytest.approx(10 + math.hypot(a.high - a.value, b.value - b.low))
    # Newcombe (1998), table II, example (a): 56/70 vs 48/80, method 10 gives 0.0524 to 0.3339
    ex = newcombe(56, 70, 48, 80)
    assert (round(ex.low / 100, 4), round(ex.high / 100, 4)) == (0.0524, 0.3339)


def test_within_noise_rules():
    iv = wilson(70, 80)  # 87.5 %, interval about [78.5, 93.1]
    assert at_least_within_noise(iv, 85) == (True, False)
    assert at_least_within_noise(iv, 90) == (True, True)
    assert at_least_within_noise(iv, 95) == (False, False)
    assert at_most_within_noise(iv, 90) == (True, False)
    assert at_most_within_noise(iv, 80) == (True, True)
    assert at_most_within_noise(iv, 75) == (False, False)


def test_the_paired_difference_interval_covers_the_true_gain_about_95_percent_of_the_time():
    """stats.paired_difference (Agresti & Min 2005): over simulated pairs of models on the same samples, with a known
    true difference in accuracy, the interval holds it in 93-97 % of 2,000 draws, at a small and a larger n."""
    import numpy as np

    from edgedistill.stats import paired_difference

    rng = np.random.default_rng(0)
    for n, cells in ((80, (0.70, 0.12, 0.05, 0.13)), (1000, (0.80, 0.06, 0.04, 0.10))):
        both, only_a, only_b, neither = cells
        true = 100.0 * (only_a - only_b)
        draws = rng.multinomial(n, cells, size=2000)
        held = [paired_difference(int(d[1]), int(d[2]), n) for d in draws]
        cover = np.mean([iv.low <= true <= iv.high for iv in held])
        assert 0.93 <= cover <= 0.97, (n, cover)
    iv = paired_difference(10, 74, 2400)
    assert abs(iv.value - 100 * (10 - 74) / 2400) < 1e-12 and iv.low < iv.value < iv.high < 0


def test_the_paired_difference_refuses_counts_that_do_not_fit():
    import pytest

    from edgedistill.stats import paired_difference

    for b, c, n in ((-1, 0, 10), (6, 5, 10), (0, 0, 0)):
        with pytest.raises(ValueError):
            paired_difference(b, c, n)
