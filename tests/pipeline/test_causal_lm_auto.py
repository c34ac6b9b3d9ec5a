"""The automatic choice of a causal LM's temperature and losses (pipeline/lm_auto.py): the noise-aware rule on made-up
scores, and a default run on the tiny world of tests/tiny_lm.py whose trials (T first, then the terms at the chosen
T) are recorded, bounded, followed by the final run, and whose token-KD trials at T = 2 and T = 4 are exactly plain
runs of the trial's steps at a fixed -T (an independent path through the CLI, which skips the trials)."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.lm_metrics import TokenScores
from edgedistill.pipeline.lm_auto import (CANDIDATES, TEMPERATURE_CANDIDATES, TEMPERATURE_TRIAL_FRACTION, TRIAL_BUDGET,
                                          TRIAL_FRACTION, decide)
from edgedistill.pipeline.lm_train import TEMPERATURES, cache_temperatures
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
    stage1 = [t for t in c["trials"] if t["stage"] == "temperature"]
    stage2 = [t for t in c["trials"] if t["stage"] == "terms"]
    assert [(t["name"], t["temperature"]) for t in stage1] == [("token-kd", 2.0), ("token-kd", 1.0), ("token-kd", 4.0)]
    assert c["temperatures"] == [2.0, 1.0, 4.0] and sorted(c["temperatures"]) == list(TEMPERATURES)
    assert c["reference_temperature"] == 2.0 and c["temperature"] in TEMPERATURES
    assert [t["name"] for t in stage2] == [x.name for x in CANDIDATES]
    assert all(t["temperature"] == c["temperature"] for t in stage2)
    assert c["trial_steps"] == round(TRIAL_FRACTION * 60) == 12 and c["steps"] == 60
    assert c["temperature_trial_steps"] == round(TEMPERATURE_TRIAL_FRACTION * 60) == 30
    assert [t["steps"] for t in c["trials"]] == [30] * 3 + [12] * 3
    assert sum(t["steps"] for t in c["trials"]) == round(TRIAL_BUDGET * 60) == 126 == round(c["trial_budget"] * 60)
    train = m["data"]["splits"]["train"]["windows"]
    assert c["seq_kd_prompts"] == -(-train // 4)
    trials = {t["name"]: t for t in stage2}
    assert all(t["windows"] == train for t in stage1) and trials["token-kd+cosine"]["windows"] == train
    assert trials["token-kd+seq-kd"]["windows"] > train
    # the rule, in each stage: its best trial is chosen only when its gain over the reference lies beyond the noise
    ref = stage1[0]
    best = min(stage1, key=lambda t: t["val_perplexity"])
    chosen_t = next(t for t in stage1 if t["temperature"] == c["temperature"])
    if chosen_t is not ref:
        assert chosen_t is best and best["gain_vs_reference"]["low"] > 0 and best["gain_vs_reference"]["beyond_noise"]
    elif best is not ref:
        assert not best["gain_vs_reference"]["beyond_noise"]
    best2 = min(stage2, key=lambda t: t["val_perplexity"])
    if c["chosen"] != "token-kd":
        assert c["chosen"] == best2["name"] and best2["gain_vs_reference"]["low"] > 0
    elif best2 is not stage2[0]:
        assert not best2["gain_vs_reference"]["beyond_noise"]
    # the final run trains with what was chosen, at the chosen T, for the full steps
    assert m["training"]["temperature"] == c["temperature"]
    assert ("hidden_cosine" in m) == (c["chosen"] == "token-kd+cosine")
    assert ("sequence_kd" in m) == (c["chosen"] == "token-kd+seq-kd")
    assert m["training"]["student"]["steps"] == 60
    assert m["teacher"]["tail_temperatures"] == [1.0, 2.0, 4.0]
    report = (world["out"] / "report.md").read_text()
    assert "## Choice of the temperature and the losses (automatic)" in report
    assert f"chosen **T = {c['temperature']:g}**" in report and f"chosen **{c['chosen']}**" in report
    for t in c["trials"]:
        assert f"| {t['stage']} | {t['name']} | {t['temperature']:g} | {t['steps']} | {t['val_perplexity']:.3f} |" \
            in report


@pytest.mark.parametrize("T", [2.0, 4.0])
def test_a_fixed_temperature_skips_the_trials_and_is_the_trial_at_that_t(world, tmp_path, T):
    """A fixed -T turns the choice off (the auto T being 2, `-T 2` is the plain token-KD run); a run of a temperature
    trial's 30 steps must reach that trial's validation perplexity exactly (same start, data order, schedule and
    teacher top-k, whose tail at that T the cache holds)."""
    out = tmp_path / "plain"
    r = CliRunner().invoke(main, ["distill", "--teacher", str(world["teacher"]), "--data", str(world["corpus"]),
                                  "--out", str(out), *ARGS, "--steps", "30", "--temperature", f"{T:g}"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert "loss_choice" not in m and "sequence_kd" not in m and "hidden_cosine" not in m
    assert m["training"]["temperature"] == T
    trial = next(t for t in world["metrics"]["loss_choice"]["trials"]
                 if t["stage"] == "temperature" and t["temperature"] == T)
    assert m["training"]["student"]["best_val_perplexity"] == pytest.approx(trial["val_perplexity"], rel=1e-6)


def test_the_cache_stores_the_grid_and_a_fixed_t():
    kd = lambda t: SimpleNamespace(kd=SimpleNamespace(temperature=t))  # noqa: E731
    assert cache_temperatures(kd("auto")) == (1.0, 2.0, 4.0) == tuple(sorted(c.temperature for c in
                                                                            TEMPERATURE_CANDIDATES))
    assert cache_temperatures(kd(3.0)) == (1.0, 2.0, 3.0, 4.0) and cache_temperatures(kd(4.0)) == (1.0, 2.0, 4.0)


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
    assert [t["name"] for t in c["trials"] if t["stage"] == "terms"] == ["token-kd", "token-kd+cosine"]
    assert c["seq_kd_prompts"] == 0
    r = CliRunner().invoke(main, ["distill", *args, "--out", str(tmp_path / "refused"), "--seq-kd", "4"])
    assert r.exit_code != 0 and "--seq-kd needs prompts of 16 tokens" in r.output, r.output


@pytest.mark.parametrize("kd, auto", [({}, True), ({"seq_kd": 0}, False), ({"seq_kd": 3}, False),
                                      ({"temperature": 2.0}, False), ({"features": [{"loss": "cosine"}]}, False)])
def test_any_explicit_term_option_fixes_the_objective_seq_kd_0_included(kd, auto):
    """`--seq-kd 0` ("no sequence-level KD") left the automatic choice on, which could then train with it."""
    from edgedistill.config import load_config
    from edgedistill.pipeline.lm_auto import auto_choice_applies

    config = load_config(None, {"kd": kd})
    assert auto_choice_applies(config) is auto
    assert config.kd.seq_kd == kd.get("seq_kd")  # unset stays unset: only a given number is the user's choice
