"""The data options of `distill` and `build` as a user meets them: --help says which data forms (texts included) are
read."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgedistill.cli import build_cmd, distill, main


def _option_help(command, name: str) -> str:
    return next(p.help for p in command.params if name in getattr(p, "opts", ()))


@pytest.mark.parametrize("command", [distill, build_cmd], ids=["distill", "build"])
def test_data_help_names_every_text_form(command):
    text = " ".join(_option_help(command, "--data").split())
    for form in (".jsonl", ".csv", ".tsv", ".txt", "train.", "test.", "unlabeled/", "langid", ".npz", "IDX"):
        assert form in text, (form, text)
    shown = " ".join(CliRunner().invoke(main, [command.name, "--help"]).output.split())
    assert ".jsonl" in shown  # what the terminal prints, not only the option object
