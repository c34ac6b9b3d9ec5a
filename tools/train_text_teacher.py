"""Train the built-in text teachers committed in edgedistill/zoo/ (reproducible, offline, CPU): langid_bert/ for
builtin:langid (the default, --data langid) and docs_bert/ for builtin:docs (--data docs); RECIPES holds each one's
settings, every one a command-line option too.

    nice -n 10 python tools/train_text_teacher.py > runs/langid_bert.log 2>&1 &    # ~10 min on 1 core
    nice -n 5 python tools/train_text_teacher.py --data docs > runs/docs_bert.log 2>&1 &    # ~26 min on 1 busy core

langid (4 layers, width 128, 4 heads, FFN 256, WordPiece vocabulary 2,000; 807,815 parameters, 3.3 MB; dropout
0.25, weight decay 0.05, 12 epochs): train 93.20 %, val 85.09 %, test 84.75 % on the 14,000 test words, 10 min of
training on one (shared) core; two 1-epoch runs wrote bit-identical files.
Also run, and not kept: dropout 0.1, weight decay 0.01, 18 epochs (17 min): train 98.30 %, val 85.11 %, test
84.28 %, over-fitted (chosen against on the validation split); and the committed recipe with tokenizers' own
WordPieceTrainer (val 85.27 %, test 85.05 %), replaced because that trainer's vocabulary differs from run to run.
The errors are the neighbours one expects: Dutch / German, Spanish / Portuguese, English / Dutch.

docs (the same shape with a vocabulary of 3,000 and 128 positions; 948,232 parameters, 3.9 MB; 10 epochs at batch
64, length-bucketed batches; --pool: besides 90 % of the 9,600 training paragraphs, the 9,229 other training-side
paragraphs of the libraries (builtin_docs.split_side), with the cross-entropy weighed by inverse class frequency
because those are unbalanced, 297 numpy to 2,456 sympy): train 96.17 %, val 73.54 %, test 76.46 % on the 2,400
test paragraphs (chance 12.5 %), 1,568 s of training on one core of a machine loaded 4x over. Per class 68 % (numpy,
torch) to 86 % (networkx); the errors are torch / transformers, numpy / scipy, scipy / sklearn. One run, the first
with this recipe (a 1-epoch trial reached 61.25 %); the log records the library versions the texts were read from
and the corpus's digest, which tests/data/test_builtin_text.py checks.

What it does, all offline: a WordPiece tokenizer (the `tokenizers` library; NFC + lower case, BERT pre-tokenizer,
`[CLS] $A [SEP]`) whose vocabulary is learned on the training texts only (tools/_wordpiece.py, deterministic);
a small BERT (Devlin et al. 2019) sequence classifier built from a `transformers` BertConfig (no download),
trained with AdamW, linear warm-up then linear decay, on 90 % of the data set's training split (with --pool, also
its labelled texts outside the splits); the other 10 % (seeded) is the validation split, and the data's own test
split is read once, at the end. No label smoothing: a label-smoothed teacher distils worse (Müller et al. 2019,
"When does label smoothing help?"). The folder is
written by `save_pretrained` (config.json, model.safetensors) plus tokenizer.json, atomically; the JSON log
(config, seed, epochs, per-epoch loss and accuracy, train / val / test accuracy, seconds, package versions, the
data's versions and digest) goes beside it as DATA_bert.json.

One thread by default and a fixed seed: the same machine and package versions give the same weights.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _wordpiece import learn_vocab  # tools/ is on sys.path when this script runs
from edgedistill.data.builtin_docs import docs_pools, docs_versions
from edgedistill.data.builtin_text import TEXT_DATASETS

ZOO = Path(__file__).resolve().parents[1] / "edgedistill" / "zoo"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DATA_VERSIONS = {"docs": docs_versions}  # the packages whose versions make the data (logged with the teacher)
# class -> the labelled texts that may train a teacher (--pool): docs' training side (the test side stays unseen)
DATA_POOLS = {"docs": lambda: docs_pools("train")}


def train_tokenizer(words: list[str], vocab_size: int):
    """A BERT-style WordPiece tokenizer (`tokenizers` library) whose vocabulary is learned on `words` by
    tools/_wordpiece.py, deterministically (tokenizers' own trainer is not; see there). Accents are kept: they are
    the task's evidence."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    pieces = [p for w in words for p, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(w))]
    vocab = learn_vocab(pieces, vocab_size, SPECIALS, min_frequency=2)
    tok.model = models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100)
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def encode(tok, texts, max_length: int) -> list[list[int]]:
    tok.no_padding()
    tok.enable_truncation(max_length)
    return [e.ids for e in tok.encode_batch(list(texts))]


