"""Sequence length from the data: a high percentile of token counts, capped by the budget; truncation counted.

A student's cost grows with its sequence length T (linearly for convolutions, T x T for attention scores), while
a few very long texts should not set T for all. `choose_max_length` takes the smallest T that holds at least
`percentile` % of the texts whole; `TruncationStats` records what that T cut, for the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgedistill.errors import ConfigError, DataError


def choose_max_length(lengths, percentile: float = 99.0, cap: int | None = None, floor: int = 8) -> int:
    """The smallest T such that at least `percentile` % of the `lengths` are <= T (the inverted empirical CDF,
    numpy's percentile method "inverted_cdf", Hyndman & Fan 1996 definition 1), raised to `floor` and then
    lowered to `cap` (the budget's limit wins over the floor).

    `lengths`: token counts before truncation (any integer array-like, e.g. EncodedTexts.lengths).
    Raises DataError for no lengths, ConfigError for a percentile outside (0, 100] or a cap / floor below 1."""
    counts = np.asarray(lengths, np.int64).ravel()
    if counts.size == 0:
        raise DataError("No texts to choose a sequence length from.")
    if not 0 < percentile <= 100:
        raise ConfigError(f"The sequence-length percentile must lie in (0, 100], got {percentile}.")
    for what, value in (("cap", cap), ("floor", floor)):
        if value is not None and value < 1:
            raise ConfigError(f"The sequence-length {what} must be at least 1 token, got {value}.")
    length = max(int(np.percentile(counts, percentile, method="inverted_cdf")), floor)
    return min(length, cap) if cap is not None else length


@dataclass(frozen=True)
class TruncationStats:
    """What a sequence length cut: `samples_truncated` of `samples` texts were longer than `max_length`, losing
    `tokens_dropped` of their `tokens` (in tokens of the tokenizer that counted them: the student's, or a teacher's).
    `percentile`: the one that chose max_length, None when the user set it."""

    max_length: int
    samples: int
    samples_truncated: int
    tokens: int
    tokens_dropped: int
    percentile: float | None = None

    @classmethod
    def measure(cls, lengths, max_length: int, percentile: float | None = None) -> "TruncationStats":
        """Count the truncation of texts with token counts `lengths` (before truncation) at `max_length`."""
        counts = np.asarray(lengths, np.int64).ravel()
        over = np.maximum(counts - max_length, 0)
        return cls(max_length=int(max_length), samples=int(counts.size), samples_truncated=int((over > 0).sum()),
                   tokens=int(counts.sum()), tokens_dropped=int(over.sum()), percentile=percentile)

    @property
    def fraction_truncated(self) -> float:
        return self.samples_truncated / self.samples if self.samples else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "fraction_truncated": self.fraction_truncated}

    def describe(self) -> str:
        """One line for logs and the report, e.g. "sequence length 64 (99th percentile of token counts): 12 of
        1,000 texts truncated (1.2 %), 340 of 25,000 tokens dropped (1.4 %)"."""
        why = f"{self.percentile:g}th percentile of token counts" if self.percentile is not None else "set by the user"
        tokens = self.tokens_dropped / self.tokens if self.tokens else 0.0
        return (f"sequence length {self.max_length} ({why}): {self.samples_truncated:,} of {self.samples:,} texts "
                f"truncated ({100 * self.fraction_truncated:.1f} %), {self.tokens_dropped:,} of {self.tokens:,} tokens "
                f"dropped ({100 * tokens:.1f} %)")
