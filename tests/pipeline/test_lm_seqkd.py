"""Sequence-level KD for a causal LM (pipeline/lm_seqkd.py, Kim & Rush 2016) on the tiny grammar world
(tests/tiny_lm.py): the continuations are the teacher's own greedy choices from training prompts only, seeded; a
run with --seq-kd trains the student on the extra windows and changes nothing else: the splits, the teacher's test
figures and the no-teacher twin (same steps) come out identical to the run without it."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.config import load_config
from edgedistill.pipeline.lm_inputs import read_lm_inputs
from edgedistill.pipeline.lm_seqkd import _prompts, greedy_continue, teacher_continuations
from tiny_lm import documents, save_tiny_gpt2

ARGS = ["--task", "causal-lm", "--max-length", "16", "--student", "decoder:width=32,depth=1,heads=1", "--steps",
        "120", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("seqkd")
    torch.set_num_threads(1)  # conftest sets the session's count back after each test
    teacher = save_tiny_gpt2(root / "teacher", documents(1000, seed=1), steps=150, width=48)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(documents(120, seed=2)) + "\n")
    cfg = load_config(None, {"data": {"source": str(corpus), "max_length": 16}, "task": "causal-lm",
                             "teachers": [{"path": str(teacher)}]})
    return {"root": root, "teacher": teacher, "corpus": corpus, "inputs": read_lm_inputs(cfg)}


def test_continuations_are_the_teachers_greedy_choices_from_training_prompts(world):
    inputs = world["inputs"]
    docs, s = inputs.documents.all, inputs.splits
    c = teacher_continuations(inputs.teacher, inputs.tokenizer, docs, s, 12, seed=3)
    assert len(c.texts) == 12 and c.prompt_tokens == 4 and set(c.windows.doc.tolist()) <= set(range(len(docs), len(docs) + 12))
    assert c.windows.ids.shape[1] == 16 and c.windows.tokens > 0
    ids = inputs.tokenizer.teacher_token_ids(c.texts)
    for text, row in zip(c.texts, ids):
        # independent reference: the teacher's own argmax after each prefix (re-tokenized text may merge tokens at
        # the prompt's edge, so check from the prompt's end on)
        with torch.no_grad():
            logits = inputs.teacher.module(input_ids=torch.from_numpy(row[None])).logits[0]
        agree = (logits[4:-1].argmax(-1).numpy() == row[5:]).mean()
        assert agree >= 0.9, (text, agree)
    again = teacher_continuations(inputs.teacher, inputs.tokenizer, docs, s, 12, seed=3)
    other = teacher_continuations(inputs.teacher, inputs.tokenizer, docs, s, 12, seed=4)
    assert again.texts == c.texts and other.texts != c.texts


def test_prompts_come_from_the_training_documents_only(world):
    inputs = world["inputs"]
    ids = inputs.tokenizer.teacher_token_ids(inputs.documents.all)
    train = inputs.splits.train.documents
    prompts = _prompts(ids, train, 200, 4, seed=0)
    text = {d: " " + " ".join(map(str, ids[d])) + " " for d in range(len(ids))}
    held_out = [d for d in range(len(ids)) if d not in set(train.tolist())]
    for p in prompts:
        needle = " " + " ".join(map(str, p)) + " "
        assert any(needle in text[int(d)] for d in train)
    one = _prompts(ids, train[:1], 20, 4, seed=0)  # a single training document: every prompt is cut from it
    assert all(" " + " ".join(map(str, p)) + " " in text[int(train[0])] for p in one)
    assert held_out  # the validation / test documents exist and were never offered


def test_greedy_continue_extends_by_the_argmax(world):
    """Through the teacher's key/value cache, each new token is still the argmax of the whole prefix read afresh."""
    t = world["inputs"].teacher
    rng = np.random.default_rng(0)
    prompts = np.concatenate([[[5, 6, 7], [8, 9, 10]], rng.integers(5, t.vocab_size, (6, 3))]).astype(np.int64)
    out = greedy_continue(t, prompts, 17)
    assert out.shape == (8, 17) and (out[:, :3] == prompts).all()
    for n in range(3, 17):
        assert (t.logits(out[:, :n])[:, -1].argmax(-1).numpy() == out[:, n]).all()


def test_seq_kd_trains_the_student_on_more_text_and_changes_nothing_else(world):
    def run(name, extra):
        out = world["root"] / name
        r = CliRunner().invoke(main, ["distill", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]),
                                      "--out", str(out), *ARGS, *extra], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return json.loads((out / "metrics.json").read_text())

    plain, seq = run("plain", []), run("seq", ["--seq-kd", "60"])
    assert "sequence_kd" not in plain and seq["sequence_kd"]["continuations"] == 60
    assert seq["sequence_kd"]["windows"] >= 60 and seq["sequence_kd"]["prompt_tokens"] == 4
    assert seq["data"] == plain["data"]  # the splits are the corpus's, continuations are no document of it
    assert seq["test"]["teacher"] == plain["test"]["teacher"]
    assert seq["test"]["twin"] == plain["test"]["twin"]  # the twin never reads the teacher's text
    assert seq["test"]["float"] != plain["test"]["float"]
    print("float perplexity: token-level KD", plain["test"]["float"]["perplexity"]["value"], "+ sequence-level",
          seq["test"]["float"]["perplexity"]["value"], "twin", plain["test"]["twin"]["perplexity"]["value"],
          "teacher", plain["test"]["teacher"]["perplexity"]["value"])


def test_seq_kd_on_a_classifier_is_one_paragraph(tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["distill", "--data", "builtin:digits", "--seq-kd", "10", "--out", str(out),
                                  "--quiet"])
    assert r.exit_code != 0 and "Traceback" not in r.output and "--task causal-lm" in r.output, r.output
    assert not out.exists() and not out.with_name("out.partial").exists()
