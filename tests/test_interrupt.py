"""Ctrl-C is never lost: held back during the TFLite conversion, remembered when a finalizer swallows it, and a run
interrupted at any point publishes nothing (edgedistill/interrupt.py)."""

from __future__ import annotations

import gc
import os
import signal
import time

import pytest
from torch import nn

from edgedistill import interrupt
from edgedistill.pipeline.rundir import RunDir


def _sigint_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs at the next bytecode of the main thread


def test_deferred_holds_the_interrupt_until_the_call_returns(capsys):
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred("the converter"):
            _sigint_self()
            finished.append(True)
    assert finished == [True]
    assert "stopping when the converter returns" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_interrupt_still_stops_the_publish(tmp_path):
    class Swallows:  # a KeyboardInterrupt raised in __del__ is printed by Python and dropped
        def __del__(self):
            _sigint_self()

    out = tmp_path / "run"
    with interrupt.watched():
        with RunDir(out) as run:
            run.create()
            (run.work / "student.onnx").write_bytes(b"x")
            Swallows()
            gc.collect()
            with pytest.raises(KeyboardInterrupt):
                run.publish()
    assert not out.exists() and (tmp_path / "run.partial" / "student.onnx").is_file()


def test_an_interrupt_inside_the_tflite_converter_waits_for_it(tmp_path, monkeypatch):
    """SIGINT arrives while litert-torch's Python code runs (where it crashed the process with SIGSEGV or was
    swallowed): the conversion runs to its end, then the interrupt is raised and no file is left behind."""
    import litert_torch

    from edgedistill.export.tflite_export import export_tflite_float

    real, finished = litert_torch.convert, []

    def convert_interrupted(*args, **kwargs):
        _sigint_self()
        converted = real(*args, **kwargs)
        finished.append(True)
        return converted

    monkeypatch.setattr(litert_torch, "convert", convert_interrupted)
    path = tmp_path / "m.tflite"
    with interrupt.watched(), pytest.raises(KeyboardInterrupt):
        export_tflite_float(nn.Sequential(nn.Linear(4, 3)).eval(), (4,), path)
    assert finished == [True]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,says", [("distill", "run the same command again to resume"),
                                       ("build_cmd", "run the same command again to resume"),
                                       ("export_cmd", "nothing was written or replaced"),
                                       ("profile_cmd", "nothing was written or replaced")])
def test_the_interrupt_message_fits_the_command(name, says, capsys):
    """Ctrl-C during `export` said that training was checkpointed and would resume: only the commands that train
    say so; the others say that nothing was published. Exit 130 for all."""
    from edgedistill.cli_errors import user_errors

    def command():
        raise KeyboardInterrupt

    command.__name__ = name
    with pytest.raises(SystemExit) as done:
        user_errors(command)()
    err = capsys.readouterr().err
    assert done.value.code == 130 and says in err and err.startswith("interrupted:")
    assert ("training" in err) == (name in ("distill", "build_cmd"))
