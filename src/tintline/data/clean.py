"""Per-image measurements and the filters that use them.

:func:`measure_all` decodes nothing itself: it takes one decoded image and returns the numbers the filters need
(:class:`Measures`). Filters are plain functions of those numbers and the :class:`DataConfig`, so changing a threshold
and rebuilding re-decides every image without decoding anything again. When a new measurement is added,
:data:`MEASURE_VERSION` is bumped and only images measured by an older version are decoded again.

Measurements (all on the image composited on white; "paper" is white or transparent):

* size, colorfulness (share of content pixels with chroma), content share of the canvas, 128-bit dHash;
* subject box: the bounding box of non-paper pixels, in source pixels (aspect ratio and "subject too small");
* text share: the share of dark ink that sits in text-like rows of character-sized components;
* badge: a score for Inkscape's "Linked Image Not Found" placeholder (a filled red square with a white X);
* ink density and fragments of a reference line-art extraction of the subject at :data:`MEASURE_SIZE` ("entangled").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import cv2
import numpy as np

from ..config import DataConfig
from .lineart import REFERENCE_XDOG, extract_lineart

WHITE_LEVEL = 245  # a composited pixel whose channels are all >= this counts as blank paper
BOX_LEVEL = 235  # ... and for the subject's bounding box, a little looser: JPEG ringing on the paper stays outside
MEASURE_VERSION = 2  # bump when a measurement is added or changes; older rows are re-measured at the next build
MEASURE_SIZE = 256  # side of the letterboxed subject for the line-art measurements (independent of the pair size)
TEXT_SIDE = 512  # the text and badge measurements look at the subject scaled to at most this long side

# 128-bit dHashes (see dhash128) of whole-image placeholders seen in real corpora. The badge detector finds the
# placeholder anywhere in a drawing; this list also catches re-rendered copies whose colors were changed.
PLACEHOLDER_HASHES: tuple[str, ...] = (
    "8c94948e82b6a667c3183c185e423cb0",  # Inkscape "Linked Image Not Found" badge, alone on the page (openclipart)
)


@dataclass
class Measures:
    width: int
    height: int
    colorfulness: float  # share of content pixels with chroma above the threshold
    content_frac: float  # share of the canvas that is not blank
    dhash: str  # 32 hex digits (128 bits)
    subject_w: int = 0  # bounding box of the content, source pixels (0: not measured)
    subject_h: int = 0
    # the detailed measurements (None: not measured, because a cheap filter already rejects the image)
    text_frac: float | None = None  # share of the drawing in text-like rows of character-sized components
    badge: float | None = None  # 1.0 when a placeholder badge (red square with a white X) is found, else 0..1
    ink: float | None = None  # share of the subject box that is ink in the reference line art
    fragments: float | None = None  # ink connected components per 10,000 pixels of subject box (reference)
    alpha_frac: float = 0.0  # share of the source's pixels that are (partly) transparent
    color_sig: str | None = None  # 8x8 CIELAB thumbnail of the subject (192 bytes as hex), for near-duplicates
    clf_score: float | None = None  # learned filter's score (classifier.py), set by `tintline data classify`

    # manifest column for each field (same names)
    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_row(cls, row: Mapping) -> Measures:
        vals = {}
        for f in fields(cls):
            v = row[f.name]
            vals[f.name] = v if v is not None or f.type not in ("int", "float") else 0
        return cls(**vals)

    @property
    def subject_frac(self) -> float:
        """Share of the canvas covered by the subject's bounding box."""
        return self.subject_w * self.subject_h / max(1, self.width * self.height)

    @property
    def aspect(self) -> float:
        """Long side over short side of the subject box (of the canvas when the subject was not measured)."""
        w, h = (self.subject_w, self.subject_h) if self.subject_w and self.subject_h else (self.width, self.height)
        return max(w, h) / max(1, min(w, h))


# ------------------------------------------------------------------------------------------- geometry


