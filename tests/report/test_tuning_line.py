"""The report says what the auto search chose and why, from the tuning block distill writes to metrics.json."""

from edgedistill.report.render import objective_lines
from edgedistill.report.schema import _objective

TRIALS = [{"loss": "kd", "temperature": 1.0, "alpha": 1.0, "teacher": True, "val_acc": 86.3}] * 24 + [
    {"loss": "kd", "temperature": 4.0, "alpha": 0.9, "teacher": False, "val_acc": 85.5}]


def _metrics(**tuning):
    return {"student": {"history": [{"train_loss": 1.0}]},
            "tuning": {"trials": TRIALS, "epochs_per_trial": 10, "max_samples_per_trial": 10000, **tuning}}


def test_kept_reference_is_explained_with_the_lead_and_its_noise():
    o = _objective(_metrics(reference="kd T 1 alpha 1", best="kd T 2 alpha 0.5", chosen="kd T 1 alpha 1",
                            best_minus_reference=0.2, std_error=0.31, noise_z=2.0,
                            why="the reference: the best trial is not ahead of it by more than 2 standard errors"))
    assert o["tuning"]["n_trials"] == 25 and "trials" not in o["tuning"]
    text = "\n".join(objective_lines(o))
    assert "Auto search: 25 trials of 10 epoch(s) on at most 10,000 samples" in text
    assert "chosen: kd T 1 alpha 1 (the reference: the best trial is not ahead" in text
    assert "kd T 2 alpha 0.5, led the reference (kd T 1 alpha 1) by 0.20 ± 0.31 points" in text


def test_reference_best_has_no_lead_sentence_and_old_runs_still_render():
    o = _objective(_metrics(reference="kd T 1 alpha 1", best="kd T 1 alpha 1", chosen="kd T 1 alpha 1",
                            best_minus_reference=0.0, std_error=0.0, noise_z=2.0,
                            why="the reference is the best trial"))
    text = "\n".join(objective_lines(o))
    assert "chosen: kd T 1 alpha 1 (the reference is the best trial)." in text and "led the reference" not in text
    old = "\n".join(objective_lines(_objective(_metrics())))
    assert "Auto search: 25 trials of 10 epoch(s) on at most 10,000 samples, scored on validation." in old
    assert _objective({"student": {}})["tuning"] is None and objective_lines(_objective({"student": {}})) == []


def test_capped_trials_are_stated_in_steps():
    """A trial capped at 700 optimizer steps stops mid-epoch: the report states the steps, not the epochs touched."""
    text = "\n".join(objective_lines(_objective(_metrics(steps_per_trial=700))))
    assert "Auto search: 25 trials of 700 optimizer steps on at most 10,000 samples" in text
