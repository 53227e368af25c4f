"""Tiny HTML report helpers: a page, tables, images and inline SVG line plots (no plotting dependency)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.grid { max-width: 100%; image-rendering: auto; border: 1px solid #ddd; }
.note { color: #555; font-size: 0.92em; } figure { margin: 0.8em 0; } figcaption { color: #555; }
"""


def esc(x: object) -> str:
    return html.escape(str(x))


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f'<td class="num">{v:.3f}</td>'
        if isinstance(v, int):
            return f'<td class="num">{v}</td>'
        return f"<td>{esc(v)}</td>"

    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(src: str, caption: str) -> str:
    img = f'<img class="grid" src="{esc(src)}" alt="{esc(caption)}">'
    return f"<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>"


PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def line_plot(series: Mapping[str, Sequence[tuple[float, float]]], title: str, xlabel: str = "step",
              width: int = 560, height: int = 260, log_y: bool = False) -> str:
    """Inline SVG with one polyline per series, axes with min/max labels, and a legend."""
    import math

    pts = [(x, y) for s in series.values() for x, y in s if math.isfinite(y) and (y > 0 or not log_y)]
    if not pts:
        return f"<p class='note'>{esc(title)}: no data</p>"
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xs, ys = [p[0] for p in pts], [f(p[1]) for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    L, R, T, B = 60, 10, 24, 36  # margins
    def sx(x: float) -> float:
        return L + (x - x0) / (x1 - x0) * (width - L - R)
    def sy(y: float) -> float:
        return height - B - (f(y) - y0) / (y1 - y0) * (height - T - B)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
             f'<text x="{L}" y="14" font-weight="bold">{esc(title)}</text>',
             f'<rect x="{L}" y="{T}" width="{width - L - R}" height="{height - T - B}" fill="none" stroke="#999"/>']
    lab = (lambda v: f"{10 ** v:.3g}") if log_y else (lambda v: f"{v:.3g}")
    parts += [f'<text x="{L - 4}" y="{T + 8}" text-anchor="end">{lab(y1)}</text>',
              f'<text x="{L - 4}" y="{height - B}" text-anchor="end">{lab(y0)}</text>',
              f'<text x="{L}" y="{height - B + 14}">{x0:.4g}</text>',
              f'<text x="{width - R}" y="{height - B + 14}" text-anchor="end">{x1:.4g}</text>',
              f'<text x="{(L + width - R) / 2}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>']
    for i, (name, s) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        good = [(x, y) for x, y in s if math.isfinite(y) and (y > 0 or not log_y)]
        if not good:
            continue
        poly = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        parts.append(f'<polyline points="{poly}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        if len(good) == 1:
            parts.append(f'<circle cx="{sx(good[0][0]):.1f}" cy="{sy(good[0][1]):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<text x="{L + 8 + 150 * i}" y="{T + 14}" fill="{color}">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_page(path: Path, title: str, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style>"
        f"</head><body><h1>{esc(title)}</h1>{body}</body></html>"
    )
    return path
