"""The report's headline and prose read as English whatever the figures: a label never contradicts its sentence
(a student 1.1× slower than its teacher was headed "Faster"), one thread is not "1 threads", and class names are
quoted (a class named `it` read as a pronoun). Checked on hand-made reports against the ratio's own direction."""

import pytest
import torch

from edgedistill.report.per_class import worst_text
from edgedistill.report.render import headline
from edgedistill.report.sections import where_accuracy

SUMMARY = {"deployed_matches_measured": True, "accuracy_deployed": 90.0, "accuracy_teacher": 91.0,
           "accuracy_kept_vs_teacher": -1.0, "gain_vs_no_teacher_twin_int8": 1.0,
           "gain_vs_no_teacher_twin_float": 1.0, "qat_accuracy": 90.0, "ptq_accuracy": 89.0}


def _rows(speedup, size_ratio):
    return dict(headline({"summary": {**SUMMARY, "speedup_vs_teacher": speedup,
                                      "size_ratio_teacher_over_student": size_ratio}}))


@pytest.mark.parametrize("speedup, size_ratio", [(1 / 1.1, 0.5), (3.0, 4.0), (0.2, 1.0), (1.0, 0.25)])
def test_each_headline_label_agrees_with_its_sentence(speedup, size_ratio):
    rows = _rows(speedup, size_ratio)
    speed_label = "Faster" if speedup >= 1 else "Slower"
    size_label = "Smaller" if size_ratio >= 1 else "Larger"
    assert speed_label in rows and speed_label.lower() in rows[speed_label]
    assert size_label in rows and size_label.lower() in rows[size_label]
    other = {"Faster": "Slower", "Slower": "Faster", "Smaller": "Larger", "Larger": "Smaller"}
    assert other[speed_label] not in rows and other[size_label] not in rows
    assert other[speed_label].lower() not in rows[speed_label] and other[size_label].lower() not in rows[size_label]
    # the printed ratio is at least 1 (the inverse on the slow / large side), e.g. 1.1× slower, not 0.9× slower
    assert float(rows[speed_label].split("×")[0]) >= 1.0 and float(rows[size_label].split("×")[0]) >= 1.0


def test_class_names_are_quoted_in_prose():
    rows = [{"class": "it", "points": 12.5, "n": 40}, {"class": "no", "points": 5.0, "n": 38}]
    assert worst_text(rows) == "“it” (−12.5 points, n=40), “no” (−5.0 points, n=38)"
    text = where_accuracy({"per_class": {"worst_vs_teacher": rows, "worst_int8_vs_float": rows[:1]}})
    assert "on “it” (−12.5" in text and "student on “it”" in text


def test_one_thread_is_singular(capsys):
    from edgedistill.device.show import echo_device
    from edgedistill.pipeline.measure import profile_teacher

    for threads in (1, 2):
        echo_device({"status": "measured", "latency_ms": {"mean": 1.0}, "device": {"model": "pi"}, "load_ms": 2.0,
                     "parity": {"checked": False, "reason": "none"}, "runner": {"url": "local://"},
                     "runtime": {"name": "litert", "threads": threads}})
    out = capsys.readouterr().out
    assert "litert, 1 thread)" in out and "litert, 2 threads)" in out and "1 threads" not in out

    class TorchTeacher:  # the fields profile_teacher reads of a loaded torch teacher
        is_text, format = False, "torch"

        def torch_module(self):
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3)).eval()

    p = profile_teacher(TorchTeacher(), (8,), threads=1, runs=3)
    assert "litert, 1 thread," in p["where"] and p["latency_ms"] > 0
