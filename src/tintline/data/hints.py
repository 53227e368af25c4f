"""Color hints: the JSON format shared by CLI, API and web page, rendering, and the training-time simulator.

Hints file (coordinates in input-image pixels)::

    {"points":  [{"x": 10, "y": 20, "color": "#ff8800", "radius": 3}],
     "strokes": [{"points": [[x, y], ...], "color": "#rrggbb", "width": 4}]}

Rendered hints are two arrays the network takes as input: colors (H, W, 3) uint8 and a mask (H, W) bool.
A hint image (a transparent PNG of the input's size with colored marks; pixels with alpha >= 128 are hints) converts
to the same structure with :func:`hint_image_to_hints`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..config import HintConfig
from ..errors import UserError
from ..regions import label_regions

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
MAX_HINT_ITEMS = 10_000


class HintError(UserError):
    """A hints file or object is malformed; the message says where."""


def parse_color(value: Any, where: str) -> tuple[int, int, int]:
    if not isinstance(value, str) or not _HEX.match(value):
        raise HintError(f"{where}: color must be '#rrggbb', got {value!r}")
    h = _HEX.match(value).group(1)  # type: ignore[union-attr]
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _num(value: Any, where: str, lo: float = -1e7, hi: float = 1e7) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo <= value <= hi):
        raise HintError(f"{where}: expected a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def validate_hints(obj: Any) -> dict:
    """Check the structure; returns a normalized dict (colors as RGB tuples). Raises :class:`HintError`."""
    if not isinstance(obj, dict):
        raise HintError("hints must be a JSON object with 'points' and/or 'strokes'")
    unknown = set(obj) - {"points", "strokes"}
    if unknown:
        raise HintError(f"hints: unknown key(s) {', '.join(sorted(unknown))}")
    points, strokes = obj.get("points", []), obj.get("strokes", [])
    if not isinstance(points, list) or not isinstance(strokes, list):
        raise HintError("hints: 'points' and 'strokes' must be lists")
    if len(points) + len(strokes) > MAX_HINT_ITEMS:
        raise HintError(f"hints: more than {MAX_HINT_ITEMS} items")
    out: dict = {"points": [], "strokes": []}
    for i, p in enumerate(points):
        w = f"points[{i}]"
        if not isinstance(p, dict):
            raise HintError(f"{w}: must be an object")
        out["points"].append({
            "x": _num(p.get("x"), f"{w}.x"),
            "y": _num(p.get("y"), f"{w}.y"),
            "color": parse_color(p.get("color"), f"{w}.color"),
            "radius": _num(p.get("radius", 3), f"{w}.radius", 0.5, 1000),
        })
    for i, s in enumerate(strokes):
        w = f"strokes[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("points"), list) or not s["points"]:
            raise HintError(f"{w}: must be an object with a non-empty 'points' list")
        if len(s["points"]) > MAX_HINT_ITEMS:
            raise HintError(f"{w}: more than {MAX_HINT_ITEMS} points")
        pts = []
        for j, xy in enumerate(s["points"]):
            if not isinstance(xy, (list, tuple)) or len(xy) != 2:
                raise HintError(f"{w}.points[{j}]: must be [x, y]")
            pts.append((_num(xy[0], f"{w}.points[{j}][0]"), _num(xy[1], f"{w}.points[{j}][1]")))
        out["strokes"].append({
            "points": pts,
            "color": parse_color(s.get("color"), f"{w}.color"),
            "width": _num(s.get("width", 4), f"{w}.width", 0.5, 1000),
        })
    return out


def load_hints(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise HintError(f"hints file not found: {p}")
    try:
        obj = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HintError(f"{p}: not valid JSON ({e})") from e
    return validate_hints(obj)


def _draw_items(hints: dict, scale: float, draw) -> None:
    """Call ``draw(kind, index, geometry, thickness)`` for every mark, in file order, in grid pixels.

    kind "circle": geometry is the centre (x, y); kind "polyline": an (N, 1, 2) int32 array."""
    k = 0
    for p in hints["points"]:
        draw("circle", k, (round(p["x"] * scale), round(p["y"] * scale)), max(1, round(p["radius"] * scale)))
        k += 1
    for s in hints["strokes"]:
        pts = np.array([[round(x * scale), round(y * scale)] for x, y in s["points"]], np.int32).reshape(-1, 1, 2)
        t = max(1, round(s["width"] * scale))
        if len(pts) == 1:
            draw("circle", k, tuple(pts[0, 0]), max(1, t // 2))
        else:
            draw("polyline", k, pts, t)
        k += 1


def _draw(img: np.ndarray, kind: str, geometry, thickness: int, value) -> None:
    if kind == "circle":
        cv2.circle(img, geometry, thickness, value, -1)
    else:
        cv2.polylines(img, [geometry], False, value, thickness)


def render_hints(hints: dict, height: int, width: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Validated hints -> (colors (H, W, 3) uint8, mask (H, W) bool). ``scale`` maps input pixels to this grid."""
    colors = np.zeros((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.uint8)
    items = [*hints["points"], *hints["strokes"]]

    def draw(kind, k, geometry, thickness):
        _draw(colors, kind, geometry, thickness, items[k]["color"])
        _draw(mask, kind, geometry, thickness, 1)

    _draw_items(hints, scale, draw)
    return colors, mask.astype(bool)


def render_hint_items(hints: dict, height: int, width: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Validated hints -> (ids (H, W) int32: 1 + the mark's index, 0 = no mark; colors (m + 1, 3) uint8 per id).

    Which mark each pixel belongs to, for exact hints (a later mark covers an earlier one, as when drawing)."""
    ids = np.zeros((height, width), np.int32)
    items = [*hints["points"], *hints["strokes"]]
    _draw_items(hints, scale, lambda kind, k, geometry, thickness: _draw(ids, kind, geometry, thickness, k + 1))
    colors = np.zeros((len(items) + 1, 3), np.uint8)
    for k, it in enumerate(items):
        colors[k + 1] = it["color"]
    return ids, colors


def simulate_hints(
    color: np.ndarray, line: np.ndarray, cfg: HintConfig, rng: np.random.Generator, count: int | None = None,
    drop: float = 0.0,
) -> dict:
    """Marks of the true local color, as a user would place them, in the hints-JSON structure (validated form).

    color: (H, W, 3) uint8 target; line: (H, W) uint8 line art. With probability ``cfg.p_none`` (unless ``count``
    is given) there are no hints at all: that is what lets one model colorize with and without hints. Otherwise
    ``count`` marks (geometric, mean ``cfg.mean_count``), each dropped with probability ``drop``. A mark is a dot
    or, with probability ``cfg.p_stroke``, a short stroke that stays inside its region; it lies inside a closed
    region of at least ``cfg.min_region`` pixels (so large regions get most marks), far enough from the lines not
    to cross them, and takes the 3x3 mean color at its start plus a little noise (a user picks what they see).
    """
    if count is None:
        if rng.random() < cfg.p_none:
            return {"points": [], "strokes": []}
        if rng.random() < cfg.p_region:
            # the evaluation protocols' hints: a dot in every closed region, or in the K largest, each region
            # kept with a random probability (hints dropped per region, not per mark)
            labels, n = label_regions(line)
            if rng.random() < 0.5:
                keep = float(rng.uniform(0.05, 1.0))
                return region_dots(color, labels, n, cfg.min_region, select=lambda k: rng.random(k) < keep)
            return region_dots(color, labels, n, cfg.min_region, largest=int(rng.geometric(0.25)))
        count = min(cfg.max_count, int(rng.geometric(1.0 / cfg.mean_count)))  # >= 1, mean ~ mean_count
        if drop > 0:
            count = int(rng.binomial(count, 1.0 - drop))
    empty: dict = {"points": [], "strokes": []}
    if count == 0:
        return empty
    labels, n = label_regions(line)
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    big = areas >= cfg.min_region
    big[0] = False
    # distance to the nearest ink pixel: a dot of radius r needs distance > r to stay inside its region
    dist = cv2.distanceTransform((labels > 0).astype(np.uint8), cv2.DIST_L2, 3)
    candidates = big[labels] & (dist > cfg.radius[0])
    ys, xs = np.nonzero(candidates)
    if len(ys) == 0:
        return empty
    h, w = line.shape
    idx = rng.choice(len(ys), size=min(count, len(ys)), replace=False)
    out: dict = {"points": [], "strokes": []}
    for i in idx:
        y, x = int(ys[i]), int(xs[i])
        patch = color[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].reshape(-1, 3).mean(axis=0)
        noisy = np.clip(patch + rng.normal(0, cfg.color_noise, 3), 0, 255) if cfg.color_noise else patch
        c = tuple(int(v + 0.5) for v in noisy)
        r = int(min(rng.integers(cfg.radius[0], cfg.radius[1] + 1), max(1, int(dist[y, x]) - 1)))
        if rng.random() < cfg.p_stroke:
            # a short wobbly stroke from (x, y): steps that stay in the same region and away from the lines
            pts = [(float(x), float(y))]
            length = rng.uniform(*cfg.stroke_length)
            angle = rng.uniform(0, 2 * np.pi)
            cx, cy, walked = float(x), float(y), 0.0
            while walked < length:
                angle += rng.normal(0, 0.5)
                nx, ny = cx + 4 * np.cos(angle), cy + 4 * np.sin(angle)
                ix, iy = int(round(nx)), int(round(ny))
                if not (0 <= ix < w and 0 <= iy < h) or labels[iy, ix] != labels[y, x] or dist[iy, ix] <= r:
                    break
                pts.append((nx, ny))
                cx, cy, walked = nx, ny, walked + 4
            if len(pts) > 1:
                out["strokes"].append({"points": pts, "color": c, "width": float(max(1, r))})
                continue
        out["points"].append({"x": x, "y": y, "color": c, "radius": r})
    return out


def region_dots(color: np.ndarray, labels: np.ndarray, n: int, min_area: int = 48, largest: int | None = None,
                select=None, radius: int = 3, skip_border: bool = True) -> dict:
    """One dot per closed region at its most interior point, in the region's true median color.

    color (H, W, 3) uint8 truth; labels (H, W) int32 from :func:`~tintline.regions.label_regions` (0 = ink).
    Regions of at least ``min_area`` pixels that do not touch the border (unless ``skip_border`` is False); with
    ``largest`` only the K largest of them; ``select(k) -> bool mask`` picks a subset of the k candidates (random
    dropping in training). The dot's radius is ``radius`` or less, so it stays off the lines. This is the
    evaluation's ``per-region`` / ``largest:K`` protocol and part of the training hints.
    """
    out: dict = {"points": [], "strokes": []}
    if n == 0:
        return out
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    ok = areas >= min_area
    ok[0] = False
    if skip_border:
        ok[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = False
    cand = np.flatnonzero(ok)
    if largest is not None:
        cand = cand[np.argsort(-areas[cand], kind="stable")[:largest]]
    if select is not None and len(cand):
        cand = cand[np.asarray(select(len(cand)), bool)]
    if len(cand) == 0:
        return out
    dist = cv2.distanceTransform((labels > 0).astype(np.uint8), cv2.DIST_L2, 5)
    flat_l, flat_d = labels.ravel(), dist.ravel()
    sel = np.isin(flat_l, cand)
    idx = np.flatnonzero(sel)
    # per region: its pixels sorted by label, then by decreasing distance -> the first of each is the most interior
    order = idx[np.lexsort((-flat_d[idx], flat_l[idx]))]
    sorted_l = flat_l[order]
    starts = np.flatnonzero(np.r_[True, sorted_l[1:] != sorted_l[:-1]])
    ends = np.r_[starts[1:], len(order)]
    px = color.reshape(-1, 3)
    w = labels.shape[1]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        top = int(order[a])
        med = np.median(px[order[a:b]], axis=0)
        r = int(max(1, min(radius, int(flat_d[top]) - 1)))
        out["points"].append({"x": float(top % w), "y": float(top // w),
                              "color": tuple(int(v + 0.5) for v in med), "radius": float(r)})
    return out


def scale_hints(hints: dict, scale: float) -> dict:
    """Validated hints for an image ``scale`` times the size: positions (pixel centres), radii and widths."""
    def pos(v: float) -> float:
        return v * scale + (scale - 1) / 2

    return {"points": [{**p, "x": pos(p["x"]), "y": pos(p["y"]), "radius": p["radius"] * scale}
                       for p in hints.get("points", [])],
            "strokes": [{**s, "points": [[pos(x), pos(y)] for x, y in s["points"]], "width": s["width"] * scale}
                        for s in hints.get("strokes", [])]}


def hints_to_json(hints: dict) -> dict:
    """Validated form -> the JSON file form (colors as '#rrggbb')."""

    def hexc(c: tuple[int, int, int]) -> str:
        return "#{:02x}{:02x}{:02x}".format(*c)

    return {
        "points": [{**p, "color": hexc(p["color"])} for p in hints["points"]],
        "strokes": [{**s, "points": [list(xy) for xy in s["points"]], "color": hexc(s["color"])}
                    for s in hints["strokes"]],
    }


ALPHA_THRESHOLD = 128
MAX_RUNS = 100_000  # a hint image with more color runs than this is noise, not hints


def hint_image_to_hints(img: Image.Image, size: tuple[int, int], max_runs: int = MAX_RUNS) -> dict:
    """RGBA hint image of ``size`` (W, H) -> validated hints {"points": [], "strokes": [...]}."""
    if img.size != size:
        raise HintError(f"hint_image is {img.size[0]}x{img.size[1]}, the image is {size[0]}x{size[1]}: "
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
        raise HintError(f"hint_image has more than {max_runs} color runs; use fewer, flat-colored marks")
    starts_y, starts_x, ends_x, keys = seg_y[keep], seg_x0[keep], seg_x1[keep] - 1, seg_key[keep]
    strokes = [
        {"points": [(float(x0), float(y)), (float(x1), float(y))],
         "color": (int(k >> 16) & 255, int(k >> 8) & 255, int(k) & 255), "width": 1.0}
        for y, x0, x1, k in zip(starts_y.tolist(), starts_x.tolist(), ends_x.tolist(), keys.tolist(), strict=True)
    ]
    return {"points": [], "strokes": strokes}
