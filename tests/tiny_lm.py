"""A tiny causal-LM world built in code (no download): documents from a small probabilistic grammar, a GPT-2-style
byte-level BPE tokenizer trained on them, and a GPT2LMHeadModel from a config, trained here on many documents and
saved with save_pretrained (config.json, model.safetensors, tokenizer.json).

The grammar gives the next word a spread distribution (a noun picks its verbs, a verb its objects, with unequal
weights), so a teacher that has read many documents knows distributions a student sees only samples of in a few
documents: the setting where token-level KD is expected to help (Hinton et al. 2015; DistilGPT2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

NOUNS = {"cat": ["sees", "chases", "likes"], "dog": ["chases", "hears", "finds"], "bird": ["sees", "hears"],
         "child": ["likes", "finds", "sees", "draws"], "farmer": ["feeds", "finds", "likes"]}
OBJECTS = {"sees": ["the bird", "a tree", "the river"], "chases": ["the cat", "a ball", "the bird"],
           "likes": ["the sun", "a song", "the river", "warm milk"], "hears": ["a song", "the river", "the farmer"],
           "finds": ["a ball", "a stone", "the key"], "draws": ["a tree", "the sun"], "feeds": ["the dog", "the cat"]}
ADJ = ["small", "old", "quick", "happy"]

# the tiny build tests/pipeline/conftest.py runs once a session (`lm_build`), and the budget it runs under
LM_BUILD_ARGS = ["--task", "causal-lm", "--target", "cortex-m4", "--max-length", "16", "--steps", "80",
                 "--qat-steps", "20", "--threads", "1", "--quiet"]
LM_BUILD_BUDGET = "tokens_per_s=2"


def _weights(n: int, rng: np.random.Generator) -> np.ndarray:
    w = np.arange(n, 0, -1, dtype=float) ** 1.5
    return w / w.sum()


def sentence(rng: np.random.Generator) -> str:
    nouns = sorted(NOUNS)
    noun = nouns[rng.choice(len(nouns), p=_weights(len(nouns), rng))]
    adj = f"{ADJ[rng.integers(len(ADJ))]} " if rng.random() < 0.4 else ""
    verbs = NOUNS[noun]
    verb = verbs[rng.choice(len(verbs), p=_weights(len(verbs), rng))]
    objs = OBJECTS[verb]
    return f"the {adj}{noun} {verb} {objs[rng.choice(len(objs), p=_weights(len(objs), rng))]}."


def documents(n: int, seed: int = 0, sentences: tuple[int, int] = (2, 6)) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(sentence(rng) for _ in range(int(rng.integers(*sentences)))) for _ in range(n)]


def save_tiny_gpt2(folder: Path, corpus: list[str], steps: int = 300, width: int = 64, layers: int = 2,
                   positions: int = 64, seed: int = 0, vocab: int = 300, heads: int = 2, lr: float = 3e-3,
                   warmup: int = 0, cosine: bool = False, log=None) -> Path:
    """Train a byte-level BPE tokenizer (`vocab` tokens) and a GPT2LMHeadModel (`layers` × `width`, `heads` heads)
    on `corpus` for `steps` Adam steps of 32 windows at `lr` (a linear warm-up over `warmup` steps; with `cosine` a
    cosine decay to 0 after it, else constant), save both into `folder`. `log(step, loss)` is called every 25
    steps (the benchmark's progress)."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=positions, n_embd=width,
                                  n_layer=layers, n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(cfg)
    ids = [i for e in tok.encode_batch(corpus) for i in e.ids]
    windows = torch.tensor(ids[: len(ids) // (positions + 1) * (positions + 1)]).view(-1, positions + 1)
    opt = torch.optim.Adam(model.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        if warmup or cosine:
            rest = (step - warmup) / max(1, steps - warmup)
            scale = (step + 1) / warmup if step < warmup else (0.5 * (1 + np.cos(np.pi * rest)) if cosine else 1.0)
            for group in opt.param_groups:
                group["lr"] = lr * scale
        batch = windows[torch.randint(0, len(windows), (32,), generator=g)]
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log is not None and (step % 25 == 0 or step == steps - 1):
            log(step, loss.item())
    model.eval().save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return folder
