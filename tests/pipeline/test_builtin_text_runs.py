"""The built-in text examples run as a user types them, with no --teacher: `distill --data builtin:NAME` and `build
--target cortex-m4 --data builtin:docs` take the committed teacher trained for that data (edgedistill/zoo/NAME_bert/),
read the data's own test split, and record what made the texts. Shrunk to a few hundred training texts and a few
optimizer steps: what is checked is the wiring, the teacher's accuracy against its training log, the records."""

from __future__ import annotations

import json
import os
from importlib import resources

import pytest
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.data.builtin_text import TEXT_DATASETS
from edgedistill.errors import EdgeDistillError

pytest.importorskip("transformers")

# cortex-m4 as in the build test below: the same byte tokenizer, so the build reuses the teacher's cached outputs
SMALL = ["--max-train", "200", "--steps", "20", "--no-baseline", "-T", "2", "--alpha", "0.5", "--student",
         "textcnn:width=16,depth=1", "--target", "cortex-m4", "--threads", "1", "-q"]


def _log(name: str) -> dict:
    return json.loads((resources.files("edgedistill.zoo") / f"{name}_bert.json").read_text())


def _readable_or_skip(name: str):
    """The corpus (read once here, so a missing word list or library is a skip off CI, as in tests/data)."""
    try:
        return TEXT_DATASETS.get(name)()
    except EdgeDistillError as exc:
        if os.environ.get("CI"):  # .ci/run installs the word lists and the libraries: missing there is a broken job
            raise
        pytest.skip(f"builtin:{name} cannot be read here: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["langid"])  # docs: the build below checks the same wiring (a minute per docs run)
def test_distill_a_builtin_text_example_takes_its_own_teacher(name, tmp_path):
    corpus = _readable_or_skip(name)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--data", f"builtin:{name}", "--out", str(out), *SMALL],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["teachers"][0]["path"] == f"builtin:{name}"
    m, log = json.loads((out / "metrics.json").read_text()), _log(name)
    assert m["teacher"]["params"] == log["params"]  # the committed folder, not another model
    assert m["data"]["sizes"]["test"] == len(corpus.test) == log.get("test_texts", log.get("test_words"))
    assert m["class_names"] == log["classes"]
    # the teacher reads the texts as the student's tokenizer gives them back (truncated to the student's length):
    # within a point or two of the accuracy its training run logged on the same test split
    assert abs(m["teacher"]["test_acc"] - log["test_accuracy"]) < 2.0, (m["teacher"]["test_acc"], log["test_accuracy"])
    assert m["data"]["text"].get("provenance", {}) == corpus.provenance
    assert all(w in m["warnings"] for w in corpus.warnings)  # e.g. docs read from other library versions


@pytest.mark.slow
def test_build_docs_on_cortex_m4_takes_its_teacher_and_records_the_library_versions(tmp_path):
    from edgedistill.data.builtin_docs import docs_versions

    _readable_or_skip("docs")
    small = tmp_path / "small.toml"
    small.write_text("[data]\nmax_train = 200\n[kd]\ntemperature = 2.0\nalpha = 0.5\n[train]\nepochs = 1\n"
                     "threads = 1\n[quant]\nqat_epochs = 1\nqat_max_samples = 100\n")
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["build", "--config", str(small), "--data", "builtin:docs", "--target", "cortex-m4",
                                  "--budget", "flash=72KiB", "--out", str(out), "-q"],  # ~25 KB: tokenizer tables
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["teachers"][0]["path"] == "builtin:docs"
    rep = json.loads((out / "report.json").read_text())
    assert rep["data"]["text"]["provenance"] == {"package_versions": docs_versions()}
    assert f"numpy {docs_versions()['numpy']}" in (out / "report.md").read_text()  # the versions, for a reader too
    assert rep["data"]["text"]["tokenizer"] == "vocab"  # paragraphs: the teacher's words, on a microcontroller too
    assert json.loads((out / "student.json").read_text())["arch"]["family"] == "bow"
    teacher = next(x for x in rep["models"] if x["name"] == "teacher")
    assert abs(teacher["accuracy"] - _log("docs")["test_accuracy"]) < 2.0
