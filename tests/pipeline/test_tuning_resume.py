"""A run interrupted after its auto T / alpha search resumes without running the trials again: the search's result
waits in OUT.partial/checkpoints under a key of what the search depends on (the training checkpoint's fingerprint
of the trial settings, data, teacher outputs and architecture; the validation split; the search's arguments).
Before, every resume ran all the trials again. Another key runs them afresh; a damaged record is ignored."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from edgedistill.api import distill
from edgedistill.config import load_config
from edgedistill.distill import tuning
from edgedistill.distill.trainer import TrainSet, TrainSettings

tune_stage = importlib.import_module("edgedistill.pipeline.tune")
distill_stage = importlib.import_module("edgedistill.pipeline.distill")  # the module (the package exports a function)

SMALL = {"data": {"source": "builtin:digits", "max_train": 300}, "train": {"epochs": 2, "batch_size": 32},
         "kd": {"temperature": "auto", "alpha": 0.9, "tune_epochs": 1, "tune_max_samples": 300}}  # 4 trials + twin


class Interrupted(KeyboardInterrupt):
    pass


def _config(out, **kd):
    over = json.loads(json.dumps(SMALL))
    over["kd"].update(kd)
    return load_config(None, {**over, "out": str(out)})


@pytest.mark.slow
def test_a_run_interrupted_after_the_search_resumes_without_its_trials(tmp_path, monkeypatch):
    out = tmp_path / "run"
    trials = []
    real_tune = tuning.tune

    def counting_tune(*args, **kwargs):  # the real search, counted
        res = real_tune(*args, **kwargs)
        trials.append(len(res.trials))
        return res

    monkeypatch.setattr(tune_stage, "tune", counting_tune)

    def stop(*args, **kwargs):  # Ctrl-C as training starts, after the search
        raise Interrupted

    monkeypatch.setattr(distill_stage, "train_students", stop)
    with pytest.raises(Interrupted):
        distill(_config(out), show_progress=False)
    saved = json.loads((tmp_path / "run.partial" / "checkpoints" / "tuning.json").read_text())
    assert trials == [len(saved["result"]["trials"])] and trials[0] >= 1
    monkeypatch.undo()
    monkeypatch.setattr(tune_stage, "tune", counting_tune)
    m = distill(_config(out), show_progress=False).metrics
    assert trials == [len(saved["result"]["trials"])]  # no trial ran on the resumed run
    assert m["tuning"]["resumed_from_checkpoint"] is True
    assert m["tuning"]["trials"] == saved["result"]["trials"]
    chosen = saved["result"]["chosen"]
    assert (m["student"]["objective"]["temperature"], m["student"]["objective"]["alpha"]) == \
        (chosen["temperature"], chosen["alpha"])
    assert not (out / "checkpoints").exists()  # published: the record went with the checkpoints


def _search(tmp_path, settings, val_y_shift=0, temperature="auto", alpha=0.9):
    """choose_objective on a tiny linear problem, with the run's checkpoint directory; returns (Tuned, trials run)."""
    from edgedistill.pipeline.inputs import EvalTensors
    from edgedistill.pipeline.tune import choose_objective

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g)
    y = x[:, :3].argmax(1)
    data = TrainSet(x, y, (4.0 * torch.nn.functional.one_hot(y, 3).float())[None], "arithmetic")
    val_x = torch.randn(1000, 4, generator=g)  # >= tuning.CV_BELOW: scored on validation alone, no folds
    val_y = (val_x[:, :3].argmax(1) + val_y_shift) % 3
    ev = EvalTensors(x, y, val_x, val_y, val_x, val_y)
    cfg = load_config(None, {"data": {"source": "builtin:digits"},
                             "kd": {"temperature": temperature, "alpha": alpha, "tune_epochs": 8}})
    runs = []

    class UI:  # the progress interface (edgedistill.progress.Bars): a task's update function, and log lines
        def task(self, label, total):
            return lambda advance=0, loss=None, val_acc=None: runs.append(val_acc) if val_acc is not None else None

        def log(self, message):
            pass

    def make():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 3)

    tuned = choose_objective(cfg, data, ev, settings, make, UI(), tmp_path)
    return tuned, len(runs)


def test_the_record_is_reused_only_for_the_same_search(tmp_path):
    settings = TrainSettings(epochs=8, batch_size=32, lr=0.01)
    first, n = _search(tmp_path, settings)
    assert n >= 1 and not first.resumed
    again, n_again = _search(tmp_path, settings)
    assert n_again == 0 and again.resumed and again.search == first.search and again.objective == first.objective
    # other validation labels, another seed, another grid: another search, run afresh
    for changed in (dict(val_y_shift=1), dict(settings=TrainSettings(epochs=8, batch_size=32, lr=0.01, seed=1)),
                    dict(temperature=2.0, alpha="auto")):
        kw = {"settings": settings, **changed}
        tuned, n = _search(tmp_path, **kw)
        assert n >= 1 and not tuned.resumed, changed
    (tmp_path / "tuning.json").write_text("{not json")  # a damaged record (a crash while writing): search afresh
    tuned, n = _search(tmp_path, settings)
    assert n >= 1 and not tuned.resumed and tuned.search == first.search
