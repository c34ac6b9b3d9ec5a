"""Token dropout and span masking: padding untouched, rates and spans as specified, pure and reproducible."""

import math

import pytest
import torch

from edgedistill.data.text_augment import span_mask, token_dropout
from edgedistill.errors import ConfigError


def _batch(n=64, t=40, seed=0):
    """Ids >= 2 (so a mask id of 1 is always a visible change), row i holding a random number of tokens."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, t + 1, (n,), generator=g)
    ids = torch.randint(2, 257, (n, t), generator=g, dtype=torch.int32)
    return torch.where(torch.arange(t)[None] < lengths[:, None], ids, torch.zeros_like(ids)), lengths


@pytest.mark.parametrize("augment", [token_dropout, span_mask])
def test_views_are_pure_reproducible_and_keep_padding(augment):
    ids, _ = _batch()
    before = ids.clone()
    a = augment(ids, torch.Generator().manual_seed(1))
    b = augment(ids, torch.Generator().manual_seed(1))
    c = augment(ids, torch.Generator().manual_seed(2))
    assert torch.equal(ids, before) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == ids.dtype and a.shape == ids.shape
    assert torch.equal(a == 0, ids == 0)  # padding stays padding, no token becomes padding
    assert set(a[a != ids].tolist()) <= {1}


def test_token_dropout_rate_matches_p_within_binomial_noise():
    ids, _ = _batch(n=512, t=64)
    g = torch.Generator().manual_seed(3)
    for p in (0.1, 0.3):
        out = token_dropout(ids, g, p=p)
        tokens = int((ids != 0).sum())
        rate = int((out != ids).sum()) / tokens
        assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / tokens), (p, rate)
    assert torch.equal(token_dropout(ids, g, p=0.0), ids)
    assert torch.equal(token_dropout(ids, g, p=1.0), torch.where(ids != 0, torch.ones_like(ids), ids))


def test_span_mask_hides_one_span_of_the_given_fraction_inside_the_text():
    ids, lengths = _batch(n=200, t=50, seed=4)
    out = span_mask(ids, torch.Generator().manual_seed(5), fraction=0.2)
    for row, new, n in zip(ids, out, lengths.tolist()):
        hidden = (new != row).nonzero().flatten().tolist()
        expected = max(round(0.2 * n), 1) if n else 0
        assert len(hidden) == expected
        if hidden:
            assert hidden == list(range(hidden[0], hidden[0] + expected)) and hidden[-1] < n


def test_span_starts_cover_every_place_in_the_text():
    ids = torch.arange(2, 12, dtype=torch.int64)[None].repeat(4000, 1)  # 10 tokens, spans of 3: 8 places
    out = span_mask(ids, torch.Generator().manual_seed(6), fraction=0.3)
    starts = (out != ids).int().argmax(dim=1)
    counts = torch.bincount(starts, minlength=10).tolist()
    assert counts[8:] == [0, 0] and min(counts[:8]) > 4000 / 8 * 0.8, counts


def test_bad_arguments_are_refused():
    ids, _ = _batch()
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        token_dropout(ids, torch.Generator(), p=1.5)
    with pytest.raises(TypeError, match="integer"):
        span_mask(ids.float(), torch.Generator())
