"""The data options of `distill` and `build` as a user meets them: --help says which data forms (texts included) are
read, both commands take the same --max-train, and a text file's fields are named with --text-field / --label-field
(each parsed by click into the config the run uses)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgedistill.cli import build_cmd, distill, main
from edgedistill.cli_options import build_overrides, distill_overrides
from edgedistill.config import load_config


def _option_help(command, name: str) -> str:
    return next(p.help for p in command.params if name in getattr(p, "opts", ()))


@pytest.mark.parametrize("command", [distill, build_cmd], ids=["distill", "build"])
def test_data_help_names_every_text_form(command):
    text = " ".join(_option_help(command, "--data").split())
    for form in (".jsonl", ".csv", ".tsv", ".txt", "train.", "test.", "unlabeled/", "langid", ".npz", "IDX"):
        assert form in text, (form, text)
    shown = " ".join(CliRunner().invoke(main, [command.name, "--help"]).output.split())
    assert ".jsonl" in shown  # what the terminal prints, not only the option object


def _params(command, argv: list[str]) -> dict:
    with command.make_context(command.name, argv) as ctx:
        return ctx.params


def test_build_takes_max_train_as_distill_does():
    help_d, help_b = _option_help(distill, "--max-train"), _option_help(build_cmd, "--max-train")
    assert help_b.startswith(help_d)  # the same words; build adds its own default
    data = ["--data", "builtin:digits"]  # data of the user's choice (not build's built-in example)
    assert load_config(None, build_overrides(_params(build_cmd, data + ["--max-train", "500"]))).data.max_train == 500
    assert load_config(None, distill_overrides(_params(distill, data + ["--max-train", "500"]))).data.max_train == 500
    # not given: your own data is used whole, the built-in example keeps its 30,000
    assert load_config(None, build_overrides(_params(build_cmd, data))).data.max_train is None
    assert load_config(None, build_overrides(_params(build_cmd, []))).data.max_train == 30000
    assert load_config(None, build_overrides(_params(build_cmd, ["--max-train", "800"]))).data.max_train == 800


@pytest.mark.parametrize("command,overrides", [(distill, distill_overrides), (build_cmd, build_overrides)],
                         ids=["distill", "build"])
def test_text_and_label_fields_are_named_on_the_command_line(tmp_path, command, overrides):
    data = tmp_path / "d.jsonl"
    data.write_text('{"body": "guten tag", "lang": "de"}\n{"body": "bonjour", "lang": "fr"}\n', encoding="utf-8")
    argv = ["--data", str(data), "--teacher", "builtin:langid", "--text-field", "body", "--label-field", "lang"]
    cfg = load_config(None, overrides(_params(command, argv)))
    assert (cfg.data.text_field, cfg.data.label_field) == ("body", "lang")
    from edgedistill.data import read_dataset

    corpus = read_dataset(cfg.data.source, cfg.data.text_field, cfg.data.label_field)
    assert corpus.train.texts == ("guten tag", "bonjour") and corpus.train.labels == ("de", "fr")


def test_an_unknown_text_field_is_one_paragraph_listing_the_file_s_fields(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"body": "guten tag", "lang": "de"}\n', encoding="utf-8")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["distill", "--data", str(data), "--teacher", "builtin:langid", "--text-field",
                                  "sentence", "--out", str(out), "-q"])
    assert r.exit_code != 0
    msg = r.output.strip()
    assert msg.startswith("error:") and "\n" not in msg and "Traceback" not in msg, msg
    assert "no field `sentence`" in msg and "body, lang" in msg and "--text-field" in msg, msg
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_build_takes_steps_qat_steps_and_threads_as_distill_does(tmp_path):
    """A step budget replaces build's default epochs (4 float, 1 QAT); without --qat-steps QAT gets the schedule's
    share of the steps (qat_epochs auto); both commands take --qat-steps and --threads."""
    cfg = load_config(None, build_overrides(_params(build_cmd, ["--steps", "300", "--threads", "1"])))
    assert (cfg.train.steps, cfg.train.epochs, cfg.train.threads) == (300, "auto", 1)
    assert (cfg.quant.qat_epochs, cfg.quant.qat_steps) == ("auto", None)
    cfg = load_config(None, build_overrides(_params(build_cmd, ["--steps", "300", "--qat-steps", "40"])))
    assert (cfg.quant.qat_epochs, cfg.quant.qat_steps) == ("auto", 40)
    cfg = load_config(None, build_overrides(_params(build_cmd, [])))  # the built-in example's defaults are kept
    assert (cfg.train.epochs, cfg.train.steps, cfg.quant.qat_epochs, cfg.quant.qat_steps) == (4, None, 1, None)
    assert cfg.train.min_steps == 800  # build's 4 epochs are at least 800 optimizer steps ...
    assert load_config(None, build_overrides(_params(build_cmd, ["--epochs", "2"]))).train.min_steps is None  # ... unless told
    cfg = load_config(None, distill_overrides(_params(distill, ["--qat", "--qat-steps", "25"])))
    assert (cfg.quant.qat_epochs, cfg.quant.qat_steps) == ("auto", 25)
    # both given: the config refuses it in one line, as for epochs and steps
    r = CliRunner().invoke(main, ["build", "--qat-epochs", "2", "--qat-steps", "40", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "qat_epochs or qat_steps" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_max_test_scores_a_seeded_subset_of_the_test_split(tmp_path):
    """--max-test (both commands) keeps a seeded subset of the test split, in the data's order; the training and
    validation splits are untouched; below 100 samples it is refused."""
    import numpy as np

    from edgedistill.data.arrays import RawDataset, Split
    from edgedistill.data.splits import make_splits

    for command, overrides in ((distill, distill_overrides), (build_cmd, build_overrides)):
        assert load_config(None, overrides(_params(command, ["--max-test", "300"]))).data.max_test == 300
    rng = np.random.default_rng(0)
    x, y = rng.random((1000, 4)).astype(np.float32), rng.integers(0, 3, 1000)
    xt = np.arange(2000, dtype=np.float32)[:, None].repeat(4, 1)
    raw = RawDataset(Split(x, y), Split(xt, rng.integers(0, 3, 2000)), "arrays")
    whole, cut = make_splits(raw), make_splits(raw, max_test=500)
    again = make_splits(raw, max_test=500)
    kept = cut.test.x[:, 0].astype(int)
    assert len(cut.test) == 500 and np.all(np.diff(kept) > 0) and np.array_equal(again.test.x, cut.test.x)
    assert np.array_equal(cut.test.y, whole.test.y[kept])  # each kept sample keeps its own label
    assert np.array_equal(cut.train.x, whole.train.x) and np.array_equal(cut.val.x, whole.val.x)
    r = CliRunner().invoke(main, ["distill", "--max-test", "50", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "--max-test (data.max_test)" in r.output and not (tmp_path / "o").exists(), r.output


def test_build_default_out_names_the_data():
    """Builds of different data on one target get different default directories: a langid build and a docs build
    used to share runs/build-cortex-m4, the second silently replacing the first."""
    outs = {tuple(argv): build_overrides(_params(build_cmd, argv))["out"]
            for argv in ([], ["--data", "builtin:langid"], ["--data", "builtin:docs"], ["--data", "some/dir/texts.jsonl"],
                         ["--data", "images/"], ["--data", "builtin:docs", "--out", "mine"])}
    assert outs[()] == "runs/build-android"  # the built-in example keeps the README's directory
    assert outs[("--data", "builtin:langid")] == "runs/build-android-langid"
    assert outs[("--data", "builtin:docs")] == "runs/build-android-docs"
    assert outs[("--data", "some/dir/texts.jsonl")] == "runs/build-android-texts"
    assert outs[("--data", "images/")] == "runs/build-android-images"
    assert outs[("--data", "builtin:docs", "--out", "mine")] == "mine"
    assert load_config(None, build_overrides(_params(build_cmd, ["--data", "builtin:langid"]))).out.endswith("-langid")


def test_build_takes_the_temperature_and_alpha_as_distill_does():
    """`build -T 2` fixes the temperature (a causal-LM build then runs no trials); with a config file the flag
    overrides the file's value; not given, the config's default ("auto") stands; a bad value is refused by flag."""
    data = ["--data", "builtin:digits"]
    cfg = load_config(None, build_overrides(_params(build_cmd, data + ["-T", "2", "--alpha", "0.7"])))
    assert (cfg.kd.temperature, cfg.kd.alpha) == (2.0, 0.7)
    default = load_config(None, build_overrides(_params(build_cmd, data)))
    assert (default.kd.temperature, default.kd.alpha) == ("auto", "auto")
    assert default.kd.tune_max_samples == 3000  # build's own trial cap is kept when -T is given or not
    assert load_config(None, build_overrides(_params(build_cmd, data + ["-T", "4"]))).kd.tune_max_samples == 3000


def test_build_temperature_flag_overrides_a_config_file(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("[kd]\ntemperature = 8.0\nalpha = 0.9\n")
    argv = ["--data", "builtin:digits", "--config", str(cfg_file), "-T", "2"]
    cfg = load_config(str(cfg_file), build_overrides(_params(build_cmd, argv)))
    assert (cfg.kd.temperature, cfg.kd.alpha) == (2.0, 0.9)
    r = CliRunner().invoke(main, ["build", "--data", "builtin:digits", "-T", "hot", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--temperature" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o").exists()
