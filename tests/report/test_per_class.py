"""Per-class accuracy and confusion matrices: checked against the trainer's own accuracy on a real (tiny) model."""

import numpy as np
import torch

from edgedistill.distill.trainer import accuracy, predict_logits
from edgedistill.report.per_class import class_accuracy, confusion_matrix, per_class_section, worst_text
from tiny_models import tiny_cnn


def _data(n=300, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    y[:k] = torch.arange(k)  # every class present
    return x, y


def test_per_class_sums_back_to_overall_and_rows_to_class_counts():
    x, y = _data()
    for seed in range(3):
        model = tiny_cnn(10, seed)
        pred = predict_logits(model, x).argmax(1)
        m = confusion_matrix(pred, y, 10)
        assert [sum(r) for r in m] == np.bincount(y.numpy(), minlength=10).tolist()  # rows = class counts
        counts = np.array([sum(r) for r in m])
        per = np.array(class_accuracy(m))
        assert abs(float((per * counts).sum() / counts.sum()) - accuracy(predict_logits(model, x), y)) < 1e-4  # points; accuracy() is float32


def test_absent_class_has_no_accuracy_and_mismatch_is_refused():
    m = confusion_matrix([0, 1, 1], [0, 1, 0], 3)
    assert m == [[1, 1, 0], [0, 1, 0], [0, 0, 0]] and class_accuracy(m) == [50.0, 100.0, None]
    try:
        confusion_matrix([0, 1], [0], 3)
    except ValueError as e:
        assert "2 predictions for 1 labels" in str(e)
    else:
        raise AssertionError("a length mismatch must be refused")


def test_worst_classes_are_named_in_order_of_loss():
    teacher = [[10, 0, 0], [0, 10, 0], [0, 0, 10]]
    flt = [[10, 0, 0], [0, 9, 1], [0, 0, 10]]
    dep = [[6, 4, 0], [0, 8, 2], [0, 0, 10]]
    s = per_class_section({"teacher": teacher, "distilled (float)": flt, "int8": dep}, ["cat", "dog", "bird"],
                          student="int8", teacher="teacher", deployed="int8", float_key="distilled (float)")
    assert [r["class"] for r in s["worst_vs_teacher"]] == ["cat", "dog"]  # -40, -20; bird loses nothing
    assert s["worst_vs_teacher"][0]["points"] == 40.0
    assert [r["class"] for r in s["worst_int8_vs_float"]] == ["cat", "dog"]
    assert s["confusion"] == dep and s["counts"] == [10, 10, 10]
    assert worst_text(s["worst_vs_teacher"]).startswith("“cat” (−40.0 points, n=10)")
