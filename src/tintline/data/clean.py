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
    text_frac: float = 0.0  # share of dark ink in text-like rows of character-sized components
    badge: float = 0.0  # 1.0 when a placeholder badge (red square with a white X) is found, else 0..1 evidence
    ink: float = 0.0  # share of the subject box that is ink in the reference line art
    fragments: float = 0.0  # ink connected components per 10,000 pixels of subject box (reference line art)
    alpha_frac: float = 0.0  # share of the source's pixels that are (partly) transparent

    # manifest column for each field (same names)
    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_row(cls, row: Mapping) -> Measures:
        vals = {}
        for f in fields(cls):
            v = row[f.name]
            vals[f.name] = v if v is not None else (0 if f.type in ("int", "float") else v)
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
    """(y0, y1, x0, x1) of non-blank pixels, or None when the image is blank."""
    h, w = rgb.shape[:2]
    flat = np.ascontiguousarray(rgb).reshape(h, w * 3)  # one byte per column: OpenCV's fast single-channel paths
    mask = cv2.threshold(flat, WHITE_LEVEL - 1, 255, cv2.THRESH_BINARY_INV)[1]
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
    return Measures(w, h, colorful, content_frac, dhash128(small), subject_w=bw, subject_h=bh)


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
    """Share of the subject's dark ink that is text: character-sized components standing in rows of at least
    three with similar heights and small gaps. rgb: the trimmed subject (H, W, 3) uint8, long side ~512."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    dark = (gray < 110).astype(np.uint8)
    total = int(dark.sum())
    if total == 0:
        return 0.0
    n, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    st = stats[1:].astype(np.float64)  # (n-1, 5): x, y, w, h, area
    x, y, w, h, area = st.T
    H = rgb.shape[0]
    fill = area / np.maximum(w * h, 1)
    char = (h >= 5) & (h <= max(8.0, 0.3 * H)) & (w <= 1.6 * h) & (area >= 8) & (fill > 0.12) & (fill < 0.9)
    idx = np.nonzero(char)[0]
    if len(idx) < 3:
        return 0.0
    if len(idx) > 6000:  # speckle, not text; bounded work
        return 0.0
    cx, cy, cw, ch = x[idx] + w[idx] / 2, y[idx] + h[idx] / 2, w[idx], h[idx]
    neighbours = np.zeros(len(idx), np.int32)
    for s in range(0, len(idx), 512):
        e = slice(s, s + 512)
        hmax = np.maximum(ch[e, None], ch[None, :])
        same_row = np.abs(cy[e, None] - cy[None, :]) < 0.35 * hmax
        similar = (ch[e, None] / ch[None, :] > 0.6) & (ch[e, None] / ch[None, :] < 1.67)
        gap = np.abs(cx[e, None] - cx[None, :]) - (cw[e, None] + cw[None, :]) / 2
        near = (gap < 0.9 * hmax) & (gap > -0.5 * hmax)
        neighbours[e] = (same_row & similar & near).sum(axis=1) - 1  # minus itself
    text = idx[neighbours >= 2]
    return float(area[text].sum() / total)


def badge_score(rgb: np.ndarray) -> float:
    """1.0 when the subject holds a placeholder badge: a filled, square, pure-red patch (opaque or faded) with a
    light X across it, the mark Inkscape renders for a linked image it cannot find. rgb: trimmed subject, ~512."""
    f = rgb.astype(np.int16)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    red = (r > 200) & (r - g > 90) & (np.abs(g - b) < 30)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(red.astype(np.uint8), connectivity=8)
    best = 0.0
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if w < 8 or h < 8 or not 0.75 < w / h < 1.33 or area < 0.45 * w * h:
            continue
        patch = labels[y : y + h, x : x + w] == i  # (h, w) red pixels of this component
        grid = cv2.resize((~patch).astype(np.uint8) * 255, (16, 16), interpolation=cv2.INTER_AREA) > 96
        yy, xx = np.mgrid[0:16, 0:16]
        central = (yy >= 3) & (yy <= 12) & (xx >= 3) & (xx <= 12)
        diag = ((np.abs(yy - xx) <= 1) | (np.abs(yy - (15 - xx)) <= 1)) & central
        off = central & ~diag & (np.minimum(np.abs(yy - xx), np.abs(yy - (15 - xx))) >= 3)
        on_x = grid[diag].mean()  # light along both diagonals ...
        off_x = grid[off].mean()  # ... and red between them
        border = np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]]).mean()
        score = float(np.clip(on_x - off_x - border, 0, 1))
        if on_x > 0.6 and off_x < 0.2 and border < 0.25:
            return 1.0
        best = max(best, score * 0.5)
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
                box: tuple[int, int, int, int] | None = None, sub: np.ndarray | None = None) -> Measures:
    """Every measurement of one decoded image: rgb (H, W, 3) uint8 on white, alpha (H, W) uint8 or None.

    ``box`` and ``sub`` as for :func:`measure` (pass them when the caller has them already)."""
    if box is None:
        box = content_box(rgb)
    if box is not None and sub is None:
        sub = scaled_subject(rgb, box, TEXT_SIDE)
    m = measure(rgb, chroma_threshold, box, sub)
    if alpha is not None:
        m.alpha_frac = float(np.count_nonzero(alpha < 250) / alpha.size)
    if box is None:
        return m
    m.text_frac = text_fraction(sub)
    m.badge = badge_score(sub)
    ref = extract_lineart(letterbox(sub, None, MEASURE_SIZE, 255), REFERENCE_XDOG)
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
    if m.badge >= 1.0:
        return "placeholder badge (red square with a white X) in the drawing"
    if m.dhash:
        d = min(hamming(m.dhash, p) for p in PLACEHOLDER_HASHES)
        if d <= cfg.placeholder_bits:
            return f"dHash within {d} bits of a known placeholder"
    return None


def _text(m: Measures, cfg: DataConfig) -> str | None:
    if m.text_frac > cfg.max_text_frac:
        return f"{m.text_frac:.0%} of the ink is text-like > {cfg.max_text_frac:.0%}"
    return None


def _entangled(m: Measures, cfg: DataConfig) -> str | None:
    if not m.subject_w:
        return None
    if m.ink > cfg.max_ink:
        return f"line art too dense: {m.ink:.0%} of the subject is ink > {cfg.max_ink:.0%}"
    if m.fragments > cfg.max_fragments:
        return f"line art too fragmented: {m.fragments:.0f} pieces per 10k px > {cfg.max_fragments:g}"
    return None


# name -> check; each returns None (keep) or a detail string (reject with reason = name). Order matters: the first
# failing filter is the recorded reason (cheap, unambiguous reasons first).
FILTERS: dict[str, Callable[[Measures, DataConfig], str | None]] = {
    "too-small": _too_small,
    "blank": _blank,
    "aspect": _aspect,
    "subject-too-small": _subject_small,
    "placeholder": _placeholder,
    "no-color": _no_color,
    "text": _text,
    "entangled": _entangled,
}


def decide(m: Measures, cfg: DataConfig) -> tuple[str, str] | None:
    """First failing filter as (reason, detail), or None when the image passes every per-image filter."""
    for name, check in FILTERS.items():
        if name in cfg.disabled_filters:
            continue
        detail = check(m, cfg)
        if detail is not None:
            return name, detail
    return None


def hamming_groups(hashes: list[str], max_bits: int) -> list[int]:
    """Union-find over hex-string hashes: returns, per index, the index of its group's root (smallest index).

    Exact pairwise comparison, vectorized in row blocks: O(n^2) bit operations, about a second for 10k hashes.
    """
    n = len(hashes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n == 0:
        return []
    arr = np.frombuffer(bytes.fromhex("".join(hashes)), dtype=np.uint8).reshape(n, -1)  # (n, bytes)
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)
    for start in range(0, n, 256):
        block = arr[start : start + 256, None, :] ^ arr[None, :, :]  # (b, n, bytes)
        dist = popcount[block].sum(axis=2, dtype=np.int32)  # (b, n)
        ii, jj = np.nonzero(dist <= max_bits)
        for i, j in zip(ii + start, jj, strict=True):
            if j > i:
                ri, rj = find(int(i)), find(int(j))
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)]
