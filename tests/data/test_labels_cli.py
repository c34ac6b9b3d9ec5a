"""A real `distill` on labels the data set did not number 0..K-1: digits with labels 1..10."""

import json

import numpy as np
from click.testing import CliRunner
from sklearn.datasets import load_digits

from edgedistill.cli import main


def test_distill_on_labels_1_to_10_uses_the_10_class_teacher(tmp_path):
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    np.savez(tmp_path / "d.npz", x=x, y=(d.target + 1).astype(np.int16))  # 1..10, stored as int16
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--out", str(out), "--data", str(tmp_path / "d.npz"), "--teacher",
                                  "builtin:digits", "--epochs", "1", "-q", "-T", "3", "--alpha", "0.5",
                                  "--no-baseline"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["num_classes"] == 10
    assert m["data"]["label_map"] == {"original_labels": list(range(1, 11)), "identity": False}
    # the map is aligned: the built-in teacher (trained on 0..9) is as accurate on the mapped labels as it is known
    # to be on digits (it would score ~10 % if label i + 1 were read as class i + 1)
    assert m["teachers"][0]["test_acc"] > 90
    assert m["teachers"][0]["output"]["kind"] == "logits"
    assert json.loads((out / "student.json").read_text())["class_names"] == [str(v) for v in range(1, 11)]
    from edgedistill.report.render import input_lines

    text = "\n".join(input_lines(m["data"], m["teachers"]))
    assert "1→0" in text and "10→9" in text  # the report states the map
