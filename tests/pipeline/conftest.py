"""One tiny causal-LM build shared by the test files that read it (tests/pipeline/test_lm_build*.py): a
GPT-2-style teacher and a grammar corpus built in code (tests/tiny_lm.py), `build --task causal-lm --target
cortex-m4` once per session."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from tiny_lm import LM_BUILD_ARGS, LM_BUILD_BUDGET, documents, save_tiny_gpt2


@pytest.fixture(scope="session")
def lm_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmbuild")
    torch.set_num_threads(1)  # conftest sets the session's count back after each test
    teacher = save_tiny_gpt2(root / "teacher", documents(600, seed=1), steps=60, width=48)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(documents(120, seed=2)) + "\n")
    out = root / "build"
    r = CliRunner().invoke(main, ["build", "--teacher", str(teacher), "--data", str(corpus), "--out", str(out),
                                  "--budget", LM_BUILD_BUDGET, *LM_BUILD_ARGS], catch_exceptions=False)
    assert r.exit_code in (0, 1), r.output  # 1: a gate row failed (the rows are checked by the tests)
    return {"root": root, "teacher": teacher, "corpus": corpus, "out": out, "output": r.output,
            "exit_code": r.exit_code, "metrics": json.loads((out / "metrics.json").read_text())}
