"""The causal-LM benchmark of issue #29: sizes × (default, KD, KD + cosine, sequence-level KD) -> docs/lm.json, lm.md.

    python tools/bench_lm.py --from-docs runs/lm-corpus      # write a corpus of English prose from /usr/share/doc
    python tools/bench_lm.py --corpus runs/lm-corpus [--sizes 96x2] [--columns default,kd+cosine,seq-kd,kd]
                             [--teacher 256x5] [--teacher-steps 400] [--steps 700] [--student-docs 2000]
                             [--test-docs 400] [--out runs/bench-lm]

The corpus is a folder holding train.txt and test.txt (one document a line). `--from-docs` builds one from the
packaged documentation of this machine (README / NEWS / *.txt files under /usr/share/doc, gzipped or not, one
paragraph a document, split train / test by a hash of the paragraph), and records the files it read.

The teacher is a GPT-2-style model about 10× the largest student (tests/tiny_lm.py's recipe: a byte-level BPE of
`--vocab` tokens trained on the whole train.txt, then a GPT2LMHeadModel trained on all of it with Adam, a warm-up
and a cosine decay, one thread), saved with save_pretrained under OUT/teacher and reused while its recipe
(recipe.json) is unchanged. Each student is `edgedistill distill --task causal-lm --qat --threads 1` of that teacher
on a seeded subset of the corpus (`--student-docs` training and `--test-docs` test paragraphs: the teacher's
passes, top-k, hidden states and continuations, cost CPU time per window) with `--steps` float steps; the columns
(COLUMNS) differ only in the objective flags. A finished run (its metrics.json) is reused, so an interrupted
benchmark resumes. After every run docs/lm.json (the rows) and docs/lm.md (tools/_lm_doc.py: method, commands,
machine, table, the issue's targets met or not) are rewritten from the measured rows; at the end every int8 file
and the teacher are timed again at one runtime thread (tools/_lm_timing.py says why) and the docs rewritten.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC_NAMES = re.compile(r"^(README|NEWS|.*\.txt)(\.gz)?$", re.I)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# column -> the objective flags of its distill run (the rest of the command is shared)
COLUMNS = {"default": [], "kd": ["--temperature", "2"], "kd+cosine": ["--feature", "loss=cosine"],
           "seq-kd": ["--seq-kd", "{seq_kd}"]}


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


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def student_corpus(corpus: Path, out: Path, train_docs: int, test_docs: int, seed: int = 0) -> Path:
    """A seeded subset of the corpus for the students: `train_docs` training and `test_docs` test paragraphs."""
    train, test = _lines(corpus / "train.txt"), _lines(corpus / "test.txt")
    random.Random(seed).shuffle(train)
    random.Random(seed + 1).shuffle(test)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("\n".join(train[:train_docs]) + "\n", encoding="utf-8")
    (out / "test.txt").write_text("\n".join(test[:test_docs]) + "\n", encoding="utf-8")
    return out


def train_teacher(corpus: Path, out: Path, recipe: dict) -> dict:
    """The GPT-2-style teacher trained here on all of corpus/train.txt (tests/tiny_lm.py's recipe), or the one
    already in `out` when its recipe.json equals `recipe`. Returns the recipe with the training seconds."""
    done = out / "recipe.json"
    if done.is_file() and {k: v for k, v in json.loads(done.read_text()).items() if k != "seconds"} == recipe:
        return json.loads(done.read_text())
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_lm import save_tiny_gpt2  # one recipe for the tests and the benchmark

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    log = lambda step, loss: print(f"teacher step {step}: loss {loss:.3f}", flush=True)  # noqa: E731
    save_tiny_gpt2(out, _lines(corpus / "train.txt"), steps=recipe["steps"], width=recipe["width"],
                   layers=recipe["depth"], heads=recipe["heads"], positions=recipe["context"], vocab=recipe["vocab"],
                   lr=recipe["lr"], warmup=recipe["warmup"], cosine=True, log=log)
    record = {**recipe, "seconds": time.process_time() - t0}
    done.write_text(json.dumps(record, indent=1))
    return record


def distill_command(teacher: Path, data: Path, size: str, column: str, args, out: Path) -> list[str]:
    width, depth = size.split("x")
    flags = [f.format(seq_kd=args.seq_kd) for f in COLUMNS[column]]
    return ["edgedistill", "distill", "--task", "causal-lm", "--qat", "--teacher", str(teacher), "--data", str(data),
            "--max-length", str(args.context), "--student", f"decoder:width={width},depth={depth}",
            "--steps", str(args.steps), "--threads", "1", "--quiet", "--overwrite",
            "--cache-dir", str(args.out / "cache"), "--out", str(out), *flags]


def run_student(command: list[str], out: Path) -> dict:
    """One distill run (its CPU seconds recorded beside metrics.json), or the finished one already in `out`."""
    if not (out / "metrics.json").is_file():
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", *command], cwd=ROOT)
        if proc.returncode:
            raise SystemExit(f"{' '.join(command)} exited {proc.returncode}")
        (out / "bench.json").write_text(json.dumps({"wall_s": time.time() - t0, "command": command}))
    return json.loads((out / "metrics.json").read_text())


def reexport(out: Path) -> dict | None:
    """`edgedistill export RUN --int8` into RUN/export (kept: done once; an earlier ONNX-only re-export is redone),
    for a run whose int8 files an older exporter wrote: the same QAT weights in this version's layout (the int8 ONNX
    file's fused layout, the TFLite file's causal mask as ADD), parity checked on the run's windows. Returns
    export.json's record."""
    rec = out / "export" / "export.json"
    done = rec.is_file() and {a["name"] for a in json.loads(rec.read_text())["artifacts"]} >= {"onnx-int8",
                                                                                               "tflite-int8"}
    if not done:
        cmd = [sys.executable, "-m", "edgedistill", "export", str(out), "--int8", "--out", str(out / "export"),
               "--overwrite"]
        if subprocess.run(cmd, cwd=ROOT).returncode:
            raise SystemExit(f"{' '.join(cmd)} failed")
    return json.loads(rec.read_text())


