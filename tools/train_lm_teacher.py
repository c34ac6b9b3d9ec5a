"""Train the built-in causal-LM teacher committed in edgedistill/zoo/docs_gpt2/ for builtin:docs-lm (reproducible,
offline, CPU):

    nice -n 10 python tools/train_lm_teacher.py > runs/docs_gpt2.log 2>&1 &    # ~20 min on 1 busy core

The committed recipe (RECIPE's defaults: 5 layers × 128, 4 heads, 64 positions, byte-level BPE of 2,048 tokens;
1,261,952 parameters): 7 epochs of 308 steps over the 17,888 training paragraphs (19,673 windows, 560,112 tokens),
validation perplexity 244.3, 162.4, 114.1, 92.0, 80.8, 73.9, 73.1 after each epoch; test perplexity 69.98 on the 480
test paragraphs of builtin:docs-lm (528 windows, 15,049 tokens; a uniform guess: 2,048), the float16 folder within
0.001 of float32 on validation; 1,209 s of training on one core of a 2-core machine loaded ~4x over, 2,654,639
bytes. One run, the first with this recipe; the still-falling validation curve says more epochs would help, which
this machine's 20-minute budget for the script did not allow.

What it does, all offline. The text: every training-side prose paragraph of the eight libraries' docstrings
(edgedistill.data.builtin_docs.docs_pools("train"), one document each; builtin:docs-lm draws its training documents
from the same side and its test documents from the other, so the teacher never reads a test paragraph), a seeded
VAL_FRACTION of them held out to choose the epoch kept. A byte-level BPE tokenizer (the `tokenizers` library, GPT-2's
pre-tokenizer and decoder, tests/tiny_lm.py's recipe; its trainer gives the same file in every process, checked)
learned on the training paragraphs; a GPT2LMHeadModel built from a GPT2Config (no download) of RECIPE's shape, with
as many positions as the window it trains on. Each paragraph is cut into windows as a causal-LM run cuts its
documents (edgedistill.data.lm_windows.document_windows: a window starts at a paragraph's first token or at a
multiple of the context, never spans two paragraphs), so the teacher is trained on exactly the windows a run at the
default --max-length shows it. AdamW (decay on matrices only), linear warm-up then cosine decay to 0, gradient norm
clipped at 1, batches of similar lengths (bucketed, padded to the batch's longest, padding ignored by the loss and,
causally, by every real position). After each epoch the validation perplexity; the best epoch's weights are kept.

The folder is written by `save_pretrained` with the weights in float16 (half the bytes; the teacher loader reads
them as float32, edgedistill.teachers.text_transformers.load_pretrained) plus tokenizer.json, atomically; the
perplexities in the log are measured after that, on the folder as the loader reads it: validation, the test
documents of builtin:docs-lm (all, and the first FIRST_TEST_DOCS, the figure tests/data/test_builtin_lm.py checks
against) and a uniform model's (the vocabulary size). The JSON log (recipe, seed, data digest and library versions,
per-epoch loss and validation perplexity, seconds, package versions) goes beside the folder as docs_gpt2.json.

One thread by default and a fixed seed, so the same machine and package versions should give the same weights (the
tokenizer was checked to: two processes wrote the same file; a second full training run was not made).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgedistill.data.builtin_docs import docs_pools, docs_versions
from edgedistill.data.builtin_lm import docs_lm
from edgedistill.data.lm_windows import IGNORE, document_windows

ZOO = Path(__file__).resolve().parents[1] / "edgedistill" / "zoo"
VAL_FRACTION = 0.05
FIRST_TEST_DOCS = 64


@dataclass(frozen=True)
class Recipe:
    """The teacher's shape and training settings (each a command-line option too)."""

    vocab: int = 2048  # byte-level BPE tokens (the student's vocabulary is cut from these)
    width: int = 128
    layers: int = 5
    heads: int = 4
    context: int = 64  # positions; the default --max-length of a causal-LM run
    dropout: float = 0.1  # residual, embedding and attention dropout
    epochs: int = 7
    batch: int = 64  # windows a step
    lr: float = 3e-3  # peak AdamW learning rate
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of the steps with a linear warm-up


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Recipe):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ZOO / "docs_gpt2")
    return ap.parse_args()


def train_tokenizer(texts: list[str], vocab: int):
    """GPT-2's byte-level BPE (`tokenizers`), `vocab` tokens, the first the special <|endoftext|> (id 0, which no
    text encodes to: a causal-LM run pads with id 0)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    return tok


def windows(tok, texts, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every paragraph's windows (document_windows): ids int64 (W, context), targets int64 (W, context)."""
    pairs = [document_windows(np.asarray(e.ids), context) for e in tok.encode_batch(list(texts))]
    ids = np.concatenate([p[0] for p in pairs]).astype(np.int64)
    return torch.from_numpy(ids), torch.from_numpy(np.concatenate([p[1] for p in pairs]))


