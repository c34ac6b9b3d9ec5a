"""report.md and report.html from report.json. The HTML is one self-contained file (inline SVG plots drawn by
matplotlib, report/plots.py; no scripts); the Markdown carries every figure as text and reads without the plots."""

from __future__ import annotations

import html
import math

from edgedistill.agreement import judged_agreement
from edgedistill.report import plots
from edgedistill.report.noise import paired_interval_text
from edgedistill.report.run_cost import run_cost_lines
from edgedistill.report.schema import precision_note
from edgedistill.report.sections import (binding_text, budget_lines, budget_view, human, layer_lines,
                                         parity_diff,
                                         per_class_lines, where_accuracy, where_int8)


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.2f}%"


def _acc(m: dict) -> str:
    """A model row's accuracy with its Wilson 95 % interval when the report has it: '91.25% [82.9, 95.7]'."""
    ci = m.get("ci95")
    return _pct(m.get("accuracy")) + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci and m.get("accuracy") is not None else "")


def _noise(paired: dict | None) -> str:
    """' (McNemar p = 0.21 on 80 test samples: within noise)', or '' when the report has no paired test."""
    if not paired:
        return ""
    verdict = "within noise" if paired["within_noise"] else "beyond noise"
    return (f" ({paired_interval_text(paired)}McNemar p = {paired['p_value']:.3g} on {paired['n']:,} test samples: "
            f"{verdict})")


def _pts(v) -> str:
    return "n/a" if v is None else f"{v:+.2f} points"


def _x(v) -> str:
    return "n/a" if v is None else f"{v:.1f}×"


def _faster(ratio) -> bool:
    """Whether the headline says faster (a ratio of at least 1, or none: 'n/a faster'), else slower."""
    return ratio is None or ratio >= 1


def _size(ratio) -> tuple[str, str]:
    """The headline's size row: 'Smaller', '3.2× smaller file than the teacher', or 'Larger' with the inverse
    ratio when the student's file is the larger (a label and its sentence never contradict each other)."""
    if ratio is None or ratio >= 1:
        return "Smaller", f"{_x(ratio)} smaller file than the teacher"
    return "Larger", f"{_x(1 / ratio) if ratio > 0 else 'n/a'} larger file than the teacher"


def _speed(ratio) -> str:
    """'6.2× faster than the teacher on this machine', or 'slower' with the inverse ratio when it is below 1."""
    if _faster(ratio):
        return f"{_x(ratio)} faster than the teacher on this machine"
    return f"{_x(1 / ratio) if ratio > 0 else 'n/a'} slower than the teacher on this machine"


def _conditions(tr: dict | None) -> str:
    if not tr or tr.get("epochs") is None:
        return ""
    loss = f"{tr['loss']}, T={tr['temperature']:g}, α={tr['alpha']:g}" if tr.get("loss") else "?"
    ep = lambda k, kind: f"{k} {kind} epoch" + ("" if k == 1 else "s")  # noqa: E731
    # --steps: the steps are what ran (the epoch count rounds them up: 300 steps of 128 on 56,000 words is "1 epoch")
    train = (f"{tr['steps']:,} float optimizer steps at batch {tr['batch_size']}" if tr.get("steps")
             else ep(tr["epochs"], "float"))
    qat = (f"{tr['qat_steps']:,} QAT step" + ("" if tr["qat_steps"] == 1 else "s") if tr.get("qat_steps")
           else ep(tr["qat_epochs"], "QAT"))
    qat += exact_steps_text(tr.get("qat_exact_share"), tr.get("qat_steps_run"))
    return (f" (both: {train} + {qat}, augmentation: {tr['augment']}; "
            f"student loss {loss}, teacher outputs {tr['teacher_outputs']})")


def exact_steps_text(share, steps) -> str:
    """", the last N of its M steps computing the runtime's integers and the others fake-quantized" (QAT's
    quant.exact_share schedule, quantize/graph.py: the last ceil(share · M) steps); "" where every step computed them
    or nothing says (a float-rounding run, an older run); in percent where the step count is unknown."""
    if share is None or share >= 1:
        return ""
    if isinstance(steps, int) and steps > 0:
        exact = min(steps, math.ceil(share * steps))
        if exact >= steps:
            return ""
        return (", its steps fake-quantized" if exact == 0 else
                f", the last {exact:,} of its {steps:,} steps computing the runtime's integers and the others "
                "fake-quantized")
    return (", its steps fake-quantized" if share <= 0 else
            f", the last {100 * share:.3g} % of its steps computing the runtime's integers and the others "
            "fake-quantized")


