"""Greedy continuations for a causal-LM run's report: what the deployed int8 file writes after a few test prompts,
beside what the document really says next and what the teacher writes (greedy decoding, beam size 1).

The prompts are the first `PROMPT_TOKENS` tokens of test windows from distinct test documents, in the split's order
(no unknown token among them, and at least `NEW_TOKENS` real tokens after them in the window, so the document's own
continuation can be shown). The int8 file runs on LiteRT exactly as the README's greedy loop runs it: the whole
window once per generated token, the prompt and the tokens so far at the start, padding (id 0) after them, the
next token the argmax at the last real position. The teacher continues the same text (re-tokenized by its own
tokenizer) through its key/value cache (CausalLMTeacher.greedy). Samples read as a quick look at the model's text,
not as a score: perplexity and next-token accuracy (lm_metrics.py) are the figures that judge it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.data.lm_windows import TokenWindows
from edgedistill.data.vocab_tokenizer import UNKNOWN_ID, VocabTokenizer

SAMPLES, PROMPT_TOKENS, NEW_TOKENS = 3, 12, 16


def sample_prompts(test: TokenWindows, count: int = SAMPLES, prompt: int = PROMPT_TOKENS,
                   new: int = NEW_TOKENS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to `count` (prompt ids, the document's next ids) pairs of student ids (module doc), from test windows of
    distinct documents; fewer (none) where the test windows are too short. Raises ValueError for a prompt or
    continuation shorter than one token, or longer together than the window."""
    if prompt < 1 or new < 1 or prompt + new > test.ids.shape[1]:
        raise ValueError(f"prompt {prompt} + new {new} tokens must fit the window of {test.ids.shape[1]}")
    out, seen = [], set()
    for row, doc in zip(test.ids, test.doc):
        if int(doc) in seen:
            continue
        head, rest = row[:prompt], row[prompt:prompt + new]
        if (head == UNKNOWN_ID).any() or (head == 0).any() or (rest == 0).any():
            continue
        seen.add(int(doc))
        out.append((head.astype(np.int32), rest.astype(np.int32)))
        if len(out) == count:
            break
    return out


def greedy_window(runner, prompt: np.ndarray, new: int, context: int) -> np.ndarray:
    """The `new` student ids an int8 window-step file writes after `prompt` (runner: edgedistill.runtimes, its
    `predict` giving (1, L, V) logits for (1, L) int32 ids), the README's loop: the last L ids, padding after."""
    ids = [int(i) for i in prompt]
    for _ in range(new):
        last = ids[-context:]
        x = np.zeros((1, context), np.int32)
        x[0, :len(last)] = last
        ids.append(int(np.asarray(runner.predict(x))[0, len(last) - 1].argmax()))
    return np.asarray(ids[len(prompt):], np.int32)


def lm_samples(tflite_int8: Path, tokenizer: VocabTokenizer, teacher, test: TokenWindows,
               context: int) -> list[dict]:
    """metrics.json's `samples`: per prompt its text, the document's continuation, the int8 file's (LiteRT) and
    the teacher's (None where `teacher` is None), each decoded to text; and the student ids of the prompt and of the
    int8 file's continuation (`prompt_ids`, `int8_ids`), so the continuation can be checked on another runtime."""
    from tokenizers import Tokenizer

    from edgedistill.runtimes import LiteRTRunner

    pairs = sample_prompts(test, new=min(NEW_TOKENS, context - PROMPT_TOKENS)) if context > PROMPT_TOKENS else []
    if not pairs:
        return []
    runner = LiteRTRunner(Path(tflite_int8), threads=1)
    decoder = Tokenizer.from_file(str(teacher.tokenizer)) if teacher is not None else None
    rows = []
    for prompt, real in pairs:
        text, written = tokenizer.decode(prompt)[0], greedy_window(runner, prompt, len(real), context)
        row = {"prompt": text, "document": tokenizer.decode(real)[0], "int8": tokenizer.decode(written)[0],
               "teacher": None, "prompt_ids": prompt.tolist(), "int8_ids": written.tolist()}
        if decoder is not None:
            t_ids = tokenizer.teacher_token_ids([text])[0][None]
            row["teacher"] = decoder.decode(teacher.greedy(t_ids, t_ids.shape[1] + len(real))[0, t_ids.shape[1]:]
                                            .tolist(), skip_special_tokens=True)
        rows.append(row)
    return rows


def samples_note(metrics: dict) -> str | None:
    """Why report.md shows no sample continuations (None where it shows some): the int8 files failed parity, no int8
    TFLite file (a float-only run, --formats onnx), or no test window with the prompt's tokens and a continuation."""
    if metrics.get("samples"):
        return None
    names = {a.get("name") for a in (metrics.get("int8") or {}).get("artifacts", []) if isinstance(a, dict)}
    if (metrics.get("int8") or {}).get("parity_passed") is False:
        return "No sample continuations: the int8 files failed parity (the parity table), so none was run."
    if "tflite-int8" not in names:
        return "No sample continuations: they come from the int8 TFLite file, which this run did not write."
    return (f"No sample continuations: no test window holds {PROMPT_TOKENS} prompt tokens (none unknown) followed by "
            "a continuation; the window or the test documents are too short.")

def samples_markdown(samples: list[dict]) -> list[str]:
    """report.md's section: each prompt, then the document's, the int8 file's and the teacher's continuations, each
    one JSON string on its own line inside a fenced block, so Markdown and HTML in the text stay literal (every
    line starts with its label, never with the fence)."""
    import json

    lines = ["## Sample continuations (greedy)", "",
             f"The first {PROMPT_TOKENS} tokens of test documents, continued by the int8 TFLite file on LiteRT (the "
             "README's greedy loop) and by the teacher; a quick look at the text, not a score.", "", "```text"]
    for k, s in enumerate(samples, 1):
        rows = [("prompt", s["prompt"]), ("the document", s["document"]), ("int8 file", s["int8"])]
        rows += [("teacher", s["teacher"])] if s.get("teacher") is not None else []
        lines += [f"{k if i == 0 else '':>2} {label + ':':<14}{json.dumps(text, ensure_ascii=False)}"
                  for i, (label, text) in enumerate(rows)] + [""]
    return lines[:-1] + ["```"]
