"""The automatic choice of a causal LM's losses (pipeline/lm_auto.py): the noise-aware rule on made-up scores, and a
default run on the tiny world of tests/tiny_lm.py whose trials are recorded, bounded, followed by the final run,
and whose reference trial is exactly a plain run of the trial's steps (an independent path through the CLI)."""

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.lm_metrics import TokenScores
from edgedistill.pipeline.lm_auto import CANDIDATES, TRIAL_FRACTION, decide
from tiny_lm import documents, save_tiny_gpt2

ARGS = ["--task", "causal-lm", "--max-length", "16", "--student", "decoder:width=32,depth=1,heads=1", "--threads",
        "1", "--quiet", "--no-baseline"]


def _scores(nll_per_doc: list[np.ndarray]) -> TokenScores:
    nll = np.concatenate(nll_per_doc)
    doc = np.concatenate([np.full(len(x), d, np.int64) for d, x in enumerate(nll_per_doc)])
    return TokenScores(nll.astype(np.float64), np.zeros(len(nll), np.int64), doc)


def test_the_reference_is_kept_unless_beaten_beyond_noise():
    rng = np.random.default_rng(0)
    docs = [rng.uniform(2.0, 5.0, 30) for _ in range(40)]
    ref = _scores(docs)
    clearly = _scores([d - 0.3 for d in docs])  # better on every position of every document
    # better on average by a hair, but worse on half the documents: inside the noise
    noisy = _scores([d + (0.5 if i % 2 else -0.52) for i, d in enumerate(docs)])
    best, gains = decide([ref, noisy, clearly])
    assert best == 2 and gains[0] is None and gains[2].beyond_noise and gains[2].gain > 0
    assert math.exp(noisy.nll.mean()) < math.exp(ref.nll.mean())
    best, gains = decide([ref, noisy])
    assert best == 0 and not gains[1].beyond_noise
    best, _ = decide([ref, _scores(docs)])  # a tie keeps the earlier
    assert best == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lma")
    torch.set_num_threads(1)
    teacher = save_tiny_gpt2(root / "teacher", documents(600, seed=1), steps=60, width=48)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(documents(80, seed=2)) + "\n")
    out = root / "auto"
    r = CliRunner().invoke(main, ["distill", "--teacher", str(teacher), "--data", str(corpus), "--out", str(out),
                                  *ARGS, "--steps", "60"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return {"teacher": teacher, "corpus": corpus, "out": out,
            "metrics": json.loads((out / "metrics.json").read_text())}


def test_default_run_records_bounded_trials_and_trains_the_choice(world):
    m = world["metrics"]
    c = m["loss_choice"]
    assert [t["name"] for t in c["trials"]] == [x.name for x in CANDIDATES]
    assert c["trial_steps"] == round(TRIAL_FRACTION * 60) == 12 and c["steps"] == 60
    train = m["data"]["splits"]["train"]["windows"]
    assert c["seq_kd_prompts"] == -(-train // 4)
    trials = {t["name"]: t for t in c["trials"]}
    assert trials["token-kd"]["windows"] == trials["token-kd+cosine"]["windows"] == train
    assert trials["token-kd+seq-kd"]["windows"] > train
    # the rule: the best trial is chosen only when its gain over the reference lies beyond the noise
    best = min(c["trials"], key=lambda t: t["val_perplexity"])
    if c["chosen"] != "token-kd":
        assert c["chosen"] == best["name"] and best["gain_vs_reference"]["beyond_noise"]
        assert best["gain_vs_reference"]["low"] > 0
    elif best["name"] != "token-kd":
        assert not best["gain_vs_reference"]["beyond_noise"]
    # the final run trains with what was chosen, for the full steps
    assert ("hidden_cosine" in m) == (c["chosen"] == "token-kd+cosine")
    assert ("sequence_kd" in m) == (c["chosen"] == "token-kd+seq-kd")
    assert m["training"]["student"]["steps"] == 60
    report = (world["out"] / "report.md").read_text()
    assert "## Choice of the losses (automatic)" in report and f"chosen: **{c['chosen']}**" in report
    for t in c["trials"]:
        assert f"| {t['name']} | {t['val_perplexity']:.3f} |" in report


def test_the_reference_trial_is_a_plain_run_of_the_trials_steps(world, tmp_path):
    """--temperature 2 (the auto T) turns the choice off; a run of 12 steps must reach the token-kd trial's
    validation perplexity exactly (same start, data order, schedule and teacher top-k)."""
    out = tmp_path / "plain"
    r = CliRunner().invoke(main, ["distill", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]),
                                  "--out", str(out), *ARGS, "--steps", "12", "--temperature", "2"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert "loss_choice" not in m and "sequence_kd" not in m and "hidden_cosine" not in m
    trial = next(t for t in world["metrics"]["loss_choice"]["trials"] if t["name"] == "token-kd")
    assert m["training"]["student"]["best_val_perplexity"] == pytest.approx(trial["val_perplexity"], rel=1e-6)


def test_without_documents_long_enough_for_a_prompt_the_seq_kd_candidate_is_left_out(world, tmp_path):
    """Windows of 64 tokens ask for 16-token prompts; one-sentence documents have fewer, which --seq-kd refuses
    in one paragraph but the automatic choice only drops that candidate."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(world["teacher"] / "tokenizer.json"))
    short = [d for d in documents(300, seed=5, sentences=(1, 2)) if len(tok.encode(d).ids) < 16][:80]
    assert len(short) == 80
    corpus = tmp_path / "short.txt"
    corpus.write_text("\n".join(short) + "\n")
    out = tmp_path / "short"
    args = ["--teacher", str(world["teacher"]), "--data", str(corpus), "--out", str(out), *ARGS, "--steps", "20",
            "--max-length", "64"]
    r = CliRunner().invoke(main, ["distill", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    c = json.loads((out / "metrics.json").read_text())["loss_choice"]
    assert [t["name"] for t in c["trials"]] == ["token-kd", "token-kd+cosine"] and c["seq_kd_prompts"] == 0
    r = CliRunner().invoke(main, ["distill", *args, "--out", str(tmp_path / "refused"), "--seq-kd", "4"])
    assert r.exit_code != 0 and "--seq-kd needs prompts of 16 tokens" in r.output, r.output
