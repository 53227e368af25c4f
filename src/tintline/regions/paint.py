"""Region-consistent coloring: flat colors per region, exact hints, a bounded shading layer, and the line layer.

A colorist's file has three layers, and so does tintline's output (:class:`Layers`):

* **flat** (H, W, 3): one color per closed region (:func:`~tintline.regions.segment.segment`, at full resolution).
  A hinted region takes its hint's color exactly; two different hints in one region split it by the nearest hint
  inside it; an unhinted region takes a robust vote of the network's fill color inside it (a trimmed mean in CIELAB
  that ignores the pixels farthest from the region's mean, e.g. color bled in from a neighbour);
* **shading** (H, W), a multiply layer (255 = no change) with an opacity: the network's own light-dark variation
  inside each region, relative to the region's vote, only darkening and bounded (``floor``), so it can shade but
  never recolor;
* **lines** (H, W), a multiply layer: the input line art itself.

``image = flat × (shading at its opacity) × lines`` (all in 0..1). Colors never cross a closed line, at any input
size: the network may see the page smaller, the regions are found on the page itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..data.hints import render_hint_items
from .segment import Segmentation, segment

DEEP_INK = 4.0  # pixels (per 1024 of the long side, at least this): a hint mark on ink whose every pixel is
# farther than this from paper is inside a solid black area and is dropped

SAME_COLOR = 24  # hints in one region whose RGB channels differ by at most this much are one color (their mean)
SHADING_FLOOR = 0.6  # the shading layer darkens by at most 40 %
TRIM = 1.5  # the vote keeps pixels within TRIM x the region's mean distance from its mean


@dataclass
class Layers:
    """flat (H, W, 3) uint8; shading (H, W) uint8, a multiply layer (255 = no change) shown at ``shading_opacity``
    (0..1, as a layer's opacity in a paint program); lines (H, W) uint8, a multiply layer at full opacity."""

    flat: np.ndarray
    shading: np.ndarray
    lines: np.ndarray
    shading_opacity: float = 1.0

    def effective_shading(self) -> np.ndarray:
        """(H, W) uint8: the shading layer as it multiplies at its opacity, 255 - opacity * (255 - shading)."""
        if self.shading_opacity >= 1.0:
            return self.shading
        if self.shading_opacity <= 0.0:
            return np.full_like(self.shading, 255)
        k = 255.0 - self.shading_opacity * (255.0 - self.shading.astype(np.float32))
        return np.clip(k + 0.5, 0, 255).astype(np.uint8)

    def compose(self) -> np.ndarray:
        """-> (H, W, 3) uint8 RGB: flat × shading (at its opacity) × lines, rounded (what a paint program shows for
        the .ora)."""
        k = self.effective_shading().astype(np.uint32) * self.lines.astype(np.uint32)  # (H, W) in 0..255²
        out = (self.flat.astype(np.uint32) * k[..., None] + 255 * 255 // 2) // (255 * 255)
        return out.astype(np.uint8)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> float32 CIELAB (L 0..100), through OpenCV (about 20x faster than skimage)."""
    shape = rgb.shape
    flat = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(shape)


def from_lab(lab: np.ndarray) -> np.ndarray:
    shape = lab.shape
    rgb = cv2.cvtColor(lab.reshape(-1, 1, 3).astype(np.float32), cv2.COLOR_Lab2RGB).reshape(shape)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _bincount3(labels: np.ndarray, values: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-label sums of (N, 3) values (optionally weighted) -> (n + 1, 3) float64."""
    return np.stack([np.bincount(labels, weights=values[:, c] if weights is None else values[:, c] * weights,
                                 minlength=n + 1) for c in range(3)], axis=1)


def _trimmed_means(lab: np.ndarray, lbl: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """lab (N, 3) float32 colors, lbl (N,) their regions -> (votes (n + 1, 3) float64, samples per region (n + 1,)).

    Two passes of bincounts: the mean, then the mean of the pixels within ``TRIM`` times the region's mean distance
    from it (a trimmed mean, robust to bleeding and to line halos)."""
    counts = np.bincount(lbl, minlength=n + 1).astype(np.float64)
    mean = _bincount3(lbl, lab, n) / np.maximum(counts, 1)[:, None]
    diff = lab - mean[lbl]
    d = np.sqrt(np.einsum("ij,ij->i", diff, diff))  # (N,) distance to the region's mean
    mean_d = np.bincount(lbl, weights=d, minlength=n + 1) / np.maximum(counts, 1)
    w = (d <= TRIM * mean_d[lbl] + 1e-6).astype(np.float64)
    wsum = np.bincount(lbl, weights=w, minlength=n + 1)
    trimmed = _bincount3(lbl, lab, n, w) / np.maximum(wsum, 1)[:, None]
    return np.where((wsum > 0)[:, None], trimmed, mean), counts


def region_votes(fill: np.ndarray, seg: Segmentation, stride: int = 1) -> np.ndarray:
    """fill (H, W, 3) uint8 network fill color at full resolution -> (n + 1, 3) float32 CIELAB vote per region.

    A trimmed mean over the region's paper pixels. ``stride`` > 1 samples every stride-th pixel in both directions
    (the fill was upsampled from the network's smaller grid, so the samples carry all its information at 1/stride²
    of the cost); regions that no sample hits are voted from all their pixels."""
    s = max(1, int(stride))
    ink = seg.ink[::s, ::s]
    sel = ~ink if (~ink).any() else np.ones_like(ink)
    lab = to_lab(np.ascontiguousarray(fill[::s, ::s]))[sel]  # (N, 3)
    out, counts = _trimmed_means(lab, seg.labels[::s, ::s][sel], seg.n)
    missing = counts == 0
    missing[0] = False
    if missing.any():  # small regions between the samples (or regions of ink only): every pixel of theirs
        px = missing[seg.labels] & ~seg.ink
        if not px.any():
            px = missing[seg.labels]
        if px.any():
            extra, extra_counts = _trimmed_means(to_lab(fill[px]), seg.labels[px], seg.n)
            got = missing & (extra_counts > 0)
            out[got] = extra[got]
            counts[got] = extra_counts[got]
    out[counts == 0] = (100.0, 0.0, 0.0)  # regions of ink only: neutral white (the table must be complete)
    return out.astype(np.float32)


TONE_STEP = 16  # gray levels: a tone step at least this sharp bounds the pieces of a region split between hints
SPLIT_PIXELS = 1024 * 1024  # a region split along the tone is flooded at most this many pixels large


def exact_hints(hints: dict, seg: Segmentation, table: np.ndarray, tone: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Hinted regions take their hint's color. table (n + 1, 3) uint8 RGB per region, updated and returned.

    Returns (table, split_labels, split_colors): where a region holds hints of clearly different colors it is split
    by the nearest hint pixel inside it, or, on a shaded page (``tone`` (H, W) uint8, the page's own gray), along
    the page's tone edges (:func:`_split_by_tone`); split_labels (H, W) int32 numbers those pieces 1..k (0
    elsewhere) and split_colors (k + 1, 3) uint8 gives their colors (``None``, ``None`` when nothing was split).
    A hint on a line counts for the region the line pixel belongs to only when the whole mark lies on ink;
    otherwise its pixels on ink are ignored (they could belong to the region across the line). A mark wholly
    inside a solid black area (every pixel farther than :data:`DEEP_INK` from paper, scaled up on large images)
    colors nothing, and a mark wholly on ink never colors the background through the line pixels next to it.
    """
    h, w = seg.labels.shape
    ids, colors = render_hint_items(hints, h, w)  # (H, W) int32 item id + 1, (m + 1, 3) uint8
    if len(colors) <= 1:
        return table, None, None
    marked = ids > 0
    on_paper = np.bincount(ids[marked & ~seg.ink], minlength=len(colors))  # paper pixels per item
    inked = on_paper[ids] == 0  # pixels of marks that lie wholly on ink
    if (marked & inked).any():
        # a mark deep inside a solid black area (a filled spade, black hair) means that area, which is ink: it
        # colors nothing, rather than whichever region the ink's nearest paper belongs to (often the background)
        depth = cv2.distanceTransform(seg.ink.astype(np.uint8), cv2.DIST_L2, 3)
        nearest = np.full(len(colors), np.inf, np.float32)
        np.minimum.at(nearest, ids[marked & inked], depth[marked & inked])
        deep = nearest > DEEP_INK * max(1.0, max(h, w) / 1024)
        inked &= ~deep[ids]
        # nor a mark on a line beside the background: the line's nearest paper may be the background, and a hint
        # meant for what the line bounds (a gray fill a page reader took for ink) then floods the whole page
        inked &= ~seg.border[seg.labels]
    use = marked & (~seg.ink | inked)
    if not use.any():
        return table, None, None
    lbl, item = seg.labels[use], ids[use]
    col = colors[item].astype(np.int32)  # (N, 3)
    n = seg.n
    cnt = np.bincount(lbl, minlength=n + 1)
    mean = _bincount3(lbl, col.astype(np.float64), n) / np.maximum(cnt, 1)[:, None]
    hi = np.full((n + 1, 3), -1, np.int32)
    lo = np.full((n + 1, 3), 256, np.int32)
    np.maximum.at(hi, lbl, col)
    np.minimum.at(lo, lbl, col)
    hinted = cnt > 0
    one = hinted & ((hi - lo).max(axis=1) <= SAME_COLOR)
    table = table.copy()
    table[one] = np.clip(mean[one] + 0.5, 0, 255).astype(np.uint8)
    several = np.flatnonzero(hinted & ~one)
    if len(several) == 0:
        return table, None, None
    split = np.zeros((h, w), np.int32)
    split_colors = [np.zeros(3, np.uint8)]
    use_px = np.where(use, ids, 0)
    for r in several.tolist():
        region = seg.labels == r
        ys, xs = np.nonzero(region)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        reg = region[y0:y1, x0:x1]
        src = use_px[y0:y1, x0:x1] * reg  # item ids of the hint pixels inside this region
        # nearest hint pixel (Euclidean) for every pixel of the region's box; sources numbered in raster order
        _, nearest = cv2.distanceTransformWithLabels((src == 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                     labelType=cv2.DIST_LABEL_PIXEL)
        src_items = np.concatenate([[0], src[src > 0]])
        piece_item = src_items[nearest]  # (h', w') item id of the nearest hint pixel
        if tone is not None:
            piece_item = _split_by_tone(tone[y0:y1, x0:x1], src, reg, piece_item)
        # one piece per distinct color among this region's items
        items = np.unique(src[src > 0])
        base = len(split_colors)
        item_piece = np.zeros(int(items.max()) + 1, np.int32)
        for k, it in enumerate(items.tolist()):
            item_piece[it] = base + k
            split_colors.append(colors[it])
        box = split[y0:y1, x0:x1]
        box[reg] = item_piece[piece_item[reg]]
    return table, split, np.stack(split_colors).astype(np.uint8)


def _split_by_tone(tone: np.ndarray, src: np.ndarray, reg: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """Split one region between its hints along the page's tone edges: a marker-controlled watershed (Beucher and
    Meyer, "The morphological approach to segmentation: the watershed transformation", 1993) of the tone's
    gradient magnitude, flooded from the hint pixels ``src`` (h', w') item ids (0: none) within ``reg`` (h', w')
    bool. On a gray page a region the lines leave open (a white petal on a gray field whose outline has a gap) still
    shows its edge in the tone, so two hints there, a white and a red, paint petal and field rather than two halves
    cut by distance. Where the tone is flat the flood goes by distance, as ``nearest`` (h', w') does, which also
    fills any pixel the flood did not reach. A region larger than :data:`SPLIT_PIXELS` is flooded on a grid
    ``f`` times coarser (a whole 4096² page: 5.6 s at full size, its pieces' edges within ``f`` pixels here)."""
    from skimage.segmentation import watershed

    h, w = reg.shape
    f = max(1, int(np.ceil(np.sqrt(h * w / SPLIT_PIXELS))))
    marks = np.where(reg, src, 0)
    if f > 1:
        size = (-(-w // f), -(-h // f))  # (w', h') rounded up: every pixel lies in one coarse cell
        tone = cv2.resize(np.pad(tone, ((0, size[1] * f - h), (0, size[0] * f - w)), mode="edge"), size,
                          interpolation=cv2.INTER_AREA)
        cover = cv2.resize(np.pad(reg, ((0, size[1] * f - h), (0, size[0] * f - w))).astype(np.float32), size,
                           interpolation=cv2.INTER_AREA)
        ys, xs = np.nonzero(marks)
        coarse = np.zeros((size[1], size[0]), marks.dtype)
        coarse[ys // f, xs // f] = marks[ys, xs]  # every hint keeps a seed, however small
        marks, mask = coarse, (cover > 0.5) | (coarse > 0)
    else:
        mask = reg
    g = cv2.GaussianBlur(tone.astype(np.float32), (0, 0), 1.0)  # print noise is not an edge
    grad = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    # in steps of a TONE_STEP-level edge: smooth shading (a sky's gradient) is flat, so it splits by distance
    elev = np.minimum(grad / (3.2 * TONE_STEP), 8).astype(np.uint8)  # a blurred step of d levels: |Sobel| ~ 3.2 d
    flood = watershed(elev, markers=marks, mask=mask)
    if f > 1:
        flood = np.repeat(np.repeat(flood, f, axis=0), f, axis=1)[:h, :w]
    return np.where((flood > 0) & reg, flood, nearest)


def paint(line: np.ndarray, fill: np.ndarray, hints: dict | None = None, seg: Segmentation | None = None,
          shading: float = 1.0, floor: float = SHADING_FLOOR, votes: np.ndarray | None = None,
          vote_stride: int = 1, white: float = 0.0, paper_background: bool = False,
          own: np.ndarray | None = None, tone: np.ndarray | None = None) -> Layers:
    """line (H, W) uint8 full-resolution line art; fill (H, W, 3) uint8 the network's fill color at the same size
    (upsampled when the network saw the page smaller); validated hints in these pixels -> :class:`Layers`.

    ``votes`` (n + 1, 3) float32 CIELAB per region of ``seg`` replaces the vote of the network (e.g. a character
    model's reference matching); the shading stays relative to the network's own vote. ``vote_stride``: see
    :func:`region_votes` (the upsampling factor of ``fill``). ``white``: an unhinted region whose vote lies within
    this CIELAB distance of paper white is painted white (the network hedges between "leave it white" and a color
    with a pale tint; the threshold is calibrated on validation images, see docs/results.md). ``paper_background``:
    unhinted regions that touch the image border (the background) stay white; a hint there still colors them.
    ``tone``: a shaded page's own gray (H, W) uint8; a region with hints of several colors splits along its edges.

    ``shading`` in [0, 1] is the shading layer's opacity (0: flat colors only; the layer is still computed, so a
    layered file lets the user turn it up)."""
    seg = segment(line) if seg is None else seg
    if own is None:  # (n + 1, 3) Lab: the network's vote per region (given when the caller already has it)
        own = region_votes(fill, seg, vote_stride)
    chosen = (own if votes is None else votes).copy()
    if paper_background:  # regions that touch the image border (the background) stay paper unless hinted
        chosen[seg.border] = (100.0, 0.0, 0.0)
    if white > 0:
        chosen[np.linalg.norm(chosen - np.array([100.0, 0.0, 0.0], np.float32), axis=1) <= white] = (100.0, 0, 0)
    table = from_lab(chosen)  # (n + 1, 3) uint8 RGB: the unhinted regions' flat colors
    split = split_colors = None
    if hints and (hints.get("points") or hints.get("strokes")):
        table, split, split_colors = exact_hints(hints, seg, table, tone)
    flat = table[seg.labels]  # (H, W, 3)
    if split is not None:
        pieces = split > 0
        flat[pieces] = split_colors[split[pieces]]
    # the network's lightness relative to its own vote for the region: < 1 where it paints a shadow
    lum = cv2.cvtColor(fill, cv2.COLOR_RGB2GRAY).astype(np.float32)  # (H, W)
    base = cv2.cvtColor(table_votes(own), cv2.COLOR_RGB2GRAY).reshape(-1).astype(np.float32)  # (n + 1,)
    ratio = np.clip(lum / np.maximum(base[seg.labels], 1.0), floor, 1.0)
    ratio[seg.ink] = 1.0  # the line layer draws the lines
    shade = np.clip(ratio * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Layers(flat, shade, line, float(np.clip(shading, 0.0, 1.0)))


def table_votes(votes: np.ndarray) -> np.ndarray:
    """(n + 1, 3) CIELAB votes -> (n + 1, 1, 3) uint8 RGB (an image OpenCV converts in one call)."""
    return from_lab(votes).reshape(-1, 1, 3)
