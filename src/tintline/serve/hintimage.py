"""Hints the server gets besides the JSON: a hint image, and a cost check before drawing any hints.

A hint image is a transparent PNG with colored marks: pixels with alpha >= 128 are hint pixels of their own RGB
color. Each horizontal run of one color on one row becomes a 1-pixel-wide stroke, which ``render_hints`` draws back
exactly (at scale 1) without a circle per pixel.

:func:`check_hint_cost` bounds the work of drawing hints: 10,000 valid dots of radius 1000 take ~20 s to render on a
2000x2000 image, which would hold the single inference thread far past any time limit.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ALPHA_THRESHOLD = 128
MAX_RUNS = 100_000  # a hint image with more color runs than this is noise, not hints


MAX_COST = 32  # hints may paint at most this many times the image's area (dots and strokes overlap freely)


class HintImageError(ValueError):
    pass


def check_hint_cost(hints: dict, width: int, height: int, max_cost: float = MAX_COST) -> None:
    """Raise :class:`HintImageError` when drawing ``hints`` (validated form) would paint more than ``max_cost``
    times the image area (at least 10 M pixels). Each item's estimate is clipped to the image area."""
    area = float(width * height)
    budget = max(max_cost * area, 1e7)
    total = 0.0
    for p in hints["points"]:
        total += min(area, np.pi * p["radius"] ** 2 + 1)
    for s in hints["strokes"]:
        w = s["width"]
        cap = np.pi * w * w / 4 + 1  # cv2 draws round joints
        pts = s["points"]
        total += min(area, cap)
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
            total += min(area, float(np.hypot(x1 - x0, y1 - y0)) * w + cap)
        if total > budget:
            break
    if total > budget:
        raise HintImageError(f"hints: too much to draw (the dots and strokes would paint over {total / area:.0f}x "
                             f"the image area; the limit is {max_cost:g}x): use fewer or smaller hints")


def hint_image_to_hints(img: Image.Image, size: tuple[int, int], max_runs: int = MAX_RUNS) -> dict:
    """RGBA hint image of ``size`` (W, H) -> validated hints {"points": [], "strokes": [...]}."""
    if img.size != size:
        raise HintImageError(f"hint_image is {img.size[0]}x{img.size[1]}, the image is {size[0]}x{size[1]}: "
                             "they must have the same size")
    arr = np.asarray(img.convert("RGBA"))  # (H, W, 4)
    mask = arr[..., 3] >= ALPHA_THRESHOLD
    if not mask.any():
        return {"points": [], "strokes": []}
    rgb = arr[..., :3].astype(np.int32)
    key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    key = np.where(mask, key, -1)  # (H, W): -1 = no hint
    # a run starts where the key changes along the row (or at the row start); pad each row with a -1 sentinel
    h, w = key.shape
    padded = np.full((h, w + 2), -1, np.int64)
    padded[:, 1:-1] = key
    change = padded[:, 1:] != padded[:, :-1]  # (H, W+1): True at x where key[x] differs from key[x-1]
    ys, xs = np.nonzero(change)
    # consecutive change points on a row delimit segments [xs[i], xs[i+1]); keep those whose key is not -1
    same_row = ys[:-1] == ys[1:]
    seg_y, seg_x0, seg_x1 = ys[:-1][same_row], xs[:-1][same_row], xs[1:][same_row]
    seg_key = key[seg_y, seg_x0]
    keep = seg_key >= 0
    if int(keep.sum()) > max_runs:
        raise HintImageError(f"hint_image has more than {max_runs} color runs; use fewer, flat-colored marks")
    starts_y, starts_x, ends_x, keys = seg_y[keep], seg_x0[keep], seg_x1[keep] - 1, seg_key[keep]
    strokes = [
        {"points": [(float(x0), float(y)), (float(x1), float(y))],
         "color": (int(k >> 16) & 255, int(k >> 8) & 255, int(k) & 255), "width": 1.0}
        for y, x0, x1, k in zip(starts_y.tolist(), starts_x.tolist(), ends_x.tolist(), keys.tolist(), strict=True)
    ]
    return {"points": [], "strokes": strokes}


def merge_hints(a: dict | None, b: dict | None) -> dict | None:
    if a is None or b is None:
        return a if b is None else b
    return {"points": a["points"] + b["points"], "strokes": a["strokes"] + b["strokes"]}