def batch_tensors(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the batch's longest: (input_ids int64 N×T, attention_mask int64 N×T)."""
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


@torch.no_grad()
def accuracy(model, seqs: list[list[int]], y: np.ndarray, pad_id: int, batch: int = 512) -> float:
    model.eval()
    pred = []
    for i in range(0, len(seqs), batch):
        ids, mask = batch_tensors(seqs[i : i + batch], pad_id)
        pred.append(model(input_ids=ids, attention_mask=mask).logits.argmax(1).numpy())
    return 100.0 * float((np.concatenate(pred) == y).mean())


def build_model(args, vocab_size: int, classes: list[str]):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=vocab_size, hidden_size=args.hidden, num_hidden_layers=args.layers,
                     num_attention_heads=args.heads, intermediate_size=args.ffn, max_position_embeddings=args.max_length,
                     type_vocab_size=1, pad_token_id=0, hidden_dropout_prob=args.dropout,
                     attention_probs_dropout_prob=args.dropout, num_labels=len(classes),
                     id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)})
    return BertForSequenceClassification(cfg)


@dataclass(frozen=True)
class Recipe:
    """The training defaults for one built-in text data set (each a command-line option too)."""

    epochs: int
    vocab: int  # WordPiece vocabulary size
    hidden: int
    layers: int
    heads: int
    ffn: int  # feed-forward (intermediate) width
    dropout: float  # hidden and attention dropout
    max_length: int  # maximum positions (tokens incl. [CLS] / [SEP])
    batch: int
    lr: float  # peak AdamW learning rate
    weight_decay: float
    warmup: float  # fraction of steps with a linear warm-up
    bucket: bool = False  # batches of similar lengths (less padding), for data whose lengths vary widely
    pool: bool = False  # also train on the data set's labelled texts outside its splits (DATA_POOLS)


RECIPES = {
    "langid": Recipe(epochs=12, vocab=2000, hidden=128, layers=4, heads=4, ffn=256, dropout=0.25, max_length=32,
                     batch=128, lr=1e-3, weight_decay=0.05, warmup=0.05),
    "docs": Recipe(epochs=10, vocab=3000, hidden=128, layers=4, heads=4, ffn=256, dropout=0.25, max_length=128,
                   batch=64, lr=1e-3, weight_decay=0.05, warmup=0.05, bucket=True, pool=True),
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=sorted(RECIPES), default="langid", help="built-in text data set (builtin:NAME)")
    ap.add_argument("--seed", type=int, default=0)
    for f in fields(Recipe):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            ap.add_argument(flag, type={"int": int, "float": float}[f.type], default=None, help="default: the recipe's")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="default: edgedistill/zoo/DATA_bert")
    args = ap.parse_args()
    for f in fields(Recipe):
        if getattr(args, f.name) is None:
            setattr(args, f.name, getattr(RECIPES[args.data], f.name))
    args.out = args.out or ZOO / f"{args.data}_bert"
    return args


def batches(lengths: np.ndarray, size: int, gen: torch.Generator, bucket: bool) -> list[torch.Tensor]:
    """One epoch's batches of sample indices, in a seeded random order. bucket: the shuffled samples are sorted by
    length within windows of 50 batches and the batches shuffled again, so a batch pads to a length near its own."""
    order = torch.randperm(len(lengths), generator=gen)
    if not bucket:
        return list(order.split(size))
    windows = [w[torch.from_numpy(np.argsort(lengths[w.numpy()], kind="stable"))] for w in order.split(size * 50)]
    out = list(torch.cat(windows).split(size))
    return [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]


