"""A built-in image teacher fed data on another scale (raw sklearn digits, 0..16, for builtin:digits, trained on
[0, 1]) is warned once, in one line, before anything trains; data within reach of the trained range are not. The
premise is checked independently: the teacher's own accuracy on the raw scale collapses."""

import numpy as np
import pytest

from edgedistill.config import load_config
from edgedistill.pipeline.inputs import read_inputs
from edgedistill.teachers.loader import BUILTIN_INPUT_RANGES

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    d = sklearn_datasets.load_digits()
    return tmp_path_factory.mktemp("range"), d.images.astype(np.float32)[:, None], d.target.astype(np.int64)


def _notes(folder, x, y, name, teacher="builtin:digits"):
    np.savez(folder / f"{name}.npz", x=x, y=y)
    inputs = read_inputs(load_config(None, {"data": {"source": str(folder / f"{name}.npz")},
                                            "teachers": [{"path": teacher}]}))
    return [n for n in inputs.notes if "was trained on inputs" in n], inputs


@pytest.mark.parametrize("scale, warned", [(1.0, True), (1 / 16, False), (3 / 16, False), (5 / 16, True)])
def test_data_far_outside_the_trained_range_are_warned(digits, scale, warned):
    folder, x, y = digits
    notes, _ = _notes(folder, x * scale, y, f"s{scale:.4f}")
    assert BUILTIN_INPUT_RANGES["digits"] == (0.0, 1.0)
    assert bool(notes) is warned  # the trained [0, 1] reached past 4 × its width: max 16 and 5, not 1 or 3
    if warned:
        (note,) = notes
        assert "builtin:digits" in note and "[0, 1]" in note and f"{16 * scale:.4g}]" in note and "\n" not in note


def test_the_premise_the_teacher_reads_raw_digits_poorly(digits):
    folder, x, y = digits
    _, inputs = _notes(folder, x / 16, y, "premise")
    teacher = inputs.teachers[0]
    acc = {s: float((teacher.logits(x[:600] * s).argmax(1).numpy() == y[:600]).mean()) for s in (1 / 16, 1.0)}
    assert acc[1 / 16] > 0.9 and acc[1.0] < acc[1 / 16] - 0.2, acc


def test_a_teacher_of_unknown_range_is_not_judged(digits, tmp_path):
    from importlib import resources

    folder, x, y = digits
    weights = resources.files("edgedistill.zoo") / "digits_cnn.safetensors"  # the same model, loaded by path
    np.savez(folder / "raw.npz", x=x, y=y)
    inputs = read_inputs(load_config(None, {"data": {"source": str(folder / "raw.npz")}, "teachers": [
        {"path": str(weights), "format": "torch", "factory": "edgedistill.zoo.models:digits_cnn"}]}))
    assert inputs.teachers[0].input_range is None
    assert not [n for n in inputs.notes if "was trained on inputs" in n]
