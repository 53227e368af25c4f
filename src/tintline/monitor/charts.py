"""Inline SVG bar charts and histograms for HTML reports (no plotting dependency); see also html.line_plot."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .html import PALETTE, esc


def bar_chart(items: Sequence[tuple[str, float] | tuple[str, float, float]], title: str, width: int = 560,
              bar: int = 16, labels: tuple[str, str] = ("", ""), label_width: int = 170) -> str:
    """Horizontal bars, one row per ``(label, value)``; with ``(label, value, inner)`` a second, darker bar of
    ``inner`` is drawn inside the first (e.g. images before and after cleaning), named by ``labels``."""
    if not items:
        return f"<p class='note'>{esc(title)}: no data</p>"
    top = max(max(it[1] for it in items), 1e-12)
    L, R, T = label_width, 90, 24
    height = T + len(items) * (bar + 4) + 8
    scale = (width - L - R) / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
             f'<text x="0" y="14" font-weight="bold">{esc(title)}</text>']
    if labels[0] or labels[1]:
        parts.append(f'<text x="{width - R}" y="14" text-anchor="end"><tspan fill="#9ecae1">&#9632; {esc(labels[0])}'
                     f'</tspan> <tspan fill="{PALETTE[0]}">&#9632; {esc(labels[1])}</tspan></text>')
    for i, it in enumerate(items):
        y = T + i * (bar + 4)
        parts.append(f'<text x="{L - 6}" y="{y + bar - 4}" text-anchor="end">{esc(str(it[0])[:28])}</text>')
        outer = PALETTE[0] if len(it) == 2 else "#9ecae1"
        parts.append(f'<rect x="{L}" y="{y}" width="{max(it[1] * scale, 0.5):.1f}" height="{bar}" fill="{outer}"/>')
        if len(it) == 3:
            parts.append(f'<rect x="{L}" y="{y + 3}" width="{max(it[2] * scale, 0.0):.1f}" height="{bar - 6}"'
                         f' fill="{PALETTE[0]}"/>')
        value = f"{it[1]:g}" if len(it) == 2 else f"{it[2]:g} / {it[1]:g}"
        parts.append(f'<text x="{L + it[1] * scale + 4:.1f}" y="{y + bar - 4}">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(series: dict[str, Sequence[float]], title: str, bins: int = 30, xlabel: str = "",
              lo: float | None = None, hi: float | None = None, log_x: bool = False,
              marker: float | None = None, width: int = 560, height: int = 220,
              colors: Sequence[str] | None = None) -> str:
    """Stacked histogram of one or more named series over the same bins; ``marker`` draws a dashed vertical line
    (e.g. a filter's threshold). ``log_x`` bins in log10 (values <= 0 are left out)."""
    f = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    vals = {k: [f(v) for v in s if math.isfinite(v) and (v > 0 or not log_x)] for k, s in series.items()}
    flat = [v for s in vals.values() for v in s]
    if not flat:
        return f"<p class='note'>{esc(title)}: no data</p>"
    x0 = f(lo) if lo is not None else min(flat)
    x1 = f(hi) if hi is not None else max(flat)
    if x1 <= x0:
        x1 = x0 + 1
    step = (x1 - x0) / bins
    counts = {k: [0] * bins for k in vals}
    for k, s in vals.items():
        for v in s:
            counts[k][min(bins - 1, max(0, int((v - x0) / step)))] += 1
    totals = [sum(c[i] for c in counts.values()) for i in range(bins)]
    top = max(max(totals), 1)
    L, R, T, B = 50, 10, 24, 36
    pw, ph = width - L - R, height - T - B
    colors = list(colors or PALETTE)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
             f'<text x="{L}" y="14" font-weight="bold">{esc(title)}</text>',
             f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
             f'<text x="{L - 4}" y="{T + 8}" text-anchor="end">{top}</text>',
             f'<text x="{L - 4}" y="{height - B}" text-anchor="end">0</text>']
    bw = pw / bins
    for i in range(bins):
        y = height - B
        for j, k in enumerate(counts):
            c = counts[k][i]
            if not c:
                continue
            h = c / top * ph
            y -= h
            parts.append(f'<rect x="{L + i * bw:.1f}" y="{y:.1f}" width="{max(bw - 1, 0.5):.1f}" height="{h:.1f}"'
                         f' fill="{colors[j % len(colors)]}"><title>{esc(k)}: {c}</title></rect>')
    lab = (lambda v: f"{10 ** v:.3g}") if log_x else (lambda v: f"{v:.3g}")
    parts += [f'<text x="{L}" y="{height - B + 14}">{lab(x0)}</text>',
              f'<text x="{width - R}" y="{height - B + 14}" text-anchor="end">{lab(x1)}</text>',
              f'<text x="{L + pw / 2}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>']
    if marker is not None and (marker > 0 or not log_x):
        mx = L + (f(marker) - x0) / (x1 - x0) * pw
        if L <= mx <= L + pw:
            parts.append(f'<line x1="{mx:.1f}" y1="{T}" x2="{mx:.1f}" y2="{height - B}" stroke="#d62728"'
                         f' stroke-dasharray="4,3"/><text x="{mx + 3:.1f}" y="{height - B - 6}" fill="#d62728">'
                         f'threshold {marker:g}</text>')
    if len(counts) > 1:
        x = L + 8
        for j, k in enumerate(counts):
            parts.append(f'<text x="{x}" y="{T + 14}" fill="{colors[j % len(colors)]}">&#9632; {esc(k)}</text>')
            x += 7 * len(k) + 24
    parts.append("</svg>")
    return "".join(parts)


def color_bars(values: Sequence[float], fills: Sequence[str], title: str, xlabel: str = "", width: int = 560,
               height: int = 160) -> str:
    """Vertical bars with one fill color each (e.g. a hue histogram drawn in its hues)."""
    if not values:
        return f"<p class='note'>{esc(title)}: no data</p>"
    top = max(max(values), 1e-12)
    L, R, T, B = 10, 10, 24, 22
    bw = (width - L - R) / len(values)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
             f'<text x="{L}" y="14" font-weight="bold">{esc(title)}</text>']
    for i, (v, c) in enumerate(zip(values, fills, strict=True)):
        h = v / top * (height - T - B)
        parts.append(f'<rect x="{L + i * bw:.1f}" y="{height - B - h:.1f}" width="{max(bw - 1, 0.5):.1f}"'
                     f' height="{h:.1f}" fill="{c}"/>')
    parts.append(f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text></svg>')
    return "".join(parts)
