"""What the commands print: the distill summary (teacher, twin, student, int8) and the parity table."""

from __future__ import annotations

import sys


def print_lm_summary(m: dict, out, command: str = "distill") -> None:
    """A causal-LM run: perplexity (95 % interval over documents) and top-1 / top-3 of every model, the gain over
    the twin, parity, the gate's rows; the title names the `command` that ran (distill or build)."""
    from rich.console import Console
    from rich.table import Table

    from edgedistill.agreement import agreement_words
    from edgedistill.pipeline.lm_report import MODELS

    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"edgedistill {command} --task causal-lm → {out}")
    for col in ("model", "perplexity [95% CI]", "top-1 %", "top-3 %"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for key, label in MODELS:
        if key in m["test"]:
            r = m["test"][key]
            p = r["perplexity"]
            table.add_row(label, f"{p['value']:.3f} [{p['low']:.3f}, {p['high']:.3f}]", f"{r['top1']:.2f}",
                          f"{r['top3']:.2f}")
    console.print(table)
    for key, g in (m["gain_vs_twin"] or {}).items():  # float; int8 (what the gate judges in a --qat run)
        console.print(f"perplexity gain over the twin ({key}): {g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"
                      + ("" if g["beyond_noise"] else " (within the test split's noise)"), highlight=False)
    for r in (m.get("int8") or {}).get("parity", []):
        verdict = ("ok" if r["passed"] else "FAIL") if r["checked"] else "info"
        steps = "" if r.get("max_steps") is None else f", max {r['max_steps']:.2f} output steps"
        console.print(f"parity {verdict}: {r['artifact']} on {r['runtime']}: next-token agreement "
                      f"{agreement_words(r)} over {r['positions']:,} positions{steps}", markup=False, highlight=False)
    for c in m["gate"]["checks"]:
        mark = "not judged" if not c.get("judged", True) else "PASS" if c["passed"] else "FAIL"
        v = c["value"]
        unit = " tokens/s" if c["unit"] == "/s" else c["unit"]
        value = ("n/a" if v is None else ("yes" if v else "no") if isinstance(v, bool) else
                 f"{int(v):,} B" if c["unit"] == "B" else f"{v:.4g}{unit}")
        console.print(f"gate {mark}: {c['name']} = {value}{_where(c.get('how') or '')}", markup=False,
                      highlight=False)
    failed = [c["name"] for c in m["gate"]["checks"] if c.get("judged", True) and not c["passed"]]
    console.print(f"### edgedistill gate: {'PASS' if m['gate']['passed'] else 'FAIL'}"  # the classifier build's line
                  + (f" ({', '.join(failed)})" if failed else ""), markup=False, highlight=False)
    print_warnings(m.get("warnings", []), console)
    console.print(f"wrote {out}/report.md, metrics.json", highlight=False)


def print_distill_summary(m: dict, out, command: str = "distill") -> None:
    """The run's summary under a title naming the `command` that ran (a causal-LM `build` prints this one too)."""
    if m.get("task") == "causal-lm":
        print_lm_summary(m, out, command)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"edgedistill {command} → {out}")
    from edgedistill.report.noise import fmt_acc, gain_text

    n = m["student"].get("test_acc_n")
    for col in ("model", "params", "test acc [95% CI]" + (f", n={n:,}" if n else "")):
        table.add_column(col, justify="right" if col != "model" else "left")
    table.add_row("teacher" + (f" ({m['teacher']['ensemble']} ensemble)" if m["teacher"]["ensemble"] else ""),
                  f"{m['teacher']['params']:,}" if m["teacher"]["params"] else "?", fmt_acc(m["teacher"]))
    if m["baseline"]:
        table.add_row("no-teacher twin", f"{m['baseline']['params']:,}", fmt_acc(m["baseline"]))
    obj = m["student"]["objective"]
    scheme = (m.get("scheme") or {}).get("scheme", "offline")
    for g in (m.get("scheme") or {}).get("generations", [])[:-1]:  # born-again: the earlier generations
        table.add_row(f"  born-again generation {g['index']}", f"{m['student']['params']:,}", f"{g['test_acc']:.2f}%")
    if online := (m.get("scheme") or {}).get("online_teacher"):
        table.add_row("  teacher after training online", "", f"{online['after']['test_acc']:.2f}%")
    table.add_row(f"distilled student ({obj['loss']}, T={obj['temperature']:g}, α={obj['alpha']:g}"
                  + ("" if scheme == "offline" else f", {scheme}") + (", data-free" if m.get("data_free") else "") + ")",
                  f"{m['student']['params']:,}", fmt_acc(m["student"]))
    console.print(table)
    if m.get("int8"):
        print_int8(console, m["int8"])
    if m["gain_vs_baseline"] is not None:
        tr = m.get("training") or {}
        sched = tr.get("schedule") or {}
        steps = f" = {sched['steps']:,} steps at batch {sched['batch_size']}" if sched.get("steps") else ""
        console.print(f"gain over the no-teacher twin: {m['gain_vs_baseline']:+.2f} points (both {tr.get('epochs')} "
                      f"epochs{steps}, augmentation: {tr.get('augment_text', 'none')})"
                      + (f"; {gain_text(m.get('gain_vs_baseline_test'))}" if m.get("gain_vs_baseline_test") else ""))
    print_warnings(m["warnings"], console)