def tuning_line(tu: dict) -> str:
    """The auto search in one sentence: its budget, what it chose and why (the best trial's lead and its noise)."""
    budget = (f"{tu['steps_per_trial']:,} optimizer steps" if tu.get("steps_per_trial")
              else f"{tu['epochs_per_trial']} epoch(s)")
    head = (f"Auto search: {tu['n_trials']} trial{'s' * (tu['n_trials'] != 1)} of {budget} on at most "
            f"{tu['max_samples_per_trial']:,} samples, scored on "
            + (f"{tu['scored_on']:,} samples (validation + {tu['cv_folds']} held-out folds of the labelled transfer "
               "samples)" if tu.get("cv_folds") else "validation"))
    if "chosen" not in tu:  # runs made before the reference rule
        return head + "."
    lead = ("" if tu["best"] == tu["reference"] else
            f" The best trial, {tu['best']}, led the reference ({tu['reference']}) by {tu['best_minus_reference']:.2f}"
            f" ± {tu['std_error']:.2f} points (paired standard error).")
    return f"{head}; chosen: {tu['chosen']} ({tu['why']}).{lead}"


def objective_lines(o: dict | None) -> list[str]:
    """Markdown lines: each loss term's contribution over training, the scheme and the data-free synthesis."""
    if not o:
        return []
    out = []
    if o.get("terms"):
        total = o["total_loss_per_epoch"]
        out += ["| epoch | total loss | " + " | ".join(f"{t['weight']:g} · {t['name']}" for t in o["terms"]) + " |",
                "|---:|---:|" + "---:|" * len(o["terms"])]
        for e, tot in enumerate(total):
            cells = [("n/a" if t["per_epoch"][e] is None else f"{t['weight'] * t['per_epoch'][e]:.4g}")
                     for t in o["terms"]]
            out.append(f"| {e + 1} | {tot:.4g} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("Feature / relation terms act in the float phase (weighted value shown; the rest of the total is "
                   "the response loss).")
    sch = o.get("scheme") or {}
    if sch.get("scheme") == "born-again":
        out.append("Scheme: born-again — " + ", ".join(f"generation {g['index']}: test {_pct(g['test_acc'])}"
                                                      for g in sch["generations"]) + " (the last one is deployed).")
    elif sch.get("scheme") == "mutual":
        out.append("Scheme: deep mutual learning — " + ", ".join(
            f"peer {p['index']}: val {_pct(p['val_acc'])}, test {_pct(p['test_acc'])}" for p in sch["peers"])
                   + f" (peer {sch['chosen']} deployed: best on validation).")
        if online := sch.get("online_teacher"):
            out.append(f"The teacher trained online with the peers (learning rate ×{online['lr_scale']:g}): test "
                       f"{_pct(online['before']['test_acc'])} before, {_pct(online['after']['test_acc'])} after.")
    if tu := o.get("tuning"):
        out.append(tuning_line(tu))
    df = o.get("data_free")
    if df:
        out.append(f"Data-free: {df['samples']} inputs synthesized from the teacher's BatchNorm statistics "
                   f"({df['steps']} steps; statistics mismatch {df['bn_loss_first']:.3g} -> {df['bn_loss_last']:.3g}); "
                   "no real training sample used.")
    return ["", "## Training objective", ""] + out if out else []


def input_lines(data: dict | None, teachers: list | None) -> list[str]:
    """Markdown lines: how the data's labels map to class indices, labelled / unlabelled transfer samples, and how
    each teacher's outputs were read (which output, logits or probabilities, input layout)."""
    out = []
    lm = (data or {}).get("label_map")
    if lm and not lm["identity"]:
        pairs = ", ".join(f"{o}→{i}" for i, o in enumerate(lm["original_labels"][:20]))
        out.append(f"- labels: the data's labels map to class indices ({pairs}"
                   f"{', …' if len(lm['original_labels']) > 20 else ''})")
    tc = (data or {}).get("transfer_counts")
    if tc and tc["unlabelled"]:
        out.append(f"- transfer set: {tc['labelled']:,} labelled + {tc['unlabelled']:,} unlabelled samples "
                   "(unlabelled ones learn from the teacher only)")
    out += text_lines((data or {}).get("text"))
    for t in teachers or []:
        o = t.get("output")
        if not o or (o["kind"] == "logits" and len(o["outputs"]) <= 1 and o["layout"].startswith("as the data")):
            continue
        how = ("probabilities, used as log-probabilities" if o["kind"] == "probabilities" else "logits")
        out.append(f"- teacher {t['name']}: output {o['name']!r} ({o['index'] + 1} of {max(len(o['outputs']), 1)}), "
                   f"{how} ({o['detected_by']}); input {o['layout']}")
    return ["", "## Inputs", ""] + out if out else []


def text_lines(text: dict | None) -> list[str]:
    """Markdown lines for text data: the student's tokenizer, the sequence length and what it cut, and what a device
    app does before invoking the model."""
    if not text:
        return []
    why = "the 99th percentile of the training texts' token counts" if text["max_length_from"] == "data" else \
        "set with --max-length"
    lines = [f"- text: the student reads {text['max_length']} tokens ({why}) of its `{text['tokenizer']}` "
             f"tokenizer ({text['vocab_size']:,} ids); `tokenizer.json` beside the model holds it"]
    for split, t in sorted((text.get("truncation") or {}).items()):
        lines.append(f"- truncation ({split}): {t['samples_truncated']:,} of {t['samples']:,} texts cut "
                     f"({100 * t['fraction_truncated']:.1f} %), {t['tokens_dropped']:,} of {t['tokens']:,} tokens dropped")
    for teacher in text.get("teacher_truncation") or []:
        for split, t in sorted((k, v) for k, v in teacher.items() if isinstance(v, dict)):
            lines.append(f"- teacher {teacher['teacher']} reads {teacher['max_length']:,} of its own tokens ({split}): "
                         f"{t['samples_truncated']:,} of {t['samples']:,} texts cut "
                         f"({100 * t['fraction_truncated']:.1f} %)")
    versions = (text.get("provenance") or {}).get("package_versions")
    if versions:  # a corpus read from installed packages (builtin:docs): which versions made these texts
        lines.append("- texts read from: " + ", ".join(f"{name} {v}" for name, v in sorted(versions.items())))
    return lines + [f"- on the device: {text['device_steps']}"]


def _arithmetic(s: dict) -> str:
    """Which arithmetic the deployed accuracy was measured with, when it is not LiteRT's default (XNNPACK)."""
    return (" (on LiteRT's reference kernels: TFLite Micro's arithmetic within one code)"
            if s.get("accuracy_deployed_runtime") == "litert-reference" else "")


def _usage_ci(r: dict) -> dict:
    u = r.get("usage") or {}
    n = u.get("accuracy_n")
    return {"ci95": u.get("accuracy_ci95"), "n": n}


def headline(r: dict) -> list[tuple[str, str]]:
    s = r["summary"]
    match = {True: "yes: every exported file reproduced the trained model on its runtime",
             False: "NO: a file failed its parity check", None: "not checked (run with --qat)"}[s["deployed_matches_measured"]]
    where = [("Where accuracy went", w) for w in [where_accuracy(r)] if w] + \
        [("Where int8 went", w) for w in [where_int8(r)] if w]
    return [
        _size(s["size_ratio_teacher_over_student"]),
        ("Faster" if _faster(s["speedup_vs_teacher"]) else "Slower", _speed(s["speedup_vs_teacher"])),
        ("Accuracy kept", f"{_acc({'accuracy': s['accuracy_deployed'], **_usage_ci(r)})} deployed int8"
                          f"{precision_note(s.get('int16'))}"
                          f"{_arithmetic(s)} vs {_pct(s['accuracy_teacher'])} teacher "
                          f"({_pts(s['accuracy_kept_vs_teacher'])})"),
        ("Distillation gain", f"{_pts(s['gain_vs_no_teacher_twin_int8'])} int8"
                              f"{_noise(s.get('gain_vs_no_teacher_twin_int8_test'))}, "
                              f"{_pts(s['gain_vs_no_teacher_twin_float'])} float"
                              f"{_noise(s.get('gain_vs_no_teacher_twin_float_test'))}, "
                              "vs the same student trained without a teacher" + _conditions(s.get("training"))
                              if s.get("gain_vs_no_teacher_twin_float") is not None or
                              s.get("gain_vs_no_teacher_twin_int8") is not None else
                              "not measured: no twin was trained without a teacher (--no-baseline)"),
        ("QAT vs PTQ", f"QAT {_pct(s['qat_accuracy'])}, post-training quantization {_pct(s['ptq_accuracy'])}"
                       + _noise(s.get("qat_vs_ptq_test"))
                       + ("; no QAT epoch beat the post-training weights on validation, so the int8 files hold those"
                          if s.get("qat_kept_post_training") else "")),
        ("Deployed = measured", match),
    ] + where


def target_lines(r: dict) -> list[str]:
    """Markdown lines: the target's estimated int8 latency and its fit checks (flash, RAM, ops, precision)."""
    t = r.get("target") or {}
    if not t:
        return []
    lines = ["", f"## Target `{t['name']}`", ""]
    if t.get("estimate_ms") is not None:
        lines.append(f"- estimated int8 latency: {t['estimate_ms']:.4f} ms ({t['estimate_model']}; "
                     + (f"measured error on this host {t['estimate_error']:+.0%})" if t.get("estimate_error") is not None
                        else "no ground truth here)"))
    num = lambda v: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)  # noqa: E731
    for f in t.get("fit", []):
        verdict = "NOT CHECKED (no figure)" if f["value"] is None else "ok" if f["passed"] else "EXCEEDS"
        limit = "no limit" if f["limit"] is None else f"limit {num(f['limit'])}"
        unit = " B" if f["check"] in ("flash", "ram") and isinstance(f["value"], int) else ""
        limit += " B" if unit and f["limit"] is not None else ""
        share = (f"; the chip's whole flash: the model's share, {t['model_flash_bytes']:,} B unless --budget sets "
                 "it, is judged under Budget" if f["check"] == "flash" and t.get("model_flash_bytes") else "")
        lines.append(f"- {f['check']}: {num(f['value'])}{unit} ({limit}{share}) — {verdict}")
    return lines + flash_lines(r)


