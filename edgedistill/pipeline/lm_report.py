"""Stage 8 for a causal LM: metrics.json's content and report.md.

Every model is scored on the same test positions (edgedistill.lm_metrics): perplexity over the student's
vocabulary (a token outside it counts as the one unknown outcome, for the teacher too: pipeline/lm_teacher.py) with
its 95 % bootstrap interval over documents, next-token top-1 / top-3 accuracy; the student's gain over its
no-teacher twin is a paired bootstrap over the same documents. The gate's rows are edgedistill.gate_lm's.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgedistill.budget import Budget
from edgedistill.config import DistillConfig
from edgedistill.data.vocab_tokenizer import FIRST_KEPT_ID
from edgedistill.gate import Check, Verdict
from edgedistill.gate import markdown as gate_markdown
from edgedistill.gate_lm import lm_gate
from edgedistill.lm_metrics import MIN_DOCUMENTS, metrics_of, p_text, paired_perplexity_gain
from edgedistill.pipeline.lm_device import device_markdown
from edgedistill.pipeline.lm_inputs import LMInputs
from edgedistill.pipeline.lm_samples import samples_markdown
from edgedistill.pipeline.lm_teacher import LMTeacherOutputs
from edgedistill.pipeline.lm_train import LMTrained
from edgedistill.pipeline.report import TWIN_LOSS
from edgedistill.report.render import exact_steps_text
from edgedistill.sanity import student_not_smaller_warning
from edgedistill.students import count_params

MODELS = (("teacher", "teacher"), ("twin", "no-teacher twin (float)"), ("float", "student (float)"),
          ("int8", "student (int8, QAT)"), ("twin_int8", "no-teacher twin (int8, QAT)"))


def _run(r) -> dict | None:
    return None if r is None else {"steps": r.steps, "best_step": r.best_step, "seconds": r.seconds,
                                   "best_val_perplexity": r.best_val_perplexity,
                                   "resumed_from_step": r.resumed_from_step}


def lm_metrics_doc(config: DistillConfig, inputs: LMInputs, teacher: LMTeacherOutputs, trained: LMTrained,
                   scores: dict, int8: dict | None, timings: dict) -> dict:
    """metrics.json of a causal-LM run. `scores`: lm_metrics.TokenScores of the test windows by model key (MODELS;
    the teacher's is added here)."""
    s, tok = inputs.splits, inputs.tokenizer
    scores = {"teacher": teacher.test_scores, **scores}
    seed = config.data.seed
    test = {k: metrics_of(v, seed=seed).to_dict() for k, v in scores.items()}
    gain = {}
    for mine, twin in (("float", "twin"), ("int8", "twin_int8")):
        if mine in scores and twin in scores:
            gain[mine] = asdict(paired_perplexity_gain(scores[mine], scores[twin], seed=seed))
    targets = s.test.targets[s.test.targets >= 0]
    return {
        "task": "causal-lm",
        "data": {"source": inputs.documents.source, "context": s.context, "seed": s.seed, "splits": s.sizes(),
                 "documents_dropped": len(s.dropped), "own_test_split": inputs.documents.test is not None},
        "vocabulary": {"student": tok.vocab_size, "teacher": inputs.teacher.vocab_size,
                       "test_unknown_pct": 100.0 * float((targets == 1).mean()) if targets.size else 0.0},
        "teacher": {"name": inputs.teacher.name, "format": inputs.teacher.format,
                    "params": inputs.teacher.num_params(), "top_k": teacher.train.k,
                    "tail_temperatures": list(teacher.train.temperatures),
                    "bytes_per_position": teacher.bytes_per_position,
                    "cached_bytes": teacher.bytes_per_position * int(np.prod(s.train.ids.shape)),
                    "full_vocabulary_bytes": 4 * inputs.teacher.vocab_size * int(np.prod(s.train.ids.shape)),
                    "from_cache": teacher.cached, "seconds": teacher.seconds},
        "student": {"family": "decoder", "width": inputs.arch.width, "depth": inputs.arch.depth,
                    "knobs": dict(inputs.arch.knobs), "params": count_params(trained.student)},
        "training": {"steps": trained.settings.steps, "batch_size": trained.settings.batch_size,
                     "lr": trained.settings.lr, "temperature": trained.objective.temperature,
                     "alpha": trained.objective.alpha, "student": _run(trained.result),
                     "twin": _run(trained.twin_result)},
        "test": test,
        "gain_vs_twin": gain,
        "int8": int8,
        "device_steps": tok.device_steps(s.context, keep="last") + " The logits at the position of the last real "
                        "id score the next token (the model reads positions 0..t only: the padding after it changes "
                        "nothing).",
        "warnings": [*inputs.documents.warnings] + [w for w in [student_not_smaller_warning(
            count_params(trained.student), inputs.teacher.num_params()), few_documents_warning(s),
            unknown_tokens_warning(100.0 * float((targets == 1).mean()) if targets.size else 0.0)] if w],
        "timings": dict(timings),
    }


def few_documents_warning(splits) -> str | None:
    """A warning where the test split holds fewer than lm_metrics.MIN_DOCUMENTS documents: the intervals and the
    gain's test are bootstraps over documents, which so few cannot measure (none of it is called beyond noise)."""
    n = int(splits.test.documents.size)
    if n >= MIN_DOCUMENTS:
        return None
    return (f"The test split holds {n} document{'s' * (n != 1)}: the perplexity intervals and the gain over the twin "
            f"are bootstraps over documents, which need at least {MIN_DOCUMENTS} to measure the noise, so no "
            "difference here is called beyond noise. Give a test split of more documents (test.txt with more lines, "
            "or a larger corpus to split).")


UNKNOWN_WARN_PCT = 20.0  # a test split whose tokens are mostly outside the student's vocabulary scores little


def unknown_tokens_warning(unknown_pct: float) -> str | None:
    """A warning where UNKNOWN_WARN_PCT % or more of the test tokens are outside the student's vocabulary (the tokens
    of its training documents): each counts as one outcome, the unknown id, so the test figures mostly score how
    often a model predicts "unknown" (100 % top-1 when every token is unknown)."""
    if unknown_pct < UNKNOWN_WARN_PCT:
        return None
    return (f"{unknown_pct:.1f} % of the test tokens are not in the student's vocabulary (the tokens of its training "
            "documents) and count as one outcome, the unknown id: the test perplexity and top-1 / top-3 mostly "
            "measure how often a model predicts that, not the text. Train on documents like the test text (a "
            "larger corpus, or one of the same language and kind).")


def twin_loss_warnings(metrics: dict) -> list[str]:
    """One paragraph per form (float; int8, the deployed one of a --qat run) whose student has a higher test
    perplexity than its no-teacher twin in that form, as a classifier run warns (pipeline/report.py's
    _gain_warning, whose TWIN_LOSS phrase it shares): "LOST" only when the paired bootstrap puts the loss beyond the
    test split's noise, else the figures and "may be chance"."""
    out = []
    for mine, twin, form in (("float", "twin", ""), ("int8", "twin_int8", " (int8)")):
        g, test = (metrics.get("gain_vs_twin") or {}).get(mine), metrics.get("test") or {}
        if not g or g["gain"] >= 0 or mine not in test or twin not in test:
            continue
        gap = (f"{TWIN_LOSS}{form} by {-g['gain']:.3g} perplexity on the test split "
               f"({test[mine]['perplexity']['value']:.3f} vs {test[twin]['perplexity']['value']:.3f}; twin − student "
               f"95 % interval [{g['low']:+.3g}, {g['high']:+.3g}] over {g['documents']} documents)")
        out.append(f"The distilled student{form} trails {gap}. The test split cannot tell the two apart, so this may "
                   "be chance; if it repeats, try more steps, another temperature/alpha, or a stronger teacher."
                   if not g["beyond_noise"] else
                   f"Distillation{form} LOST to {gap}. The teacher is not helping this student at this budget: try "
                   "more steps, another temperature/alpha, or a stronger teacher.")
    return out


def _fmt_row(label: str, m: dict) -> str:
    p = m["perplexity"]
    return f"| {label} | {p['value']:.3f} | [{p['low']:.3f}, {p['high']:.3f}] | {m['top1']:.2f} | {m['top3']:.2f} |"


def report_markdown(metrics: dict) -> str:
    """report.md: the data, the teacher's cache cost, the models' scores, the gain over the twin, parity, gate."""
    d, v, t = metrics["data"], metrics["vocabulary"], metrics["teacher"]
    lines = ["# Causal LM distillation report", "",
             f"Data: {d['source']}, windows of {d['context']} tokens; " + ", ".join(
                 f"{k} {x['documents']} documents / {x['tokens']} tokens" for k, x in d["splits"].items()) + ".",
             f"Vocabulary: the student keeps {v['student'] - FIRST_KEPT_ID:,} of the teacher's {v['teacher']:,} "
             f"tokens (those of the training documents), {v['student']:,} ids with padding and unknown; "
             f"{v['test_unknown_pct']:.2f} % of test tokens are unknown to it, "
             "and perplexities count every model over the student's vocabulary.",
             f"Teacher: {t['name']} ({t['params']:,} parameters), top-{t['top_k']} logits cached per position: "
             f"{t['bytes_per_position']} B a position (with the tail mass at T ∈ "
             f"{{{', '.join(f'{x:g}' for x in t['tail_temperatures'])}}}), {t['cached_bytes']:,} B for the training "
             "windows "
             f"(the full vocabulary: {t['full_vocabulary_bytes']:,} B).",
             *_hidden_line(metrics.get("hidden_cosine")),
             f"Student: decoder width {metrics['student']['width']}, depth {metrics['student']['depth']}, "
             f"{metrics['student']['params']:,} parameters.", "",
             "| model | perplexity | 95 % interval (documents) | top-1 % | top-3 % |", "|---|---|---|---|---|"]
    lines += [_fmt_row(label, metrics["test"][k]) for k, label in MODELS if k in metrics["test"]]
    lines += int8_rows_note(metrics)
    for key, label in (("float", "float"), ("int8", "int8")):
        g = metrics["gain_vs_twin"].get(key)
        if g:
            lines.append(f"\nGain over the twin ({label}): perplexity {g['gain']:+.3f} (twin − student), 95 % "
                         f"[{g['low']:+.3f}, {g['high']:+.3f}], {p_text(g['p_value'])}"
                         f"{'' if g['beyond_noise'] else ' — within the test split’s noise'}.")
    if metrics.get("loss_choice"):
        from edgedistill.pipeline.lm_auto import choice_markdown

        lines += ["", *choice_markdown(metrics["loss_choice"])]
    if metrics.get("int8"):
        pw = metrics["int8"].get("parity_windows")
        where = ("every position of the test windows" if not pw or pw["windows"] == pw["of"] else
                 f"every position of {pw['windows']:,} of the {pw['of']:,} test windows, spread evenly over the "
                 "split: a number the vocabulary and the window fix, not the corpus")
        lines += ["", f"## Parity ({where})", "",
                  "| file | runtime | bytes | windows | top-1 agreement % | up to near-ties % (judged) | max Δ (steps) "
                  "| verdict |", "|---|---|---|---|---|---|---|---|"]
        for r in metrics["int8"]["parity"]:
            steps = "—" if r.get("max_steps") is None else f"{r['max_steps']:.2f}"
            verdict = ("pass" if r["passed"] else "FAIL") if r["checked"] else "informational"
            lines.append(f"| {r['artifact']} | {r['runtime']} | {r['bytes']:,} | {r['samples']} | "
                         f"{r['top1_agreement']:.3f} | {_tied(r)} | {steps} | {verdict} |")
        lines += causality_line(metrics["int8"].get("causality"))
    if (metrics.get("int8") or {}).get("kv_cache"):
        lines += ["", *kv_parity_markdown(metrics["int8"]["kv_cache"])]
    if metrics.get("speed"):
        lines += ["", *speed_markdown(metrics["speed"])]
    if metrics.get("samples"):
        lines += ["", *samples_markdown(metrics["samples"])]
    elif metrics.get("samples_note"):
        lines += ["", "## Sample continuations (greedy)", "", metrics["samples_note"]]
    if metrics.get("gate"):
        lines += ["", gate_markdown_of(metrics["gate"])]
    if metrics.get("warnings"):
        lines += ["", "## Warnings", "", *[f"- {w}" for w in metrics["warnings"]]]
    lines += ["", "## On the device", "", *[x + "\n" for x in device_markdown(metrics.get("device"))],
              metrics["device_steps"]]
    return "\n".join(lines) + "\n"


def _hidden_line(h: dict | None) -> list[str]:
    if not h:
        return []
    return [f"Hidden-state cosine, β = {h['weight']:g}: the teacher's last hidden states ({h['teacher_width']} wide) "
            f"cached as {h['dtype']}, {h['bytes_per_position']} B a position, {h['cached_bytes']:,} B; a "
            f"{h['projection_params']:,}-parameter projection trained with the float student, not exported; QAT "
            "without the term."]


def kv_parity_markdown(kv: dict) -> list[str]:
    """report.md's KV-cache section: the step's form and, per file and runtime, how the cached loop's logits compare
    with the full-window file's and the QAT model's at every test position."""
    lines = ["## KV-cache step (every position of the test windows, one token per call)", "", f"Form: {kv['form']}.",
             "", "| file | runtime | bytes | windows | top-1 agreement with the window file % | max Δ (steps) | "
             "top-1 agreement with QAT % | max Δ (steps) | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in kv["parity"]:
        w = ("—", "—") if "window_agreement" not in r else (f"{r['window_agreement']:.3f}",
                                                             f"{r['window_max_steps']:.2f}")
        verdict = ("pass" if r["passed"] else "FAIL") if r["checked"] else "informational"
        lines.append(f"| {r['artifact']} | {r['runtime']} | {r['bytes']:,} | {r['windows']} | {w[0]} | {w[1]} | "
                     f"{r['qat_agreement']:.3f} | {r['qat_max_steps']:.2f} | {verdict} |")
    return lines


SLOWER = 0.9  # int8 / float tokens/s below which report.md says int8 costs speed: one host's repeated timings of the
# same pair moved by up to ~7 % (0.826 / 0.885 on LiteRT, a breaking session's two runs), so nearer 1 says nothing


def speed_markdown(speed: dict) -> list[str]:
    """report.md's tokens/s section: host timings with the ratio per runtime, then the estimate per target."""
    lines = ["## Tokens per second", "", f"A token costs {speed['step']}; window {speed['context']} tokens, "
             f"{speed['threads']} thread{'s' * (speed['threads'] != 1)}, the median step after warm-up.", "",
             "| model | file | runtime | median ms / token | tokens/s | runs |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['file']} | {r['runtime']} | {r['median_ms']:.4g} | {r['tokens_per_s']:,.1f} | "
              f"{r['runs']} |" for r in speed["host"]]
    for runtime, r in speed["ratio"].items():
        lines.append(f"\nOn {runtime}: the int8 student decodes {r['ratio']:.3g}× the teacher's tokens/s "
                     f"({r['student_tokens_per_s']:,.1f} vs {r['teacher_tokens_per_s']:,.1f}).")
    for runtime, r in (speed.get("int8_over_float") or {}).items():
        lines.append(f"\nOn {runtime}: the int8 file decodes {r:.3g}× the float student's tokens/s (the same network: "
                     f"what int8 itself buys on this runtime{'; here it costs speed' if r < SLOWER else ''}).")
    for runtime, why in speed["not_timed"].items():
        lines.append(f"\nNo ratio on {runtime}: {why}; no ratio is formed across two runtimes.")
    kv = speed.get("kv_cache")
    if kv:
        lines += ["", f"KV-cache step: {kv['step']}.", "",
                  "| file | runtime | median ms / token | tokens/s | window step tokens/s | speed-up | runs |",
                  "|---|---|---|---|---|---|---|"]
        for r in kv["host"]:
            up = kv["speedup"].get(r["runtime"])
            lines.append(f"| {r['file']} | {r['runtime']} | {r['median_ms']:.4g} | {r['tokens_per_s']:,.1f} | "
                         f"{'—' if up is None else format(up['window_tokens_per_s'], ',.1f')} | "
                         f"{'—' if up is None else format(up['speedup'], '.2f') + '×'} | {r['runs']} |")
        if kv.get("targets") and speed["targets"]:
            lines += ["", "| target | KV-cache step: estimated tokens/s | window step: estimated tokens/s |",
                      "|---|---|---|"]
            lines += [f"| {name} | {t['tokens_per_s']:,.1f} | {speed['targets'][name]['tokens_per_s']:,.1f} |"
                      for name, t in kv["targets"].items() if name in speed["targets"]]
    if speed["targets"]:
        lines += ["", "| target | runtime | estimated ms / token | tokens/s (estimate) |", "|---|---|---|---|"]
        lines += [f"| {name} | {t['runtime']} | {t['estimate_ms']:.4g} | {t['tokens_per_s']:,.1f} |"
                  for name, t in speed["targets"].items()]
        lines.append("\nEstimates: the int8 TFLite file's per-op roofline on each target profile (profile/estimate.py).")
    return lines + _flash_line(speed.get("target") or {})


def _flash_line(target: dict) -> list[str]:
    """'Flash: N B model + M B tokenizer tables = F B', the sum every flash limit judges (edgedistill.budget.flash_use),
    as the classifier report says it; nothing where the run has no such figure (no int8 file, or an older run)."""
    from edgedistill.budget import flash_use

    model, tables = target.get("file_bytes"), target.get("tokenizer_bytes")
    if model is None or tables is None:
        return []
    which = target.get("file") or "the int8 TFLite file"
    return [f"\nFlash: {model:,} B model ({which}) + {tables:,} B tokenizer tables (what a device "
            f"tokenizer reads to reproduce the training ids) = {flash_use(model, tables):,} B, the figure every flash "
            "limit judges."]


def gate_markdown_of(verdict: dict) -> str:
    return gate_markdown(Verdict([Check(**c) for c in verdict["checks"]], list(verdict["warnings"])))


def attach_gate(metrics: dict, budget: Budget | None = None) -> dict:
    """metrics["gate"]: edgedistill.gate_lm's verdict; `budget` adds its speed and size rows."""
    metrics["gate"] = lm_gate(metrics, budget=budget).to_dict()
    return metrics


def int8_rows_note(metrics: dict) -> list[str]:
    """What the int8 rows measure: the QAT model computing the runtime's integers in torch, which the int8 files
    reproduce (the parity table); and why int8 may score better than float (its QAT steps train further)."""
    q = metrics.get("int8") or {}
    if "int8" not in metrics.get("test", {}) or not q:
        return []
    steps = q.get("qat_steps_run")
    names = {"tflm": "TFLite Micro's", "reference": "LiteRT's reference kernels'", "xnnpack": "LiteRT XNNPACK's"}
    what = (f"computing the integers of {names[q['rounding']]} arithmetic" if q.get("rounding") in names else
            "with fake quantization")
    trained = exact_steps_text(q.get("exact_share"), steps) if q.get("rounding") in names else ""
    return ["", f"The int8 rows score the QAT model {what} on every test position; the exported int8 files compute "
            "the same integers (the parity table below gives the steps between them). QAT trains on from the float "
            "student"
            + (f" ({steps:,} more steps{trained})" if isinstance(steps, int) else trained) + ", so the int8 model can "
            "score better than the float one; the gate's int8 rise compares the two as trained."]


def causality_line(rows: list[dict] | None) -> list[str]:
    """The causality probe's result under the parity table (export/causality.py); nothing for a run without one."""
    if not rows:
        return []
    bad = [f"{r['artifact']} on {r['runtime']} (moved {r['max_moved']:.3g})" for r in rows if not r["passed"]]
    t = ", ".join(str(v) for v in rows[0]["positions"])
    return ["", f"Causality: the tokens after t changed (t = {t}) in {rows[0]['windows']} test windows, on every file "
            f"and runtime above; " + (f"logits at positions 0..t moved in {'; '.join(bad)}." if bad else
                                      "no logit at positions 0..t moved (int8: the same integers).")]


def write_lm_report(metrics: dict, directory: Path) -> None:
    (Path(directory) / "report.md").write_text(report_markdown(metrics), encoding="utf-8")


def _tied(row: dict) -> str:
    """The judged agreement (export/parity.py: near-ties within the step bound count) for an int8 row, else '—'."""
    return "—" if row.get("top1_within_bound") is None else f"{row['top1_within_bound']:.3f}"