def content_box(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the pixels darker than :data:`BOX_LEVEL` in some channel, or None when there are none."""
    h, w = rgb.shape[:2]
    flat = np.ascontiguousarray(rgb).reshape(h, w * 3)  # one byte per column: OpenCV's fast single-channel paths
    mask = cv2.threshold(flat, BOX_LEVEL - 1, 255, cv2.THRESH_BINARY_INV)[1]
    x, y, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return None
    return y, y + bh, x // 3, (x + bw - 1) // 3 + 1


def letterbox(plane: np.ndarray, box: tuple[int, int, int, int] | None, size: int, fill: int) -> np.ndarray:
    """Crop ``plane`` ((H, W) or (H, W, C)) to ``box``, center it on a square with a little margin filled with
    ``fill`` and resize to ``size``. The same call on the color, the alpha and a given line art keeps them aligned."""
    if box is not None:
        y0, y1, x0, x1 = box
        plane = plane[y0:y1, x0:x1]
    h, w = plane.shape[:2]
    side = int(max(h, w) * 1.06) + 2  # a little paper around the subject
    canvas = np.full((side, side, *plane.shape[2:]), fill, plane.dtype)
    oy, ox = (side - h) // 2, (side - w) // 2
    canvas[oy : oy + h, ox : ox + w] = plane
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(canvas, (size, size), interpolation=interp)


def letterbox_rect(box_hw: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """Where a subject of (h, w) lands inside :func:`letterbox`'s output: (y0, y1, x0, x1)."""
    h, w = box_hw
    side = int(max(h, w) * 1.06) + 2
    s = size / side
    oy, ox = (side - h) // 2, (side - w) // 2
    y0, x0 = int(oy * s), int(ox * s)
    return y0, max(y0 + 1, round((oy + h) * s)), x0, max(x0 + 1, round((ox + w) * s))


def prepare_color(rgb: np.ndarray, size: int) -> np.ndarray:
    """Trim blank margins, letterbox onto a white square and resize: (H, W, 3) -> (size, size, 3) uint8."""
    return letterbox(rgb, content_box(rgb), size, 255)


def _trim(rgb: np.ndarray) -> np.ndarray:
    """Crop to the bounding box of non-blank pixels (the whole image when it is blank)."""
    box = content_box(rgb)
    if box is None:
        return rgb
    y0, y1, x0, x1 = box
    return rgb[y0:y1, x0:x1]


# ---------------------------------------------------------------------------------------- measurements


def dhash128(rgb: np.ndarray) -> str:
    """128-bit difference hash of the trimmed subject: 64 horizontal + 64 vertical neighbour comparisons.

    Trimming first makes the hash describe the drawing rather than its margins (a small subject on a big white
    canvas would otherwise hash to nearly all zeros and "match" every other small subject); both directions
    keep images with only horizontal structure (stripes) from hashing to zero.
    """
    gray = cv2.cvtColor(_trim(rgb), cv2.COLOR_RGB2GRAY)
    h = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    v = cv2.resize(gray, (8, 9), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = np.concatenate([(h[:, 1:] > h[:, :-1]).ravel(), (v[1:, :] > v[:-1, :]).ravel()])
    return np.packbits(bits).tobytes().hex()


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def measure(rgb: np.ndarray, chroma_threshold: float, box: tuple[int, int, int, int] | None = None,
            sub: np.ndarray | None = None) -> Measures:
    """Size, colorfulness, content share, dHash and subject box. rgb: (H, W, 3) uint8 composited on white.

    ``box`` (from :func:`content_box`) and ``sub`` (the subject scaled down, :func:`scaled_subject`) are computed
    when not given; every number is taken from the subject, since all content lies inside its box.
    """
    h, w = rgb.shape[:2]
    if box is None:
        box = content_box(rgb)
    if box is None:
        return Measures(w, h, 0.0, 0.0, dhash128(rgb))
    if sub is None:
        sub = scaled_subject(rgb, box, TEXT_SIDE)
    bh, bw = box[1] - box[0], box[3] - box[2]
    small = _shrink(sub, 256)
    r, g, b = cv2.split(small)
    lo, hi = cv2.min(cv2.min(r, g), b), cv2.max(cv2.max(r, g), b)  # (h, w) darkest and brightest channel
    content = lo < WHITE_LEVEL  # not paper
    colored = cv2.subtract(hi, lo) > chroma_threshold * 255.0
    n_content = int(np.count_nonzero(content))
    colorful = float(np.count_nonzero(colored & content) / n_content) if n_content else 0.0
    content_frac = n_content / content.size * (bh * bw) / (h * w)
    return Measures(w, h, colorful, content_frac, dhash128(small), subject_w=bw, subject_h=bh,
                    color_sig=color_signature(small))


def color_signature(rgb: np.ndarray) -> str:
    """8x8 thumbnail of ``rgb`` (the trimmed subject) in 8-bit CIELAB, as 384 hex digits.

    The near-duplicate test beside the dHash: the dHash's bits in flat areas flip with any resampling, so it
    only pre-selects candidates; the thumbnails must agree closely too, which also tells a red-white flag from a
    blue-white one of the same layout, or one warning sign from another with the same frame."""
    small = cv2.resize(rgb, (8, 8), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2LAB).tobytes().hex()


def color_distance(a: str, b: str) -> float:
    """Mean absolute difference of two color signatures (8-bit CIELAB units per channel and cell)."""
    x = np.frombuffer(bytes.fromhex(a), np.uint8).astype(np.int16)
    y = np.frombuffer(bytes.fromhex(b), np.uint8).astype(np.int16)
    return float(np.abs(x - y).mean())


def _shrink(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def scaled_subject(rgb: np.ndarray, box: tuple[int, int, int, int] | None, side: int) -> np.ndarray:
    """The subject (``rgb`` cropped to ``box``) scaled down so its long side is at most ``side``."""
    if box is not None:
        rgb = rgb[box[0] : box[1], box[2] : box[3]]
    return _shrink(rgb, side)


def text_fraction(rgb: np.ndarray) -> float:
    """Share of the subject's drawing that is text. rgb: the trimmed subject (H, W, 3) uint8, long side ~512.

    Text is dark components of letter or word size standing in rows: similar heights, overlapping vertically and
    separated by small gaps. A component counts with two such row neighbours (letters), or with one when it is
    word-shaped (wider than tall, as letters merged by anti-aliasing or bold fonts are); the first and last letter
    of a row count through their neighbour. Rows of identical shapes (dots, tiles, hearts) are a pattern, not
    text. The result is the share of all non-paper pixels that lie in the boxes of text components.
    """
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    dark = (gray < 110).astype(np.uint8)
    if not dark.any():
        return 0.0
    n, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    x, y, w, h, area = stats[1:].astype(np.float64).T  # each (n-1,)
    fill = area / np.maximum(w * h, 1)
    tall_max = max(8.0, 0.3 * rgb.shape[0])
    # letter- or word-sized; solid blocks are not letters, except thin strokes (l, i, 1)
    char = (h >= 5) & (h <= tall_max) & (w <= 8 * h) & (area >= 8) & (fill > 0.12) & ((fill < 0.9) | (w < 0.4 * h))
    idx = np.nonzero(char)[0]
    if len(idx) < 4 or len(idx) > 6000:  # too few for text, or speckle (bounded work)
        return 0.0
    x0, y0, cw, ch = x[idx], y[idx], w[idx], h[idx]
    links = []  # (i, j) index pairs of row neighbours
    for s in range(0, len(idx), 512):
        e = slice(s, s + 512)
        hmax = np.maximum(ch[e, None], ch[None, :])  # (b, k)
        ratio = ch[e, None] / ch[None, :]
        top, bottom = np.maximum(y0[e, None], y0[None, :]), np.minimum(y0[e, None] + ch[e, None], (y0 + ch)[None, :])
        gap = np.maximum(x0[e, None], x0[None, :]) - np.minimum(x0[e, None] + cw[e, None], (x0 + cw)[None, :])
        row = (bottom - top > 0.5 * np.minimum(ch[e, None], ch[None, :])) & (ratio > 0.6) & (ratio < 1.67)
        pair = row & (gap < 0.8 * hmax) & (gap > -0.2 * hmax)  # (b, k) row neighbours
        b = pair.shape[0]
        pair[np.arange(b), s + np.arange(b)] = False  # not itself
        ii, jj = np.nonzero(pair)
        links.append(np.stack([ii + s, jj], axis=1))
    pairs = np.concatenate(links)  # (m, 2)
    neighbours = np.bincount(pairs[:, 0], minlength=len(idx))
    core = (neighbours >= 2) | ((neighbours >= 1) & (cw > 1.6 * ch))
    is_text = core.copy()
    is_text[pairs[core[pairs[:, 1]], 0]] = True
    t = np.nonzero(is_text)[0]
    if len(t) < 4:
        return 0.0
    shapes = np.stack([cw[t], ch[t], area[idx[t]]], axis=1)  # (k, 3)
    alike = (np.abs(shapes / np.median(shapes, axis=0) - 1) < 0.15).all(axis=1)
    if alike.mean() > 0.6:  # most shapes the same: a pattern (dots, tiles, hearts), not letters
        return 0.0
    boxes = np.zeros(dark.shape, np.uint8)
    for i in t:
        boxes[int(y0[i]) : int(y0[i] + ch[i]), int(x0[i]) : int(x0[i] + cw[i])] = 1
    content = gray < WHITE_LEVEL
    return float(np.count_nonzero(content & (boxes > 0)) / max(1, np.count_nonzero(content)))


_GRID = np.mgrid[0:16, 0:16]
_CENTRAL = (_GRID[0] >= 3) & (_GRID[0] <= 12) & (_GRID[1] >= 3) & (_GRID[1] <= 12)
_DIAG1 = (np.abs(_GRID[0] - _GRID[1]) <= 1) & _CENTRAL
_DIAG2 = (np.abs(_GRID[0] - (15 - _GRID[1])) <= 1) & _CENTRAL
_OFF = _CENTRAL & (np.minimum(np.abs(_GRID[0] - _GRID[1]), np.abs(_GRID[0] - (15 - _GRID[1]))) >= 3)
_RIM = np.zeros((16, 16), bool)
_RIM[[0, -1], :] = _RIM[:, [0, -1]] = True


def _light_share(light: np.ndarray, known: np.ndarray, cells: np.ndarray) -> float:
    sel = cells & known
    return float(light[sel].mean()) if sel.sum() >= 3 else 0.5


def badge_score(rgb: np.ndarray) -> float:
    """1.0 when the subject holds a placeholder badge: a filled, square, red patch (opaque, or faded by
    transparency) with a white X across it, the mark Inkscape renders for a linked image it cannot find; else a
    score below 1 for the best candidate. rgb: the trimmed subject (H, W, 3) uint8, long side ~512.

    Drawings often run across the badge, so dark line pixels count as "unknown" rather than as "not red": the red
    mask is grown by two pixels to bridge such lines, and the X test looks only at cells that are not dark.
    """
    f = rgb.astype(np.int16)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    red = (r > 200) & (r - g > 90) & (np.abs(g - b) < 30)
    if np.count_nonzero(red) < 40:
        return 0.0
    dark = ((r + g + b) < 330) & ~red  # lines drawn over the badge
    grown = cv2.dilate(red.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
    n, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    best = 0.0
    for i in range(1, n):
        x, y, w, h, _ = stats[i]
        x, y, w, h = x + 2, y + 2, w - 4, h - 4  # undo the growth
        if w < 10 or h < 10 or not 0.8 < w / h < 1.25:
            continue
        pr, pd = red[y : y + h, x : x + w], dark[y : y + h, x : x + w]
        if np.count_nonzero(pr | pd) < 0.45 * w * h:
            continue
        pw = f[y : y + h, x : x + w].min(axis=2) > 180  # white (or faded white): the X
        light = cv2.resize(pw.astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA) > 0.4
        known = cv2.resize(pd.astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA) < 0.3  # not a line

        d1, d2, off, rim = (_light_share(light, known, c) for c in (_DIAG1, _DIAG2, _OFF, _RIM))
        score = float(np.clip(min(d1, d2) - off - rim, 0.0, 1.0))
        if min(d1, d2) > 0.6 and off < 0.15 and rim < 0.2:
            return 1.0
        best = max(best, 0.9 * score)
    return best


def line_stats(line: np.ndarray, rect: tuple[int, int, int, int]) -> tuple[float, float]:
    """(ink share, components per 10k px) of line art ``line`` (H, W) uint8 inside ``rect`` (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = rect
    sub = line[y0:y1, x0:x1]
    ink = (sub < 128).astype(np.uint8)
    area = max(1, ink.size)
    n = cv2.connectedComponents(ink, connectivity=8)[0] - 1
    return float(ink.sum() / area), float(n * 10_000 / area)


def measure_all(rgb: np.ndarray, alpha: np.ndarray | None, chroma_threshold: float,
                box: tuple[int, int, int, int] | None = None, sub: np.ndarray | None = None,
                canvas: np.ndarray | None = None, cfg: DataConfig | None = None) -> Measures:
    """The measurements of one decoded image: rgb (H, W, 3) uint8 on white, alpha (H, W) uint8 or None.

    With ``cfg``, the detailed measurements (text, badge, line art) are skipped when a cheap filter already rejects
    the image (:func:`cheap_reject`); the build measures them later if a threshold change lets it pass. ``box`` and
    ``sub`` as for :func:`measure`, ``canvas`` = ``letterbox(sub, None, MEASURE_SIZE, 255)``: pass them when the
    caller has them already."""
    if box is None:
        box = content_box(rgb)
    if box is not None and sub is None:
        sub = scaled_subject(rgb, box, TEXT_SIDE)
    m = measure(rgb, chroma_threshold, box, sub)
    if alpha is not None:
        m.alpha_frac = float(np.count_nonzero(alpha < 250) / alpha.size)
    if box is None or (cfg is not None and cheap_reject(m, cfg)):
        return m
    m.text_frac = text_fraction(sub)
    m.badge = badge_score(sub)
    if canvas is None:
        canvas = letterbox(sub, None, MEASURE_SIZE, 255)
    ref = extract_lineart(canvas, REFERENCE_XDOG)
    m.ink, m.fragments = line_stats(ref, letterbox_rect(sub.shape[:2], MEASURE_SIZE))
    return m


# ------------------------------------------------------------------------------------------- filters


def _too_small(m: Measures, cfg: DataConfig) -> str | None:
    if min(m.width, m.height) < cfg.min_side:
        return f"{m.width}x{m.height}, shorter side < {cfg.min_side}"
    return None


def _aspect(m: Measures, cfg: DataConfig) -> str | None:
    if m.aspect > cfg.max_aspect:
        return f"subject {m.subject_w}x{m.subject_h}, aspect {m.aspect:.1f} > {cfg.max_aspect:g}"
    return None


def _blank(m: Measures, cfg: DataConfig) -> str | None:
    if m.content_frac < cfg.min_content:
        return f"only {m.content_frac:.1%} of the canvas has content"
    return None


def _subject_small(m: Measures, cfg: DataConfig) -> str | None:
    if not m.subject_w:
        return None
    if m.subject_frac < cfg.min_subject_frac:
        return (f"subject {m.subject_w}x{m.subject_h} covers {m.subject_frac:.2%} of the canvas"
                f" < {cfg.min_subject_frac:.0%}")
    if max(m.subject_w, m.subject_h) < cfg.min_subject_side:
        return f"subject {m.subject_w}x{m.subject_h}, longer side < {cfg.min_subject_side}"
    return None


def _no_color(m: Measures, cfg: DataConfig) -> str | None:
    if m.colorfulness < cfg.min_colorfulness:
        return f"{m.colorfulness:.1%} colored content < {cfg.min_colorfulness:.0%} (grayscale or monochrome)"
    return None


def _placeholder(m: Measures, cfg: DataConfig) -> str | None:
    if m.badge is not None and m.badge >= 1.0:
        return "placeholder badge (red square with a white X) in the drawing"
    if m.dhash:
        d = min(hamming(m.dhash, p) for p in PLACEHOLDER_HASHES)
        if d <= cfg.placeholder_bits:
            return f"dHash within {d} bits of a known placeholder"
    return None


def _text(m: Measures, cfg: DataConfig) -> str | None:
    if m.text_frac is not None and m.text_frac > cfg.max_text_frac:
        return f"{m.text_frac:.0%} of the drawing is text-like > {cfg.max_text_frac:.0%}"
    return None


def _entangled(m: Measures, cfg: DataConfig) -> str | None:
    if not m.subject_w or m.ink is None or m.fragments is None:
        return None
    if m.ink > cfg.max_ink:
        return f"line art too dense: {m.ink:.0%} of the subject is ink > {cfg.max_ink:.0%}"
    if m.fragments > cfg.max_fragments:
        return f"line art too fragmented: {m.fragments:.0f} pieces per 10k px > {cfg.max_fragments:g}"
    return None


def _classifier(m: Measures, cfg: DataConfig) -> str | None:
    if cfg.min_clf_score > 0 and m.clf_score is not None and m.clf_score < cfg.min_clf_score:
        return f"learned filter score {m.clf_score:.2f} < {cfg.min_clf_score:g}"
    return None


# name -> check; each returns None (keep) or a detail string (reject with reason = name). Order matters: the first
# failing filter is the recorded reason. The cheap filters (size, box and color measurements) come first, so the
# detailed measurements are needed only for images that pass them.
FILTERS: dict[str, Callable[[Measures, DataConfig], str | None]] = {
    "too-small": _too_small,
    "subject-too-small": _subject_small,  # before blank: a compact small drawing is this, scattered specks blank
    "blank": _blank,
    "aspect": _aspect,
    "no-color": _no_color,
    "placeholder": _placeholder,
    "entangled": _entangled,  # before text: dense patterns read as rows of letters too
    "text": _text,
    "classifier": _classifier,  # only with a score (tintline data classify) and min_clf_score > 0
}


CHEAP_FILTERS = ("too-small", "subject-too-small", "blank", "aspect", "no-color")


def cheap_reject(m: Measures, cfg: DataConfig) -> bool:
    """Whether a filter that needs only the cheap measurements rejects the image."""
    return any(name not in cfg.disabled_filters and FILTERS[name](m, cfg) is not None for name in CHEAP_FILTERS)


def needs_detail(m: Measures, cfg: DataConfig) -> bool:
    """The image passes the cheap filters but its detailed measurements were skipped: it must be measured again."""
    return m.ink is None and bool(m.subject_w) and not cheap_reject(m, cfg)


def decide(m: Measures, cfg: DataConfig) -> tuple[str, str] | None:
    """First failing filter as (reason, detail), or None when the image passes every per-image filter."""
    for name, check in FILTERS.items():
        if name in cfg.disabled_filters:
            continue
        detail = check(m, cfg)
        if detail is not None:
            return name, detail
    return None


def near_duplicate_groups(hashes: list[str], sigs: list[str | None], order: list[int], max_bits: int,
                          max_color: float) -> list[int]:
    """Leader clustering: per index, the index of its group's representative.

    Two images are near-duplicates when their dHashes differ in at most ``max_bits`` bits and their color
    signatures (:func:`color_signature`) by at most ``max_color`` (a missing signature matches any). Images are
    visited in ``order`` (preferred representatives first, e.g. largest first); each one not yet grouped becomes a
    representative and takes every ungrouped near-duplicate of itself. Unlike a transitive closure (union-find),
    every member is a near-duplicate of its representative: no chains of small steps join unrelated images.
    """
    n = len(hashes)
    if n == 0:
        return []
    arr = np.frombuffer(bytes.fromhex("".join(hashes)), dtype=np.uint8).reshape(n, -1)  # (n, bytes)
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)
    has_sig = np.array([s is not None for s in sigs])
    sig = np.zeros((n, 192), np.int16)
    if has_sig.any():
        sig[has_sig] = np.frombuffer(bytes.fromhex("".join(s for s in sigs if s is not None)), np.uint8) \
            .reshape(-1, 192)
    neighbours: dict[int, list[int]] = {}
    for start in range(0, n, 256):
        block = arr[start : start + 256, None, :] ^ arr[None, :, :]  # (b, n, bytes)
        dist = popcount[block].sum(axis=2, dtype=np.int32)  # (b, n)
        ii, jj = np.nonzero(dist <= max_bits)
        ii = ii + start
        keep = ii != jj
        ii, jj = ii[keep], jj[keep]
        if len(ii):
            cd = np.abs(sig[ii] - sig[jj]).mean(axis=1)
            ok = (cd <= max_color) | ~has_sig[ii] | ~has_sig[jj]
            for i, j in zip(ii[ok], jj[ok], strict=True):
                neighbours.setdefault(int(i), []).append(int(j))
    rep = [-1] * n
    for i in order:
        if rep[i] >= 0:
            continue
        rep[i] = i
        for j in neighbours.get(i, ()):
            if rep[j] < 0:
                rep[j] = i
    return rep
