"""Attach the noise of the test split to the figures in metrics.json (see edgedistill.stats for the formulas).

* Every accuracy stored under a key ending in `test_acc` gets two siblings: `<key>_ci95` = [low, high] (Wilson 95 %
  interval, percent points) and `<key>_n` = the number of test samples it was measured on.
* A gain of one model over another measured on the same test samples (`paired_gain`) carries McNemar's exact test:
  how many samples only one of the two gets right, the two-sided p-value, and `within_noise` (p >= 0.05).
"""

from __future__ import annotations

from edgedistill.stats import ALPHA, Interval, mcnemar, paired_counts, paired_difference, wilson_from_percent

ACC_SUFFIX = "test_acc"


def correct(model, x, y):
    """Per-sample correctness (bool tensor, N) of a torch classifier on (x, y)."""
    from edgedistill.distill.trainer import predict_logits

    return predict_logits(model, x).argmax(1) == y


def annotate_intervals(metrics: dict, n: int) -> dict:
    """In place (and returned): every number under a key ending in `test_acc`, at any depth of dicts and lists, gets
    `<key>_ci95` and `<key>_n`. n is the size of the test split those accuracies were measured on. A dict with
    `accuracy` and `samples` (a parity row) gets `accuracy_ci95` over its own sample count."""
    def walk(node):
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if key.endswith(ACC_SUFFIX) and _number(value):
                    iv = wilson_from_percent(float(value), n)
                    node[f"{key}_ci95"] = [iv.low, iv.high]
                    node[f"{key}_n"] = n
                else:
                    walk(value)
            if _number(node.get("accuracy")) and isinstance(node.get("samples"), int) and node["samples"] > 0:
                iv = wilson_from_percent(float(node["accuracy"]), node["samples"])  # a parity row: its own n
                node["accuracy_ci95"] = [iv.low, iv.high]
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(metrics)
    return metrics


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def paired_gain(correct_a, correct_b) -> dict:
    """McNemar's exact test of A vs B on the same samples (two bool sequences of equal length N)."""
    b, c = paired_counts(correct_a, correct_b)
    r = mcnemar(b, c)
    n = len(correct_a)
    return {"n": n, "gain_points": 100.0 * (b - c) / n if n else 0.0, "only_first_right": b, "only_second_right": c,
            "test": "McNemar exact, two-sided", "p_value": r.p_value, "mid_p": r.mid_p,
            "within_noise": r.within_noise, "alpha": ALPHA}


def paired_interval_text(paired: dict | None) -> str:
    """'95 % [-4.71, +9.59] points; ': the paired gain's interval (stats.paired_difference) from a McNemar record's
    discordant counts, or '' when the record lacks them (an older report)."""
    try:
        iv = paired_difference(int(paired["only_first_right"]), int(paired["only_second_right"]), int(paired["n"]))
    except (KeyError, TypeError, ValueError):
        return ""
    return f"95 % [{iv.low:+.2f}, {iv.high:+.2f}] points; "


def gain_text(paired: dict | None) -> str:
    """'95 % [-4.71, +9.59] points; McNemar p = 0.21 over 80 test samples (5 only the student gets right, 3 only
    the twin): within noise', or '' without a paired test."""
    if not paired:
        return ""
    verdict = "within noise" if paired["within_noise"] else "beyond noise"
    return (f"{paired_interval_text(paired)}McNemar p = {paired['p_value']:.3g} over {paired['n']:,} test samples "
            f"({paired['only_first_right']} "
            f"only the student gets right, {paired['only_second_right']} only the twin): {verdict}")


def interval_of(d: dict | None, key: str = "test_acc") -> Interval | None:
    """The Interval stored beside `d[key]` by annotate_intervals, or None when it is not there."""
    if not d or d.get(key) is None or d.get(f"{key}_ci95") is None:
        return None
    low, high = d[f"{key}_ci95"]
    return Interval(float(d[key]), float(low), float(high), int(d.get(f"{key}_n") or 0))


def fmt_acc(d: dict | None, key: str = "test_acc") -> str:
    """'91.25% [82.9, 95.7]' (value and its 95 % interval), or just the value, or 'n/a'."""
    if not d or d.get(key) is None:
        return "n/a"
    iv = interval_of(d, key)
    return f"{d[key]:.2f}%" + ("" if iv is None else f" [{iv.low:.1f}, {iv.high:.1f}]")