def flash_lines(r: dict) -> list[str]:
    """'- flash: N B model + M B tokenizer tables' where the run has a tokenizer (text): the flash every check
    judges is both (edgedistill.budget.flash_use); none for data without one (reports before the field too)."""
    u = r.get("usage") or {}
    if u.get("tokenizer_bytes") is None or u.get("file_bytes") is None:
        return []
    why = " (the teacher's vocabulary, merges or scores and the id map a device app needs to encode as training " \
          "did)" if u["tokenizer_bytes"] else " (the byte tokenizer needs none)"
    return [f"- flash: {u['file_bytes']:,} B model + {u['tokenizer_bytes']:,} B tokenizer tables{why} = "
            f"{u['flash_bytes']:,} B, the figure every flash limit judges"]


def to_markdown(r: dict) -> str:
    lines = ["# edgedistill report", ""]
    lines += [f"- **{k}**: {v}" for k, v in headline(r)]
    lines += ["", "## Models (accuracy on the test split with its Wilson 95 % interval; latency measured on this "
              "machine, batch 1)", "",
              "| model | params | accuracy | file bytes | latency ms | how |", "|---|---:|---:|---:|---:|---|"]
    for m in r["models"]:
        lat = f"{m['latency_ms']:.4f}" if m.get("latency_ms") else "n/a"
        lines.append(f"| {m['name']} | {m['params'] or 'n/a'} | {_acc(m)} | {m.get('bytes') or 'n/a'} | "
                     f"{lat} | {m.get('where', '')} |")
    if r["parity"]:
        lines += ["", "## Parity: each file on its own runtime", "", PARITY_READING, "",
                  "| file | runtime | n | accuracy | reference | arithmetic | agreement | max logit diff | verdict |",
                  "|---|---|---:|---:|---:|---|---:|---:|---|"]
        for p in r["parity"]:
            verdict = ("ok" if p["passed"] else "FAIL") if p["checked"] else "info"
            lines.append(f"| {p['artifact']} | {p['runtime']} | {p['samples']} | {_pct(p['accuracy'])} | "
                         f"{_pct(p['reference_accuracy'])} | {p.get('arithmetic', 'float')} | "
                         f"{_pct(judged_agreement(p))} | {parity_diff(p)} | {verdict} |")
        lines += _subset_note(r["parity"])
    lines += target_lines(r)
    lines += budget_lines(r)
    if r.get("search"):
        s = r["search"]
        fits = [c for c in s["candidates"] if c["fits"]]
        tables = s["chosen"].get("tokenizer_bytes")
        lines += ["", "## Student search", "", f"Chosen: **{s['chosen']['arch']}** ({s['chosen']['params']:,} params) — "
                  f"rule: {s['rule']}. {len(fits)} of {len(s['candidates'])} candidates fit"
                  + (f"; the flash limit judges each file plus the tokenizer's tables ({tables:,} B)." if tables
                     else "."),
                  "", "| candidate | params | MACs | file bytes | RAM bytes | fits |", "|---|---:|---:|---:|---:|---|"]
        for c in sorted(s["candidates"], key=lambda c: -c["params"]):
            fit = "yes" if c["fits"] else "no: " + ", ".join(c["violations"])
            lines.append(f"| {c['arch']} | {c['params']:,} | {c['macs']:,} | {c['file_bytes']:,} | "
                         f"{c.get('ram_bytes', c['arena_bytes']):,} | {fit} |")
    lines += per_class_lines(r)
    lines += layer_lines(r)
    lines += objective_lines(r.get("objective"))
    lines += input_lines(r.get("data"), r.get("teachers"))
    lines += _device_lines(r.get("device"))
    lines += run_cost_lines(r.get("cost"))
    for w in r.get("warnings", []):
        lines += ["", f"> **Warning:** {w}"]
    return "\n".join(lines) + "\n"


