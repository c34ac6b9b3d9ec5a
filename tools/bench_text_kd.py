"""Which text distillation terms pay where labels are scarce: KD only against KD + a text view or a feature term.

    python tools/bench_text_kd.py [--per-class 500] [--labelled 5] [--test-per-class 1000] [--seeds 0]
                                  [--epochs 30] [--arms kd,dropout,cosine,tf-kd,tf-minilm]
                                  [--out runs/bench-text-kd] [--doc docs/text_kd]

Data: a cut of `builtin:langid` (single words, 7 languages): --per-class training words per language (a seeded
subset), of which --labelled % keep their label (a seeded subset, at least one per class); the others stay in the
transfer set unlabelled (soft targets only; the twin never sees them). Test: --test-per-class words per language of
langid's own test split (seeded subset). Teacher: the built-in langid BERT (4 layers, 128 hidden, 4 heads).

Arms, each one `edgedistill distill` (float, no QAT: the terms shape the float student; QAT keeps the response
loss) with T = 4 and alpha = 0.9 fixed (no auto-tuning trials, so the arms differ in one thing only) and the same
seed, epochs and data order:
  kd         textcnn(32, 2) on UTF-8 bytes, KD only (today's default objective); also trains the no-teacher twin
  dropout    + --augment token_dropout=0.1 (function matching: the teacher labels every masked view)
  span       + --augment span_mask=0.15
  cosine     + --feature loss=cosine (DistilBERT cosine of pooled representations, weight 1)
  tf-kd      transformer(64, 1) on the teacher's vocabulary cut to the data, KD only
  tf-minilm  tf-kd + --feature loss=minilm (MiniLM attention transfer, last layers; 2 student heads vs 4: the
             heads' mean distributions are compared)
Each arm is compared with its KD-only arm of the same student (kd, or tf-kd for tf-minilm) on the same test words:
accuracy with its Wilson 95 % interval, the difference, and McNemar's exact paired p (edgedistill.stats). Finished
runs under --out are reused. Writes DOC.json after every run and prints the Markdown table at the end. Runs with
one thread.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

ARMS = {
    "kd": {"student": "textcnn:width=32,depth=2", "tokenizer": "bytes", "baseline": True},
    "dropout": {"student": "textcnn:width=32,depth=2", "tokenizer": "bytes", "augment": "token_dropout=0.1"},
    "span": {"student": "textcnn:width=32,depth=2", "tokenizer": "bytes", "augment": "span_mask=0.15"},
    "cosine": {"student": "textcnn:width=32,depth=2", "tokenizer": "bytes", "features": ["loss=cosine"]},
    "tf-kd": {"student": "transformer:width=64,depth=1", "tokenizer": "vocab"},
    "tf-minilm": {"student": "transformer:width=64,depth=1", "tokenizer": "vocab", "features": ["loss=minilm"]},
}
REFERENCE = {"dropout": "kd", "span": "kd", "cosine": "kd", "tf-minilm": "tf-kd"}


def write_corpus(root: Path, per_class: int, labelled: float, test_per_class: int, seed: int) -> dict:
    """root/train.jsonl (a labelled fraction; the rest with label null) and root/test.jsonl from langid."""
    from edgedistill.data import read_dataset

    corpus = read_dataset("builtin:langid")
    rng = np.random.default_rng(1000 + seed)
    names = sorted({str(v) for v in corpus.train.labels})

    def cut(split, n):
        y = np.asarray([names.index(str(v)) for v in split.labels])
        return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == k))[:n] for k in range(len(names))])), y

    (train, y_train), (test, y_test) = cut(corpus.train, per_class), cut(corpus.test, test_per_class)
    keep = set()
    for k in range(len(names)):
        of_k = train[y_train[train] == k]
        keep.update(rng.permutation(of_k)[: max(1, round(len(of_k) * labelled / 100))].tolist())
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"text": corpus.train.texts[i], "label": names[y_train[i]] if i in keep else None} for i in train]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "test.jsonl").write_text("".join(json.dumps({"text": corpus.test.texts[i], "label": names[y_test[i]]})
                                             + "\n" for i in test))
    return {"train": len(train), "labelled": len(keep), "test": len(test), "classes": names}


def run_arm(arm: str, data: Path, out: Path, args, seed: int) -> Path:
    from edgedistill.config import load_config
    from edgedistill.pipeline import distill

    if (out / "metrics.json").is_file():
        return out
    spec = ARMS[arm]
    cfg = {"data": {"source": str(data)}, "teachers": [{"path": "builtin:langid"}],
           "student": spec["student"], "augment": spec.get("augment", "none"),
           "kd": {"temperature": 4.0, "alpha": 0.9,
                  "features": [dict(p.split("=") for p in f.split(",")) for f in spec.get("features", [])]},
           "train": {"epochs": args.epochs, "seed": seed, "threads": 1}, "baseline": spec.get("baseline", False),
           "out": str(out), "cache_dir": str(args.out / "cache")}
    config = load_config(None, cfg)
    config = config.model_copy(update={"student": config.student.model_copy(update={"tokenizer": spec["tokenizer"]})})
    distill(config, show_progress=False)
    return out


def test_correct(out: Path, texts: list[str], labels: list[str]) -> np.ndarray:
    """Per test word: whether the run's float student (student.safetensors) predicts its label (a class name)."""
    from edgedistill.data.tokenizers import load_tokenizer
    from edgedistill.distill.trainer import predict_logits
    from edgedistill.students.checkpoint import load_student

    model, ck = load_student(out)
    ids = load_tokenizer(out / "tokenizer.json").encode(texts, ck.input_shape[0]).ids
    pred = predict_logits(model.eval(), torch.from_numpy(ids)).argmax(1).numpy()
    names = [str(c) for c in ck.class_names]
    return pred == np.asarray([names.index(label) for label in labels])


