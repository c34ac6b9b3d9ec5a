"""The report lists each loss term's contribution over training, the scheme and the data-free synthesis."""

from edgedistill.report import assemble, to_html
from edgedistill.report.render import to_markdown


def _metrics(**extra) -> dict:
    history = [{"epoch": e, "train_loss": 2.0 / e, "val_acc": 80.0, "lr": 1e-3, "seconds": 1.0,
                "terms": {"at:features.block2->layer2": 0.004 / e, "sp:features.block3->layer3": 0.0002 / e}}
               for e in (1, 2)]
    return {"teacher": {"params": 100, "test_acc": 94.0}, "baseline": {"params": 10, "test_acc": 85.0},
            "student": {"params": 10, "test_acc": 86.0, "history": history,
                        "objective": {"loss": "kd", "temperature": 4.0, "alpha": 0.5, "features": [
                            {"loss": "at", "student": "features.block2", "teacher": "layer2", "weight": 1000.0},
                            {"loss": "sp", "student": "features.block3", "teacher": "layer3", "weight": 3000.0}]}},
            "gain_vs_baseline": 1.0, "int8": None, **extra}


def test_weighted_terms_per_epoch_in_json_and_markdown():
    r = assemble(_metrics(), {}, {})
    terms = {t["name"]: t for t in r["objective"]["terms"]}
    assert terms["at:features.block2->layer2"]["per_epoch"] == [0.004, 0.002]
    md = to_markdown(r)
    assert "## Training objective" in md
    assert "| 1 | 2 | 4 | 0.6 |" in md  # epoch 1: total 2.0, 1000 · 0.004, 3000 · 0.0002
    assert "| 2 | 1 | 2 | 0.3 |" in md


def test_scheme_and_data_free_are_described():
    r = assemble(_metrics(scheme={"scheme": "born-again", "generations": [
        {"index": 0, "val_acc": 80.0, "test_acc": 81.0}, {"index": 1, "val_acc": 82.0, "test_acc": 83.5}]},
        data_free={"samples": 64, "steps": 10, "bn_loss_first": 40.0, "bn_loss_last": 4.0}), {}, {})
    md = to_markdown(r)
    assert "generation 1: test 83.50%" in md and "the last one is deployed" in md
    assert "64 inputs synthesized" in md and "40 -> 4" in md
    assert "Training objective" in to_html(r)


def test_offline_run_without_terms_has_no_objective_section():
    m = _metrics()
    m["student"]["objective"]["features"] = []
    assert "Training objective" not in to_markdown(assemble(m, {}, {}))


def test_terms_recorded_under_resolved_layer_names_are_shown():
    """Text feature terms default to layer 'auto'; the trainer records them under the layers it resolved, and the
    report used to look the config's spelling up and print n/a for every epoch."""
    from edgedistill.report.schema import _objective

    metrics = {"student": {"objective": {"features": [{"loss": "minilm", "student": "auto", "teacher": "auto",
                                                       "weight": 1.0},
                                                      {"loss": "cosine", "student": "auto", "teacher": "auto",
                                                       "weight": 0.5}]},
                           "history": [{"train_loss": 1.0, "terms": {"minilm:layers.1.attn->auto": 0.3,
                                                                     "cosine:head->auto": 0.8}},
                                       {"train_loss": 0.9, "terms": {"minilm:layers.1.attn->auto": 0.2,
                                                                     "cosine:head->auto": 0.7}}]}}
    terms = _objective(metrics)["terms"]
    assert [(t["name"], t["weight"], t["per_epoch"]) for t in terms] == [
        ("minilm:layers.1.attn->auto", 1.0, [0.3, 0.2]), ("cosine:head->auto", 0.5, [0.8, 0.7])]
