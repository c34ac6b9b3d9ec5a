"""Progress where stderr is not a terminal (CI logs): plain lines at the start, every 10 % and the end."""

import io

from edgedistill.progress import LineBars


def test_line_progress_says_start_each_tenth_and_end_once():
    out = io.StringIO()
    update = LineBars(out).task("distill", 100)
    for _ in range(100):
        update(1, loss=0.5)
    update(0, val_acc=91.0)  # a last call with nothing new to count prints nothing more
    lines = out.getvalue().splitlines()
    assert lines[0] == "distill: started (0/100)"
    assert [ln.split(" (")[1].split(")")[0] for ln in lines[1:]] == [f"{p}%" for p in range(10, 101, 10)]
    assert "loss 0.500" in lines[-1] and len(lines) == 11


def test_a_big_step_prints_one_line_not_one_per_tenth():
    out = io.StringIO()
    update = LineBars(out).task("QAT", 1000)
    update(950)
    update(50)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "950/1,000 (95%)" in lines[1] and "1,000/1,000 (100%)" in lines[2]
