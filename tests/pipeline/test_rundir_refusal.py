"""A refused run leaves nothing (pipeline/rundir.RunDir): a user's error raised after OUT.partial was created removes
it and the lock; a parity failure keeps its outputs for inspection; an interruption or crash, and a work directory
being resumed, keep theirs. Then the causal-LM chain's refusals after its directory exists, on real runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.errors import DataError, ModelLoadError
from edgedistill.pipeline.distill import ParityError
from edgedistill.pipeline.rundir import RunDir
from tiny_lm import documents, save_tiny_gpt2


def _run_and_raise(out: Path, exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        with RunDir(out) as run:
            run.create()
            (run.checkpoints / "student.pt").write_bytes(b"half")
            raise exc


@pytest.mark.parametrize("exc", [DataError("no prompt"), ModelLoadError("tokenizer")])
def test_a_refusal_after_create_leaves_no_partial_and_no_lock(tmp_path, exc):
    out = tmp_path / "run"
    _run_and_raise(out, exc)
    assert not out.exists() and not (tmp_path / "run.partial").exists() and not (tmp_path / "run.lock").exists()


@pytest.mark.parametrize("exc", [ParityError("disagrees"), KeyboardInterrupt(), RuntimeError("a bug")])
def test_parity_failures_interruptions_and_crashes_keep_their_work(tmp_path, exc):
    out = tmp_path / "run"
    _run_and_raise(out, exc)
    assert (tmp_path / "run.partial" / "checkpoints" / "student.pt").read_bytes() == b"half"


def test_a_refusal_while_resuming_keeps_the_earlier_runs_checkpoints(tmp_path):
    out = tmp_path / "run"
    _run_and_raise(out, KeyboardInterrupt())  # an interrupted run: its checkpoints wait for the same command
    _run_and_raise(out, DataError("refused this time"))
    assert (tmp_path / "run.partial" / "checkpoints" / "student.pt").is_file()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    torch.set_num_threads(1)  # conftest sets the session's count back after each test
    return save_tiny_gpt2(tmp_path_factory.mktemp("refusal") / "teacher", documents(200, seed=1), steps=5, width=32)


def test_a_causal_lm_run_refused_after_its_directory_exists_leaves_nothing(teacher, tmp_path):
    """--seq-kd on documents shorter than a prompt is refused by the teacher's pass, after OUT.partial exists (with
    --config, `build` runs the same pass)."""
    corpus = tmp_path / "short.txt"
    corpus.write_text("\n".join(["the cat.", "a dog.", "the sun.", "a bird."] * 15) + "\n")
    cfg = tmp_path / "seqkd.toml"
    cfg.write_text("[kd]\nseq_kd = 2\n")
    for command in (["distill", "--task", "causal-lm", "--seq-kd", "2"],
                    ["build", "--task", "causal-lm", "--target", "cpu", "--config", str(cfg)]):
        out = tmp_path / command[0]
        r = CliRunner().invoke(main, [*command, "--teacher", str(teacher), "--data", str(corpus), "--out", str(out),
                                      "--max-length", "64", "--steps", "5", "--threads", "1", "--quiet"])
        assert r.exit_code != 0 and "--seq-kd needs prompts" in r.output and "Traceback" not in r.output, r.output
        assert not out.exists() and not out.with_name(out.name + ".partial").exists(), command
        assert not out.with_name(out.name + ".lock").exists()
