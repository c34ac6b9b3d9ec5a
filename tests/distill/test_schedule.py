"""The default training budget is sized in optimizer steps from the number of transfer samples."""

import math

import pytest

from edgedistill.config import load_config
from edgedistill.distill.schedule import (DEFAULT_EPOCHS, MAX_EPOCHS, MAX_PASSES, MIN_STEPS, recorded_config, resolve,
                                          resolve_config)
from edgedistill.errors import ConfigError


@pytest.mark.parametrize("n,batch,epochs,qat", [
    (300, 32, 500, 150),     # ceil(300/32) = 10 steps per epoch; 6,000 steps would need 600 epochs: capped at 500
    (360, 32, 500, 150),     # 12 per epoch: 500 epochs = 6,000 steps (MNIST-1D, 400 labels less validation)
    (4000, 64, 96, 29),      # ceil(4000/64) = 63 per epoch; ceil(6000/63) = 96 epochs (6,048 steps, 384 K passes)
    (20000, 128, 20, 6),     # 157 per epoch: 39 epochs for 6,000 steps, but 400 K passes / 20,000 = 20 epochs
    (60000, 128, 10, 3),     # ceil(60000/128) = 469 per epoch: today's 10 epochs (4,690 steps) and 3 QAT epochs
])
def test_sizing_by_hand(n, batch, epochs, qat):
    s = resolve(n)
    per_epoch = math.ceil(n / batch)
    assert (s.batch_size, s.epochs, s.steps_per_epoch, s.qat_epochs) == (batch, epochs, per_epoch, qat)
    assert s.steps == epochs * per_epoch
    assert s.steps >= MIN_STEPS or epochs == MAX_EPOCHS or epochs * n >= MAX_PASSES or epochs == DEFAULT_EPOCHS


def test_tiny_sets_are_capped_and_overrides_win():
    assert resolve(10).epochs == 500  # 1 step per epoch: capped at MAX_EPOCHS
    s = resolve(300, epochs=7)
    assert (s.epochs, s.batch_size, s.steps, s.qat_epochs) == (7, 32, 70, 3)  # explicit epochs: QAT keeps 3
    s = resolve(300, steps=95, batch_size=50)
    # exactly 95 steps: 15 whole epochs of 6 and 5 steps into a 16th (it used to round up to 96)
    assert (s.epochs, s.steps_per_epoch, s.steps, s.exact_steps) == (16, 6, 95, True)
    assert s.qat_steps == round(0.3 * 95) and s.qat_epochs == math.ceil(28 / 6)  # QAT: a share of the steps too
    assert resolve(300, qat_epochs=2).qat_epochs == 2
    with pytest.raises(ValueError):
        resolve(300, epochs=3, steps=10)


def test_config_resolution_writes_plain_integers():
    cfg, s = resolve_config(load_config(None, {"train": {"steps": 500}}), 400)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.quant.qat_epochs) == (s.epochs, s.batch_size, s.qat_epochs)
    assert s.epochs == math.ceil(500 / 13) and (cfg.train.steps, s.steps) == (500, 500)
    assert cfg.quant.qat_steps == s.qat_steps == 150
    # config.json: the step budget as given (epochs auto), which loads again and resolves to the same schedule
    rec = recorded_config(cfg)
    assert (rec["train"]["epochs"], rec["train"]["steps"], rec["quant"]["qat_epochs"]) == ("auto", 500, "auto")
    again, s2 = resolve_config(load_config(None, {k: v for k, v in rec.items() if k != "out"}), 400)
    same = lambda a: {k: v for k, v in a.to_dict().items() if k != "how"}  # noqa: E731 ("how": batch now given)
    assert same(s2) == same(s) and again.train == cfg.train
    cfg, s = resolve_config(load_config(None, {}), 60000)  # an epoch budget: no steps recorded, as before
    assert cfg.train.steps is None and cfg.quant.qat_steps is None and recorded_config(cfg)["train"]["epochs"] == 10
    with pytest.raises(ConfigError, match="epochs or steps"):
        load_config(None, {"train": {"epochs": 3, "steps": 10}})
    with pytest.raises(ConfigError, match="epochs"):
        load_config(None, {"train": {"epochs": 0}})


