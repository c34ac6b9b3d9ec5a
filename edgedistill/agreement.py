"""The top-1 agreement a parity row is judged on, and its words (a light module: the report and the CLI read saved
rows without importing the runtimes). export/parity.py says why int8 rows count near-ties within the step bound."""

from __future__ import annotations

import numpy as np

AGREEMENT = 99.9  # % top-1 agreement with the reference, every checked row


def judged_agreement(row: dict) -> float:
    """The agreement (%) a parity row (ParityRow.to_dict()) is judged on: up to near-ties within the step bound for
    int8 files (export/parity.py's module doc), exact top-1 agreement for float files and for rows written before
    the near-tie figure existed."""
    tied = row.get("top1_within_bound")
    return row["top1_agreement"] if tied is None else tied


def agreement_words(row: dict) -> str:
    """'99.95%', or '99.67% exactly, 99.95% up to near-ties within the 8-step bound' where the two differ."""
    judged = judged_agreement(row)
    if abs(judged - row["top1_agreement"]) < 5e-3:
        return f"{judged:.2f}%"
    return (f"{row['top1_agreement']:.2f}% exactly, {judged:.2f}% up to near-ties within the "
            f"{row['step_bound']:g}-step bound")


def near_tie_agreement(pick: np.ndarray, ref: np.ndarray, tolerance: float) -> float:
    """% of samples (rows of the last axis: N×K logits, or N×L×V positions) whose top-1 `pick` (the file's
    argmax over the last axis: N, or N×L) the reference `ref` scores within `tolerance` (logit units: the step
    bound × the output step) of its own best. 100 for none."""
    if not pick.size:
        return 100.0
    chosen = np.take_along_axis(ref, pick[..., None], -1)[..., 0]
    return 100.0 * float((chosen >= ref.max(-1) - tolerance).mean())