def summarize(results: dict, correct: dict) -> dict:
    from edgedistill.stats import mcnemar, paired_counts, wilson

    rows = {}
    for key, c in correct.items():
        arm, seed = key
        ci = wilson(int(c.sum()), len(c))
        row = {"arm": arm, "seed": seed, "acc": 100.0 * c.mean(), "ci95": [ci.low, ci.high],
               "seconds": results[key]["seconds"]}
        ref = REFERENCE.get(arm)
        if ref and (ref, seed) in correct:
            b, cc = paired_counts(c, correct[(ref, seed)])
            mc = mcnemar(b, cc)
            row.update(vs=ref, diff=row["acc"] - 100.0 * correct[(ref, seed)].mean(), only_arm=b, only_ref=cc,
                       p=mc.p_value)
        rows[f"{arm}/seed{seed}"] = row
    return rows


def write_doc(doc: Path, rows: dict, meta: dict) -> str:
    """Write DOC.json (every figure); return the Markdown table (docs/text_kd.md carries it with the prose)."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = ["| arm | seed | test acc % (95 % CI) | vs | diff (points) | only arm / only ref | McNemar p | s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        lines.append(f"| {r['arm']} | {r['seed']} | {r['acc']:.2f} ({r['ci95'][0]:.2f}–{r['ci95'][1]:.2f}) | "
                     f"{r.get('vs', '—')} | {r['diff']:+.2f} | {r['only_arm']} / {r['only_ref']} | {r['p']:.3g} | "
                     f"{r['seconds']:.0f} |" if "vs" in r else
                     f"| {r['arm']} | {r['seed']} | {r['acc']:.2f} ({r['ci95'][0]:.2f}–{r['ci95'][1]:.2f}) | — | — | "
                     f"— | — | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--labelled", type=float, default=5.0, help="percent of the training words that keep a label")
    ap.add_argument("--test-per-class", type=int, default=1000)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--arms", default="kd,dropout,cosine,tf-kd,tf-minilm")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-text-kd"))
    ap.add_argument("--doc", type=Path, default=Path("docs/text_kd"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    results, correct, meta = {}, {}, {"args": {k: str(v) for k, v in vars(args).items()}, "data": {}}
    for seed in [int(s) for s in args.seeds.split(",")]:
        data = args.out / f"data-seed{seed}"
        meta["data"][seed] = write_corpus(data, args.per_class, args.labelled, args.test_per_class, seed)
        test = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
        for arm in args.arms.split(","):
            out = run_arm(arm, data, args.out / f"{arm}-seed{seed}", args, seed)
            m = json.loads((out / "metrics.json").read_text())
            correct[(arm, seed)] = test_correct(out, [r["text"] for r in test], [r["label"] for r in test])
            results[(arm, seed)] = {"seconds": m["timings"]["total_s"]}  # the run's own, also when reused
            meta.setdefault("teacher_test_acc", m["teacher"]["test_acc"])
            if m.get("baseline") and m["baseline"].get("test_acc") is not None:
                meta.setdefault("twin", {})[f"{arm}/seed{seed}"] = m["baseline"]["test_acc"]
            rows = summarize(results, correct)
            table = write_doc(args.doc, rows, meta)
            print(json.dumps(rows[f"{arm}/seed{seed}"]), flush=True)
    print(table)


if __name__ == "__main__":
    main()
