"""Reference matching: color the regions of a new drawing of a character from colored drawings of the same character.

This is the segment-matching idea of paint-bucket colorization research — BasicPBC (Y. Dai, S. Zhou, Q. Li, C. Li,
C. C. Loy, "Learning Inclusion Matching for Animation Paint Bucket Colorization", CVPR 2024) and DACoN (ICCV 2025)
match every closed segment of a target frame to the segments of a colored reference and copy their colors — in a
classical, learning-free form (no network, no training; every number below is a hand-set weight):

1. **regions**: the target's line art is segmented with :func:`tintline.regions.segment`; a reference's line art
   too, after the borders of its quantized colors are drawn in (:func:`color_edges`: the reference has colors, so a
   gap in its lines need not merge its hair with its face). A reference region's color is the median CIELAB color
   of the reference image over its paper pixels;
2. **alignment** (:func:`align`, :func:`refine`): each drawing's ink gets a frame (centre and size of its robust
   bounding box); the target's blurred ink density is correlated with the reference's (FFT) over a grid of scales
   and both horizontal orientations, which gives the shift, scale and flip; a dense optical flow between the two
   blurred inks then follows what moved inside (a head, an arm, a changed expression);
3. **features** per region (:func:`region_stats`), measured in the reference's frame: normalized area, aligned
   centroid, elongation and orientation (second moments), compactness (area against boundary length), mean
   line-art darkness (ink inside and around the region: the colour-free context), whether it touches the image
   border, whether one other region encloses it; plus the share of the target region that each aligned reference
   region covers;
4. a **cost matrix** target x reference regions (all references together) from those terms, with the reference's
   background (border, near white) barred to target regions away from the border; then a few rounds of *relaxation
   labelling* over the region adjacency graphs (a target region is more likely to match a reference region when its
   neighbours match that region's neighbours: the neighbour and inclusion relations);
5. **leaky regions**: a large target region over which the aligned reference shows several colors (a gap in the
   target's lines merged hair, face and background) is split along the aligned reference (:func:`split_leaky`), and
   each piece takes the colors under it;
6. **colors with a confidence**: match probabilities are a softmax of the costs; reference colors within
   ``SAME_COLOR`` CIELAB units of each other pool their probability, and a target region takes the color with the
   largest pooled probability; that probability is its confidence (:meth:`Match.votes`), which a character model
   weighs against the network's own vote;
7. **the same pose** (the flow moved the reference's ink at most ``MOTION_LO``): a matched region takes the median
   color of the best-aligned reference's pixels under it that are of its matched region's material
   (:meth:`Reference.materials`, :class:`DenseSamples`): a target region spanning several of the reference's shade
   bands gets their median, not the one band it matched best; and :func:`reference_pixels` gives the aligned
   reference's own pixels of that material, which a character model shows in place of the flat color (the
   reference's shading).

Bounded: the largest ``MAX_MATCH_REGIONS`` regions of each drawing take part (the others keep the network's color),
region statistics are measured on labels subsampled to at most ``MATCH_SIDE`` pixels per side, the alignment works
on a ``CANVAS``-pixel density and the flow at the reference's size (at most 768 px), and everything else is
vectorized numpy: about 0.1 s for a 512² target and one reference on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse.csgraph import connected_components

from ..regions import INK_THRESHOLD, Segmentation, default_gap, line_width, segment
from ..regions.paint import to_lab

MAX_MATCH_REGIONS = 400  # per drawing: the cost matrix is at most 400 x (400 x references)
MATCH_SIDE = 768  # statistics on labels subsampled to this long side (a 4096² page costs what a 768² one does)
CANVAS = 128  # side of the ink-density canvas the alignment correlates
FILL = 0.5  # share of the canvas side the character's ink box spans (the rest is room for shifts and scales)
SAME_COLOR = 10.0  # CIELAB distance under which two reference colors count as one color
PALETTE = 16  # colors a reference is quantized to before its color edges become region borders
# cost weights: each term is roughly 0..1 for a plausible pair and up to 2 for an implausible one
WEIGHTS = {"overlap": 2.0, "position": 1.5, "area": 1.0, "shape": 0.5, "dark": 0.5, "border": 1.0,
           "enclosed": 0.3, "neighbours": 1.5, "background": 3.0}
POSITION_SCALE = 0.25  # centroid distance (in character sizes) that costs 1
AREA_SCALE = np.log(4.0)  # an area ratio of 4 costs 1
DARK_SCALE = 0.2  # a difference of mean line darkness of 0.2 costs 1
TEMPERATURE = 0.3  # softmax temperature of the costs: lower is more decisive
RELAX_ROUNDS = 3
FLOW_BLUR = 4.0  # reference pixels: the ink is blurred this much before the dense flow registers it
SPLIT_AREA = 0.01  # a region smaller than this share of the character's box area is never split
SPLIT_SHARE = 0.15  # ... nor one whose second reference color covers less than this share of it
MINOR_AREA = 0.002  # a color group smaller than this share of the character's box joins its region's largest group
SAME_POSE_SPLIT = 0.01  # the same pose: a region is split where another color covers this share of the box
# another pose: when the dense flow moves the reference's ink far (median, in character sizes), its shading bands no
# longer tell which shade a region has (the light falls elsewhere on a body that leans); a matched region then takes
# a blend of its reference region's color and its material's mean shade (:meth:`Reference.material_colors`), fully
# at MOTION_HI. New faces of Eileen and Sylvie move 0.004-0.015, Lucy's new pose 0.04-0.07 (benchmarks/character.py)
MOTION_LO, MOTION_HI = 0.02, 0.035
MATERIAL_HUE = 30.0  # degrees: adjacent reference regions within this hue (both chromatic) are one material ...
MATERIAL_GRAY = 8.0  # ... or both this close to gray (CIELAB chroma) ...
MATERIAL_L = 25.0  # ... and within this lightness of each other (black hair and a white collar are not shades)
# the same pose: a target region takes the median color of the aligned reference's pixels under it that belong to its
# matched region's material (:meth:`Match.votes`), when at least this share of its samples are such pixels
DENSE_SHARE = 0.25


# ---------------------------------------------------------------------------------------------------- alignment


@dataclass
class Frame:
    """Where a drawing's ink lies: centre (2,) float (x, y) in pixels and size (pixels, sqrt of the area of its
    robust bounding box); ``points`` (N, 2) float32 ink coordinates (subsampled) for the density canvas."""

    center: np.ndarray
    size: float
    points: np.ndarray


def ink_frame(ink: np.ndarray, step: int = 1) -> Frame:
    """ink (h, w) bool, sampled every ``step`` pixels of the drawing -> :class:`Frame` in drawing pixels.

    The box spans the 0.5 and 99.5 percentiles of the ink coordinates, so a few stray marks do not move it; no ink
    at all: the whole image."""
    ys, xs = np.nonzero(ink)
    h, w = ink.shape
    if len(xs) < 16:
        ys, xs = np.mgrid[0:h, 0:w].reshape(2, -1)
    pts = np.stack([xs, ys], axis=1).astype(np.float32) * step  # (N, 2) x, y
    lo, hi = np.percentile(pts, [0.5, 99.5], axis=0)
    size = float(np.sqrt(max(hi[0] - lo[0], step) * max(hi[1] - lo[1], step)))
    return Frame((lo + hi) / 2.0, size, pts)


def _canvas(pts: np.ndarray) -> np.ndarray:
    """(N, 2) canonical coordinates (character size 1, centred on 0) -> (CANVAS, CANVAS) float32 ink density,
    blurred (so the correlation tolerates small shape changes) and of unit L2 norm."""
    q = np.floor(CANVAS / 2 + pts * (CANVAS * FILL)).astype(np.int64)
    ok = (q >= 0).all(axis=1) & (q < CANVAS).all(axis=1)
    dens = np.bincount(q[ok, 1] * CANVAS + q[ok, 0], minlength=CANVAS * CANVAS).astype(np.float32)
    dens = cv2.GaussianBlur(dens.reshape(CANVAS, CANVAS), (0, 0), 1.5)
    return dens / max(float(np.linalg.norm(dens)), 1e-6)


@dataclass
class Alignment:
    """Target pixels -> reference pixels: ``p_ref = A @ p_target + b``; A (2, 2), b (2,). ``flip``: the target is
    the reference mirrored; ``score``: normalized correlation of the two ink densities (0..1)."""

    A: np.ndarray
    b: np.ndarray
    flip: bool
    score: float
    flow: np.ndarray | None = None  # (H_ref, W_ref, 2) float32: reference pixel q of the moved target -> q + flow

    def motion(self, ref_ink: np.ndarray, size: float) -> float:
        """How far the dense flow moves the reference's ink (``ref_ink`` (H_ref, W_ref) bool): the median flow length
        over it, in character sizes (``size``: the reference frame's); 0 without a flow."""
        if self.flow is None or not ref_ink.any():
            return 0.0
        return float(np.median(np.hypot(self.flow[..., 0], self.flow[..., 1])[ref_ink])) / max(size, 1.0)

    def matrix(self) -> np.ndarray:
        """(2, 3) float64 affine [A | b]."""
        return np.concatenate([self.A, self.b[:, None]], axis=1)

    def _add_flow(self, qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.flow is None:
            return qx, qy
        fx, fy = (cv2.remap(np.ascontiguousarray(self.flow[..., c]), qx, qy, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) for c in (0, 1))
        return qx + fx, qy + fy

    def points(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) target pixels (x, y) -> (N, 2) reference pixels."""
        q = (pts @ self.A.T + self.b).astype(np.float32)
        qx, qy = self._add_flow(q[None, :, 0].copy(), q[None, :, 1].copy())
        return np.stack([qx[0], qy[0]], axis=1).astype(np.float64)

    def maps(self, shape: tuple[int, int], step: int) -> tuple[np.ndarray, np.ndarray]:
        """Reference pixel coordinates (mapx, mapy), each (h, w) float32, of the target samples ``[::step, ::step]``
        of a (h, w) sample grid (for ``cv2.remap``)."""
        h, w = shape
        xs = np.arange(w, dtype=np.float64)[None, :] * step
        ys = np.arange(h, dtype=np.float64)[:, None] * step
        qx = (self.A[0, 0] * xs + self.A[0, 1] * ys + self.b[0]).astype(np.float32)
        qy = (self.A[1, 0] * xs + self.A[1, 1] * ys + self.b[1]).astype(np.float32)
        return self._add_flow(qx, qy)

    def warp_labels(self, ref_labels: np.ndarray, shape: tuple[int, int], step: int) -> np.ndarray:
        """Reference labels (H_ref, W_ref) int -> (h, w) int64: the reference label under each target sample (0
        outside the reference)."""
        mx, my = self.maps(shape, step)
        out = cv2.remap(ref_labels.astype(np.float32), mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0)
        return out.astype(np.int64)


def align(target: Frame, ref: Frame, scales: tuple[float, float] = (0.8, 1.25)) -> Alignment:
    """Best shift, scale and horizontal flip of the target's ink onto the reference's (see the module docstring).

    A coarse grid of 9 scales per orientation, then 5 finer scales around the best; each candidate is one FFT
    cross-correlation of (CANVAS, CANVAS) densities, shifts limited to a quarter of the canvas."""
    ref_c = np.fft.rfft2(_canvas((ref.points - ref.center) / ref.size))
    tgt_u = (target.points - target.center) / target.size  # (N, 2) canonical target coordinates
    lim = CANVAS // 4
    best = (-1.0, 1.0, False, 0.0, 0.0)  # score, scale, flip, dx, dy (canvas pixels)

    def search(cands: np.ndarray, flips: tuple[bool, ...]) -> None:
        nonlocal best
        for flip in flips:
            u = tgt_u * np.array([-1.0 if flip else 1.0, 1.0], np.float32)
            for s in cands:
                corr = np.fft.irfft2(ref_c * np.conj(np.fft.rfft2(_canvas(u * s))), s=(CANVAS, CANVAS))
                corr = np.roll(corr, (lim, lim), axis=(0, 1))[: 2 * lim + 1, : 2 * lim + 1]  # shifts -lim..lim
                k = int(np.argmax(corr))
                score = float(corr.flat[k])
                if score > best[0]:
                    best = (score, float(s), flip, float(k % (2 * lim + 1) - lim), float(k // (2 * lim + 1) - lim))

    search(np.geomspace(*scales, 9), (False, True))
    step = (scales[1] / scales[0]) ** (1 / 8)
    search(best[1] * step ** np.linspace(-0.5, 0.5, 5), (best[2],))
    score, s, flip, dx, dy = best
    F = np.diag([-1.0 if flip else 1.0, 1.0])
    A = (ref.size * s / target.size) * F
    shift = np.array([dx, dy]) / (CANVAS * FILL)  # canonical units
    b = ref.center + ref.size * shift - A @ target.center
    return Alignment(A, b, flip, score)


def _ink_image(line: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) uint8 line art -> (H, W) float32 blurred ink (0 paper .. ~1 dense ink)."""
    return cv2.GaussianBlur((255.0 - line.astype(np.float32)) / 255.0, (0, 0), sigma)


def refine(al: Alignment, line: np.ndarray, ref_line: np.ndarray) -> Alignment:
    """Add a dense flow to a global alignment: the target's blurred ink, moved into the reference's frame, is
    registered to the reference's by DIS optical flow (T. Kroeger, R. Timofte, D. Dai, L. Van Gool, "Fast Optical
    Flow using Dense Inverse Search", ECCV 2016), so that a head that moved relative to the body, or a changed
    expression, still lands on the right reference regions. Blurred by ``FLOW_BLUR`` reference pixels (line art is
    too sparse for flow otherwise); costs about 40 ms at 512²."""
    h, w = ref_line.shape
    scale = float(np.sqrt(abs(np.linalg.det(al.A))))  # reference pixels per target pixel
    M = al.matrix()
    if scale < 1:  # a large target: brought to the reference's scale first (blurring it at full size costs more)
        line = cv2.resize(line, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        M = np.concatenate([al.A / scale, al.b[:, None]], axis=1)
    sigma = FLOW_BLUR / scale if scale > 1 else FLOW_BLUR  # FLOW_BLUR reference pixels, in this image's pixels
    moved = cv2.warpAffine(_ink_image(line, sigma), M, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    target = _ink_image(ref_line, FLOW_BLUR)
    top = max(float(moved.max()), float(target.max()), 1e-6)
    to_u8 = lambda x: np.clip(x * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)  # noqa: E731 (one shared scale)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(to_u8(moved), to_u8(target), None)
    return Alignment(al.A, al.b, al.flip, al.score, flow)


# ----------------------------------------------------------------------------------------------------- features


@dataclass
class RegionStats:
    """Per-region statistics of a segmentation, measured on its labels subsampled every ``step`` pixels.

    ids (k,) int: the region labels taking part (the largest ``MAX_MATCH_REGIONS``); index (n + 1,) int: label ->
    0..k-1, or -1 for regions left out; count (k,) sampled pixels; centroid (k, 2) and cov (k, 2, 2) in drawing
    pixels; compact (k,) 0..1; dark (k,) mean line darkness 0..1; border, enclosed (k,) bool; adjacency (k, k)
    float: shared boundary samples between regions; labels (h, w) int32 the subsampled labels."""

    ids: np.ndarray
    index: np.ndarray
    count: np.ndarray
    centroid: np.ndarray
    cov: np.ndarray
    compact: np.ndarray
    dark: np.ndarray
    border: np.ndarray
    enclosed: np.ndarray
    adjacency: np.ndarray
    labels: np.ndarray
    step: int


def sample_step(shape: tuple[int, ...]) -> int:
    """Subsampling stride that brings the long side of ``shape`` to at most ``MATCH_SIDE``."""
    return max(1, -(-max(shape[0], shape[1]) // MATCH_SIDE))


def region_stats(seg: Segmentation, line: np.ndarray, step: int) -> RegionStats:
    """Segmentation + its line art (H, W) uint8 -> :class:`RegionStats`; all sums are bincounts over the samples."""
    labels = np.ascontiguousarray(seg.labels[::step, ::step])
    h, w = labels.shape
    n = seg.n
    cnt_all = np.bincount(labels.ravel(), minlength=n + 1)
    order = np.argsort(-cnt_all[1:], kind="stable")[:MAX_MATCH_REGIONS] + 1
    ids = np.sort(order[cnt_all[order] > 0])
    index = np.full(n + 1, -1, np.int64)
    index[ids] = np.arange(len(ids))
    k = len(ids)
    lbl = index[labels.ravel()]  # (h*w,) compact index or -1
    sel = lbl >= 0
    li = lbl[sel]
    ys, xs = np.divmod(np.flatnonzero(sel), w)
    xs, ys = xs.astype(np.float64) * step, ys.astype(np.float64) * step

    def total(v: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(li, weights=v, minlength=k).astype(np.float64)

    count = total()
    mx, my = total(xs) / count, total(ys) / count
    dx, dy = xs - mx[li], ys - my[li]
    cov = np.stack([np.stack([total(dx * dx), total(dx * dy)], -1), np.stack([total(dx * dy), total(dy * dy)], -1)],
                   -2) / count[:, None, None]
    dark = total((255.0 - line[::step, ::step].ravel()[sel]) / 255.0) / count
    # boundary samples: a 4-neighbour with another label; adjacency counts those label pairs
    pairs = [(labels[:, 1:], labels[:, :-1]), (labels[1:], labels[:-1])]
    edge = np.zeros((h, w), bool)
    edge[:, 1:] |= pairs[0][0] != pairs[0][1]
    edge[:, :-1] |= pairs[0][0] != pairs[0][1]
    edge[1:] |= pairs[1][0] != pairs[1][1]
    edge[:-1] |= pairs[1][0] != pairs[1][1]
    perimeter = total(edge.ravel()[sel].astype(np.float64))
    compact = np.clip(4 * np.pi * count / np.maximum(perimeter, 1.0) ** 2, 0.0, 1.0)
    adj = np.zeros(k * k, np.float64)
    for a, b in pairs:
        ia, ib = index[a.ravel()], index[b.ravel()]
        ok = (ia != ib) & (ia >= 0) & (ib >= 0)
        adj += np.bincount(ia[ok] * k + ib[ok], minlength=k * k)
    adj = adj.reshape(k, k)
    adj = adj + adj.T
    enclosed = ((adj > 0).sum(axis=1) == 1) & ~seg.border[ids]
    return RegionStats(ids, index, count, np.stack([mx, my], -1), cov, compact, dark, seg.border[ids], enclosed,
                       adj, labels, step)


def _shape(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, 2, 2) covariances -> elongation (k,) in 0..1 (1 = round) and orientation (k, 2): the doubled-angle unit
    vector weighted by 1 - elongation (a round region has no orientation)."""
    a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    root = np.sqrt(((a - c) / 2) ** 2 + b**2)
    l1, l2 = (a + c) / 2 + root, np.maximum((a + c) / 2 - root, 0.0)
    elong = np.sqrt(l2 / np.maximum(l1, 1e-9))
    ang = np.arctan2(2 * b, a - c)  # doubled angle of the major axis
    return elong, np.stack([np.cos(ang), np.sin(ang)], -1) * (1 - elong)[:, None]


# ----------------------------------------------------------------------------------------------------- matching


@dataclass
class Reference:
    """One colored reference, ready to match: line (H, W) uint8, color (H, W, 3) uint8 RGB, its segmentation,
    statistics, ink frame, and colors (k, 3) float32 CIELAB per matched region (median over its paper pixels)."""

    line: np.ndarray
    color: np.ndarray
    seg: Segmentation
    stats: RegionStats
    frame: Frame
    colors: np.ndarray

    @property
    def background(self) -> np.ndarray:
        """(k,) bool: matched regions that are the paper around the character (touch the image border, near white).
        A region cut by the image border in a colored part (a body cut off at the bottom) is not background."""
        chroma = np.hypot(self.colors[:, 1], self.colors[:, 2])
        return self.stats.border & (self.colors[:, 0] > 90) & (chroma < 10)

    def shade_links(self) -> tuple[np.ndarray, np.ndarray]:
        """-> (link (k, k) bool, gray (k,) bool): matched regions adjacent to each other that are shades of one
        material (hue within ``MATERIAL_HUE`` degrees, or both within ``MATERIAL_GRAY`` of gray; lightness within
        ``MATERIAL_L``); each region is linked to itself; background regions to nothing else."""
        c = self.colors.astype(np.float64)
        chroma = np.hypot(c[:, 1], c[:, 2])
        hue = np.degrees(np.arctan2(c[:, 2], c[:, 1]))
        dhue = np.abs((hue[:, None] - hue[None, :] + 180.0) % 360.0 - 180.0)
        gray = chroma <= MATERIAL_GRAY
        shade = np.where(gray[:, None] & gray[None, :], True, (dhue < MATERIAL_HUE) & ~gray[:, None] & ~gray[None, :])
        shade &= np.abs(c[:, None, 0] - c[None, :, 0]) < MATERIAL_L
        bg = self.background
        link = (self.stats.adjacency > 0) & shade & ~bg[:, None] & ~bg[None, :]
        np.fill_diagonal(link, True)
        return link, gray

    def materials(self) -> np.ndarray:
        """(k, k) bool: pairs of matched regions of one material. Shades of a colored material chain: hair drawn
        in bands from orange to magenta is one material although its first and last bands differ by more than
        ``MATERIAL_HUE``, so two chromatic regions are one material when a path of adjacent shades joins them and
        their lightness is within ``MATERIAL_L``. Grays do not chain (white, gray and black would): a gray region's
        material is itself and its adjacent gray shades."""
        link, gray = self.shade_links()
        chromatic = link & ~gray[:, None] & ~gray[None, :]
        _, comp = connected_components(chromatic, directed=False)
        light = self.colors[:, 0].astype(np.float64)
        return link | (chromatic.any(axis=1)[:, None] & (comp[:, None] == comp[None, :]) & ~gray[:, None]
                       & ~gray[None, :] & (np.abs(light[:, None] - light[None, :]) < MATERIAL_L))

    def material_colors(self) -> np.ndarray:
        """(k, 3) float32 CIELAB: each matched region's *material* color, the area-weighted mean of its own color and
        those of its adjacent regions that are shades of it (hue within ``MATERIAL_HUE`` degrees, or both near gray;
        lightness within ``MATERIAL_L``): a dress's light and dark bands meet at the middle shade. Background regions
        keep their own color and are nobody's shade."""
        c = self.colors.astype(np.float64)
        link, _ = self.shade_links()
        w = link * self.stats.count[None, :].astype(np.float64)  # (k, k) row i: the areas of i's shades
        return ((w @ c) / np.maximum(w.sum(axis=1, keepdims=True), 1e-9)).astype(np.float32)

    @classmethod
    def build(cls, color: np.ndarray, line: np.ndarray) -> Reference:
        """color (H, W, 3) uint8 RGB, line (H, W) uint8 of the same size -> :class:`Reference`.

        The reference's regions use its colors too: where the quantized color changes (:func:`color_edges`) a line
        is drawn before segmenting, so a gap in the line art does not merge the hair with the face here (the target,
        with no colors, cannot do that; see :func:`split_leaky`). Gap and tiny-region sizes stay those of the line
        art alone."""
        refined = np.where(color_edges(color, line), 0, line).astype(np.uint8)
        lw = line_width(line)
        seg = segment(refined, gap=default_gap(line), min_area=max(16, round(4 * lw**2)))
        step = sample_step(line.shape)
        stats = region_stats(seg, line, step)
        frame = ink_frame((line < INK_THRESHOLD)[::step, ::step], step)
        return cls(line, color, seg, stats, frame, region_medians(color, seg, stats))


def palette(lab: np.ndarray, k: int = PALETTE, iters: int = 10) -> np.ndarray:
    """(N, 3) CIELAB samples -> (k', 3) float32 cluster centres (k-means from a farthest-point start, deterministic;
    centres closer than ``SAME_COLOR`` merged)."""
    rng = np.random.default_rng(0)
    x = lab[rng.choice(len(lab), min(len(lab), 20_000), replace=False)] if len(lab) else np.zeros((1, 3), np.float32)
    centers = [np.median(x, axis=0)]
    d = np.linalg.norm(x - centers[0], axis=1)
    for _ in range(k - 1):
        if d.max() < SAME_COLOR:
            break
        centers.append(x[int(np.argmax(d))])
        d = np.minimum(d, np.linalg.norm(x - centers[-1], axis=1))
    c = np.stack(centers).astype(np.float32)
    for _ in range(iters):
        assign = np.argmin(np.linalg.norm(x[:, None] - c[None], axis=-1), axis=1)
        for j in range(len(c)):
            if (assign == j).any():
                c[j] = x[assign == j].mean(axis=0)
    keep: list[int] = []
    for j in range(len(c)):
        if all(np.linalg.norm(c[j] - c[i]) >= SAME_COLOR for i in keep):
            keep.append(j)
    return c[keep]


def color_edges(color: np.ndarray, line: np.ndarray) -> np.ndarray:
    """color (H, W, 3) uint8, line (H, W) uint8 -> (H, W) bool: pixels where the color, quantized to its
    :func:`palette` (of the paper pixels), differs from the right or lower neighbour's."""
    lab = to_lab(color)
    c = palette(lab[line >= INK_THRESHOLD].reshape(-1, 3))
    flat = lab.reshape(-1, 3)
    q = np.empty(len(flat), np.int32)
    for i in range(0, len(flat), 1 << 18):  # chunks bound the (N, k) distance matrix
        q[i : i + (1 << 18)] = np.argmin(np.linalg.norm(flat[i : i + (1 << 18), None] - c[None], axis=-1), axis=1)
    q = q.reshape(line.shape)
    edge = np.zeros(line.shape, bool)
    edge[:, :-1] |= q[:, :-1] != q[:, 1:]
    edge[:-1] |= q[:-1] != q[1:]
    return edge


def region_medians(color: np.ndarray, seg: Segmentation, stats: RegionStats) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (k, 3) float32 median CIELAB of each matched region's paper pixels (all its pixels when
    it has no paper). Channel-wise medians: a region that a gap merged with another takes its majority color."""
    lab = to_lab(color).reshape(-1, 3)
    idx = stats.index[seg.labels.ravel()]
    paper = ~seg.ink.ravel()
    has_paper = np.bincount(idx[paper & (idx >= 0)], minlength=len(stats.ids)) > 0
    use = (idx >= 0) & (paper | ~has_paper[np.maximum(idx, 0)])
    li, px = idx[use], lab[use]
    order = np.argsort(li, kind="stable")
    li, px = li[order], px[order]
    bounds = np.searchsorted(li, np.arange(len(stats.ids) + 1))
    out = np.full((len(stats.ids), 3), (100.0, 0.0, 0.0), np.float32)
    for j in range(len(stats.ids)):  # at most MAX_MATCH_REGIONS medians, once per reference
        if bounds[j + 1] > bounds[j]:
            out[j] = np.median(px[bounds[j] : bounds[j + 1]], axis=0)
    return out


def _features(st: RegionStats, al: Alignment, ref: Frame) -> dict[str, np.ndarray]:
    """Statistics mapped into a reference's frame (identity alignment for the reference itself) -> features:
    pos (k, 2) in reference character sizes, log_area (k,), elong (k,), orient (k, 2), compact, dark, border,
    enclosed (k,)."""
    cen = al.points(st.centroid)
    cov = al.A @ st.cov @ al.A.T
    area = st.count * st.step**2 * abs(np.linalg.det(al.A))
    elong, orient = _shape(cov)
    return {"pos": (cen - ref.center) / ref.size, "log_area": np.log(np.maximum(area, 1.0) / ref.size**2),
            "elong": elong, "orient": orient, "compact": st.compact, "dark": st.dark,
            "border": st.border.astype(np.float64), "enclosed": st.enclosed.astype(np.float64)}


IDENTITY = Alignment(np.eye(2), np.zeros(2), False, 1.0)


def _overlap(target: RegionStats, al: Alignment, ref: Reference) -> np.ndarray:
    """(kt, kr) share of each target region's samples that land on each reference region after alignment."""
    warped = al.warp_labels(ref.seg.labels, target.labels.shape, target.step)
    ref_idx = ref.stats.index[warped.ravel()]  # -1: outside the reference or left out
    tgt_idx = target.index[target.labels.ravel()]
    kt, kr = len(target.ids), len(ref.stats.ids)
    ok = (tgt_idx >= 0) & (ref_idx >= 0)
    counts = np.bincount(tgt_idx[ok] * kr + ref_idx[ok], minlength=kt * kr).reshape(kt, kr)
    return counts / np.maximum(target.count, 1.0)[:, None]


def _cost(t: dict[str, np.ndarray], r: dict[str, np.ndarray], overlap: np.ndarray, ref_bg: np.ndarray
          ) -> np.ndarray:
    """(kt, kr) cost of matching each target region to each reference region (weights: :data:`WEIGHTS`); ref_bg
    (kr,) bool: the reference's background regions, which a target region away from the image border never is."""

    def diff(key: str) -> np.ndarray:
        a, b = t[key], r[key]
        if a.ndim == 1:
            return np.abs(a[:, None] - b[None, :])
        return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)

    W = WEIGHTS
    return (W["overlap"] * (1.0 - overlap)
            + W["position"] * np.minimum(diff("pos") / POSITION_SCALE, 2.0)
            + W["area"] * np.minimum(diff("log_area") / AREA_SCALE, 2.0)
            + W["shape"] * (diff("elong") + diff("compact") + diff("orient") / 2)
            + W["dark"] * np.minimum(diff("dark") / DARK_SCALE, 2.0)
            + W["border"] * diff("border")
            + W["enclosed"] * diff("enclosed")
            + W["background"] * ((t["border"] < 0.5)[:, None] & ref_bg[None, :]))


def _softmax(cost: np.ndarray) -> np.ndarray:
    z = -(cost - cost.min(axis=1, keepdims=True)) / TEMPERATURE
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


@dataclass
class Match:
    """Result of :func:`match_regions`. ``seg``: the target's segmentation, with leaky regions split
    (:func:`split_leaky`); its regions ``ids`` (k,) took part, with match probabilities ``probs`` (k, m) over all
    references' regions (a row may sum to less than 1: the rest is "unknown"), whose CIELAB colors are ``colors``
    (m, 3); ``alignments``: one per reference; ``split``: how many regions were split; ``palette`` (p, 3) CIELAB:
    every color the references show, their regions' own colors and their materials' (``colors`` are blended toward
    the materials in another pose, so a reference's own shade may be none of them)."""

    seg: Segmentation
    ids: np.ndarray
    probs: np.ndarray
    colors: np.ndarray
    alignments: list[Alignment]
    split: int = 0
    dense: DenseSamples | None = None
    palette: np.ndarray | None = None

    def votes(self, own: np.ndarray | None = None, network_weight: float = 0.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (votes (n + 1, 3) float32 CIELAB, confidence (n + 1,) float32 0..1, matched (n + 1,) bool) for the
        ``n`` regions of ``seg``.

        Each region's reference colors pool the probability of all candidates within ``SAME_COLOR`` of them; the
        confidence is the pooled probability of the chosen color. ``own`` (n + 1, 3) CIELAB (the network's votes)
        with ``network_weight`` w > 0 takes part as one more voter of weight w: it adds w to the reference colors it
        agrees with, and it wins alone where no reference color gets w (matching unsure, network disagreeing).
        Regions that took no part in the matching (too small) keep ``own``, or white without it."""
        n = self.seg.n
        out = np.full((n + 1, 3), (100.0, 0.0, 0.0), np.float32) if own is None else own.astype(np.float32)
        conf = np.zeros(n + 1, np.float32)
        matched = np.zeros(n + 1, bool)
        if len(self.ids) == 0 or self.colors.shape[0] == 0:
            return out, conf, matched
        same = (_color_dist(self.colors, self.colors) < SAME_COLOR).astype(np.float64)  # (m, m)
        support = self.probs @ same  # (k, m): probability of each candidate's color
        total = support.copy()
        vote_net = own is not None and network_weight > 0
        if vote_net:
            total += network_weight * (_color_dist(own[self.ids], self.colors) < SAME_COLOR)
        best = np.argmax(total, axis=1)  # (k,)
        rows = np.arange(len(self.ids))
        pick = np.argmax(self.probs * same[best], axis=1)  # the most probable candidate of the winning color
        use = total[rows, best] >= network_weight if vote_net else np.ones(len(best), bool)
        out[self.ids[use]] = self.colors[pick[use]]
        conf[self.ids] = support[rows, best]
        matched[self.ids[use]] = True
        if self.dense is not None:
            d = self.dense
            local = pick - d.offset
            ok = use & (local >= 0) & (local < d.materials.shape[0])
            region_pick = np.full(n + 1, -1, np.int64)
            region_pick[self.ids[ok]] = local[ok]
            colors, found = d.medians(region_pick)
            out[found] = colors[found]
        return out, conf, matched


@dataclass
class DenseSamples:
    """The same pose: the target's regions seen through the best alignment, sample by sample (every ``step`` pixels
    of the target): ``labels`` (N,) the target region, ``ref`` (N,) the aligned reference's region (compact index)
    and ``lab`` (N, 3) float32 its CIELAB color there, for the N samples that are paper in both drawings;
    ``paper`` (n + 1,) the target regions' paper samples (0 for the regions :func:`split_leaky` made: they are cut
    along the aligned reference's colors already and take theirs from it); ``materials`` (kr, kr)
    :meth:`Reference.materials`; ``offset``: that reference's first column in :attr:`Match.probs`.

    Why: a reference's regions are its shade bands (its color edges are region borders), a target region often
    spans several bands of one material (a ribbon's tail drawn as one region, lit and shaded), and its right color is
    the median of those bands under it, not the color of the one band it matched best."""

    labels: np.ndarray
    ref: np.ndarray
    lab: np.ndarray
    paper: np.ndarray
    materials: np.ndarray
    offset: int
    reference: int = 0  # which of the references (the best aligned)

    def medians(self, region_pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """region_pick (n + 1,) int: each target region's matched reference region (compact index, -1: none) ->
        (colors (n + 1, 3) float32 CIELAB, found (n + 1,) bool): the median color of the samples of each region
        whose reference region is of its matched region's material, where those are at least ``DENSE_SHARE`` of
        the region's paper samples (and 8 or more)."""
        n1 = len(region_pick)
        colors = np.zeros((n1, 3), np.float32)
        found = np.zeros(n1, bool)
        rp = region_pick[self.labels]
        sel = rp >= 0
        sel[sel] = self.materials[rp[sel], self.ref[sel]]
        lab_l, px = self.labels[sel], self.lab[sel]
        order = np.argsort(lab_l, kind="stable")
        lab_l, px = lab_l[order], px[order]
        bounds = np.searchsorted(lab_l, np.arange(n1 + 1))
        count = np.diff(bounds)
        for r in np.flatnonzero((count >= 8) & (count >= DENSE_SHARE * self.paper[:n1]) & (self.paper[:n1] > 0)):
            colors[r] = np.median(px[bounds[r] : bounds[r + 1]], axis=0)
            found[r] = True
        return colors, found


def reference_pixels(match: Match, refs: list[Reference], votes: np.ndarray, use: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """The same pose (``match.dense`` set): the aligned reference's own pixels, where they can stand for the output.

    votes (n + 1, 3) CIELAB per region of ``match.seg``; use (n + 1,) bool: the regions whose vote is the
    matching's. -> (rgb (H, W, 3) uint8: the best-aligned reference moved onto the target, mask (H, W) bool: paper
    pixels of the used regions where the reference shows a shade of the region's own material (that of the
    reference color nearest its vote; :meth:`Reference.materials`) and no line), or None in another pose. A region
    then carries the reference's shading — its lit and shaded bands, where they fall in the same pose — instead of
    one flat color (Eileen: ΔE00 3.9 -> 2.3; docs/character.md)."""
    d = match.dense
    if d is None:
        return None
    ref, al = refs[d.reference], match.alignments[d.reference]
    seg = match.seg
    warp, ridx, ref_ink = _aligned(al, ref, seg.labels.shape, 1)
    pick = np.argmin(_color_dist(votes.astype(np.float32), ref.colors), axis=1)  # (n + 1,) nearest reference color
    labels = seg.labels
    mask = (ridx >= 0) & ~ref_ink & ~seg.ink & use[labels]
    mask[mask] = d.materials[pick[labels[mask]], ridx[mask]]
    return warp(ref.color), mask


def _aligned(al: Alignment, ref: Reference, shape: tuple[int, int], step: int
             ) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray]:
    """The reference seen from the target's samples ``[::step, ::step]`` of a (h, w) sample grid -> (warp: an
    (H_ref, W_ref, ...) image -> (h, w, ...) by nearest neighbour, 0 outside; ridx (h, w) int64 compact reference
    region, -1 outside or left out; ref_ink (h, w) bool the reference's lines)."""
    mx, my = al.maps(shape, step)

    def warp(a: np.ndarray) -> np.ndarray:
        return cv2.remap(a, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    ridx = ref.stats.index[warp(ref.seg.labels.astype(np.float32)).astype(np.int64)]
    return warp, ridx, warp((ref.line < INK_THRESHOLD).astype(np.uint8)) > 0


def dense_samples(seg: Segmentation, al: Alignment, ref: Reference, offset: int, split_ids: np.ndarray,
                  reference: int = 0) -> DenseSamples:
    """The target's segmentation seen through alignment ``al`` onto ``ref`` (references[``reference``], whose
    first column in the match's probabilities is ``offset``) -> :class:`DenseSamples` (on the samples of
    :func:`sample_step`: a 4096² page costs what a 768² one does); ``split_ids``: the regions :func:`split_leaky`
    made, left out."""
    step = sample_step(seg.labels.shape)
    labels = seg.labels[::step, ::step]
    warp, ridx, ref_ink = _aligned(al, ref, labels.shape, step)
    paper = ~seg.ink[::step, ::step]
    use = paper & ~ref_ink & (ridx >= 0)
    lab = to_lab(warp(ref.color)[use][None])[0] if use.any() else np.zeros((0, 3), np.float32)  # (N, 3)
    count = np.bincount(labels[paper].ravel(), minlength=seg.n + 1)
    count[split_ids] = 0
    return DenseSamples(labels[use].astype(np.int64), ridx[use], lab.astype(np.float32), count, ref.materials(),
                        offset, reference)


def _color_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(p, 3), (q, 3) CIELAB -> (p, q) Euclidean distances."""
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)


def color_groups(colors: np.ndarray) -> np.ndarray:
    """(m, 3) CIELAB -> (m,) int group per color: greedily, a color joins the first earlier group whose first color
    is within ``SAME_COLOR`` of it."""
    groups = np.full(len(colors), -1, np.int64)
    heads: list[int] = []
    for j in range(len(colors)):
        d = _color_dist(colors[j : j + 1], colors[heads])[0] if heads else np.zeros(0)
        hit = np.flatnonzero(d < SAME_COLOR)
        if len(hit):
            groups[j] = groups[heads[hit[0]]]
        else:
            groups[j] = len(heads)
            heads.append(j)
    return groups


def _mode_filter(labels: np.ndarray, k: int, size: int = 5) -> np.ndarray:
    """(H, W) uint8 labels in 0..k-1 -> the most frequent label in each size x size window (one box filter per
    label; a median would invent labels between two others)."""
    best = np.zeros(labels.shape, np.uint8)
    best_count = np.full(labels.shape, -1, np.int16)
    for j in np.unique(labels).tolist():
        c = cv2.boxFilter((labels == j).astype(np.uint8), cv2.CV_16S, (size, size), normalize=False,
                          borderType=cv2.BORDER_REPLICATE)
        take = c > best_count
        best[take], best_count[take] = j, c[take]
    return best


def split_leaky(seg: Segmentation, frame: Frame, al: Alignment, ref: Reference
                ) -> tuple[Segmentation, np.ndarray, np.ndarray]:
    """Split the target regions that a gap in the line art merged, along the aligned reference's colors.

    A region is *leaky* when it is at least ``SPLIT_AREA`` of the character's box and the aligned reference shows a
    second color group over at least ``SPLIT_SHARE`` of it. Each of its color groups of at least ``MINOR_AREA`` of
    the box becomes a region of its own (the largest keeps the region's label; the rest of its pixels join it); the
    groups are smoothed by a 5x5 mode filter first so that thin slivers of misalignment do not become regions.

    -> (segmentation with the new regions appended, ids (s,) of all regions made by splitting (the kept labels
    too), probs (s, kr): share of each of those regions' pixels on each reference region, times the alignment's
    score)."""
    h, w = seg.labels.shape
    kr = len(ref.stats.ids)
    ridx = ref.stats.index[al.warp_labels(ref.seg.labels, (h, w), 1)]  # (H, W) compact reference region, or -1
    group_of = color_groups(ref.colors)
    g_n = int(group_of.max()) + 1 if kr else 0
    if g_n < 2 or g_n > 254:  # one color: nothing to split by (and the groups must fit uint8)
        return seg, np.zeros(0, np.int64), np.zeros((0, kr))
    # g_n: no reference there, or the reference's background under a region away from the border (a region the
    # pose moved out of the reference's outline: it takes its other colors, not the paper's)
    bg_ref = np.concatenate([ref.background, [False]])
    hidden = (ridx < 0) | (bg_ref[ridx] & ~seg.border[seg.labels])
    grp = np.where(hidden, g_n, group_of[np.maximum(ridx, 0)]).astype(np.uint8)
    grp = _mode_filter(grp, g_n + 1)
    n = seg.n
    counts = np.bincount((seg.labels.astype(np.int64) * (g_n + 1) + grp).ravel(),
                         minlength=(n + 1) * (g_n + 1)).reshape(n + 1, g_n + 1)
    size = counts.sum(axis=1)
    share = counts[:, :g_n] / np.maximum(size, 1)[:, None]  # (n + 1, G)
    top2 = np.sort(share, axis=1)[:, -2:]
    leaky = (size >= SPLIT_AREA * frame.size**2) & (top2[:, 0] >= SPLIT_SHARE)
    if al.motion(ref.line < INK_THRESHOLD, ref.frame.size) <= MOTION_LO:
        # the same pose: a part that a gap joined to a large region is a small share of it (Eileen's head joined to
        # the background in the adaptive style came out white; Sylvie's bow inside her one-region silhouette in the
        # alpha style took the dress's color); there, a second color over SAME_POSE_SPLIT of the character's box is
        # enough. Not in another pose: the reference's arm where the new pose has paper would be painted onto it
        leaky |= top2[:, 0] * size >= SAME_POSE_SPLIT * frame.size**2
    leaky[0] = False
    if not leaky.any():
        return seg, np.zeros(0, np.int64), np.zeros((0, kr))
    # groups that become regions: large enough in themselves (a shirt is a small share of a region that leaked
    # into the whole background, but no speck)
    major = (counts[:, :g_n] >= MINOR_AREA * frame.size**2) & leaky[:, None]  # (n + 1, G)
    dominant = np.argmax(share, axis=1)
    new = np.tile(np.arange(n + 1)[:, None], (1, g_n + 1))  # (n + 1, G + 1) (region, group) -> label
    extra = major.copy()
    extra[np.arange(n + 1), dominant] = False
    rows, cols = np.nonzero(extra)
    new[rows, cols] = n + 1 + np.arange(len(rows))
    grp_eff = np.where(major[seg.labels, np.minimum(grp, g_n - 1)] & (grp < g_n), grp, dominant[seg.labels])
    labels = new[seg.labels, grp_eff].astype(np.int32)
    n2 = n + len(rows)
    areas = np.bincount(labels[~seg.ink], minlength=n2 + 1)
    border = np.zeros(n2 + 1, bool)
    border[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    border[0] = False
    out = Segmentation(labels, n2, seg.ink, areas, border)
    ids = np.concatenate([np.flatnonzero(leaky), n + 1 + np.arange(len(rows))])
    index = np.full(n2 + 1, -1, np.int64)
    index[ids] = np.arange(len(ids))
    sub = index[labels.ravel()]
    ok = sub >= 0
    seen = np.where(hidden, -1, ridx).ravel()
    pairs = np.bincount(sub[ok] * (kr + 1) + seen[ok] + 1, minlength=len(ids) * (kr + 1))
    pairs = pairs.reshape(len(ids), kr + 1).astype(np.float64)
    probs = pairs[:, 1:] / np.maximum(pairs.sum(axis=1, keepdims=True), 1.0) * al.score
    return out, ids, probs


def match_regions(line: np.ndarray, refs: list[Reference], seg: Segmentation | None = None,
                  split: bool = True, flow: bool = True, dense_colors: bool = True) -> Match:
    """Target line art (H, W) uint8 (and its segmentation, when already made) + references -> :class:`Match`.

    ``split``: split leaky regions along the best-aligned reference (:func:`split_leaky`); ``flow``: refine each
    global alignment by a dense flow (:func:`refine`); ``dense_colors``: when the best-aligned reference shows the
    same pose (its flow moves the ink at most ``MOTION_LO``), a matched region takes the median color of its
    material's pixels under it (:class:`DenseSamples`)."""
    seg = segment(line) if seg is None else seg
    step = sample_step(line.shape)
    st = region_stats(seg, line, step)
    frame = ink_frame(seg.ink[::step, ::step], step)
    costs, adjs, colors, alignments = [], [], [], []
    for ref in refs:
        al = refine(align(frame, ref.frame), line, ref.line) if flow else align(frame, ref.frame)
        alignments.append(al)
        t = _features(st, al, ref.frame)
        r = _features(ref.stats, IDENTITY, ref.frame)
        # another pose: the reference's shades blend toward their material's (see MOTION_LO)
        lam = float(np.clip((al.motion(ref.line < INK_THRESHOLD, ref.frame.size) - MOTION_LO)
                            / (MOTION_HI - MOTION_LO), 0.0, 1.0))
        costs.append(_cost(t, r, _overlap(st, al, ref), ref.background))
        adjs.append(ref.stats.adjacency)
        colors.append(ref.colors if lam == 0 else (1 - lam) * ref.colors + lam * ref.material_colors())
    cost = np.concatenate(costs, axis=1) if costs else np.zeros((len(st.ids), 0))
    m = cost.shape[1]
    if m == 0 or len(st.ids) == 0:
        return Match(seg, st.ids, np.zeros((len(st.ids), m)), np.zeros((m, 3), np.float32), alignments)
    # relaxation labelling: neighbourhoods of the reference regions (a region is its own neighbour: a target region
    # split in two by an extra line still matches one reference region), block-diagonal over the references
    near = np.zeros((m, m))
    o = 0
    for a in adjs:
        near[o : o + len(a), o : o + len(a)] = (a > 0) | np.eye(len(a), dtype=bool)
        o += len(a)
    wt = st.adjacency / np.maximum(st.adjacency.sum(axis=1, keepdims=True), 1.0)  # (kt, kt) boundary shares
    probs = _softmax(cost)
    for _ in range(RELAX_ROUNDS):
        agree = wt @ probs @ near  # (kt, m): share of t's boundary whose neighbours match r's neighbourhood
        agree[st.adjacency.sum(axis=1) == 0] = 1.0  # an isolated region has no neighbours to disagree
        probs = _softmax(cost + WEIGHTS["neighbours"] * (1.0 - agree))
    ids = st.ids
    n_split = 0
    split_ids = np.zeros(0, np.int64)
    if split:
        best = int(np.argmax([a.score for a in alignments]))
        seg2, sids, sprobs = split_leaky(seg, frame, alignments[best], refs[best])
        if len(sids):
            # the split regions' rows: the dense evidence, in the columns of the reference it came from
            offset = sum(len(r.stats.ids) for r in refs[:best])
            rows = np.zeros((len(sids), m))
            rows[:, offset : offset + sprobs.shape[1]] = sprobs
            keep = ~np.isin(ids, sids)
            ids, probs = np.concatenate([ids[keep], sids]), np.concatenate([probs[keep], rows])
            n_split = int((sids <= seg.n).sum())
            seg, split_ids = seg2, sids
    dense = None
    if dense_colors:
        best = int(np.argmax([a.score for a in alignments]))
        if alignments[best].motion(refs[best].line < INK_THRESHOLD, refs[best].frame.size) <= MOTION_LO:
            dense = dense_samples(seg, alignments[best], refs[best], sum(len(r.stats.ids) for r in refs[:best]),
                                  split_ids, best)
    shown = np.concatenate([np.concatenate([r.colors, r.material_colors()]) for r in refs]).astype(np.float32)
    return Match(seg, ids, probs, np.concatenate(colors).astype(np.float32), alignments, n_split, dense, shown)