def run_epochs(model, batch_loss, lengths: np.ndarray, args, gen: torch.Generator, after_epoch) -> list[dict]:
    """args.epochs of AdamW (decoupled weight decay on matrices only) with a linear warm-up then linear decay,
    gradient norm clipped at 1; `batch_loss(indices)` gives a batch's loss. Per epoch: mean loss, after_epoch()'s
    entries, seconds."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "LayerNorm" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    total = -(-len(lengths) // args.batch) * args.epochs
    warm = max(1, int(total * args.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    history = []
    for epoch in range(args.epochs):
        model.train()
        t0, losses = time.time(), []
        for b in batches(lengths, args.batch, gen, args.bucket):
            loss = batch_loss(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), **after_epoch(), "seconds": time.time() - t0})
        shown = "".join(f", {k.split('_')[0]} {v:.2f} %" for k, v in history[-1].items() if k.endswith("accuracy"))
        print(f"epoch {epoch + 1}/{args.epochs}: loss {history[-1]['loss']:.4f}{shown}, {time.time() - t0:.0f} s",
              flush=True)
    return history


def main() -> None:
    args = parse_args()
    t_start = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    corpus = TEXT_DATASETS.get(args.data)()
    classes = corpus.class_names
    label = {c: i for i, c in enumerate(classes)}
    texts = list(corpus.train.texts)
    y_all = np.array([label[c] for c in corpus.train.labels])
    perm = np.random.default_rng(args.seed).permutation(len(texts))
    n_val = int(round(len(texts) * args.val_fraction))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    n_pool = 0
    if args.pool:  # the labelled texts in neither split, after the training split's (test and val stay unseen)
        used = set(corpus.train.texts) | set(corpus.test.texts)
        extra = [(t, c) for c, pool in sorted(DATA_POOLS[args.data]().items()) for t in pool if t not in used]
        n_pool = len(extra)
        train_idx = np.concatenate([train_idx, np.arange(len(texts), len(texts) + n_pool)])
        texts += [t for t, _ in extra]
        y_all = np.concatenate([y_all, np.array([label[c] for _, c in extra], dtype=y_all.dtype)])
    tok = train_tokenizer([texts[i] for i in train_idx], args.vocab)
    pad_id = tok.token_to_id("[PAD]")
    seqs = encode(tok, texts, args.max_length)
    train_seqs, y_train = [seqs[i] for i in train_idx], y_all[train_idx]
    val_seqs, y_val = [seqs[i] for i in val_idx], y_all[val_idx]
    # classes weighed by inverse frequency when the pool unbalances them: the teacher's prior stays uniform
    weight = (torch.tensor(len(y_train) / (len(classes) * np.bincount(y_train, minlength=len(classes))),
                           dtype=torch.float32) if args.pool else None)

    model = build_model(args, tok.get_vocab_size(), classes)
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(args.seed)
    train_lengths = np.array([len(q) for q in train_seqs])
    print(f"{n_params:,} parameters, vocabulary {tok.get_vocab_size()}, {len(train_seqs)} train ({n_pool} from the "
          f"pool) / {n_val} val texts", flush=True)

    def class_loss(b: torch.Tensor) -> torch.Tensor:
        ids, mask = batch_tensors([train_seqs[i] for i in b.tolist()], pad_id)
        return F.cross_entropy(model(input_ids=ids, attention_mask=mask).logits, torch.from_numpy(y_train[b.numpy()]),
                               weight=weight)

    history = run_epochs(model, class_loss, train_lengths, args, gen,
                         lambda: {"val_accuracy": accuracy(model, val_seqs, y_val, pad_id)})
    train_seconds = time.time() - t_start

    test_seqs = encode(tok, corpus.test.texts, args.max_length)
    at_max = sum(len(q) == args.max_length for q in seqs + test_seqs)  # cut to max_length, or exactly that long
    y_test = np.array([label[c] for c in corpus.test.labels])
    result = {"train_accuracy": accuracy(model, train_seqs, y_train, pad_id), "val_accuracy": history[-1]["val_accuracy"],
              "test_accuracy": accuracy(model, test_seqs, y_test, pad_id)}
    print(json.dumps(result), flush=True)
    save(model, tok, args, {
        "data": corpus.source, "data_sha256": corpus.digest(), "classes": classes, "train_texts": len(train_seqs),
        "pool_texts": n_pool, "val_texts": n_val, "test_texts": len(test_seqs), "texts_at_max_length": at_max,
        "data_versions": DATA_VERSIONS.get(args.data, dict)(), "params": n_params, "history": history, **result,
        "train_seconds": train_seconds, "seconds": time.time() - t_start,
    })


def save(model, tok, args, log: dict) -> None:
    """save_pretrained + tokenizer.json into OUT (atomically, through OUT.partial) and the log beside OUT."""
    import tokenizers
    import transformers

    out: Path = args.out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tok.no_padding()
    tok.no_truncation()
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save(str(tmp / "tokenizer.json"))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    root = ZOO.parents[1]
    config = {k: (str(v.resolve().relative_to(root)) if isinstance(v, Path) and v.resolve().is_relative_to(root)
                  else str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    log = {"config": config, "seed": args.seed, "epochs": args.epochs, **log,
           "folder_bytes": sum(p.stat().st_size for p in out.iterdir()),
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "tokenizers": tokenizers.__version__, "python": platform.python_version()},
           "machine": platform.processor() or platform.machine(), "threads": args.threads}
    out.with_suffix(".json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"wrote {out} ({log['folder_bytes']:,} bytes) and {out.with_suffix('.json')}", flush=True)


if __name__ == "__main__":
    main()
