"""Sequence-level KD (--seq-kd) against token-level KD alone on a small English prose setup, one thread.

    python tools/bench_lm_seqkd.py [--out runs/bench-lm-seqkd] [--continuations 800] [--steps 600]

The prose is the packaged documentation of this machine (tools/bench_lm.py --from-docs: README / NEWS / *.txt under
/usr/share/doc, one paragraph a document). A GPT-2-style teacher (width 128, 2 layers, byte-level BPE of 2,048
tokens, 32 positions) is trained here for 800 steps on 8,000 shuffled training paragraphs; the student corpus is 800
other paragraphs (train.txt) and 300 of the test paragraphs (test.txt). Two `distill --task causal-lm` runs of a
decoder(width=64, depth=2), 32-token windows, the same steps: without and with --seq-kd. Prints the test perplexity
(95 % document bootstrap) of teacher, twin and student, and the student's gain over its twin. About 12 minutes on one
idle core.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-lm-seqkd"))
    ap.add_argument("--continuations", type=int, default=800)
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]
    from bench_lm import corpus_from_docs
    from tiny_lm import save_tiny_gpt2

    prose = corpus_from_docs(args.out / "prose")
    train = (prose / "train.txt").read_text(encoding="utf-8").splitlines()
    test = (prose / "test.txt").read_text(encoding="utf-8").splitlines()
    random.Random(0).shuffle(train)
    corpus = args.out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "train.txt").write_text("\n".join(train[8000:8800]) + "\n", encoding="utf-8")
    (corpus / "test.txt").write_text("\n".join(test[:300]) + "\n", encoding="utf-8")
    teacher = args.out / "teacher"
    if not (teacher / "config.json").is_file():
        teacher.mkdir(parents=True, exist_ok=True)
        save_tiny_gpt2(teacher, train[:8000], steps=800, width=128, layers=2, positions=32, vocab=2048)
    rows = {}
    for name, extra in (("token-level KD", []), ("+ sequence-level KD", ["--seq-kd", str(args.continuations)])):
        out = args.out / name.replace(" ", "_").replace("+", "plus")
        subprocess.run([sys.executable, "-m", "edgedistill", "distill", "--task", "causal-lm", "--teacher",
                        str(teacher), "--data", str(corpus), "--max-length", "32", "--student",
                        "decoder:width=64,depth=2", "--steps", str(args.steps), "--threads", "1", "--quiet",
                        "--overwrite", "--out", str(out), *extra], check=True, cwd=ROOT)
        rows[name] = json.loads((out / "metrics.json").read_text())
    fmt = lambda p: f"{p['value']:.1f} [{p['low']:.1f}, {p['high']:.1f}]"  # noqa: E731
    print("| run | teacher | twin | student | gain over the twin (95 %) |\n|---|---|---|---|---|")
    for name, m in rows.items():
        g = m["gain_vs_twin"]["float"]
        print(f"| {name} | {fmt(m['test']['teacher']['perplexity'])} | {fmt(m['test']['twin']['perplexity'])} | "
              f"{fmt(m['test']['float']['perplexity'])} | {g['gain']:+.1f} [{g['low']:+.1f}, {g['high']:+.1f}] |")


if __name__ == "__main__":
    main()