def device_summary(d: dict | None) -> list[tuple[str, str]]:
    """(label, text) pairs describing a device measurement, or its absence."""
    if not d:
        return []
    if d["status"] != "measured":
        return [("Device", f"figures MISSING for {d['url']}: {d['error']}")]
    dev, lat, par = d["device"], d["latency_ms"], d["parity"]
    what = ", ".join(str(dev[k]) for k in ("manufacturer", "model", "cpu", "machine", "system", "android", "release")
                     if dev.get(k))
    p50 = f"p50 {lat['p50']:.4f} ms, " if lat.get("p50") else ""
    p90 = f"p90 {lat['p90']:.4f} ms, " if lat.get("p90") else ""
    out = [("Device", f"{d['runner']['url']} — {what}"),
           ("Runtime on device", f"{d['runtime']['name']} {d['runtime'].get('version') or ''}, "
                                 f"{d['runtime']['threads']} thread{'s' * (d['runtime']['threads'] != 1)}"),
           ("Latency on device (measured)", f"{p50}{p90}mean {lat['mean']:.4f} ms over {lat.get('runs')} runs; "
                                             f"load {d['load_ms']:.1f} ms")]
    if d.get("peak_rss_bytes"):
        out.append(("Peak memory on device", f"{d['peak_rss_bytes']:,} B (whole process)"))
    if par["checked"]:
        out.append(("Device reproduces this machine", "yes: outputs match within one quantization step"
                    if par.get("passed") else f"NO: max |diff| {par.get('max_abs_diff')}, top-1 agreement "
                    f"{_pct(100 * par['top1_agreement']) if par.get('top1_agreement') is not None else 'n/a'}"))
    else:
        out.append(("Device reproduces this machine", f"not checked ({par.get('reason', '')})"))
    return out


