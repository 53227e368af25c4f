"""Hints the server gets besides the JSON: a hint image, and a cost check before drawing any hints.

A hint image is a transparent PNG with colored marks: pixels with alpha >= 128 are hint pixels of their own RGB
color. Each horizontal run of one color on one row becomes a 1-pixel-wide stroke, which ``render_hints`` draws back
exactly (at scale 1) without a circle per pixel.

:func:`check_hint_cost` bounds the work of drawing hints: 10,000 valid dots of radius 1000 take ~20 s to render on a
2000x2000 image, which would hold the single inference thread far past any time limit.
"""

from __future__ import annotations

import math

from ..data.hints import HintError, hint_image_to_hints  # noqa: F401  (re-exported for the app)

MAX_COST = 32  # hints may paint at most this many times the image's area (dots and strokes overlap freely)


HintImageError = HintError  # one error type for every malformed hint, wherever it comes from


def check_hint_cost(hints: dict, width: int, height: int, max_cost: float = MAX_COST) -> None:
    """Raise :class:`HintImageError` when drawing ``hints`` (validated form) would paint more than ``max_cost``
    times the image area (at least 10 M pixels). Each item's estimate is clipped to the image area."""
    area = float(width * height)
    budget = max(max_cost * area, 1e7)
    total = 0.0
    for p in hints["points"]:
        total += min(area, math.pi * p["radius"] ** 2 + 1)
    for s in hints["strokes"]:
        w = s["width"]
        cap = math.pi * w * w / 4 + 1  # cv2 draws round joints
        pts = s["points"]
        total += min(area, cap)
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
            total += min(area, float(math.hypot(x1 - x0, y1 - y0)) * w + cap)
        if total > budget:
            break
    if total > budget:
        raise HintImageError(f"hints: too much to draw (the dots and strokes would paint over {total / area:.0f}x "
                             f"the image area; the limit is {max_cost:g}x): use fewer or smaller hints")


def merge_hints(a: dict | None, b: dict | None) -> dict | None:
    if a is None or b is None:
        return a if b is None else b
    return {"points": a["points"] + b["points"], "strokes": a["strokes"] + b["strokes"]}
