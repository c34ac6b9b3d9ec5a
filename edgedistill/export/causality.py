"""Causality of a causal LM's exported window-step files, checked on their runtimes: a logit at position t must not
move when the tokens after t change (issue #29: "checked on every exported file").

Parity cannot see a mask that leaks: the int8 file computes QAT's integers, so a leak QAT computes too (a row whose
visible scores all fell to the scores grid's lowest code ties with its masked keys, and SOFTMAX spreads over the
future) passes parity at 0 output steps. So every run probes the files themselves: a few test windows, the tokens
after t replaced by seeded random ones for t at 0, L/4, L/2 and L − 2, every file on every runtime parity runs it
on (export/parity.parity_plan; onnxruntime's informational fused mode left out). An int8 file must give the same
integers at positions 0..t (0 logit units moved); a float file may move by FLOAT_TOLERANCE of its largest logit.
"""

from __future__ import annotations

import numpy as np

from edgedistill.export.artifact import Artifact
from edgedistill.export.parity import FLOAT_TOLERANCE, _runner, parity_plan

PROBE_WINDOWS = 4
INFORMATIONAL = ("onnxruntime-fused",)


def probe_positions(length: int) -> list[int]:
    """The positions t probed in a window of `length` tokens: 0, L/4, L/2 and L − 2 (those below L − 1: a change
    after the last position changes nothing)."""
    return sorted({t for t in (0, length // 4, length // 2, length - 2) if 0 <= t < length - 1})


def causality_rows(artifacts: list[Artifact], x: np.ndarray, vocab: int, seed: int = 0) -> list[dict]:
    """One row per (file, runtime): `max_moved`, the largest change of a logit at positions <= t (logit units) when
    the tokens after t change, over PROBE_WINDOWS of the int32 windows `x` (N, L); `bound` (0 for int8 files) and
    `passed`. Token ids drawn from 2 .. vocab − 1 (not padding, not unknown)."""
    ids = np.ascontiguousarray(x[:PROBE_WINDOWS], np.int32)
    positions = probe_positions(ids.shape[1])
    rng = np.random.default_rng(seed)
    changed = []
    for t in positions:
        later = ids.copy()
        later[:, t + 1:] = rng.integers(2, max(vocab, 3), later[:, t + 1:].shape)
        changed.append((t, later))
    rows = []
    for art, runtime in parity_plan(artifacts):
        if runtime in INFORMATIONAL:
            continue
        run = _runner(runtime, art)
        base = np.asarray(run.predict(ids), np.float64)
        moved = max((float(np.abs(np.asarray(run.predict(later), np.float64)[:, :t + 1] - base[:, :t + 1]).max())
                     for t, later in changed), default=0.0)
        bound = 0.0 if art.precision == "int8" else FLOAT_TOLERANCE * max(float(np.abs(base).max()), 1.0)
        rows.append({"artifact": art.name, "runtime": runtime, "windows": len(ids), "positions": positions,
                     "max_moved": moved, "bound": bound, "passed": moved <= bound})
    return rows


def causality_failure(row: dict) -> str:
    """A failed row as one sentence for the run's refusal."""
    return (f"{row['artifact']} on {row['runtime']} is not causal: a logit at a position t moved by "
            f"{row['max_moved']:.3g} when only the tokens after t changed (bound {row['bound']:.3g}; the int8 "
            "attention's visible scores can fall to the lowest code of their grid and tie with the masked keys "
            "when QAT moves them far below the range calibrated for them: a lower --lr, or fewer --qat-steps)")