def _subset_note(parity: list[dict]) -> list[str]:
    """A sentence where some rows ran fewer samples than others (TFLite Micro runs the first `quant.tflm_max_samples`,
    one invoke each): their accuracy is on those samples, so it is not the headline's figure (a newcomer read three
    'deployed' accuracies on a microcontroller report)."""
    most = max((p["samples"] for p in parity), default=0)
    fewer = sorted({(p["runtime"], p["samples"]) for p in parity if p["samples"] < most})
    if not fewer:
        return []
    rows = ", ".join(f"{rt} ({n:,} samples)" for rt, n in fewer)
    return ["", f"The {rows} row{'s' * (len(fewer) > 1)} ran the first samples of the {most:,} the others ran: "
            "their accuracy is on those samples only; agreement with the reference on them is what they prove. The "
            "headline's deployed accuracy is the int8 file on the whole test split."]


def _device_lines(d: dict | None) -> list[str]:
    rows = device_summary(d)
    return ["", "## Measured on the device", ""] + [f"- **{k}**: {v}" for k, v in rows] if rows else []


MAX_CLASS_ROWS = 20


def _charts(r: dict) -> list[str]:
    """Every chart of the page, in reading order (an absent figure draws no chart)."""
    pts = [{"label": m["name"], "x": m.get("latency_ms"), "y": m["accuracy"], "ci95": m.get("ci95")}
           for m in r["models"] if m.get("latency_ms") and m.get("accuracy") is not None]
    out = [plots.accuracy_latency(pts)]
    v = budget_view(r)
    if v["rows"]:
        out.append(plots.hbars(
            [{"label": x["check"], "value": 100.0 * x["share"], "color": plots.COLORS[3 if x["share"] > 1 else 0],
              "text": f"{human(x['value'], x['unit'])} of {human(x['limit'], x['unit'])}"} for x in v["rows"]],
            f"Budget: each resource against its own limit ({binding_text(v)})", "% of the limit",
            limit=100.0, limit_label="limit"))
    t = r.get("target") or {}
    if t.get("per_op"):
        out.append(plots.hbars([{"label": f"{o['index']}: {o['op']}", "value": o["ms"], "text": f"{o['ms']:.3g}"}
                                for o in t["per_op"]], f"Per-layer latency estimate on {t.get('name', '?')}", "ms"))
    pc = r.get("per_class")
    if pc:
        shown = range(len(pc["class_names"]))
        title = "Test accuracy per class"
        if len(shown) > MAX_CLASS_ROWS:  # past that the chart would be pages long: the classes int8 loses most on
            ref, dep = pc["accuracy"][pc["teacher"]], pc["accuracy"][pc["student"]]
            shown = sorted(sorted(shown, key=lambda c: -((ref[c] or 0) - (dep[c] or 0)))[:MAX_CLASS_ROWS])
            title += f" ({MAX_CLASS_ROWS} of {len(pc['class_names'])}: where int8 loses most to the teacher)"
        out.append(plots.grouped_hbars([pc["class_names"][c] for c in shown],
                                       {m: [a[c] for c in shown] for m, a in pc["accuracy"].items()}, title,
                                       "accuracy, %"))
        if pc.get("confusion"):
            out.append(plots.confusion(pc["confusion"], pc["class_names"], f"Confusion matrix, {pc['confusion_of']}"))
    L = r.get("int8_layers")
    if L:
        sat = set(L["saturating"])
        out.append(plots.hbars(
            [{"label": f"{i}: {x['name']} ({x['op']})", "value": max(x["sqnr_db"], 0.0),
              "color": plots.COLORS[3 if x["name"] in sat else 0],
              "text": f"{x['sqnr_db']:.1f} dB" + (f", {100 * x['saturation']:.2g} % clipped" if x["saturation"] else "")}
             for i, x in enumerate(L["layers"])],
            "int8 vs float per layer (SQNR; red: saturating)", "SQNR, dB"))
    s = r.get("search")
    if s and s.get("candidates"):
        chosen = s["chosen"]["arch"]
        budget = s.get("budget") or {}
        fit = {f["check"]: f.get("limit") for f in t.get("fit", [])}
        limits = {"flash_bytes": budget.get("flash_bytes") or fit.get("flash"),
                  "ram_bytes": budget.get("ram_bytes") or fit.get("ram"), "macs": budget.get("macs")}
        # ram_bytes: the planned arena plus, on TFLite Micro, its runtime memory (reports before it: the arena);
        # flash_bytes: the file plus the tokenizer's tables (reports before it: the file)
        cands = [{**c, "chosen": c["arch"] == chosen, "ram_bytes": c.get("ram_bytes", c["arena_bytes"]),
                  "flash_bytes": c.get("flash_bytes", c["file_bytes"])}
                 for c in s["candidates"]]
        out.append(plots.search_costs(cands, limits,
                                      f"Student search: {len(s['candidates'])} candidates, chosen {chosen}"))
    return out


