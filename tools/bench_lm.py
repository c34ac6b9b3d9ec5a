"""The causal-LM benchmark of issue #29 (a skeleton: the table's columns and the runs, not yet the measured doc).

    python tools/bench_lm.py --corpus DIR [--sizes 64x2,96x3] [--teacher-width 256] [--steps 3000] [--out runs/bench-lm]
    python tools/bench_lm.py --from-docs runs/lm-corpus      # write a corpus of English prose from /usr/share/doc

The corpus is a folder holding train.txt and test.txt (one document a line). `--from-docs` builds one from the
packaged documentation of this machine (README / NEWS / *.txt files under /usr/share/doc, gzipped or not, one
paragraph a document, split train / test by a hash of the paragraph), and records the files it read. The teacher is
a GPT-2-style model about 10× the largest student, trained here on the training file (`transformers`, the tokenizer
a byte-level BPE trained on the same file) and saved with save_pretrained; each student size is one
`distill --task causal-lm --qat` of that teacher. The table: parameters, int8 file bytes, perplexity of teacher /
twin / float / int8, next-token top-3, agreement per runtime; docs/lm.json receives the rows.

Not yet (issue #29): the KD + cosine and sequence-level KD columns (the library has neither term for LMs), tokens/s
of the int8 file against the teacher's (same runtime), and docs/lm.md written from the measured rows.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from pathlib import Path

from edgedistill.api import distill
from edgedistill.config import load_config

DOC_NAMES = re.compile(r"^(README|NEWS|.*\.txt)(\.gz)?$", re.I)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def corpus_from_docs(out: Path, root: Path = Path("/usr/share/doc"), min_words: int = 12) -> Path:
    """Paragraphs of the packaged documentation under `root` -> out/train.txt, out/test.txt (1 in 10 paragraphs,
    by the hash of its text, goes to test) and out/sources.json (the files read)."""
    paragraphs, sources = set(), []
    for f in sorted(p for p in root.rglob("*") if p.is_file() and DOC_NAMES.match(p.name)):
        try:
            raw = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
            text = ANSI.sub("", raw.decode("utf-8"))  # some READMEs are rendered man pages (bold, underline)
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            continue
        sources.append(str(f))
        for par in re.split(r"\n\s*\n", text):
            words = par.split()
            if len(words) >= min_words and sum(w.isalpha() for w in words) > 0.7 * len(words):
                paragraphs.add(" ".join(words))
    out.mkdir(parents=True, exist_ok=True)
    split = {"train": [], "test": []}
    for par in sorted(paragraphs):
        split["test" if int(hashlib.sha256(par.encode()).hexdigest(), 16) % 10 == 0 else "train"].append(par)
    for name, pars in split.items():
        (out / f"{name}.txt").write_text("\n".join(pars) + "\n", encoding="utf-8")
    (out / "sources.json").write_text(json.dumps(sources, indent=1))
    return out


def train_teacher(corpus: Path, out: Path, width: int, depth: int, context: int, steps: int) -> Path:
    """A GPT-2-style teacher trained on corpus/train.txt (see tests/tiny_lm.py for the same recipe in small)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_lm import save_tiny_gpt2  # one recipe for the tests and the benchmark

    docs = (corpus / "train.txt").read_text(encoding="utf-8").splitlines()
    return save_tiny_gpt2(out, docs, steps=steps, width=width, layers=depth, positions=context, vocab=4096)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--from-docs", type=Path, help="write a corpus from /usr/share/doc into this folder and stop")
    ap.add_argument("--sizes", default="64x2,96x3", help="student width x depth, comma-separated")
    ap.add_argument("--teacher-width", type=int, default=256)
    ap.add_argument("--teacher-depth", type=int, default=4)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-lm"))
    args = ap.parse_args()
    if args.from_docs:
        print(corpus_from_docs(args.from_docs))
        return
    if args.corpus is None:
        ap.error("give --corpus DIR (train.txt, test.txt) or --from-docs DIR")
    teacher = train_teacher(args.corpus, args.out / "teacher", args.teacher_width, args.teacher_depth, args.context,
                            args.steps)
    rows = []
    for size in args.sizes.split(","):
        width, depth = (int(v) for v in size.split("x"))
        cfg = load_config(None, {"task": "causal-lm", "data": {"source": str(args.corpus), "max_length": args.context},
                                 "teachers": [{"path": str(teacher)}],
                                 "student": f"decoder:width={width},depth={depth}",
                                 "train": {"steps": args.steps}, "quant": {"qat": True},
                                 "out": str(args.out / f"decoder-{size}")})
        m = distill(cfg, overwrite=True, show_progress=False).metrics
        int8 = next(a for a in m["int8"]["artifacts"] if a["name"] == "tflite-int8")
        rows.append({"size": size, "params": m["student"]["params"], "int8_bytes": int8["bytes"],
                     **{f"ppl_{k}": m["test"][k]["perplexity"]["value"] for k in ("teacher", "twin", "float", "int8")},
                     "top3_int8": m["test"]["int8"]["top3"],
                     "agreement": {f"{r['artifact']}/{r['runtime']}": r["top1_agreement"]
                                   for r in m["int8"]["parity"]}})
    print(f"{'size':<8}{'params':>9}{'int8 B':>10}{'teacher':>9}{'twin':>8}{'float':>8}{'int8':>8}{'top-3':>8}")
    for r in rows:
        print(f"{r['size']:<8}{r['params']:>9,}{r['int8_bytes']:>10,}{r['ppl_teacher']:>9.2f}{r['ppl_twin']:>8.2f}"
              f"{r['ppl_float']:>8.2f}{r['ppl_int8']:>8.2f}{r['top3_int8']:>7.2f}%")
    Path("docs").mkdir(exist_ok=True)
    Path("docs/lm.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
