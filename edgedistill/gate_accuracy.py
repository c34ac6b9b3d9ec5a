"""The gate's accuracy checks, judged against the noise of the test split (formulas: edgedistill.stats).

An accuracy measured on n test samples is uncertain by a few points when n is small (80 samples: about ±7 points
at 90 %). Each accuracy check therefore has three outcomes:

* pass: the measured value meets the limit;
* pass, *within noise*: it misses the limit, but the 95 % interval still reaches it, so the test split cannot tell
  whether the limit was met (a regression of this size may be sampling noise; the check does not fail the build);
* fail: the whole 95 % interval lies on the wrong side of the limit.

The three checks and their intervals:

* `accuracy` (deployed >= min): the Wilson interval of the deployed accuracy (k of n).
* `accuracy_drop` (teacher - deployed <= max drop), i.e. deployed >= teacher - max drop: the Wilson interval of the
  deployed accuracy against that limit (the teacher's measured accuracy is the reference the budget names).
* `regression:accuracy` (baseline - current <= tolerance): Newcombe's interval of the difference of the two
  accuracies (each with its own n). It treats them as independent, which is conservative when both reports used
  the same test samples (the reports carry no per-sample results to pair them).

Reports without `accuracy_n` (written before the noise fields existed) are judged on the point values, as before.
A warning is added when the test split is too small to decide a check: the check passed within noise, or the
interval's half-width exceeds the drop / regression tolerance itself; it says how many samples would decide it.
"""

from __future__ import annotations

import math

from edgedistill.stats import (Z95, Interval, at_least_within_noise, at_most_within_noise, newcombe,
                                      wilson_from_percent)


def samples_to_resolve(p_percent: float, gap_points: float) -> int:
    """Test samples n for which the 95 % half-width z·sqrt(p(1-p)/n) shrinks to `gap_points` (normal approximation).
    p is floored at 1 % so a 100 % accuracy still asks for a finite, honest number."""
    p = min(max(p_percent / 100.0, 0.01), 0.99)
    g = max(gap_points, 0.05) / 100.0
    return int(math.ceil(Z95 * Z95 * p * (1 - p) / (g * g)))


def _interval(acc, n) -> Interval | None:
    return wilson_from_percent(float(acc), int(n)) if acc is not None and n else None


# the runtime a report's deployed accuracy was measured on (report/schema.py's summary.accuracy_deployed_runtime)
DEPLOYED_ON = {"litert": "LiteRT with XNNPACK",
               "litert-reference": "LiteRT's reference kernels (TFLite Micro's arithmetic)"}


def deployed_how(runtime: str | None) -> str:
    """"deployed int8 TFLite on RUNTIME" ("... TFLite" alone for a report that names none, or one a build never
    measures on: an edited report's text never reaches the gate's table)."""
    where = DEPLOYED_ON.get(runtime or "")
    return f"deployed int8 TFLite on {where}" if where else "deployed int8 TFLite"


def _noise_how(iv: Interval, what: str) -> str:
    return f"{what}; 95% interval [{iv.low:.2f}, {iv.high:.2f}] over {iv.n:,} test samples"


def min_accuracy_check(u: dict, limit: float, runtime: str | None = None):
    """(Check, warnings) for deployed accuracy >= limit (`runtime`: where it was measured, deployed_how)."""
    from edgedistill.gate import Check

    acc, n = u.get("accuracy"), u.get("accuracy_n")
    how = f"{deployed_how(runtime)}, test split"
    if acc is None:
        return Check("accuracy", None, limit, False, "missing", unit="%"), []
    iv = _interval(acc, n)
    if iv is None:
        return Check("accuracy", acc, limit, acc >= limit, how, unit="%"), []
    passed, noise = at_least_within_noise(iv, limit)
    warn = []
    if noise:
        warn.append(f"accuracy: {acc:.2f}% is below the limit {limit:g}% but its 95% interval [{iv.low:.2f}, "
                    f"{iv.high:.2f}] over {n:,} test samples reaches it, so it passed as within noise; about "
                    f"{samples_to_resolve(acc, limit - acc):,} test samples would decide a gap this size.")
    return Check("accuracy", acc, limit, passed, _noise_how(iv, how) + (", within noise" if noise else ""),
                 noise, unit="%"), warn