def _md_html(lines: list[str]) -> str:
    """Markdown lines as HTML: `| a | b |` blocks become tables, other lines paragraphs (objective, per class ...)."""
    esc = html.escape
    out, rows = [], []

    def flush():
        if rows:
            cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows if not set(row) <= set("|-: ")]
            head, body = cells[0], cells[1:]
            out.append("<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in head) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{esc(c.replace('**', ''))}</td>" for c in row) + "</tr>" for row in body)
                + "</table>")
            rows.clear()

    for line in lines:
        if line.startswith("|"):
            rows.append(line)
            continue
        flush()
        if line.startswith("## "):
            out.append(f"<h2>{esc(line[3:].replace('`', ''))}</h2>")
        elif line.strip():
            out.append(f"<p>{esc(line.lstrip('- ').replace('**', ''))}</p>")
    flush()
    return "".join(out)


# How report.md and report.html read a parity row: what it is compared with, and the bounds it passes at.
PARITY_READING = (
    "The reference of an int8 file is the trained model computing that runtime's integer arithmetic. A row passes at "
    "top-1 agreement >= 99.9 % and logits within the runtime's bound in output steps: one on LiteRT and TFLite Micro, "
    "8 on onnxruntime, whose float32 QDQ reference sums in another order (a float file: 0.1 % of its largest logit). "
    "For an int8 file a top-1 choice agrees when the reference scores it within that bound of its own best (quantized "
    "logits tie; exact agreement where it differs: in report.json, top1_agreement).")


