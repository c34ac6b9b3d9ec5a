"""A compact teacher cache for many classes: per sample, the k largest logits, their class indices and the log mass
of the other K − k classes at each temperature the run may use; one fixed-size record a row, memory-mappable and
read with pread like the full cache (teachers/logit_store.py).

Record (numpy structured dtype, `topk_dtype`): the row's maximum logit (float32); the k largest logits relative to
it, d_i = v_i − max ≤ 0, in float16 (largest first); their class indices (uint16 for K ≤ 65,536, else int32); and,
for each temperature T of `temperatures`, the tail

    tail_T = log Σ_{j ∉ top-k} exp((z_j − max) / T)        (float32; −inf when k = K)

Why the tail per temperature. Distilling from top-k logits must normalise teacher and student over the same support
(the known top-k KD bug is a teacher softmax over its k classes against a student softmax over all K, which
overstates every teacher probability): edgedistill's loss (distill/lm_losses.top_k_kd) coarsens both distributions
to k + 1 outcomes, the k classes and "the rest" as one bucket, which needs the teacher's rest mass at the
temperature trained with. That mass is a log-sum-exp of the rest's logits in 1/T: convex in 1/T, and not
recoverable from the top k at another T (the rest's logits are gone; only bounds remain). The temperatures are known
when the cache is written: the tuner's grid (distill/tuning.TEMPERATURES) and a temperature the user fixed; the store
keeps the tail at exactly those, and a lookup at another T raises (TopKLogits.tail_at) rather than guess.

Error bound. The stored d_i carry float16's relative error |Δd_i| ≤ 2^-11 |d_i| and the tails float32's; the
bound of logit_store.soft_target_bound applies over the k + 1 outcomes: max |Δp| ≤ 2^-11 (k + 2) / e, any T.

Cost per sample: 4 + k · (2 + index bytes) + 4 · len(temperatures) bytes: 148 bytes for K = 1,000, k = 32 and four
temperatures, against 2,004 bytes for the float16-shifted full row and 4,000 for float32 (`topk_bytes`).
"""

from __future__ import annotations

import numpy as np

from edgedistill.teachers.logit_store import soft_target_bound

PIECE = 1 << 14  # rows encoded at a time (a memory-mapped N×K source is read in pieces)


def index_dtype(num_classes: int) -> np.dtype:
    return np.dtype("<u2") if num_classes <= 1 << 16 else np.dtype("<i4")


def topk_dtype(num_classes: int, k: int, n_temperatures: int) -> np.dtype:
    """The record of one sample (module docstring)."""
    return np.dtype([("max", "<f4"), ("shifted", "<f2", (k,)), ("indices", index_dtype(num_classes), (k,)),
                     ("tail", "<f4", (n_temperatures,))])


def topk_bytes(num_classes: int, k: int, n_temperatures: int) -> int:
    """Bytes a sample costs in the top-k store."""
    return topk_dtype(num_classes, k, n_temperatures).itemsize


def topk_bound(k: int) -> float:
    """The largest |Δp| the store can cause in a soft target over its k + 1 outcomes, any stored temperature."""
    return soft_target_bound(k + 1)


def encode_topk(logits: np.ndarray, k: int, temperatures: tuple[float, ...]) -> np.ndarray:
    """N×K float logits -> N records (module docstring). Raises ValueError unless 1 <= k <= K, k <= 65,536 classes'
    worth of indices, and temperatures are positive. Rows are processed PIECE at a time (float64 tails)."""
    n, num_classes = logits.shape
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must lie in 1..{num_classes} (the classes), got {k}")
    if not temperatures or min(temperatures) <= 0:
        raise ValueError(f"temperatures must be positive, got {temperatures}")
    out = np.empty(n, topk_dtype(num_classes, k, len(temperatures)))
    for a in range(0, n, PIECE):
        z = np.asarray(logits[a : a + PIECE], dtype=np.float64)
        top = np.argpartition(-z, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(z, top, 1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)  # largest first
        values = np.take_along_axis(z, top, 1)
        peak = values[:, :1]
        rest = z.copy()
        np.put_along_axis(rest, top, -np.inf, 1)
        rest -= peak
        tails = []
        for t in temperatures:
            m = rest.max(1, keepdims=True) / t
            with np.errstate(invalid="ignore", divide="ignore"):
                s = np.log(np.exp(rest / t - np.where(np.isfinite(m), m, 0.0)).sum(1))
            tails.append(np.where(np.isfinite(m[:, 0]), s + m[:, 0], -np.inf))
        rec = out[a : a + len(z)]
        rec["max"] = peak[:, 0]
        rec["shifted"] = values - peak
        rec["indices"] = top
        rec["tail"] = np.stack(tails, 1)
    return out


def decode_topk(stored: np.ndarray, temperatures: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records written for `temperatures` -> (values float32 N×k: the top-k logits, max + d_i, largest first;
    indices int64 N×k; tails float32 N×T: log Σ_{j ∉ top-k} exp(z_j / T) of the raw logits, tail_T + max / T), the
    arrays distill.lm_losses.TopKLogits holds. Raises ValueError when the records hold another number of tails."""
    if stored["tail"].shape[1:] != (len(temperatures),):
        raise ValueError(f"the records hold {stored['tail'].shape[1]} tails, not one per temperature of {temperatures}")
    peak = stored["max"].astype(np.float64)[:, None]
    values = (stored["shifted"].astype(np.float64) + peak).astype(np.float32)
    tails = stored["tail"].astype(np.float64) + peak / np.asarray(temperatures, dtype=np.float64)
    return values, stored["indices"].astype(np.int64), tails.astype(np.float32)
