"""The report's "where" sections as data and Markdown: budgets against their limits, per-class accuracy, per-layer
int8 figures. render.py draws the same figures as charts (report/plots.py); the Markdown reads without them."""

from __future__ import annotations

from edgedistill.report.per_class import worst_text

FAR = 0.01  # a use under 1 % of its limit (two orders of magnitude away) is summarised, not drawn
USAGE = [("flash", "flash_bytes", "bytes"), ("ram", "ram_bytes", "bytes"), ("latency", "latency_ms", "ms"),
         ("macs", "macs", "")]


def human(value: float, unit: str) -> str:
    """1536 bytes -> '1.5 KiB'; 2.5e6 MACs -> '2.5 M'; 0.12 ms -> '0.12 ms'."""
    if unit == "bytes":
        for u, f in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value >= f:
                return f"{value / f:.3g} {u}"
        return f"{value:,.0f} B"
    if unit == "ms":
        return f"{value:.3g} ms"
    for u, f in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= f:
            return f"{value / f:.3g} {u}"
    return f"{value:,.0f}"


def budget_view(r: dict) -> dict:
    """Each limited resource as a share of its own limit: {rows: [{check, value, limit, share, unit}] (drawn, largest
    share first), far: those under FAR of their limit (one line, not drawn), binding: the check closest to (or most
    over) its limit, or None when none binds (no limit, or every resource under FAR of its limit: a flash use of
    0.14 % does not bind anything), capped: the search's parameter cap when a larger candidate was refused for it
    alone, else None}. Limits: the build's budget (report.json `search.budget`), else the target's
    flash / RAM."""
    fit = {f["check"]: f.get("limit") for f in (r.get("target") or {}).get("fit", [])}
    budget = (r.get("search") or {}).get("budget") or {}
    u = r.get("usage") or {}
    rows = []
    for check, key, unit in USAGE:
        limit = budget.get(key) if budget.get(key) is not None else fit.get(check)
        value = u.get(key)
        if isinstance(limit, (int, float)) and limit > 0 and isinstance(value, (int, float)):
            rows.append({"check": check, "value": value, "limit": limit, "share": value / limit, "unit": unit})
    rows.sort(key=lambda x: -x["share"])
    binding = rows[0]["check"] if rows and rows[0]["share"] >= FAR else None
    search = r.get("search") or {}
    capped = search.get("max_params") if any(c.get("violations") == ["params"]
                                             for c in search.get("candidates") or []) else None
    return {"rows": [x for x in rows if x["share"] >= FAR], "far": [x for x in rows if x["share"] < FAR],
            "binding": binding, "capped": capped}


def _use(x: dict) -> str:
    return f"{x['check']} {human(x['value'], x['unit'])} of {human(x['limit'], x['unit'])} ({100 * x['share']:.3g} %)"


def parity_diff(p: dict) -> str:
    """A parity row's largest logit difference: in output quantization steps for an int8 file, else absolute."""
    return f"{p['max_steps']:.1f} steps" if p.get("max_steps") is not None else f"{p['max_abs_logit_diff']:.3g}"


def budget_lines(r: dict) -> list[str]:
    v = budget_view(r)
    if not v["rows"] and not v["far"]:
        return []
    out = ["", f"## Budget (each resource against its own limit; {binding_text(v)})", ""]
    for x in v["rows"]:
        tag = " — **binding**" if x["check"] == v["binding"] else ""
        tag += " — EXCEEDS" if x["share"] > 1 else ""
        out.append(f"- {_use(x)}{tag}")
    if v["far"]:
        out.append("- far from their limits (under 1 %): " + "; ".join(_use(x) for x in v["far"]))
    return out


def binding_text(v: dict) -> str:
    """'binding: flash', or 'no limit binds' when every resource is far from its limit; when larger candidates were
    refused only for the parameter cap (half the teacher's), the cap is named: it decided the student's size."""
    if v["binding"]:
        return f"binding: {v['binding']}"
    if v.get("capped"):
        return f"no device limit binds: the student's size was set by the cap of half the teacher's parameters " \
               f"({v['capped']:,})"
    return "no limit binds"


def where_accuracy(r: dict) -> str | None:
    """The headline's per-class sentence, or None without per-class figures."""
    pc = r.get("per_class")
    if not pc:
        return None
    to_float = pc["worst_int8_vs_float"]
    return (f"int8 loses most to the teacher on {worst_text(pc['worst_vs_teacher'])}; "
            + (f"to the float student on {worst_text(to_float)}" if to_float else "no class to the float student"))


def where_int8(r: dict) -> str | None:
    """The headline's per-layer sentence, or None without per-layer figures."""
    L = r.get("int8_layers")
    if not L or not L.get("lowest_sqnr"):
        return None
    low = L["lowest_sqnr"]
    sat = ", ".join(L["saturating"]) or "none"
    return (f"lowest SQNR {low['sqnr_db']:.1f} dB at layer {low['name']}; saturating (over "
            f"{100 * L['saturating_above']:g} % of outputs clipped to −128 / 127): {sat}")


def per_class_lines(r: dict, confusion_table: bool = True) -> list[str]:
    pc = r.get("per_class")
    if not pc:
        return []
    models = list(pc["accuracy"])
    out = ["", "## Per class (test accuracy, %)", "",
           "| class | n | " + " | ".join(models) + " |", "|---|---:|" + "---:|" * len(models)]
    for c, name in enumerate(pc["class_names"]):
        cells = ["n/a" if pc["accuracy"][m][c] is None else f"{pc['accuracy'][m][c]:.1f}" for m in models]
        out.append(f"| {name} | {pc['counts'][c]} | " + " | ".join(cells) + " |")
    out += ["", f"Largest losses of int8 to the teacher: {worst_text(pc['worst_vs_teacher'])}. "
                f"Of int8 to the float student: {worst_text(pc['worst_int8_vs_float'])}."]
    if confusion_table and pc.get("confusion") and len(pc["class_names"]) <= 20:
        names = pc["class_names"]
        out += ["", f"Confusion matrix of {pc['confusion_of']} (rows: true class, columns: predicted)", "",
                "| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        out += [f"| {names[i]} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(pc["confusion"])]
    return out


def layer_lines(r: dict) -> list[str]:
    L = r.get("int8_layers")
    if not L:
        return []
    out = ["", f"## Per layer: the deployed int8 model against the float student ({L['samples']:,} calibration "
               "samples)", "", "SQNR of each op's int8 output against the float activation (errors accumulate "
               "through the graph); saturation: share of outputs clipped to −128 / 127.", "",
           "| layer | op | SQNR dB | activation range | int8 grid range | weight range | saturation |",
           "|---|---|---:|---|---|---|---:|"]
    for x in L["layers"]:
        w = "" if x["weight_min"] is None else f"[{x['weight_min']:.3g}, {x['weight_max']:.3g}]"
        sat = "fixed grid" if x["fixed_grid"] else f"{100 * x['saturation']:.2f} %"
        flag = " **saturates**" if x["name"] in L["saturating"] else ""
        out.append(f"| {x['name']} | {x['op']} | {x['sqnr_db']:.1f} | [{x['act_min']:.3g}, {x['act_max']:.3g}] "
                   f"| [{x['grid_min']:.3g}, {x['grid_max']:.3g}] | {w} | {sat}{flag} |")
    return out