def test_trials_are_capped_at_exactly_trial_steps():
    from edgedistill.distill.schedule import TRIAL_STEPS, trial_budget

    # 360 samples at batch 32: 12 steps per epoch; a third of 500 epochs would be 1,992 steps: exactly 700 instead
    # (it used to round up to 59 whole epochs, 708 steps), the 59th epoch cut short
    assert trial_budget(500, 32, 360) == (math.ceil(TRIAL_STEPS / 12), TRIAL_STEPS) == (59, 700)
    # 10,000 tuning samples of a 60,000-sample run at batch 128: 79 steps per epoch, 10 // 3 = 3 whole epochs (237)
    assert trial_budget(10, 128, 10000) == (3, None)
    assert trial_budget(2, 32, 100) == (1, None)  # at least one epoch
    # a step budget: a third of its steps, whatever the epoch (300 steps on 420,000 samples: 100-step trials)
    assert trial_budget(1, 128, 10000, steps=300) == (2, 100)
    assert trial_budget(1, 128, 10000, steps=6000) == (9, TRIAL_STEPS)


def test_evaluation_points():
    from edgedistill.distill.schedule import EVAL_EVERY, eval_interval

    for n in (300, 4000, 20000, 60000):  # every sized schedule of today: validated at every epoch's end, as before
        s = resolve(n)
        assert s.eval_every == s.steps_per_epoch and s.steps % s.eval_every == 0
    assert eval_interval(3282, 32820) == EVAL_EVERY == 1000  # 420,000 samples: every 1,000 steps, not every 3,282
    assert eval_interval(3282, 300) == 100  # a 300-step budget within one epoch: scored at 100, 200 and 300
    assert eval_interval(10, 5) >= 5 and eval_interval(33, 20) >= 20  # shorter than one interval: at the end only
    assert resolve(420_000, steps=300).eval_every == 100


def test_auto_mixup_is_function_matching_on_small_sets_only():
    from edgedistill.data.augment import FM_BELOW, FM_MIXUP

    aug = load_config(None, {}).augment
    assert aug.mixup == "auto" and aug.recipe().mixup == 0.0  # unresolved auto counts as off
    small, large = aug.resolved(FM_BELOW - 1), aug.resolved(FM_BELOW)
    assert (small.mixup, small.mixup_twin) == (FM_MIXUP, False)  # the teacher's alone
    assert small.recipe().describe() == f"mixup α={FM_MIXUP:g} (with the teacher only)"
    assert large.recipe().mixup == 0.0 and not large.recipe().enabled  # 60,000 samples: off, today's cost
    assert load_config(None, {"augment": {"mixup": 0}}).augment.resolved(400).recipe().mixup == 0.0  # off switch
    given = load_config(None, {"augment": {"mixup": 0.2}}).augment.resolved(400)
    assert (given.mixup, given.mixup_twin) == (0.2, True)  # a user's mixup: both, as before


def test_text_gets_token_dropout_by_default_on_small_sets_for_the_teacher_only():
    """Texts do not mix: the automatic function matching for text is token dropout 0.1, the teacher's alone (the
    twin trains on the plain texts); a view the user names is shared by both; 'none' turns it off."""
    from edgedistill.data.augment import FM_BELOW, FM_TOKEN_DROPOUT

    aug = load_config(None, {}).augment
    small, large = aug.resolved(FM_BELOW - 1, text=True), aug.resolved(FM_BELOW, text=True)
    assert (small.mixup, small.token_dropout, small.mixup_twin) == (0.0, FM_TOKEN_DROPOUT, False)
    recipe = small.recipe()
    assert recipe.text_views and not recipe.for_twin().enabled  # the twin: no view, and the report says so
    assert recipe.describe() == f"token dropout p={FM_TOKEN_DROPOUT:g} (with the teacher only)"
    assert (large.token_dropout, large.recipe().enabled) == (0.0, False)  # a large set keeps the cached logits
    named = load_config(None, {"augment": {"span_mask": 0.15}}).augment.resolved(400, text=True)
    assert (named.token_dropout, named.span_mask, named.mixup_twin) == (0.0, 0.15, True)
    assert named.recipe().for_twin() == named.recipe()  # the user's views: student and twin alike
    assert not load_config(None, {"augment": {"mixup": 0}}).augment.resolved(400, text=True).recipe().enabled
    image = aug.resolved(400)  # arrays are unchanged: mixup, no text view
    assert image.token_dropout == 0.0 and image.recipe().for_twin().mixup == 0.0


