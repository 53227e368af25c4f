"""Per-image measurements and the filters that use them.

:func:`measure` decodes one stored file and returns the numbers the filters need (size, colorfulness, content
share, perceptual hash). Filters are plain functions of those numbers and the :class:`DataConfig`, so changing a
threshold and rebuilding re-decides every image without decoding anything again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import DataConfig

WHITE_LEVEL = 245  # a composited pixel whose channels are all >= this counts as blank paper


@dataclass
class Measures:
    width: int
    height: int
    colorfulness: float  # share of content pixels with chroma above the threshold
    content_frac: float  # share of the canvas that is not blank
    dhash: str  # 32 hex digits (128 bits)


def _trim(rgb: np.ndarray) -> np.ndarray:
    """Crop to the bounding box of non-blank pixels (the whole image when it is blank)."""
    ys, xs = np.nonzero((rgb < WHITE_LEVEL).any(axis=2))
    if len(ys) == 0:
        return rgb
    return rgb[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


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


def measure(rgb: np.ndarray, chroma_threshold: float) -> Measures:
    """rgb: (H, W, 3) uint8 composited on white."""
    h, w = rgb.shape[:2]
    scale = 256 / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else rgb
    f = small.astype(np.float32) / 255.0
    content = (small < WHITE_LEVEL).any(axis=2)  # (h, w) not paper
    chroma = f.max(axis=2) - f.min(axis=2)
    n_content = int(content.sum())
    colorful = float(((chroma > chroma_threshold) & content).sum() / n_content) if n_content else 0.0
    return Measures(w, h, colorful, n_content / content.size, dhash128(small))


def _too_small(m: Measures, cfg: DataConfig) -> str | None:
    if min(m.width, m.height) < cfg.min_side:
        return f"{m.width}x{m.height}, shorter side < {cfg.min_side}"
    return None


def _blank(m: Measures, cfg: DataConfig) -> str | None:
    if m.content_frac < 0.005:
        return f"only {m.content_frac:.1%} of the canvas has content"
    return None


def _no_color(m: Measures, cfg: DataConfig) -> str | None:
    if m.colorfulness < cfg.min_colorfulness:
        return f"{m.colorfulness:.1%} colored content < {cfg.min_colorfulness:.0%} (grayscale or monochrome)"
    return None


# name -> check; each returns None (keep) or a detail string (reject with reason = name). Order matters: the first
# failing filter is the recorded reason.
FILTERS: dict[str, Callable[[Measures, DataConfig], str | None]] = {
    "too-small": _too_small,
    "blank": _blank,
    "no-color": _no_color,
}


def decide(m: Measures, cfg: DataConfig) -> tuple[str, str] | None:
    """First failing filter as (reason, detail), or None when the image passes every per-image filter."""
    for name, check in FILTERS.items():
        detail = check(m, cfg)
        if detail is not None:
            return name, detail
    return None


def prepare_color(rgb: np.ndarray, size: int) -> np.ndarray:
    """Trim blank margins, letterbox onto a white square and resize: (H, W, 3) -> (size, size, 3) uint8."""
    content = (rgb < WHITE_LEVEL).any(axis=2)
    ys, xs = np.nonzero(content)
    if len(ys):
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        rgb = rgb[y0:y1, x0:x1]
    h, w = rgb.shape[:2]
    side = int(max(h, w) * 1.06) + 2  # a little paper around the subject
    canvas = np.full((side, side, 3), 255, np.uint8)
    oy, ox = (side - h) // 2, (side - w) // 2
    canvas[oy : oy + h, ox : ox + w] = rgb
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(canvas, (size, size), interpolation=interp)


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