def drop_check(u: dict, max_drop: float | None, runtime: str | None = None):
    """(Check, warnings) for teacher - deployed <= max_drop. With max_drop None (no limit set) the row still shows
    the drop and its interval, is marked not judged and always passes, so every gate shows the accuracy cost."""
    from edgedistill.gate import Check

    drop, acc, n, teacher = u.get("accuracy_drop"), u.get("accuracy"), u.get("accuracy_n"), u.get("teacher_accuracy")
    how = f"teacher minus {deployed_how(runtime)}, points"
    if max_drop is None:
        iv = _interval(acc, n)
        if drop is not None and iv is not None and teacher is not None:
            how = _drop_how(how, teacher, iv)
        return Check("accuracy_drop", drop, None, True, how if drop is not None else "missing", judged=False,
                     unit="points"), []
    if drop is None:
        return Check("accuracy_drop", None, max_drop, False, "missing", unit="points"), []
    iv = _interval(acc, n)
    if iv is None or teacher is None:
        return Check("accuracy_drop", drop, max_drop, drop <= max_drop, how, unit="points"), []
    passed, noise = at_least_within_noise(iv, teacher - max_drop)
    warn = []
    if noise:
        warn.append(f"accuracy_drop: {drop:.2f} points exceeds the limit {max_drop:g} but the deployed accuracy's 95% "
                    f"interval [{iv.low:.2f}, {iv.high:.2f}] over {n:,} test samples reaches {teacher - max_drop:.2f}%"
                    f", so it passed as within noise; about {samples_to_resolve(acc, drop - max_drop):,} test samples "
                    "would decide a gap this size.")
    elif passed and iv.half_width > max_drop:
        warn.append(_too_small("accuracy_drop", iv, max_drop, acc))
    how = _drop_how(how, teacher, iv) + (", within noise" if noise else "")
    return Check("accuracy_drop", drop, max_drop, passed, how, noise, unit="points"), warn


def _drop_how(how: str, teacher: float, iv: Interval) -> str:
    """The drop's own interval: the teacher's figure is the fixed reference, so it is the deployed interval
    mirrored."""
    return (f"{how}; 95% interval [{teacher - iv.high:.2f}, {teacher - iv.low:.2f}] (teacher {teacher:.2f}% minus the "
            f"deployed accuracy's Wilson interval over {iv.n:,} test samples)")


def regression_check(u: dict, b: dict, tol_points: float):
    """(Check, warnings) for baseline - current <= tol_points (the baseline report `b`'s usage section)."""
    from edgedistill.gate import Check

    acc, base = u.get("accuracy"), b["accuracy"]
    limit = base - tol_points
    how = f"baseline {base:.2f}% - {tol_points:g} point{'' if tol_points == 1 else 's'}"
    if acc is None:
        return Check("regression:accuracy", None, limit, False, "missing", unit="%"), []
    if not (u.get("accuracy_n") and b.get("accuracy_n")):
        return Check("regression:accuracy", acc, limit, acc >= limit, how, unit="%"), []
    n1, n2 = int(b["accuracy_n"]), int(u["accuracy_n"])
    k1, k2 = min(n1, max(0, round(base * n1 / 100))), min(n2, max(0, round(acc * n2 / 100)))
    diff = newcombe(k1, n1, k2, n2)  # baseline - current
    passed, noise = at_most_within_noise(diff, tol_points)
    warn = []
    if noise:
        warn.append(f"regression:accuracy: {base - acc:.2f} points below the baseline exceeds the tolerance "
                    f"{tol_points:g} but the difference's 95% interval [{diff.low:.2f}, {diff.high:.2f}] reaches it, "
                    "so it passed as within noise; about "
                    f"{2 * samples_to_resolve(acc, base - acc - tol_points):,} test samples would decide a gap this size.")
    elif passed and diff.half_width > tol_points:
        warn.append(_too_small("regression:accuracy", diff, tol_points, acc, factor=2))
    return Check("regression:accuracy", acc, limit, passed,
                 f"{how}; regression {base - acc:+.2f} points, 95% interval [{diff.low:.2f}, {diff.high:.2f}] (Newcombe)"
                 + (", within noise" if noise else ""), noise, unit="%"), warn


def _too_small(name: str, iv: Interval, tolerance: float, acc: float, factor: int = 1) -> str:
    return (f"{name}: the test split ({iv.n:,} samples, 95% interval ±{iv.half_width:.2f} points) is too small to "
            f"decide a limit of {tolerance:g} point{'' if tolerance == 1 else 's'}: a shortfall up to about {tolerance + iv.half_width:.2f} points "
            f"would pass as within noise; about {factor * samples_to_resolve(acc, tolerance):,} test samples would "
            "decide it.")
