"""The report's charts, drawn by matplotlib and inlined as SVG, so report.html stays one self-contained file.

Why matplotlib: it is the most widely kept Python plotting library, writes SVG itself (no browser or JavaScript
runtime, unlike Plotly / Bokeh / Vega), and is already in the lock file. Each chart is one function from report.json
figures to an `<svg class="plot">` string. Text is written as SVG `<text>` (`svg.fonttype = "none"`), so the page
stays searchable and a browser can measure every label; points are named by a legend, never by annotations next to
them (labels of close points used to collide); element ids are prefixed per chart, so several charts in one page
never share an id (matplotlib numbers them from 1 in each file). Nothing here reads the disk or the network.
"""

from __future__ import annotations

import html
import io
import itertools
import math
import re

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]
WIDTH_IN = 7.0  # inches at 72 pt: 504 px wide before CSS scales it to the page (max-width: 100 %)
_ids = itertools.count(1)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "edgedistill", "font.size": 9,
                         "font.family": "sans-serif", "axes.spines.top": False, "axes.spines.right": False})
    return plt


def to_svg(fig, title: str) -> str:
    """The figure as an inline `<svg class="plot">` (no XML prolog, no metadata, ids unique to this chart)."""
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.05, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    prefix = f"c{next(_ids)}-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', svg)
    return svg.replace("<svg ", f'<svg class="plot" role="img" aria-label="{html.escape(title)}" ', 1)


def no_data(title: str) -> str:
    return f"<p><em>{html.escape(title)}: no data</em></p>"


def _fig(height_in: float, ncols: int = 1):
    plt = _plt()
    fig, axes = plt.subplots(1, ncols, figsize=(WIDTH_IN, height_in), squeeze=False)
    return fig, list(axes[0])


def si(v: float) -> str:
    """A tick label: 0.02, 5, 100, 10K, 2.5M, 1G."""
    for unit, f in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= f:
            return f"{v / f:g}{unit}"
    return f"{v:g}"


