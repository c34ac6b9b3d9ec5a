"""How the teacher-logit cache stores N×K logits on disk: float16 relative to each row's maximum, with the maximum in
float32 (half of float32's bytes plus 4 per sample), or float32 where float16 could not hold the row.

Why relative to the row's maximum: every soft target is a softmax, which is invariant to adding a constant to a row,
and float16's error is relative (round to nearest: |error| <= 2^-11 |value|). Stored as d_i = z_i - max_j z_j <= 0,
the classes that carry the probability (d_i near 0) are stored almost exactly and the error grows only with d_i,
where the probability e^(d_i / T) has already vanished. Keeping the float32 maximum also restores the raw logits
(z_i = max + d_i, to within 2^-11 |d_i|), which the logit-MSE loss reads as they are.

Error bound on soft targets p = softmax(z / T) (the tolerance the tests check): with |Δd_i| <= 2^-11 |d_i| and
Δp_i = p_i (Δd_i - Σ_j p_j Δd_j) / T, and p_j |d_j| / T <= max_x x e^-x = 1/e (p_j <= e^(d_j / T)),
    max_i |Δp_i| <= 2^-11 (K + 1) / e        (K classes; any temperature T > 0)
which is 2.0e-3 for K = 10 at worst and, measured on real teachers, orders of magnitude below (docs/scale.md).

A row spanning more than F16_SPAN (float16 then rounds d to 1 or coarser, and overflows past 65504) is stored in
float32, the whole entry with it: no row is ever clipped.
"""

from __future__ import annotations

import numpy as np

from edgedistill.data.mapped import release_pages

F16_SPAN = 2048.0  # |z_i - max z| above this: the entry is stored as float32
FORMS = ("float16-shifted", "float32")
PIECE = 1 << 15  # rows converted at a time


def soft_target_bound(num_classes: int) -> float:
    """The largest |Δp| float16-shifted storage can cause in a soft target (module docstring), any temperature."""
    return 2.0 ** -11 * (num_classes + 1) / np.e


def shifted_dtype(num_classes: int) -> np.dtype:
    return np.dtype([("max", "<f4"), ("shifted", "<f2", (num_classes,))])


def encode(logits: np.ndarray) -> np.ndarray:
    """N×K float32 logits -> the stored array: a structured (max float32, shifted K×float16) record per row, or the
    float32 logits themselves when a row spans more than F16_SPAN."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or logits.shape[1] == 0:
        return logits
    out = np.empty(len(logits), shifted_dtype(logits.shape[1]))
    for i in range(0, len(logits), PIECE):
        z = logits[i : i + PIECE]
        top = z.max(axis=1, keepdims=True)
        d = z - top
        if not np.isfinite(d).all() or float(-d.min(initial=0.0)) > F16_SPAN:
            return logits
        out["max"][i : i + PIECE] = top[:, 0]
        out["shifted"][i : i + PIECE] = d.astype(np.float16)
    return out


def form_of(stored: np.ndarray) -> str:
    return "float16-shifted" if stored.dtype.names else "float32"


def decode(stored: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The N×K float32 logits a stored array holds, converted PIECE rows at a time (a memory-mapped `stored` is read
    in pieces); written into `out` when given."""
    if not stored.dtype.names:
        if out is None:
            return np.array(stored, dtype=np.float32)
        out[:] = stored
        return out
    k = stored.dtype["shifted"].shape[0]
    out = np.empty((len(stored), k), np.float32) if out is None else out
    for i in range(0, len(stored), PIECE):
        rec = stored[i : i + PIECE]
        np.add(rec["shifted"].astype(np.float32), rec["max"][:, None], out=out[i : i + PIECE])
        release_pages()  # a memory-mapped `out` (or `stored`): the pages just written leave the resident set
    return out


def stored_bytes(stored: np.ndarray) -> int:
    return int(stored.nbytes)