def batches(lengths: np.ndarray, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """One epoch's batches of window indices: shuffled, sorted by length within runs of 50 batches, the batches
    shuffled again (so a batch pads to a length near its own)."""
    order = torch.randperm(len(lengths), generator=gen)
    runs = [w[torch.from_numpy(np.argsort(lengths[w.numpy()], kind="stable"))] for w in order.split(size * 50)]
    out = list(torch.cat(runs).split(size))
    return [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]


def batch_loss(model, ids: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the real positions, the windows cut to their longest real length."""
    n = int((targets != IGNORE).sum(1).max())
    logits = model(input_ids=ids[:, :n]).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets[:, :n].reshape(-1),
                           ignore_index=IGNORE, reduction=reduction)


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, targets: torch.Tensor, batch: int = 256) -> float:
    """exp(mean next-token NLL over every real position), windows in batches."""
    model.eval()
    total = sum(batch_loss(model, ids[s:s + batch], targets[s:s + batch], "sum").item()
                for s in range(0, len(ids), batch))
    return math.exp(total / int((targets != IGNORE).sum()))


def train(model, ids, targets, val, r: Recipe, gen: torch.Generator) -> tuple[list[dict], dict]:
    """r.epochs of AdamW (module doc); returns the per-epoch history and the best epoch's state dict."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=r.lr)
    lengths = (targets != IGNORE).sum(1).numpy()
    total = -(-len(ids) // r.batch) * r.epochs
    warm = max(1, int(total * r.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
    history, best, best_state = [], math.inf, None
    for epoch in range(r.epochs):
        model.train()
        t0, losses = time.time(), []
        for b in batches(lengths, r.batch, gen):
            loss = batch_loss(model, ids[b], targets[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        val_ppl = perplexity(model, *val)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_perplexity": val_ppl,
                        "seconds": time.time() - t0})
        print(f"epoch {epoch + 1}/{r.epochs}: loss {history[-1]['loss']:.4f}, val perplexity {val_ppl:.2f}, "
              f"{history[-1]['seconds']:.0f} s", flush=True)
        if val_ppl < best:
            best, best_state = val_ppl, copy.deepcopy(model.state_dict())
    return history, best_state


def main() -> None:
    import transformers

    args = parse_args()
    r = Recipe(**{f.name: getattr(args, f.name) for f in fields(Recipe)})
    t_start = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    pool = [t for _, texts in sorted(docs_pools("train").items()) for t in texts]
    perm = np.random.default_rng(args.seed).permutation(len(pool))
    n_val = int(round(len(pool) * VAL_FRACTION))
    val_texts, train_texts = [pool[i] for i in perm[:n_val]], [pool[i] for i in perm[n_val:]]
    corpus = docs_lm()
    tok = train_tokenizer(train_texts, r.vocab)
    ids, targets = windows(tok, train_texts, r.context)
    val = windows(tok, val_texts, r.context)
    cfg = transformers.GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=r.context, n_embd=r.width,
                                  n_layer=r.layers, n_head=r.heads, resid_pdrop=r.dropout, embd_pdrop=r.dropout,
                                  attn_pdrop=r.dropout, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params:,} parameters, vocabulary {tok.get_vocab_size()}, {len(train_texts)} train / {n_val} val "
          f"paragraphs, {len(ids)} windows, {int((targets != IGNORE).sum())} training tokens", flush=True)
    history, state = train(model, ids, targets, val, r, torch.Generator().manual_seed(args.seed))
    train_seconds = time.time() - t_start
    model.load_state_dict(state)
    save(model, tok, args.out)

    from edgedistill.teachers.causal_lm import CausalLMTeacher

    saved = CausalLMTeacher(args.out).module  # the folder as a run reads it: float16 weights -> float32
    test = windows(tok, corpus.test, r.context)
    first = windows(tok, corpus.test[:FIRST_TEST_DOCS], r.context)
    result = {"val_perplexity_float32": perplexity(model, *val), "val_perplexity": perplexity(saved, *val),
              "test_perplexity": perplexity(saved, *test), "test_windows": len(test[0]),
              "test_tokens": int((test[1] != IGNORE).sum()), "first_test_docs": FIRST_TEST_DOCS,
              "first_test_docs_perplexity": perplexity(saved, *first), "uniform_perplexity": tok.get_vocab_size()}
    print(json.dumps(result), flush=True)
    write_log(args, r, {
        "data": "builtin:docs-lm", "data_sha256": corpus.digest(), "data_versions": docs_versions(),
        "teacher_text": "every training-side paragraph of builtin_docs.docs_pools('train')",
        "train_paragraphs": len(train_texts), "val_paragraphs": n_val, "train_windows": len(ids),
        "train_tokens": int((targets != IGNORE).sum()), "test_paragraphs": len(corpus.test),
        "params": n_params, "history": history, **result, "train_seconds": train_seconds,
        "seconds": time.time() - t_start})


def save(model, tok, out: Path) -> None:
    """save_pretrained in float16 + tokenizer.json into OUT, atomically (through OUT.partial)."""
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    copy.deepcopy(model).half().eval().save_pretrained(tmp, safe_serialization=True)
    tok.save(str(tmp / "tokenizer.json"))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def write_log(args, r: Recipe, log: dict) -> None:
    import tokenizers
    import transformers

    out: Path = args.out
    root = ZOO.parents[1]
    where = str(out.resolve().relative_to(root)) if out.resolve().is_relative_to(root) else str(out)
    log = {"recipe": asdict(r), "seed": args.seed, "threads": args.threads, "out": where, **log,
           "folder_bytes": sum(p.stat().st_size for p in out.iterdir()),
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "tokenizers": tokenizers.__version__, "python": platform.python_version()},
           "machine": platform.processor() or platform.machine()}
    out.with_suffix(".json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"wrote {out} ({log['folder_bytes']:,} bytes) and {out.with_suffix('.json')}", flush=True)


if __name__ == "__main__":
    main()