def log_axis(ax, axis: str, values: list[float], subs: tuple[float, ...] = (1.0,), numticks: int = 6) -> None:
    """A log axis spanning whole decades around `values`, labelled only at `subs` × 10^k (SI suffixes), with no
    minor-tick labels: matplotlib labels minor ticks on a short log axis, and those labels collide."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = min(values), max(values)
    a, b = 10.0 ** math.floor(math.log10(lo)), 10.0 ** math.ceil(math.log10(hi))
    if a == b:
        b = a * 10
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}lim")(a, b)
    sub = getattr(ax, f"{axis}axis")
    sub.set_major_locator(LogLocator(base=10, subs=subs, numticks=numticks))
    sub.set_major_formatter(FuncFormatter(lambda v, _: si(v)))
    sub.set_minor_formatter(NullFormatter())


def accuracy_latency(points: list[dict], title: str = "Accuracy vs latency") -> str:
    """points: {label, x (latency ms > 0), y (accuracy %), ci95 ([low, high] % or None)}. Log latency axis (the
    models span orders of magnitude); the accuracy's Wilson 95 % interval (edgedistill.stats) as an error bar;
    each model named in the legend, under the axes, so close points never carry overlapping labels; open markers of
    decreasing size, so a point drawn on another stays visible."""
    pts = _merge_same([p for p in points if p.get("x") and p.get("y") is not None])
    if not pts:
        return no_data(title)
    fig, (ax,) = _fig(3.6)
    for i, p in enumerate(pts):
        ci = p.get("ci95")
        err = None if not ci else [[max(p["y"] - ci[0], 0.0)], [max(ci[1] - p["y"], 0.0)]]
        # open markers, each a size smaller than the one before, over thin error bars: models at about the same
        # accuracy and latency (the float and int8 students often are) stay visible as nested shapes
        ax.errorbar([p["x"]], [p["y"]], yerr=err, fmt=MARKERS[i % len(MARKERS)], color=COLORS[i % len(COLORS)],
                    ms=max(13.0 - 1.5 * i, 5.0), mfc="none", mew=1.6, capsize=3, elinewidth=0.8,
                    label=f"{p['label']}: {p['y']:.2f}% at {p['x']:.3g} ms")
    xs = [p["x"] for p in pts]
    log_axis(ax, "x", [min(xs) / 1.3, max(xs) * 1.3], subs=(1.0, 2.0, 5.0))  # no point on the frame
    ax.set_xlabel("latency on this machine, ms (log scale)")
    ax.set_ylabel("test accuracy, % (95 % interval)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    return to_svg(fig, title)


def _merge_same(points: list[dict]) -> list[dict]:
    """Points at the same latency and accuracy as one, their labels joined with ' = ' (the int8 file under two
    arithmetics often is one point: two markers there would hide each other)."""
    out: list[dict] = []
    for p in points:
        twin = next((q for q in out if q["x"] == p["x"] and q["y"] == p["y"]), None)
        if twin is None:
            out.append(dict(p))
        else:
            twin["label"] = f"{twin['label']} = {p['label']}"
    return out


def hbars(items: list[dict], title: str, xlabel: str, limit: float | None = None, limit_label: str = "") -> str:
    """items: {label, value, color (optional), text (optional, written at the bar's end)}. One row per item, its
    label on the y axis; `limit`: a vertical line (e.g. 100 % of a budget)."""
    if not items:
        return no_data(title)
    fig, (ax,) = _fig(0.9 + 0.32 * len(items))
    ys = list(range(len(items)))[::-1]
    vals = [float(it["value"]) for it in items]
    ax.barh(ys, vals, color=[it.get("color", COLORS[0]) for it in items], height=0.6)
    ax.set_yticks(ys, [it["label"] for it in items])
    top = max(vals + [limit or 0.0]) or 1.0
    ax.set_xlim(0, top * 1.3)
    for y, v, it in zip(ys, vals, items):
        ax.text(v + top * 0.01, y, it.get("text", f"{v:,.4g}"), va="center", fontsize=8)
    if limit is not None:
        ax.axvline(limit, color=COLORS[3], lw=1.5, ls="--", label=limit_label or None)
        if limit_label:
            ax.legend(loc="lower right", frameon=False, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return to_svg(fig, title)


def grouped_hbars(labels: list[str], series: dict[str, list[float | None]], title: str, xlabel: str) -> str:
    """One row per label (e.g. a class), one bar per series (e.g. teacher, twin, float, int8), legend below."""
    if not labels or not series:
        return no_data(title)
    k = len(series)
    fig, (ax,) = _fig(1.0 + 0.11 * k * len(labels))
    h = 0.8 / k
    ys = list(range(len(labels)))[::-1]
    for j, (name, vals) in enumerate(series.items()):
        ax.barh([y + 0.4 - h * (j + 0.5) for y in ys], [v if v is not None else 0.0 for v in vals], height=h,
                color=COLORS[j % len(COLORS)], label=name)
    ax.set_yticks(ys, labels)
    ax.set_xlim(0, 105)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(k, 4), frameon=False)
    return to_svg(fig, title)


def confusion(matrix: list[list[int]], names: list[str], title: str) -> str:
    """Rows: true class, columns: predicted class; cells coloured by the share of their row, counts written in
    cells while there are at most 12 classes (past that the colours alone, so no text crowds)."""
    k = len(matrix)
    if not k:
        return no_data(title)
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    side = min(max(2.6, 0.42 * k + 1.6), WIDTH_IN)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(side + 1.4, side))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    show = k <= 12
    ticks = list(range(k)) if k <= 30 else list(range(0, k, math.ceil(k / 30)))
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90)
    ax.set_yticks(ticks, [names[i] for i in ticks])
    if show:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7 if k > 8 else 8,
                            color="white" if share[i, j] > 0.6 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    return to_svg(fig, title)


def search_costs(candidates: list[dict], limits: dict[str, float | None], title: str = "Student search") -> str:
    """candidates: {arch, params, flash_bytes (file + tokenizer tables), ram_bytes, macs, fits, chosen}; limits:
    cost key -> budget limit or None. One panel per cost (log x): each candidate at (cost, parameters), the budget as
    a dashed line, the chosen one a star, candidates that do not fit hollow grey crosses."""
    if not candidates:
        return no_data(title)
    keys = [("flash_bytes", "flash bytes"), ("ram_bytes", "RAM bytes"), ("macs", "MACs")]
    fig, axes = _fig(3.0, len(keys))
    for ax, (key, name) in zip(axes, keys):
        fit = [c for c in candidates if c["fits"] and not c.get("chosen")]
        bad = [c for c in candidates if not c["fits"]]
        chosen = [c for c in candidates if c.get("chosen")]
        if fit:
            ax.scatter([c[key] for c in fit], [c["params"] for c in fit], s=18, color=COLORS[0], label="fits")
        if bad:
            ax.scatter([c[key] for c in bad], [c["params"] for c in bad], s=18, marker="x", color="#999999",
                       label="exceeds a limit")
        ax.scatter([c[key] for c in chosen], [c["params"] for c in chosen], s=110, marker="*", color=COLORS[3],
                   label="chosen", zorder=3)
        if limits.get(key):
            ax.axvline(limits[key], color=COLORS[3], ls="--", lw=1.2, label="budget")
        xs = [c[key] for c in candidates] + ([limits[key]] if limits.get(key) else [])
        log_axis(ax, "x", xs, numticks=4)
        log_axis(ax, "y", [c["params"] for c in candidates], numticks=5)
        ax.set_xlabel(name)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("parameters")
    for ax in axes[1:]:
        ax.tick_params(labelleft=False)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # a budget line may exist only on a later panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, -0.1), ncol=len(labels), frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return to_svg(fig, title)
