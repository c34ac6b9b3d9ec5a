"""Minimal inline-SVG charts, so report.html is one self-contained file with no plotting dependency."""

from __future__ import annotations

import html
import math

W, H, PAD = 640, 360, 60
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def _esc(s) -> str:
    return html.escape(str(s))


def scatter(points: list[dict], x_label: str, y_label: str, title: str, log_x: bool = True) -> str:
    """points: {label, x, y}. Log x axis by default (latencies span orders of magnitude)."""
    pts = [p for p in points if p.get("x") and p.get("y") is not None]
    if not pts:
        return f"<p><em>{_esc(title)}: no data</em></p>"
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    xs, ys = [fx(p["x"]) for p in pts], [p["y"] for p in pts]
    x0, x1 = min(xs) - 0.3, max(xs) + 0.3
    y0, y1 = min(ys) - 1.0, max(ys) + 1.0
    sx = lambda v: PAD + (v - x0) / (x1 - x0) * (W - 2 * PAD)  # noqa: E731
    sy = lambda v: H - PAD - (v - y0) / (y1 - y0) * (H - 2 * PAD)  # noqa: E731
    out = [f'<svg class="plot" role="img" aria-label="{_esc(title)}" width="{W}" height="{H}" '
           f'xmlns="http://www.w3.org/2000/svg" style="background:#fff">',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{_esc(title)}</text>',
           f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#333"/>',
           f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#333"/>',
           f'<text x="{W / 2}" y="{H - 15}" text-anchor="middle" font-size="12">{_esc(x_label)}</text>',
           f'<text x="16" y="{H / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 {H / 2})">'
           f'{_esc(y_label)}</text>']
    for t in range(math.floor(x0), math.ceil(x1) + 1) if log_x else []:
        if x0 <= t <= x1:
            out.append(f'<text x="{sx(t):.1f}" y="{H - PAD + 16}" text-anchor="middle" font-size="11">{10 ** t:g}</text>')
    for k in range(5):
        v = y0 + k * (y1 - y0) / 4
        out.append(f'<text x="{PAD - 6}" y="{sy(v) + 4:.1f}" text-anchor="end" font-size="11">{v:.1f}</text>')
    for i, (p, x, y) in enumerate(zip(pts, xs, ys)):
        c = COLORS[i % len(COLORS)]
        out.append(f'<circle class="point" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="6" fill="{c}"><title>'
                   f'{_esc(p["label"])}: {p["y"]:.2f}% at {p["x"]:.4g}</title></circle>')
        out.append(f'<text x="{sx(x) + 9:.1f}" y="{sy(y) - 8:.1f}" font-size="11" fill="{c}">{_esc(p["label"])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def hbars(items: list[dict], title: str, unit: str) -> str:
    """items: {label, value, limit (optional)}; a red tick marks the limit."""
    if not items:
        return f"<p><em>{_esc(title)}: no data</em></p>"
    top = max(max(i["value"] for i in items), max((i.get("limit") or 0) for i in items)) or 1.0
    row = 26
    h = 50 + row * len(items)
    label_w = 200
    span = W - label_w - 90
    out = [f'<svg class="plot" role="img" aria-label="{_esc(title)}" width="{W}" height="{h}" '
           f'xmlns="http://www.w3.org/2000/svg" style="background:#fff">',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">{_esc(title)}</text>']
    for k, it in enumerate(items):
        y = 36 + k * row
        w = max(1.0, it["value"] / top * span)
        over = it.get("limit") is not None and it["value"] > it["limit"]
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="11">{_esc(it["label"])}</text>')
        out.append(f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="18" '
                   f'fill="{"#d62728" if over else "#1f77b4"}"/>')
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="11">{it["value"]:,.4g} {_esc(unit)}</text>')
        if it.get("limit"):
            lx = label_w + it["limit"] / top * span
            out.append(f'<line x1="{lx:.1f}" y1="{y - 2}" x2="{lx:.1f}" y2="{y + 20}" stroke="#d62728" stroke-width="2">'
                       f'<title>limit {it["limit"]:,.4g} {_esc(unit)}</title></line>')
    out.append("</svg>")
    return "\n".join(out)
