"""Where accuracy went, per class: confusion matrices of every model on the test split, and the per-class view the
report shows (accuracy of teacher, twin, distilled float and deployed int8 per class; the classes the student loses
most on).

A confusion matrix C (K × K ints) counts test samples by true class (row) and predicted class (column); class c's
accuracy is C[c, c] / Σ_j C[c, j] (its recall), and the overall accuracy is the count-weighted mean of the per-class
ones, Σ_c C[c, c] / Σ C.
"""

from __future__ import annotations

import numpy as np

WORST = 3  # classes named in the headline


def confusion_matrix(pred, y, num_classes: int) -> list[list[int]]:
    """K × K counts, rows = true class, columns = predicted class (`pred`, `y`: N class indices)."""
    p = np.asarray(pred, dtype=np.int64).reshape(-1)
    t = np.asarray(y, dtype=np.int64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"confusion_matrix: {p.shape[0]} predictions for {t.shape[0]} labels")
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (t, p), 1)
    return m.tolist()


def class_accuracy(matrix: list[list[int]]) -> list[float | None]:
    """Per-class accuracy in percent (None for a class with no test sample)."""
    m = np.asarray(matrix, dtype=np.int64)
    n = m.sum(1)
    return [None if n[c] == 0 else 100.0 * float(m[c, c]) / float(n[c]) for c in range(len(m))]


def _losses(a: list, b: list, names: list[str], counts: list[int]) -> list[dict]:
    """Classes where model b is furthest below model a (points), worst first; only real losses."""
    rows = [{"class": names[c], "points": a[c] - b[c], "n": counts[c]} for c in range(len(names))
            if a[c] is not None and b[c] is not None and a[c] - b[c] > 0]
    return sorted(rows, key=lambda r: (-r["points"], r["class"]))[:WORST]


def per_class_section(confusions: dict[str, list[list[int]]], class_names: list[str], student: str, teacher: str,
                      deployed: str, float_key: str) -> dict:
    """report.json's `per_class`: names and test counts per class, each model's per-class accuracy, the deployed
    int8 model's confusion matrix, and the classes where the student (deployed int8) loses most to the teacher and
    where int8 loses most to the distilled float model. `confusions`: model label -> K × K matrix."""
    first = next(iter(confusions.values()))
    counts = [int(sum(r)) for r in first]
    acc = {name: class_accuracy(m) for name, m in confusions.items()}
    return {
        "class_names": list(class_names), "counts": counts, "accuracy": acc,
        "confusion": confusions.get(deployed), "confusion_of": deployed,
        "worst_vs_teacher": _losses(acc[teacher], acc[student], class_names, counts)
        if teacher in acc and student in acc else [],
        "worst_int8_vs_float": _losses(acc[float_key], acc[deployed], class_names, counts)
        if float_key in acc and deployed in acc else [],
        "student": student, "teacher": teacher, "float": float_key,
    }


def worst_text(rows: list[dict]) -> str:
    """'“cat” (−12.5 points, n=40), “dog” (−5.0 points, n=38)' or 'none'. Names are quoted: this is prose, and
    a class named `it` or `no` read as a word of the sentence."""
    return ", ".join(f"“{r['class']}” (−{r['points']:.1f} points, n={r['n']})" for r in rows) or "none"
