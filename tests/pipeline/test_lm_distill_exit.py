"""`distill --task causal-lm` exits as README's exit-code rule says: 1 when the run's own gate (gate_lm.py) fails,
after every file is written, the same code `edgedistill gate OUT/metrics.json` gives; 0 when it passes. A
float-only run with --no-baseline fails the gate's twin row (no twin to compare with), so the failing case does not
depend on training noise; with its twin the same run passes (exit 0)."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from tiny_lm import documents, save_tiny_gpt2

ARGS = ["--task", "causal-lm", "--max-length", "12", "--student", "decoder:width=16,depth=1,heads=1", "--steps",
        "60", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmexit")
    torch.set_num_threads(1)
    teacher = save_tiny_gpt2(root / "teacher", documents(600, seed=1), steps=80, width=48)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(documents(120, seed=2)) + "\n")
    return {"root": root, "teacher": teacher, "corpus": corpus}


def _distill(world, out, *extra):
    return CliRunner().invoke(main, ["distill", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]),
                                     "--out", str(out), *ARGS, *extra])


@pytest.mark.parametrize("extra", [["--no-baseline"], []])
def test_distill_exits_as_its_gate_and_as_gate_on_its_metrics(world, extra):
    out = world["root"] / ("no-twin" if extra else "twin")
    r = _distill(world, out, *extra)
    metrics = json.loads((out / "metrics.json").read_text())  # written whatever the verdict
    passed = metrics["gate"]["passed"]
    assert r.exit_code == (0 if passed else 1) and "Traceback" not in r.output, r.output
    again = CliRunner().invoke(main, ["gate", str(out / "metrics.json")])
    assert again.exit_code == r.exit_code, again.output
    assert (out / "report.md").is_file() and not out.with_name(out.name + ".partial").exists()
    if extra:  # no twin: the twin row fails, so the run must exit 1 and say which row
        assert not passed and r.exit_code == 1
        assert "gate failed (perplexity gain over the no-teacher twin)" in r.output, r.output
    else:  # this world's teacher is good enough for the KD student to beat its twin: every row passes, exit 0
        assert passed and r.exit_code == 0, r.output