def print_warnings(warnings: list[str], console=None) -> None:
    """Each warning in bold red (distill's summary and build's headline print the same ones)."""
    from rich.markup import escape

    if console is None:
        from rich.console import Console

        console = Console(width=None if sys.stdout.isatty() else 140)
    for w in warnings:
        console.print(f"[bold red]WARNING[/]: {escape(w)}")


def print_int8(console, q: dict) -> None:
    from edgedistill.report.noise import fmt_acc

    line = (f"int8: float {fmt_acc(q, 'float_test_acc')}  PTQ {fmt_acc(q, 'ptq_test_acc')}  "
            f"QAT {fmt_acc(q, 'qat_test_acc')}"
            + (f" (vs PTQ: McNemar p = {q['qat_vs_ptq_test']['p_value']:.3g}, "
               f"{'within' if q['qat_vs_ptq_test']['within_noise'] else 'beyond'} noise)"
               if q.get("qat_vs_ptq_test") else "")
            + (f" (as {q['deployed_arithmetic']} computes it)" if q.get("deployed_arithmetic") else "")
            + (" (the post-training weights: no QAT epoch beat them on validation)" if q.get("qat_best_epoch") == 0
               else ""))
    if "baseline_qat_test_acc" in q:
        paired = q.get("gain_vs_baseline_int8_test")
        noise = "" if not paired else f", McNemar p = {paired['p_value']:.3g}: " + \
            ("within noise" if paired["within_noise"] else "beyond noise")
        line += (f"  (no-teacher twin QAT {fmt_acc(q, 'baseline_qat_test_acc')}, "
                 f"gain {q['gain_vs_baseline_int8']:+.2f}{noise})")
    console.print(line)
    print_parity_table(console, q["parity"])


def print_lm_parity_table(console, parity: list[dict]) -> None:
    """A causal LM's parity rows (pipeline/lm_int8.lm_row: every position of the parity windows): next-token
    agreement, exact and up to near-ties within the runtime's step bound, and the largest logit difference."""
    from rich.table import Table

    table = Table(title="parity: next-token agreement at every position; int8 files against the QAT model computing "
                        "each runtime's arithmetic, float files against the float student")
    for col in ("file", "runtime", "windows", "positions", "top-1 agree", "up to near-ties", "max Δ (bound)",
                "bytes", "verdict"):
        table.add_column(col, justify="left" if col in ("file", "runtime", "verdict") else "right")
    for r in parity:
        verdict = ("[green]ok[/]" if r["passed"] else "[red]FAIL[/]") if r["checked"] else "[yellow]info[/]"
        tied = "—" if r.get("top1_within_bound") is None else f"{r['top1_within_bound']:.3f}%"
        diff = (f"{r['max_steps']:.1f} steps ({r['step_bound']:g})" if r.get("max_steps") is not None
                else f"{r['max_abs_logit_diff']:.3g}")
        table.add_row(r["artifact"], r["runtime"], f"{r['samples']:,}", f"{r['positions']:,}",
                      f"{r['top1_agreement']:.3f}%", tied, diff, f"{r['bytes']:,}", verdict)
    console.print(table)


def print_parity_table(console, parity: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="parity: every exported file on its own runtime (test split)")
    from edgedistill.agreement import judged_agreement
    from edgedistill.report.sections import parity_diff

    for col in ("file", "runtime", "n", "acc", "ref acc", "agree", "max |Δlogit|", "bytes", "verdict"):
        table.add_column(col, justify="left" if col in ("file", "runtime", "verdict") else "right")
    for r in parity:
        verdict = ("[green]ok[/]" if r["passed"] else "[red]FAIL[/]") if r["checked"] else "[yellow]info[/]"
        acc = [f"{r[k]:.2f}%" if r.get(k) is not None else "—" for k in ("accuracy", "reference_accuracy")]
        table.add_row(r["artifact"], r["runtime"], str(r["samples"]), *acc, f"{judged_agreement(r):.2f}%",
                      parity_diff(r), f"{r['bytes']:,}", verdict)
    console.print(table)


