"""What the commands print: the distill summary (teacher, twin, student, int8) and the parity table."""

from __future__ import annotations

import sys


def print_distill_summary(m: dict, out) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"edgedistill distill → {out}")
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
    for w in m["warnings"]:
        console.print(f"[bold red]WARNING[/]: {w}")


def print_int8(console, q: dict) -> None:
    from edgedistill.report.noise import fmt_acc

    line = (f"int8: float {fmt_acc(q, 'float_test_acc')}  PTQ {fmt_acc(q, 'ptq_test_acc')}  "
            f"QAT {fmt_acc(q, 'qat_test_acc')}")
    if "baseline_qat_test_acc" in q:
        paired = q.get("gain_vs_baseline_int8_test")
        noise = "" if not paired else f", McNemar p = {paired['p_value']:.3g}: " + \
            ("within noise" if paired["within_noise"] else "beyond noise")
        line += (f"  (no-teacher twin QAT {fmt_acc(q, 'baseline_qat_test_acc')}, "
                 f"gain {q['gain_vs_baseline_int8']:+.2f}{noise})")
    console.print(line)
    print_parity_table(console, q["parity"])


def print_parity_table(console, parity: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="parity: every exported file on its own runtime (test split)")
    for col in ("file", "runtime", "n", "acc", "ref acc", "agree", "max |Δlogit|", "bytes", "verdict"):
        table.add_column(col, justify="left" if col in ("file", "runtime", "verdict") else "right")
    for r in parity:
        verdict = ("[green]ok[/]" if r["passed"] else "[red]FAIL[/]") if r["checked"] else "[yellow]info[/]"
        table.add_row(r["artifact"], r["runtime"], str(r["samples"]), f"{r['accuracy']:.2f}%",
                      f"{r['reference_accuracy']:.2f}%", f"{r['top1_agreement']:.2f}%",
                      f"{r['max_abs_logit_diff']:.4g}", f"{r['bytes']:,}", verdict)
    console.print(table)
