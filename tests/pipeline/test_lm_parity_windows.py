"""Which test windows a causal-LM run's parity checks (pipeline/lm_int8.parity_windows): a number fixed by the
vocabulary and the window, never by the corpus, spread over the whole split."""

import numpy as np
import pytest

from edgedistill.pipeline.lm_int8 import MIN_PARITY_WINDOWS, PARITY_BYTES, parity_windows


@pytest.mark.parametrize("count, context, vocab", [(5, 16, 300), (646, 64, 1935), (100_000, 64, 1935),
                                                    (100_000, 128, 50_257), (31, 8, 10)])
def test_the_parity_sample_is_bounded_spread_and_sorted(count, context, vocab):
    pick = parity_windows(count, context, vocab)
    want = min(count, max(MIN_PARITY_WINDOWS, PARITY_BYTES // (4 * context * vocab)))
    assert len(pick) == want and np.all(np.diff(pick) > 0) and pick[0] == 0 and pick[-1] == count - 1
    assert len(pick) == count or 4 * len(pick) * context * vocab <= max(PARITY_BYTES,
                                                                        4 * MIN_PARITY_WINDOWS * context * vocab)


def test_a_corpus_a_hundred_times_larger_checks_the_same_number_of_windows():
    assert len(parity_windows(100_000, 64, 1935)) == len(parity_windows(10_000, 64, 1935)) < 10_000
