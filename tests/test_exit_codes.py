"""Exit codes are the same in every command (README, `edgedistill --help`): 2 for a refused input, option or path (as
click's own usage errors), 1 for a command that ran and failed a check (errors.RunFailed: parity, QAT collapse,
divergence; the gate's FAIL), 130 when interrupted. `distill` refused bad input with 1 while `build` and `gate`
refused it with 2."""

import click
import pytest
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.cli_errors import user_errors
from edgedistill.distill.trainer import TrainingDiverged
from edgedistill.errors import ConfigError, DataError, ModelLoadError
from edgedistill.pipeline.distill import ParityError
from edgedistill.pipeline.int8 import QATCollapse


def _raising(exc: Exception):
    @click.command()
    @user_errors
    def cmd():
        raise exc

    return cmd


@pytest.mark.parametrize("exc", [ConfigError("bad option"), DataError("bad data"), ModelLoadError("bad model")])
def test_a_refusal_exits_2(exc):
    r = CliRunner().invoke(_raising(exc))
    assert r.exit_code == 2 and r.output == f"error: {exc}\n", r.output


@pytest.mark.parametrize("exc", [ParityError("Parity check failed"), QATCollapse("QAT collapsed"),
                                 TrainingDiverged("the loss became NaN")])
def test_a_run_that_failed_a_check_exits_1(exc):
    r = CliRunner().invoke(_raising(exc))
    assert r.exit_code == 1 and r.output == f"error: {exc}\n", r.output


def test_the_same_refusal_has_the_same_code_in_every_command(tmp_path):
    """An unknown target name, refused before any work, by each command that takes one."""
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * 64)
    out = str(tmp_path / "o")
    commands = {"distill": ["distill", "--qat", "--target", "bogus", "--out", out, "-q"],
                "build": ["build", "--target", "bogus", "--out", out, "-q"],
                "profile": ["profile", str(model), "--target", "bogus"],
                "search": ["search", "--data", "builtin:digits", "--target", "bogus"],
                "targets show": ["targets", "show", "bogus"]}
    codes = {}
    for name, argv in commands.items():
        r = CliRunner().invoke(main, argv)
        assert "Traceback" not in r.output and "bogus" in r.output, (name, r.output)
        codes[name] = r.exit_code
    assert codes == dict.fromkeys(commands, 2), codes
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
    usage = CliRunner().invoke(main, ["distill", "--no-such-option"])  # click's own refusal
    assert usage.exit_code == 2


@pytest.mark.parametrize("command", ["build", "distill"])
def test_a_failed_check_exits_1_and_a_refusal_2_in_build_and_distill(command, monkeypatch, tmp_path):
    """build answered its parity failure with 2, as a refused input (its docstring and the README say 1)."""
    import edgedistill.api

    for exc, code in ((ParityError("Parity check failed: tflite-int8 on litert"), 1), (DataError("bad data"), 2)):
        def refuse(*args, _exc=exc, **kwargs):
            raise _exc

        monkeypatch.setattr(edgedistill.api, command, refuse)
        r = CliRunner().invoke(main, [command, "--out", str(tmp_path / "o"), "-q"])
        assert r.exit_code == code and r.output == f"error: {exc}\n", r.output