# What `profile` leaves out for an ONNX file, and why (the estimate, the fit checks and the arena are TFLite's).
ONNX_UNAVAILABLE = (
    ("target latency estimate", "the per-op latency model and the targets' kernel efficiencies are defined on "
                                "TFLite kernels"),
    ("fit checks (flash, RAM, operators, precision)", "the targets list their operators as TFLite builtins and "
                                                      "their limits apply to the .tflite file the device loads"),
    ("TFLite Micro arena", "TFLite Micro runs .tflite files only"),
)


def fit_line(f: dict, runtime: str) -> str:
    """One fit check; a missing value is NOT CHECKED (never 'ok'), a missing limit says there is none."""
    if f["value"] is None:
        why = (f"no RAM figure for this file on a {runtime} target: the arena is measured with TFLite Micro, for int8 "
               ".tflite files on tflm targets" if f["check"] == "ram" else "no measured value")
        return f"  fit {f['check']:<9} NOT CHECKED  {why}" + ("" if f["limit"] is None else f" (limit {_num(f['limit'])})")
    if f["limit"] is None and f["check"] in ("flash", "ram"):
        return f"  fit {f['check']:<9} ok  value {_num(f['value'])}  (no limit on this target)"
    verdict = "ok" if f["passed"] else ("EXCEEDS" if isinstance(f["value"], (int, float)) else "FAILS")
    limit = "" if f["limit"] is None else f"  limit {_num(f['limit'])}"
    return f"  fit {f['check']:<9} {verdict}  {_num(f['value'])}{limit}"


def _num(v) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def print_profile(rep: dict, echo) -> None:
    """`edgedistill profile`'s text: cost, arena, measurements, estimate, fit checks, and what is not available for
    this format (and why). `echo` prints one line."""
    from edgedistill.targets import load_target

    c = rep["cost"]
    echo(f"{rep['model']}  ({rep['format']}, {rep['precision']}) on target {rep['target']}")
    echo(f"  params {c['params']:,}  MACs {c['macs']:,}  weights {c['weight_bytes']:,} B  file {rep['file_bytes']:,} B"
         + (f"  activation arena {c['peak_activation_bytes']:,} B" if c["peak_activation_bytes"] else ""))
    if rep.get("tokenizer_file"):
        counted = "flash counts the file and these" if rep["format"] == "tflite" else \
            "a deployed flash figure counts these beside the file"
        echo(f"  tokenizer tables {rep['tokenizer_bytes']:,} B ({rep['tokenizer_file']}): {counted}")
    if rep.get("tokenizer_note"):
        echo(f"  note: {rep['tokenizer_note']}")
    if rep.get("tflm_arena"):
        a = rep["tflm_arena"]
        echo(f"  TFLite Micro arena (recording allocator): {a['total_bytes']:,} B "
             f"({a['activation_bytes']:,} activations + {a['persistent_bytes']:,} runtime)")
    for m in rep["measured"]:
        echo(f"  [{m['where']}] {m['runtime']} x{m['threads']}: median {m['median_ms']:.4f} ms, "
             f"p90 {m['p90_ms']:.4f}, p99 {m['p99_ms']:.4f} ({m['runs']} runs), load {m['load_ms']:.1f} ms")
    if rep["estimate"]:
        e = rep["estimate"]
        err = f", error vs measured {e['measured_error']:+.0%}" if "measured_error" in e else ", no ground truth here"
        echo(f"  [estimated] {e['total_ms']:.4f} ms on {e['target']} ({e['model']}{err})")
    target = load_target(rep["target"])
    runtime = target.runtime
    for f in rep.get("fit", []):
        echo(fit_line(f, runtime))
        share = target.model_flash_bytes
        if f["check"] == "flash" and share and isinstance(f["value"], int):
            # build and gate judge the model's share of the chip's flash by default, not the whole chip
            echo(f"    the model's share of {target.name}'s flash, which build and gate judge unless --budget flash= "
                 f"sets another: {share:,} B ({'within' if f['value'] <= share else 'EXCEEDED'})")
    if rep["format"] == "onnx":
        echo("  not available for ONNX files (profile the .tflite export for these):")
        for what, why in ONNX_UNAVAILABLE:
            echo(f"    {what}: {why}")
    elif rep["format"] == "tflite" and rep["estimate"] is None:
        echo(f"  [estimated] not available: target {rep['target']} has no {rep['precision']} throughput figure")


def _where(how: str) -> str:
    """Where a gate row's figure comes from, in the terminal's words: " (estimated on cortex-m4)", " (measured on
    the device local)", " (measured on this host)"; "" for figures with no such origin."""
    if how.startswith("estimated"):
        return f" ({how.split(' (')[0]})"
    if how.startswith("measured-device ("):
        return f" (measured on the device {how[len('measured-device ('):].split(',')[0]})"
    if how.startswith("measured-host"):
        return " (measured on this host)"
    return ""
