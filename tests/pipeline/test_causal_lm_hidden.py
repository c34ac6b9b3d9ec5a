"""`--feature loss=cosine[,weight=β]` for `--task causal-lm` (distill/lm_hidden.py, pipeline/lm_hidden_teacher.py)
on the tiny world of tests/tiny_lm.py: the term against a hand-written formula, β = 0 against the fit without the
term, the teacher's cached states against transformers' own forward on the raw text (unknown student ids
included), a CLI run and its record, an interrupted run resuming to the same weights, and a wrong term refused."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.config import load_config
from edgedistill.data.vocab_tokenizer import UNKNOWN_ID
from edgedistill.distill.lm_hidden import HiddenCosine
from edgedistill.distill.lm_trainer import LMTrainSettings, fit_lm
from edgedistill.pipeline.lm_hidden_teacher import teacher_hidden_states
from edgedistill.pipeline.lm_inputs import read_lm_inputs
from edgedistill.pipeline.lm_train import make_decoder, tensors
from tiny_lm import documents, save_tiny_gpt2

ARGS = ["--task", "causal-lm", "--max-length", "16", "--student", "decoder:width=32,depth=1,heads=1", "--steps",
        "60", "--threads", "1", "--quiet", "--no-baseline"]


def run(args):
    return CliRunner().invoke(main, ["distill", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmh")
    torch.set_num_threads(1)
    teacher = save_tiny_gpt2(root / "teacher", documents(600, seed=1), steps=60, width=48)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(documents(80, seed=2)) + "\n")
    out = root / "run"
    r = run(["--teacher", str(teacher), "--data", str(corpus), "--out", str(out), *ARGS,
             "--feature", "loss=cosine,weight=0.5"])
    assert r.exit_code == 0, r.output
    return {"teacher": teacher, "corpus": corpus, "out": out,
            "metrics": json.loads((out / "metrics.json").read_text())}


def _inputs(world, max_vocab=None):
    cfg = load_config(None, {"data": {"source": str(world["corpus"]), "max_length": 16}, "task": "causal-lm",
                             "teachers": [{"path": str(world["teacher"])}], "student": {"family": "decoder",
                             "width": 32, "depth": 1, "max_vocab": max_vocab}})
    return read_lm_inputs(cfg)


def test_term_matches_the_formula_by_hand():
    """β · mean over positions with a target of 1 − (Wh + b)·t / (|Wh + b| |t|), in float64 numpy."""
    rng = np.random.default_rng(0)
    teacher = torch.from_numpy(rng.normal(size=(5, 4, 6))).half()
    term = HiddenCosine(teacher, 3, 0.7, seed=1)
    term._hidden = torch.from_numpy(rng.normal(size=(2, 4, 3))).float()
    idx, targets = torch.tensor([3, 1]), torch.tensor([[5, 2, -1, -1], [1, 1, 1, -1]])
    w, b = term.projection.weight.detach().double().numpy(), term.projection.bias.detach().double().numpy()
    h = term._hidden.double().numpy() @ w.T + b
    t = teacher[idx].double().numpy()
    cos = (h * t).sum(-1) / np.linalg.norm(h, axis=-1) / np.linalg.norm(t, axis=-1)
    expected = 0.7 * (1 - cos[targets.numpy() != -1]).mean()
    assert float(term.loss(idx, targets).detach()) == pytest.approx(expected, rel=1e-5)
    assert float(term.loss(idx, torch.full((2, 4), -1))) == 0.0


def test_beta_zero_is_exactly_the_fit_without_the_term_and_beta_positive_is_not(world):
    inputs = _inputs(world)
    ids, targets = tensors(inputs.splits.train)
    val_ids, val_targets = tensors(inputs.splits.val)
    states = teacher_hidden_states(inputs.teacher, inputs.tokenizer, inputs.documents.all, inputs.splits.train,
                                   16, None).states
    settings = LMTrainSettings(steps=12, batch_size=8, eval_every=4)

    def fit(weight):
        model = make_decoder(inputs, 0)
        term = None if weight is None else HiddenCosine(states, 32, weight, seed=3)
        res = fit_lm(model, ids, targets, None, val_ids, val_targets, 2.0, 0.5, settings, hidden=term)
        return model.state_dict(), res.history, term

    plain, plain_hist, _ = fit(None)
    zero, zero_hist, _ = fit(0.0)
    some, some_hist, term = fit(1.0)
    assert zero_hist == plain_hist and all(torch.equal(zero[k], plain[k]) for k in plain)
    assert some_hist != plain_hist and not torch.equal(some["embed.weight"], plain["embed.weight"])
    assert term._hook is None  # detached: the returned student carries no hook


def test_cached_states_are_the_teachers_on_its_own_ids_unknown_positions_included(world):
    """Independent reference: the teacher's tokenizer on the raw document and transformers' last_hidden_state."""
    from tokenizers import Tokenizer

    inputs = _inputs(world, max_vocab=40)  # a small vocabulary: many training tokens are the unknown id
    train = inputs.splits.train
    assert (train.ids == UNKNOWN_ID).any()
    got = teacher_hidden_states(inputs.teacher, inputs.tokenizer, inputs.documents.all, train, 16, None)
    assert got.states.dtype == torch.float16 and got.states.shape == (*train.ids.shape, 48)
    tok = Tokenizer.from_file(str(world["teacher"] / "tokenizer.json"))
    model = inputs.teacher.module
    for w in (0, len(train) - 1):
        d = int(train.doc[w])
        first = int(np.flatnonzero(train.doc == d)[0])
        tokens = tok.encode(inputs.documents.all[d], add_special_tokens=False).ids[:-1]
        ids = np.zeros((w - first + 1) * 16, np.int64)
        ids[:min(len(tokens), len(ids))] = tokens[:len(ids)]
        with torch.no_grad():
            ref = model.transformer(input_ids=torch.from_numpy(ids[-16:])[None]).last_hidden_state[0]
        assert torch.allclose(got.states[w].float(), ref, atol=2e-3 * float(ref.abs().max())), w
    again = teacher_hidden_states(inputs.teacher, inputs.tokenizer, inputs.documents.all, train, 16, None)
    assert again.cached and torch.equal(again.states, got.states)


def test_cli_run_records_the_term_and_exports_the_same_shapes(world):
    m, out = world["metrics"], world["out"]
    h = m["hidden_cosine"]
    assert h["weight"] == 0.5 and h["teacher_width"] == 48 and h["student_width"] == 32
    assert h["bytes_per_position"] == 2 * 48 and h["projection_params"] == 32 * 48 + 48
    assert h["cached_bytes"] == m["data"]["splits"]["train"]["windows"] * 16 * 96 > 0
    # another module's run of the same tiny teacher may have cached these states (the cache is the session's)
    assert (h["seconds"] == 0) == h["from_cache"] and h["qat"].startswith("dropped")
    assert "Hidden-state cosine, β = 0.5" in (out / "report.md").read_text()
    from safetensors.torch import load_file

    saved = load_file(str(out / "student.safetensors"))
    fresh = make_decoder(_inputs(world), 0).state_dict()
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape) for k, v in fresh.items()
                                                             if k in saved}
    assert not any("projection" in k for k in saved)


def test_an_interrupted_cosine_run_resumes_to_the_same_weights(world, tmp_path, monkeypatch):
    from edgedistill.distill import lm_resume
    from edgedistill.teachers.base import file_digest

    real, seen = lm_resume.save_atomic, []

    def save_then_stop(obj, path):
        real(obj, path)
        seen.append(obj)
        if len(seen) == 3:
            assert "hidden" in obj and "projection.weight" in obj["hidden"]
            raise KeyboardInterrupt

    out = tmp_path / "run"
    args = ["--teacher", str(world["teacher"]), "--data", str(world["corpus"]), "--out", str(out), *ARGS,
            "--feature", "loss=cosine,weight=0.5"]
    monkeypatch.setattr(lm_resume, "save_atomic", save_then_stop)
    r = run(args)
    assert r.exit_code == 130 and not out.exists()
    monkeypatch.setattr(lm_resume, "save_atomic", real)
    r = run(args)
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["student"]["resumed_from_step"] > 0
    assert file_digest(out / "student.safetensors") == file_digest(world["out"] / "student.safetensors")


@pytest.mark.parametrize("feature", ["loss=minilm", "loss=cosine,student=layers.0"])
def test_another_feature_term_is_one_paragraph_and_writes_nothing(world, tmp_path, feature):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["distill", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]),
                                  "--out", str(out), *ARGS, "--feature", feature])
    assert r.exit_code != 0 and "Traceback" not in r.output and r.output.strip().count("\n") == 0, r.output
    assert "--feature loss=cosine" in r.output
    assert not out.exists() and not out.with_name("out.partial").exists()
