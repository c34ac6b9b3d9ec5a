"""The data options of `distill` and `build` as a user meets them: --help says which data forms (texts included) are
read, and both commands take the same --max-train (parsed by click into the config the run uses)."""

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