def test_a_byte_student_gets_token_dropout_only_where_labels_are_scarce():
    """docs/text.md: on fully labelled builtin:docs the view cost a byte-level student 4.4 points, where it helped
    byte students on scarce-label langid and the teacher-vocabulary student on docs."""
    from edgedistill.data.augment import FM_BYTES_LABELLED_BELOW, FM_TOKEN_DROPOUT

    aug = load_config(None, {}).augment
    labelled = aug.resolved(400, text=True, byte_tokens=True, labelled_fraction=1.0)
    scarce = aug.resolved(400, text=True, byte_tokens=True, labelled_fraction=0.05)
    edge = aug.resolved(400, text=True, byte_tokens=True, labelled_fraction=FM_BYTES_LABELLED_BELOW)
    vocab = aug.resolved(400, text=True, byte_tokens=False, labelled_fraction=1.0)
    assert (labelled.token_dropout, edge.token_dropout) == (0.0, 0.0)
    assert scarce.token_dropout == vocab.token_dropout == FM_TOKEN_DROPOUT
    named = load_config(None, {"augment": {"token_dropout": 0.2}}).augment.resolved(
        400, text=True, byte_tokens=True, labelled_fraction=1.0)
    assert named.token_dropout == 0.2  # the user's own view is never switched off


def test_cli_augment_keeps_auto_mixup_unless_named():
    from edgedistill.cli_args import parse_augment

    assert parse_augment("shift=2")["mixup"] == "auto"
    assert parse_augment("none")["mixup"] == 0.0 and parse_augment("mixup=0")["mixup"] == 0.0
    assert parse_augment("mixup=0.5")["mixup"] == 0.5


@pytest.mark.parametrize("n,epochs", [(60_001, 10), (100_000, 6), (1_000_000, 1)])
def test_large_data_is_budgeted_in_sample_passes_not_epochs(n, epochs):
    """Beyond 60,000 samples the 10-epoch floor would grow the run with the data; the sized budget stops at
    600,000 sample passes: ceil(600,000 / 128) = 4,688 optimizer steps exactly, QAT and trials sized from them."""
    from edgedistill.distill.schedule import LARGE_DATA_PASSES, QAT_SHARE, trial_budget

    s = resolve(n)
    assert (s.batch_size, s.steps, s.exact_steps) == (128, 4688, True) and s.steps * 128 >= LARGE_DATA_PASSES
    assert s.epochs == epochs == math.ceil(4688 / math.ceil(n / 128))
    assert s.qat_steps == round(QAT_SHARE * 4688) and "600,000 sample passes" in s.how
    assert resolve(60_000).steps == 4690 and not resolve(60_000).exact_steps  # the largest epoch budget: unchanged
    assert resolve(n, epochs=10).steps == 10 * math.ceil(n / 128)  # the user's epochs are kept as given
    cfg, _ = resolve_config(load_config(None, {}), n)
    assert cfg.train.steps == 4688  # recorded as a step budget: a resumed or re-checked run resolves the same
    assert trial_budget(cfg.train.epochs, 128, 10000, cfg.train.steps)[1] == 700


def test_min_steps_raises_given_epochs_only_where_they_are_too_few():
    """build's default (4 epochs, at least 800 steps): builtin:docs' 8,640 paragraphs at batch 128 are 68 steps an
    epoch, so 4 epochs (272 steps) become 12 (816); the built-in example's 30,000 samples keep their 4 (940 steps)."""
    docs = resolve(8640, epochs=4, min_steps=800)
    assert (docs.steps_per_epoch, docs.epochs, docs.steps) == (68, 12, 816) and "raised to 12" in docs.how
    fashion = resolve(30000, epochs=4, min_steps=800)
    assert (fashion.epochs, fashion.steps, fashion.how.startswith("epochs given")) == (4, 940, True)
    assert resolve(8640, epochs=4).epochs == 4  # no floor: the epochs as given
    assert resolve(8640, steps=300, min_steps=800).steps == 300  # an exact step budget is never raised


def test_a_short_run_is_noted_and_a_sized_one_is_not():
    from edgedistill.distill.schedule import short_run_note
    sized = resolve(2000)  # the default: the data-sized schedule itself
    assert short_run_note(sized) is None
    quick = resolve(2000, epochs=3)  # the README's quick look: 3 epochs of 32 batches
    note = short_run_note(quick)
    assert note is not None and f"{quick.steps:,} optimizer steps" in note and f"{sized.steps:,}" in note
    assert short_run_note(resolve(2000, steps=sized.steps // 2 + 1)) is None  # half or more: a fair comparison