def with_export(m: dict, export: dict | None) -> dict:
    """metrics.json with its files' artifacts and parity rows taken from a re-export's record (reexport): every
    file the re-export wrote replaces the run's own."""
    if export is None:
        return m
    again = {a["name"] for a in export["artifacts"]}
    int8 = dict(m["int8"], artifacts=[a for a in m["int8"]["artifacts"] if a["name"] not in again]
                + export["artifacts"],
                parity=[r for r in m["int8"]["parity"] if r["artifact"] not in again] + export["parity"])
    return dict(m, int8=int8)


def row_of(size: str, column: str, m: dict, command: list[str], export: dict | None = None) -> dict:
    """The table's row from one run's metrics.json (its ONNX files from `export`'s record where given)."""
    from edgedistill.agreement import judged_agreement

    m = with_export(m, export)
    art = {a["name"]: a for a in m["int8"]["artifacts"]}
    test = m["test"]
    choice = m.get("loss_choice")
    return {"size": size, "column": column, "params": m["student"]["params"],
            "teacher_params": m["teacher"]["params"],
            "int8_bytes": {n: a["bytes"] for n, a in art.items() if "int8" in n},
            "perplexity": {k: test[k]["perplexity"] for k in ("teacher", "twin", "float", "int8") if k in test},
            "top1": {k: test[k]["top1"] for k in ("teacher", "twin", "float", "int8") if k in test},
            "top3": {k: test[k]["top3"] for k in ("teacher", "twin", "float", "int8") if k in test},
            "gain_vs_twin": m["gain_vs_twin"],
            # judged agreement (near-ties within the step bound count; export/parity.py), and the exact figure
            "agreement": {f"{r['artifact']} / {r['runtime']}": judged_agreement(r) for r in m["int8"]["parity"]},
            "exact_agreement": {f"{r['artifact']} / {r['runtime']}": r["top1_agreement"] for r in m["int8"]["parity"]},
            "max_steps": {f"{r['artifact']} / {r['runtime']}": r.get("max_steps") for r in m["int8"]["parity"]},
            "step_bound": {f"{r['artifact']} / {r['runtime']}": r.get("step_bound") for r in m["int8"]["parity"]},
            "informational": [f"{r['artifact']} / {r['runtime']}" for r in m["int8"]["parity"] if not r["checked"]],
            "trials": (choice or {}).get("trials", []),
            "tokens_per_s": m.get("speed", {}).get("ratio", {}), "threads": m.get("speed", {}).get("threads"),
            "not_timed": m.get("speed", {}).get("not_timed", {}),
            "objective": {"temperature": m["training"]["temperature"], "alpha": m["training"]["alpha"],
                          "chosen": choice["chosen"] if choice else column, "why": choice["why"] if choice else None},
            "data": m["data"], "vocabulary": m["vocabulary"], "teacher_cache": {
                k: m["teacher"][k] for k in ("top_k", "bytes_per_position", "cached_bytes", "full_vocabulary_bytes")},
            "sequence_kd": m.get("sequence_kd"), "timings": m["timings"], "warnings": m["warnings"],
            "command": " ".join(command), "reexported": export is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--from-docs", type=Path, help="write a corpus from /usr/share/doc into this folder and stop")
    ap.add_argument("--sizes", default="96x2", help="student width x depth, comma-separated")
    ap.add_argument("--columns", default="default,kd+cosine,seq-kd,kd", help=f"of {', '.join(COLUMNS)}")
    ap.add_argument("--teacher", default="256x5", help="teacher width x depth (heads: width / 64)")
    ap.add_argument("--teacher-steps", type=int, default=400)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--steps", type=int, default=700, help="the students' float steps")
    ap.add_argument("--seq-kd", type=int, default=500, help="prompts of the seq-kd column")
    ap.add_argument("--student-docs", type=int, default=2000)
    ap.add_argument("--test-docs", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-lm"))
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    ap.add_argument("--doc-name", default="lm", help="DOCS/NAME.md and NAME.json (another setting: e.g. lm_8k)")
    ap.add_argument("--reexport", action="store_true",
                    help="write each finished run's ONNX and TFLite files again with this version's exporter "
                         "(edgedistill export -> RUN/export/) and judge and time those: for runs an older exporter "
                         "wrote")
    args = ap.parse_args()
    args.out = args.out.resolve()
    if args.from_docs:
        print(corpus_from_docs(args.from_docs))
        return
    if args.corpus is None:
        ap.error("give --corpus DIR (train.txt, test.txt) or --from-docs DIR")
    unknown = set(args.columns.split(",")) - set(COLUMNS)
    if unknown:
        ap.error(f"unknown columns {sorted(unknown)}; there are {', '.join(COLUMNS)}")
    from _lm_doc import write_docs
    from _lm_timing import one_thread_speed, step_anatomy

    width, depth = (int(v) for v in args.teacher.split("x"))
    recipe = {"width": width, "depth": depth, "heads": max(1, width // 64), "context": args.context,
              "vocab": args.vocab, "steps": args.teacher_steps, "lr": 2e-3, "warmup": 30, "batch": 32}
    teacher = train_teacher(args.corpus, args.out / "teacher", recipe)
    data = student_corpus(args.corpus, args.out / "student-corpus", args.student_docs, args.test_docs)
    rows = []
    for size in args.sizes.split(","):
        for column in args.columns.split(","):
            out = args.out / f"decoder-{size}-{column}"
            command = distill_command(args.out / "teacher", data, size, column, args, out)
            print(f"[bench_lm] {size} {column}: {' '.join(command)}", flush=True)
            metrics = run_student(command, out)
            rows.append(row_of(size, column, metrics, command, reexport(out) if args.reexport else None))
            write_docs(rows, teacher, args, args.docs)
    print("[bench_lm] timing every int8 file and the teacher at one runtime thread", flush=True)
    timed = one_thread_speed([args.out / f"decoder-{r['size']}-{r['column']}" for r in rows], args.out / "teacher",
                             args.context)
    for r in rows:
        r["tokens_per_s_1thread"] = timed[f"decoder-{r['size']}-{r['column']}"]
        r["step_anatomy"] = step_anatomy(args.out / f"decoder-{r['size']}-{r['column']}", args.context)
    write_docs(rows, teacher, args, args.docs)
    print((args.docs / f"{args.doc_name}.md").read_text())


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread, the tokenizers' pool included
    main()
