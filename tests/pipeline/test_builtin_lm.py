"""The built-in causal-LM example (issue #29): `builtin:docs-lm` reads the same documents on every machine with the
lock's library versions (the digest its teacher's log recorded), the committed teacher edgedistill/zoo/docs_gpt2/
loads offline, as float32, and predicts test paragraphs far better than chance and as its training log says, and
`distill --data builtin:docs-lm` with neither --teacher nor --task takes that teacher and runs as a causal LM.
Nothing is trained here but 5 student steps on 16-token windows of a tenth of the documents: what is checked is the
data, the teacher and the wiring."""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.data.lm_windows import IGNORE, document_windows
from edgedistill.errors import DataError, EdgeDistillError

pytest.importorskip("transformers")

FOLDER_LIMIT = 3_000_000  # bytes of the committed teacher folder (the budget for it)


def _log() -> dict:
    return json.loads((resources.files("edgedistill.zoo") / "docs_gpt2.json").read_text())


@pytest.fixture(scope="module")
def docs():
    """The corpus, read once (every library's docstrings: ~15 s); a missing library skips off CI, as in tests/data."""
    from edgedistill.data.builtin_lm import docs_lm

    try:
        return docs_lm()
    except EdgeDistillError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"builtin:docs-lm cannot be read here: {exc}")


def _versions_or_skip():
    from edgedistill.data.builtin_docs import docs_versions, version_warning

    log = _log()
    if version_warning(docs_versions(), log["data_versions"]):
        if os.environ.get("CI"):  # CI installs requirements/lock.txt: other versions there are a broken job
            raise AssertionError((docs_versions(), log["data_versions"]))
        pytest.skip(f"other library versions than the teacher's: {docs_versions()} vs {log['data_versions']}")


def test_docs_lm_sizes_sides_and_the_digest_its_teacher_logged(docs):
    from edgedistill.data.builtin_docs import split_side
    from edgedistill.data.builtin_lm import DOCS_LM_TEST_PER_CLASS, DOCS_LM_TRAIN_PER_CLASS, docs_lm

    assert docs.source == "builtin:docs-lm"
    assert (len(docs.train), len(docs.test)) == (8 * DOCS_LM_TRAIN_PER_CLASS, 8 * DOCS_LM_TEST_PER_CLASS)
    assert not set(docs.train) & set(docs.test)
    assert {split_side(t) for t in docs.train} == {"train"} and {split_side(t) for t in docs.test} == {"test"}
    assert docs_lm().digest() == docs.digest() and docs_lm(seed=1).digest() != docs.digest()  # seeded draw
    _versions_or_skip()
    assert docs.warnings == ()
    assert docs.digest() == _log()["data_sha256"]


def test_committed_teacher_loads_offline_as_float32_and_predicts_the_test_paragraphs(docs):
    from edgedistill.teachers.causal_lm import CausalLMTeacher
    from edgedistill.teachers.loader import resolve_builtin
    from tokenizers import Tokenizer

    folder = resolve_builtin("builtin:docs-lm")
    log = _log()
    assert sum(f.stat().st_size for f in Path(folder).iterdir()) <= FOLDER_LIMIT
    teacher = CausalLMTeacher(folder)
    assert {p.dtype for p in teacher.module.parameters()} == {torch.float32}  # stored float16, read as float32
    assert teacher.num_params() == log["params"]
    tok = Tokenizer.from_file(str(teacher.tokenizer))
    context = log["recipe"]["context"]
    pairs = [document_windows(np.asarray(e.ids), context)
             for e in tok.encode_batch(list(docs.test[:log["first_test_docs"]]))]
    ids, targets = (torch.from_numpy(np.concatenate(x)).long() for x in zip(*pairs))
    logp = F.log_softmax(teacher.logits(ids.numpy()), -1)
    real = targets != IGNORE
    nll = -logp[real].gather(1, targets[real][:, None]).mean().item()
    ppl = math.exp(nll)
    uniform = teacher.vocab_size
    assert ppl < uniform / 20, (ppl, uniform)  # a model of the text, not of the token frequencies alone
    _versions_or_skip()
    # the figure the training run logged on the same paragraphs, within float differences between machines
    assert ppl <= log["first_test_docs_perplexity"] * 1.01, (ppl, log["first_test_docs_perplexity"])


def test_distill_builtin_docs_lm_takes_its_teacher_and_the_causal_lm_task(docs, tmp_path, monkeypatch):
    from edgedistill.data import builtin_lm

    # a tenth of the documents (the teacher's pass over all 4,000 costs most of a minute): the wiring is the same
    monkeypatch.setattr(builtin_lm, "DOCS_LM_TRAIN_PER_CLASS", 50)
    monkeypatch.setattr(builtin_lm, "DOCS_LM_TEST_PER_CLASS", 10)
    small = builtin_lm.docs_lm()
    assert small.source == "builtin:docs-lm" and (len(small.train), len(small.test)) == (400, 80)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--data", "builtin:docs-lm", "--steps", "5", "--max-length", "16",
                                  "-T", "2", "--no-baseline", "--threads", "1", "--quiet", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["teachers"][0]["path"] == "builtin:docs-lm"
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "causal-lm" and m["data"]["source"] == "builtin:docs-lm" and m["data"]["own_test_split"]
    assert m["data"]["splits"]["test"]["documents"] == len(small.test)
    assert m["teacher"]["params"] == _log()["params"]
    test = m["test"]
    assert test["teacher"]["perplexity"]["value"] < test["float"]["perplexity"]["value"]  # 5 steps: far from it
    assert all(w in m["warnings"] for w in docs.warnings)


def test_the_other_task_s_built_in_data_is_refused_by_name():
    from edgedistill.data.lm_text import read_documents
    from edgedistill.data.sources import read_dataset

    with pytest.raises(DataError, match="builtin:docs-lm is a corpus for a causal language model"):
        read_dataset("builtin:docs-lm")
    with pytest.raises(DataError, match="builtin:docs is a classification example.*builtin:docs-lm"):
        read_documents("builtin:docs")