def to_html(r: dict) -> str:
    esc = html.escape
    items = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in headline(r))
    charts = "".join(f"<figure>{c}</figure>" for c in _charts(r))
    rows = "".join(
        f"<tr><td>{esc(m['name'])}</td><td>{m['params'] or ''}</td><td>{_acc(m)}</td>"
        f"<td>{m.get('bytes') or ''}</td><td>{'%.4f' % m['latency_ms'] if m.get('latency_ms') else ''}</td>"
        f"<td>{esc(m.get('where', ''))}</td></tr>" for m in r["models"])
    par = "".join(
        f"<tr><td>{esc(p['artifact'])}</td><td>{esc(p['runtime'])}</td><td>{p['samples']}</td><td>{_pct(p['accuracy'])}</td>"
        f"<td>{_pct(judged_agreement(p))}</td><td>{parity_diff(p)}</td>"
        f"<td>{'ok' if p['passed'] and p['checked'] else ('info' if not p['checked'] else 'FAIL')}</td></tr>"
        for p in r["parity"])
    warn = "".join(f"<p class='warn'>Warning: {esc(w)}</p>" for w in r.get("warnings", []))
    sections = _md_html(target_lines(r) + budget_lines(r) + per_class_lines(r, confusion_table=False) + layer_lines(r)
                        + objective_lines(r.get("objective")) + input_lines(r.get("data"), r.get("teachers"))
                        + run_cost_lines(r.get("cost")))
    dev_rows = device_summary(r.get("device"))
    dev = ("<h2>Measured on the device</h2><ul>" + "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in dev_rows)
           + "</ul>") if dev_rows else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>edgedistill report</title>
<style>body{{font-family:sans-serif;max-width:1040px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;max-width:100%}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;
}}td:first-child{{text-align:left;overflow-wrap:anywhere}}.warn{{color:#b00;font-weight:bold}}
.plots{{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}}figure{{margin:0;max-width:100%}}
svg.plot{{max-width:100%;height:auto;display:block}}p,li{{overflow-wrap:anywhere}}</style></head><body>
<h1>edgedistill report</h1><ul id="headline">{items}</ul>{warn}
<div class="plots">{charts}</div>
<h2>Models</h2><table><tr><th>model</th><th>params</th><th>accuracy [95% CI]</th><th>file bytes</th><th>latency ms</th><th>how</th></tr>{rows}</table>
<h2>Parity: each file on its own runtime</h2><p>{esc(PARITY_READING)}</p><table><tr><th>file</th><th>runtime</th><th>n</th><th>accuracy</th><th>agreement</th>
<th>max |Δlogit|</th><th>verdict</th></tr>{par}</table>{sections}{dev}
</body></html>
"""
