"""Gray and screentoned manga pages: made from color images (a training-pair style) and read at inference.

A manga page is line art plus the artist's tones: flat gray fills, gradients, or screentone (a halftone dot pattern
that prints a gray as black dots on paper). Two directions live here, so that what training sees and what inference
reads are made by one module:

* :func:`render_manga` turns a color image into the gray page an artist would have drawn: the color's CIE L*
  (optionally posterized into a few flat tones), as gray or as a halftone screen at a common ruling and angle, with
  XDoG lines on top and print-like noise. It is the ``manga`` line-art style (:mod:`tintline.data.lineart`).
* :func:`read_page` says what came in (``lines``, ``pencil``, ``gray``, ``screentone``, ``color``), removes a
  screen (:func:`descreen`: the dots go, their tone stays), and gives the line art the regions and the network work
  on plus the page's own tone. :meth:`Page.finish` then keeps the page's lightness: the output's L* is the page's
  and only a* b* (the colors) come from the colorizer, so the artist's shading survives exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .imageio import composite_on_white, to_rgba

KINDS = ("lines", "pencil", "gray", "screentone", "color")
SHADED_KINDS = frozenset({"gray", "screentone", "color"})  # kinds whose own lightness --keep-shading keeps

# reading thresholds (uint8 gray levels unless said otherwise)
DOT_MAX_AREA = 160  # a screen dot (or the paper hole of a dense screen) covers at most this many pixels
MIN_DOTS = 30  # fewer regular dots than this (or one per 20,000 pixels) is no screen
FLAT_STD = 6.0  # a pixel is in a flat tone when its 5x5 neighbourhood varies less than this
GRAY_SHARE = 0.002  # a page is "gray" when this share of its pixels are flat mid-grays (1 % read a page of thin
# gray swirls or small gray buttons as line art, its grays as ink: 31 of 331 validation gray pages; now 21, and 2 more
# of 616 line-art drawings read as gray, both drawn with gray fills)
COLOR_CHROMA = 20.0  # CIELAB chroma above which a pixel counts as colored
COLOR_SHARE = 0.03  # ... and a page is "color" when this share of its pixels are (see _is_color)
INK_LEVEL = 70  # tone darker than this is ink (lines and solid black fills) in the page's line art
LATTICE_TOL = 0.25  # a screen's dots: the 4 nearest lie within 25 % of the spacing ...
LATTICE_ANGLE = 10.0  # ... and within 10 degrees of the lattice's direction (modulo 90)
MESH_REACH = 0.5  # periods: mesh pixels farther than this from every paper hole are ink drawn over the screen
SOLID_SIDE = 9  # ink at least this wide (pixels) is a solid area: a region with an inked outline, not a line
QUIET_SIDE = 19  # a dark fill at least this wide (pixels) is read without edges inside: print noise is no drawing
QUIET_STEP = 4.0  # ... except where its smoothed tone changes by more than this many levels a pixel (a drawn edge)
FLAT_DOTS = 64  # a closed region of a screened page smaller than this many screen cells takes one flat tone
LATTICE_SIGMA = 2.5  # periods: the window over which the screen's local phase is tracked (see screen_rank)
LATTICE_MARGIN = 0.1  # rank: a dot's soft edge at 50 % coverage (less towards light and dark screens) is no line
LATTICE_FIT = 0.8  # ... where the lattice predicts fewer than this share of dark and paper pixels, blobs decide
LATTICE_EDGE = 0.3  # periods: within this of a light tone a dense screen's blob ink stays ink (see drawn_ink)
LATTICE_WINDOW = 1024  # pixels: the side of the page window whose spectrum gives the screen's lattice
SOFT_SIGMA = 2.0  # a soft scan's dots: pixels darker than the page blurred by this sigma (pixels) ...
SOFT_OFFSET = 4.0  # ... by at least this many levels (see find_soft_screen)
SOFT_REGULAR = 0.05  # ... and at least this share of the small blobs so found sit on the screen's lattice
HOLE_REACH = 2.0  # periods: a light screen's dots are closed over this (see fill_light_holes; 0: not) ...
HOLE_LIGHT = 220.0  # ... when the screen around it is at least this light (see fill_light_holes)
MID_COVER = 0.35  # a mid-tone patch the lattice alone finds covers this share of the paper or more, and not more
MID_SIDE = 3.0  # ... than 1 - this; and it is at least this many periods wide (see lattice_screen; 0: none) ...
MID_EDGE = 0.5  # ... taken from this many periods in from its edge


# ----------------------------------------------------------------------------------------------- lightness

GRAY_L = cv2.cvtColor(np.arange(256, dtype=np.float32).reshape(1, 256, 1).repeat(3, 2) / 255.0,
                       cv2.COLOR_RGB2Lab)[0, :, 0]  # (256,) CIE L* of each sRGB gray level, increasing


def lightness(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (H, W) float32 CIE L* in [0, 100]."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[..., 0]


def gray_of_lightness(lum: np.ndarray) -> np.ndarray:
    """(H, W) L* in [0, 100] -> (H, W) uint8 sRGB gray of that lightness (the inverse of :data:`GRAY_L`)."""
    return np.clip(np.interp(lum, GRAY_L, np.arange(256)) + 0.5, 0, 255).astype(np.uint8)


def _in_gamut(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) float32 CIELAB -> (sRGB in [0, 1], bool: inside the sRGB gamut). OpenCV clips the channels, so a
    color is inside when it comes back from sRGB as itself (within 0.5)."""
    rgb = cv2.cvtColor(lab.reshape(1, -1, 3), cv2.COLOR_Lab2RGB)
    back = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(lab.shape)
    return rgb.reshape(lab.shape), (np.abs(back - lab) < 0.5).all(-1)


def keep_lightness(rgb: np.ndarray, tone: np.ndarray, rows: int = 512) -> np.ndarray:
    """Colors of ``rgb`` (H, W, 3) uint8 over the lightness of the gray page ``tone`` (H, W) uint8: L* from the
    page, hue from ``rgb``, and its chroma as far as sRGB can show at that lightness (a saturated blue over a
    light gray is paler, not lighter: clipping the channels instead would move L*). Done in bands of ``rows``
    rows so a large page needs little extra memory."""
    out = np.empty_like(rgb)
    for y in range(0, rgb.shape[0], rows):
        lab = cv2.cvtColor(rgb[y:y + rows].astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        lab[..., 0] = GRAY_L[tone[y:y + rows]]
        back, ok = _in_gamut(lab)
        if not ok.all():  # bisect each out-of-gamut pixel's chroma scale (8 steps: within 0.4 %)
            bad = lab[~ok]
            lo, hi = np.zeros(len(bad), np.float32), np.ones(len(bad), np.float32)
            for _ in range(8):
                mid = (lo + hi) / 2
                _, fits = _in_gamut(np.concatenate([bad[:, :1], bad[:, 1:] * mid[:, None]], 1))
                lo, hi = np.where(fits, mid, lo), np.where(fits, hi, mid)
            back[~ok] = _in_gamut(np.concatenate([bad[:, :1], bad[:, 1:] * lo[:, None]], 1))[0]
        out[y:y + rows] = np.clip(back * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


# ----------------------------------------------------------------------------------------------- rendering


def _spot_rank(period: float, angle: float, h: int, w: int) -> np.ndarray:
    """(H, W) float32 in [0, 1]: a round-dot halftone threshold at ``period`` pixels and ``angle`` degrees, rank-
    equalised so that inking the pixels below ``c`` covers a share ``c`` of the paper (dots grow from cell centres
    and join into a mesh above ~50 %)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.deg2rad(angle)
    u = (xx * np.cos(t) + yy * np.sin(t)) * (2 * np.pi / period)
    v = (-xx * np.sin(t) + yy * np.cos(t)) * (2 * np.pi / period)
    return _rank(-(np.cos(u) + np.cos(v)))  # -2 at dot centres, +2 at the paper between them


_GRID = np.linspace(0, 2 * np.pi, 256, endpoint=False, dtype=np.float32)
_SPOT_CELL = np.sort(-(np.cos(_GRID)[:, None] + np.cos(_GRID)[None, :]).ravel())  # one cell's spot values, sorted


def _rank(spot: np.ndarray) -> np.ndarray:
    """Spot function values -(cos u + cos v) -> float32 in [0, 1]: the share of a screen cell below each value, so
    that the pixels of rank below ``c`` are the dot a coverage ``c`` prints."""
    return (np.searchsorted(_SPOT_CELL, spot) / _SPOT_CELL.size).astype(np.float32)


_RANK_LUT = _rank(np.linspace(-2.0, 2.0, 4097, dtype=np.float32))  # the same, tabulated (a 1/1024 step)


def sample_manga_params(rng: np.random.Generator) -> dict:
    """A page style drawn per sample: flat tones or continuous gray, screened or not, ruling, angle, noise, lines."""
    from .lineart import sample_xdog_params  # lineart imports this module for its registry

    return {
        "levels": int(rng.choice([0, 4, 5, 6, 8])),  # 0: continuous gray; else flat tones (white and black included)
        "screen": bool(rng.random() < 0.5),
        "period": float(rng.uniform(4.0, 8.0)),  # pixels per dot (about 55-110 lpi at 600 dpi after downscaling)
        "angle": float(rng.choice([45.0, 15.0, 75.0, 0.0]) + rng.uniform(-2.0, 2.0)),
        "noise": float(rng.uniform(0.0, 5.0)),
        "seed": int(rng.integers(2**31)),
        "xdog": sample_xdog_params(rng),
    }


def render_manga(rgb: np.ndarray, levels: int = 0, screen: bool = False, period: float = 6.0, angle: float = 45.0,
                 noise: float = 0.0, seed: int = 0, xdog: dict | None = None,
                 lines: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 color -> (H, W) uint8 gray manga page: the color's L* as gray (posterized into ``levels`` flat
    tones when > 1), as a halftone screen of ``period`` px at ``angle`` when ``screen``, lines on top (``lines``
    (H, W) uint8 line art when given, else XDoG with ``xdog``), and Gaussian print noise of std ``noise`` with a
    slight blur."""
    from .lineart import REFERENCE_XDOG, extract_lineart

    lum = lightness(rgb)
    if levels > 1:
        lum = np.round(lum / 100.0 * (levels - 1)) * (100.0 / (levels - 1))
    gray = gray_of_lightness(lum)
    if screen:
        cover = 1.0 - gray.astype(np.float32) / 255.0  # ink share that prints this gray
        ink = _spot_rank(period, angle, *gray.shape) < cover
        gray = np.where(gray >= 250, 255, np.where(gray <= 5, 0, np.where(ink, 0, 255))).astype(np.uint8)
    page = np.minimum(gray, lines if lines is not None else extract_lineart(rgb, xdog or REFERENCE_XDOG))
    if noise > 0:
        rng = np.random.default_rng(seed)
        f = page.astype(np.float32) + rng.normal(0.0, noise, page.shape).astype(np.float32)
        page = np.clip(cv2.GaussianBlur(f, (0, 0), 0.4) + 0.5, 0, 255).astype(np.uint8)
    return page


def training_tone(rgb: np.ndarray, line: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 color + its (H, W) uint8 line art -> (H, W) uint8: the gray tone a page of it would give the
    network after reading (:func:`read_page`: screens descreened, lines kept): the color's L* as continuous gray or
    a few flat tones, the line art on top, print noise and the blur descreening leaves, all drawn from ``rng``."""
    levels = int(rng.choice([0, 0, 4, 5, 6, 8]))
    page = render_manga(rgb, levels=levels, noise=float(rng.uniform(0.0, 4.0)), seed=int(rng.integers(2**31)),
                        lines=line)
    sigma = float(rng.uniform(0.0, 1.2))
    return cv2.GaussianBlur(page, (0, 0), sigma) if sigma > 0.3 else page


# ------------------------------------------------------------------------------------------------- reading


@dataclass
class Page:
    """What :func:`read_page` found. ``line``: (H, W) uint8 line art (255 paper) for the regions and the network;
    ``tone``: (H, W) uint8 the page's own gray after descreening, None for line art (nothing to keep);
    ``period``: the screen's dot spacing in pixels (0 without a screen)."""

    kind: str
    line: np.ndarray
    tone: np.ndarray | None = None
    period: float = 0.0

    def finish(self, rgb: np.ndarray, keep_shading: bool | None = None) -> np.ndarray:
        """The colorizer's ``rgb`` for this page: over the page's own lightness when ``keep_shading`` (None: for
        the shaded kinds, gray / screentone / color), else as it is."""
        keep = self.tone is not None and (keep_shading is None or keep_shading)
        return keep_lightness(rgb, self.tone) if keep else rgb  # type: ignore[arg-type]


def _is_color(rgb: np.ndarray) -> bool:
    """True for an image already in color: of its pixels that are not paper (L* < 95), a fifth have chroma > 20 and
    they are at least 3 % of the image, in two hues or more (a sepia or yellowed scan, a blue pencil: one hue)
    unless most of the drawing is colored."""
    s = min(1.0, 512 / max(rgb.shape[:2]))
    small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    colored = np.hypot(lab[..., 1], lab[..., 2]) > COLOR_CHROMA
    drawn = max(int((lab[..., 0] < 95).sum()), 1)
    share = colored.sum() / drawn
    if colored.mean() < COLOR_SHARE or share < 0.2:
        return False
    hue = (np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))[colored] + 360.0) % 360.0
    bins = np.bincount((hue // 30).astype(int), minlength=12) / colored.sum()
    return int((bins >= 0.1).sum()) >= 2 or share >= 0.6


def _compact(stats: np.ndarray) -> np.ndarray:
    """Component stats (n, 5) -> bool (n,): small, round-ish blobs (screen dots or the holes of a dense screen)."""
    area, bw, bh = stats[:, cv2.CC_STAT_AREA], stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    side = np.maximum(bw, bh)
    return (area >= 1) & (area <= DOT_MAX_AREA) & (side <= 2.5 * np.sqrt(DOT_MAX_AREA)) & (area >= 0.3 * bw * bh)


def _regular(stats: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, float]:
    """The compact components (bool (n,)) that sit on a regular grid, and its spacing: at least 3 of each one's 4
    nearest neighbours among them lie at the median nearest distance (within LATTICE_TOL) and along the lattice's
    direction (within LATTICE_ANGLE degrees of the commonest neighbour direction, modulo 90: a screen at any angle
    has its 4 nearest dots at that angle plus multiples of 90). Text, specks, print noise, hatching and the small
    closed spaces of line art are irregular in spacing or direction and drop out, however many of them there are:
    the direction is what tells a screen among them (it found 12 more of 285 screentoned validation pages than
    "most components are on a grid" did, and no line art or gray page as a screen)."""
    ok = _compact(stats)
    ok[0] = False  # label 0 is the other colour
    idx = np.flatnonzero(ok)
    if len(idx) < 5:
        return np.zeros_like(ok), 0.0
    from scipy.spatial import cKDTree

    dist, near = cKDTree(centres[idx]).query(centres[idx], k=5)
    dist, near = dist[:, 1:], near[:, 1:]  # (m, 4) nearest first, self dropped
    period = float(np.median(dist[:, 0]))
    step = centres[idx][near] - centres[idx][:, None]  # (m, 4, 2) towards each neighbour
    angle = np.degrees(np.arctan2(step[..., 1], step[..., 0])) % 90.0
    spaced = np.abs(dist - period) <= LATTICE_TOL * period
    regular = np.zeros_like(ok)
    if spaced.sum() < 10:
        return regular, period
    hist = np.bincount((angle[spaced] // 2).astype(int) % 45, minlength=45)  # 2-degree bins, circular
    main = (np.argmax(hist + np.roll(hist, 1) + np.roll(hist, -1)) + 0.5) * 2.0
    along = np.abs((angle - main + 45.0) % 90.0 - 45.0) <= LATTICE_ANGLE
    regular[idx[(spaced & along).sum(1) >= 3]] = True
    return regular, period


def find_screen(gray: np.ndarray, dark: np.ndarray | None = None, regular_share: float = 0.0
                ) -> tuple[np.ndarray, float] | None:
    """(H, W) uint8 -> (screen (H, W) bool: the pixels of the screen's dots, of the paper holes of dense screens and
    of the meshes around them; period: the dots' spacing in pixels) or None when there is no regular screen.

    ``dark`` (H, W) bool: the pixels that print (default: gray < 128); ``regular_share``: no screen unless at least
    this share of the small blobs of the more regular colour sit on the lattice (see :func:`find_soft_screen`)."""
    dark = (gray < 128 if dark is None else dark).astype(np.uint8)
    need = max(MIN_DOTS, gray.size // 20000)
    comps = []
    for mask in (dark, 1 - dark):
        _, labels, stats, cent = cv2.connectedComponentsWithStats(mask, connectivity=4)  # 50 % dots touch at corners
        regular, period = _regular(stats, cent)
        comps.append((labels, stats, regular, period))
    counts = [int(c[2].sum()) for c in comps]
    if sum(counts) < need:
        return None
    if max(c[2].sum() / max(int(_compact(c[1]).sum()), 1) for c in comps) < regular_share:
        return None
    period = comps[int(np.argmax(counts))][3]  # the more numerous marks set the spacing
    if period < 2.0:
        return None
    # every small blob counts once the screen is known (not only the regular ones: dots at a patch's edge, or
    # beside a line, have fewer neighbours; a few dots joined by noise): blobs at most 2.5 periods across
    small = []
    for _, stats, _, _ in comps:
        side = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
        blob = (stats[:, cv2.CC_STAT_AREA] <= max(4.0, 2.5 * period**2)) & (side <= 2.5 * period)
        blob[0] = False
        small.append(blob)
    pixels = small[0][comps[0][0]] | small[1][comps[1][0]]
    # dense screens: a dark mesh around many paper holes is screen too, however large: a screened shape and its
    # drawn outline are one dark component (a ratio of holes to its area left the whole of such a mesh ink; the
    # outline is told apart by its distance from the holes, below; 300 validation pages, v0.4, a dot in every
    # region: screentoned 0.816 / 6.94 -> 0.821 / 6.74, 7 pages better, 5 worse)
    (dlab, dstats, _, _), (_, hstats, _, _) = comps
    hidx = np.flatnonzero(small[1])
    hx = np.clip(hstats[hidx, cv2.CC_STAT_LEFT] - 1, 0, gray.shape[1] - 1)
    hy = np.clip(hstats[hidx, cv2.CC_STAT_TOP] + hstats[hidx, cv2.CC_STAT_HEIGHT] // 2, 0, gray.shape[0] - 1)
    count = np.bincount(dlab[hy, hx], minlength=len(dstats))  # holes just right of each dark component
    mesh = count >= 5
    mesh[0] = False
    # ... but not what was drawn over it: a line or a solid black covers the holes under it, so a band of the mesh
    # with no paper hole within MESH_REACH periods (the deepest pixel of a lattice's mesh is ~0.5 period from a
    # hole) is ink, not screen. Taking it for screen averaged it into the tone: screentoned validation pages,
    # region-fill with a dot in every region, 0.743 -> 0.782 (150 pages; 24 better, 3 worse).
    holes = small[1][comps[1][0]]
    far = cv2.distanceTransform((~holes).astype(np.uint8), cv2.DIST_L2, 3) > MESH_REACH * period
    pixels |= mesh[dlab] & ~far
    if screen_area(pixels, period).mean() < 0.01:  # the screened patches, not their dots: a light screen's are tiny
        return None
    return pixels, period


def find_soft_screen(gray: np.ndarray) -> tuple[np.ndarray, float] | None:
    """:func:`find_screen` for a soft scan: a dot is a pixel darker than the page around it (blurred by SOFT_SIGMA)
    by SOFT_OFFSET levels, not one darker than 128. A blurred screen's light dots never reach 128 and its dark ones
    merge below it, so the blobs at 128 are too few or too large to be a lattice (validation pages blurred by 1.0 /
    1.5 px after printing: 25 / 83 of 300 screentoned pages not read as a screen, most as line art, dots and all;
    8 / 29 with this, 16 of the 29 as gray pages). Print noise also makes blobs by this rule, and by chance some of
    them sit on a grid, so a screen found here must also have SOFT_REGULAR of its blobs on the lattice (soft screens
    0.16-0.94, a gray page's print noise 0.002). Called by :func:`read_page` only when the blobs at 128 find no
    screen and the page is no gray page."""
    f = gray.astype(np.float32)
    dark = f < cv2.GaussianBlur(f, (0, 0), SOFT_SIGMA) - SOFT_OFFSET
    return find_screen(gray, dark, SOFT_REGULAR)


def screen_area(screen: np.ndarray, period: float) -> np.ndarray:
    """(H, W) bool: the screened patches, filled: the screen's pixels closed over a period (the paper between the
    dots joins in)."""
    r = max(1, int(round(period)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.morphologyEx(screen.astype(np.uint8), cv2.MORPH_CLOSE, disk) > 0


def fill_light_holes(patches: np.ndarray, dots: np.ndarray, gray: np.ndarray, period: float) -> np.ndarray:
    """(H, W) bool screened patches (:func:`screen_area` of the screen's ``dots``) of the (H, W) uint8 page -> the
    same with the gaps a light screen leaves filled: where the screen around (the page's mean gray over the
    patches within a period) is at least HOLE_LIGHT, the dots closed over HOLE_REACH periods instead of one. A
    screen lighter than ~10 % prints dots smaller than a pixel, and the cells whose dot falls between pixel
    centres print nothing: the dots found leave holes of a few cells in a moire pattern, each kept as paper in the
    tone and outlined by the edges between tones, a ring of little regions across the shape. A dark screen has no
    such gaps (a paper shape in it, an eye, stays out)."""
    p = patches.astype(np.float32)
    sigma = float(period)
    num = cv2.GaussianBlur(gray.astype(np.float32) * p, (0, 0), sigma)
    den = cv2.GaussianBlur(p, (0, 0), sigma)
    light = (den > 0.05) & (num >= HOLE_LIGHT * den)  # the screen's own tone here (the ink around left out)
    if not light.any():
        return patches
    # the dots closed wider, kept where a light screen is within that reach (a hole's middle is far from the dots)
    r = max(1, int(round(HOLE_REACH * period)))
    # (a square reach: a disc's measured worse, validation 0.869 -> 0.861)
    near = cv2.dilate(light.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    return patches | (screen_area(dots, HOLE_REACH * period) & near)


def descreen(gray: np.ndarray, screen: np.ndarray, period: float, patches: np.ndarray | None = None) -> np.ndarray:
    """Remove a halftone screen and keep its tone: in the screened patches (:func:`screen_area`, or ``patches``)
    every pixel that is not a line takes the Gaussian average (sigma 0.6 period: the dot pattern's frequency is
    damped to ~0.1 %) of the patch pixels around it. Lines (dark pixels that are no dot) stay as drawn."""
    line = (gray < 128) & ~screen
    area = (screen_area(screen, period) if patches is None else patches) & ~line
    w = area.astype(np.float32)
    sigma = 0.6 * period
    num = cv2.GaussianBlur(gray.astype(np.float32) * w, (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    out = gray.copy()
    out[area] = np.clip(num[area] / np.maximum(den[area], 1e-3) + 0.5, 0, 255).astype(np.uint8)
    return out


def screen_lattice(gray: np.ndarray, dots: np.ndarray, period: float) -> np.ndarray:
    """(H, W) uint8 screened page, its screen pixels ``dots`` and spacing -> (2, 2) float64: the screen's two lattice
    frequencies (cycles per pixel, (fy, fx) rows), 90 degrees apart: the strongest peak of the spectrum of the
    LATTICE_WINDOW window with the most screen pixels, within 20 % of 1 / ``period``, and the strongest within two
    bins of that peak turned by 90 degrees."""
    h, w = gray.shape
    side_y, side_x = min(h, LATTICE_WINDOW), min(w, LATTICE_WINDOW)
    density = cv2.boxFilter(dots.astype(np.float32), -1, (side_x, side_y), normalize=False,
                            borderType=cv2.BORDER_CONSTANT)  # screen pixels in the window centred on each pixel
    cy, cx = np.unravel_index(int(np.argmax(density)), density.shape)
    y0, x0 = min(max(cy - side_y // 2, 0), h - side_y), min(max(cx - side_x // 2, 0), w - side_x)
    win = gray[y0:y0 + side_y, x0:x0 + side_x].astype(np.float32)
    power = np.abs(np.fft.rfft2(win - win.mean()))  # (side_y, side_x // 2 + 1): fy rows (wrapping), fx >= 0
    fy = np.fft.fftfreq(side_y)[:, None]
    fx = np.fft.rfftfreq(side_x)[None, :]
    radius = np.hypot(fy, fx)
    band = (radius >= 0.8 / period) & (radius <= 1.2 / period)
    iy, ix = np.unravel_index(int(np.argmax(np.where(band, power, -1.0))), power.shape)
    first = np.array([fy[iy, 0], fx[0, ix]])
    turned = np.array([-first[1], first[0]])
    turned = -turned if turned[1] < 0 else turned  # the same wave, written with fx >= 0
    ty, tx = int(round(turned[0] * side_y)), int(round(turned[1] * side_x))
    ys = np.arange(ty - 2, ty + 3) % side_y
    xs = np.clip(np.arange(tx - 2, tx + 3), 0, power.shape[1] - 1)
    jy, jx = np.unravel_index(int(np.argmax(power[np.ix_(ys, xs)])), (5, 5))
    return np.array([first, [fy[ys[jy], 0], fx[0, xs[jx]]]])


def screen_rank(gray: np.ndarray, lattice: np.ndarray, period: float) -> np.ndarray:
    """(H, W) uint8 screened page + its :func:`screen_lattice` -> (H, W) float32 in [0, 1]: each pixel's rank in the
    screen's own threshold pattern (0 at dot centres, 1 at the paper between them; :func:`_spot_rank`), with the
    phase of each of the two waves tracked locally (complex demodulation, Gaussian window of LATTICE_SIGMA periods):
    a page's screens need not share one origin, and a lattice frequency a bin off drifts slowly.

    The page near a dot pattern is ~ m - A (cos(p1 - q1) + cos(p2 - q2)) with p = 2 pi f.x; its product with
    exp(-i p) averaged over a few periods is -A/2 exp(-i q), which gives the local phase q."""
    h, w = gray.shape
    f = gray.astype(np.float32) - float(gray.mean())
    yy, xx = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    spot = np.zeros((h, w), np.float32)
    for fy, fx in lattice:
        # the wave's phase p = row part + column part (each reduced to [0, 2 pi) in float64: exact in float32);
        # cos p and sin p from the parts' (an outer product, not 2 x H x W transcendentals)
        py = (2 * np.pi * np.mod(fy * yy, 1.0)).astype(np.float32)
        px = (2 * np.pi * np.mod(fx * xx, 1.0)).astype(np.float32)
        cy, sy, cx, sx = np.cos(py)[:, None], np.sin(py)[:, None], np.cos(px)[None, :], np.sin(px)[None, :]
        cos_p, sin_p = cy * cx - sy * sx, sy * cx + cy * sx  # (H, W)
        re, im = _smooth(f * cos_p, period), _smooth(-f * sin_p, period)  # z = -A/2 exp(-i q)
        # cos(p - q) with exp(-i q) = -z / |z|
        spot -= (-cos_p * re + sin_p * im) / np.maximum(np.hypot(re, im), 1e-6)
    idx = np.clip((spot + 2.0) * (len(_RANK_LUT) - 1) / 4.0 + 0.5, 0, len(_RANK_LUT) - 1).astype(np.int32)
    return _RANK_LUT[idx]


def _smooth(x: np.ndarray, period: float) -> np.ndarray:
    """(H, W) float32 -> its Gaussian average over LATTICE_SIGMA periods, computed at 1 / (period // 2) of the size:
    the box of the downscaling sends every wave of a period or shorter to at least ~0.5 / period, where the
    Gaussian leaves nothing of it (a 4096^2 page: 9x fewer pixels to blur at a 6 px screen)."""
    h, w = x.shape
    k = max(1, int(period // 2))
    if k == 1:
        return cv2.GaussianBlur(x, (0, 0), LATTICE_SIGMA * period)
    small = cv2.resize(x, (-(-w // k), -(-h // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), LATTICE_SIGMA * period / k)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def drawn_ink(gray: np.ndarray, dots: np.ndarray, period: float, tone: np.ndarray,
              patches: np.ndarray | None = None, rank: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: the dark pixels of a screened page that were drawn, not printed by the screen. Where the screen's
    lattice explains the page (:func:`screen_rank`: a pixel of rank below the local coverage, 1 - ``tone`` / 255,
    is a dot's; the prediction right for LATTICE_FIT of the pixels around), a dark pixel is drawn where the screen
    has paper; elsewhere (outside the screen, another screen, noise) where it is no dot blob (``dots``).
    ``patches``: :func:`screen_area` of the dots, ``rank``: :func:`screen_rank` of the page, when the caller has them.

    Why: by blobs alone, a thin line crossing a screen touches its dots and breaks into pieces of a dot or two,
    taken for dots (a 2 px circle across a 40 % screen was lost on all 36 synthetic pages; now found on 34); a line
    at the edge of a dense screen joined its mesh and was averaged into the tone; near 50 % touching dots chain
    into pieces too large for a dot. The lattice says where a dot can print, whatever the blobs look like.
    (Screentoned pages, a dot of the true color in every region: validation, region-fill, 0.870 -> 0.882; test,
    the shipped model, 0.871 -> 0.889; see docs/results.md.)"""
    dark = gray < 128
    blobs = dark & ~dots
    patches = screen_area(dots, period) if patches is None else patches
    if not patches.any():
        return blobs
    if rank is None:
        rank = screen_rank(gray, screen_lattice(gray, dots, period), period)
    printed, fit = _lattice_fit(gray, rank, tone, period)
    # ... and where a dense screen meets a light tone, what the blobs call ink too: the outline of a small light
    # shape in a dark screen (an eye, a button) hides in the mesh but for the holes it covers, which the lattice
    # sees as dashes and the mesh rule (no hole within reach) as a closed ring; the blobs' crumbs in the middle of a
    # dark screen stay out (blobs in every screen darker than 50 %: validation 0.887 -> 0.874)
    r = max(1, int(round(LATTICE_EDGE * period)))
    light = cv2.dilate((tone > 128).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    edge_blobs = blobs & (light > 0) & (tone < 128)  # a dense screen: coverage over 50 %
    return np.where(patches & fit, (dark & ~printed) | edge_blobs, blobs)


def _lattice_fit(gray: np.ndarray, rank: np.ndarray, tone: np.ndarray, period: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) page, its :func:`screen_rank` and a tone -> (printed, fit) (H, W) bool: where the screen alone would
    print at that tone (dots grown by a margin near 50 %, where their soft, noisy edges touch) and where that
    prediction is right for LATTICE_FIT of the pixels around (a Gaussian of 2 periods)."""
    cover = 1.0 - tone.astype(np.float32) / 255.0  # the share of the screen that prints here
    printed = rank < cover + LATTICE_MARGIN * (4.0 * cover * (1.0 - cover)) ** 2
    fit = cv2.GaussianBlur((printed == (gray < 128)).astype(np.float32), (0, 0), 2.0 * period) >= LATTICE_FIT
    return printed, fit


def lattice_screen(gray: np.ndarray, dots: np.ndarray, period: float, rank: np.ndarray) -> np.ndarray:
    """(H, W) bool screen pixels (:func:`find_screen`) -> the same with the mid-tone patches that only the lattice
    sees added: where the page, blurred to its local tone (0.6 period), has a coverage of MID_COVER to 1 -
    MID_COVER and the screen's lattice (``rank``) predicts its dark and paper pixels (:func:`_lattice_fit`) over an
    area MID_SIDE periods wide, every pixel but the dark ones the lattice does not print (drawn ink). Near 50 %
    a screen's dots touch at corners and, with a little noise or blur, chain into a mesh whose paper holes chain
    too: neither colour is blobs and the patch stayed out of the screen, its dots read as ink crumbs (a mid-gray
    cross over a hard disk: hundreds of little regions)."""
    tone = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.6 * period)
    printed, fit = _lattice_fit(gray, rank, tone, period)
    mid = fit & (tone >= 255.0 * MID_COVER) & (tone <= 255.0 * (1.0 - MID_COVER))
    r = max(1, int(round(0.5 * MID_SIDE * period)))
    mid = cv2.morphologyEx(mid.astype(np.uint8), cv2.MORPH_OPEN,
                           cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    # ... MID_EDGE in from its edge: an outline along the patch falls partly where the lattice prints, and those
    # pieces taken for dots broke it into dashes (the regions either side of it joined)
    e = max(1, int(round(MID_EDGE * period)))
    mid = cv2.erode(mid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1,) * 2)) > 0
    mid &= ~screen_area(dots, period)  # where the blobs found the screen, they decide as before
    return dots | (mid & ~((gray < 128) & ~printed))


def page_lines(tone: np.ndarray, patches: np.ndarray | None = None, period: float = 0.0,
               drawn: np.ndarray | None = None) -> np.ndarray:
    """(H, W) uint8 descreened page -> (H, W) uint8 line art: ink (tone < 70: lines, solid blacks), the XDoG edges
    between tones (at a scale that sees a descreened, softened edge) and the outline of the screened ``patches``,
    so a region of gray fill or screentone is bounded like one drawn in lines while its gray is not ink.
    ``drawn`` (H, W) bool: the page's dark pixels that are no screen dot; inside the ``patches`` only these are
    ink, whatever the tone."""
    from .lineart import REFERENCE_XDOG, xdog

    params = dict(REFERENCE_XDOG, sigma=max(REFERENCE_XDOG["sigma"], 0.3 * period))
    f = tone.astype(np.float32)
    # ink: dark, or a stroke clearly darker than the tone around it (a line's soft edge over a gray fill)
    ink = (tone < INK_LEVEL) | ((tone < 160) & (f < cv2.GaussianBlur(f, (0, 0), 2.0) - 20.0))
    # ... decided by the majority of each 3x3 neighbourhood: a tone near INK_LEVEL with print noise (or a screen's
    # residue) otherwise breaks into ink speckle that cuts its region into crumbs (validation pages, region-fill,
    # a dot in every region: 0.844 -> 0.853, 17 pages better, 7 worse); a 1 px line still stands in the edges below
    ink = cv2.medianBlur(ink.astype(np.uint8) * 255, 3) > 0
    if drawn is not None and patches is not None:
        # in a screened patch the tone is a fill however dark (a dark screen's descreened gray sits near the ink
        # level and broke into crumbs of ink): ink there is what was drawn, the dark pixels that are no dot
        # (300 validation pages, v0.4, a dot in every region: screentoned 0.821 / 6.74 -> 0.839 / 6.61)
        ink = np.where(patches, drawn, ink)
    # a solid black area (hair, a shadow, a dark tone) is a region, not a line: only its outline stays ink, so a
    # hint in it colors it (its kept lightness keeps it dark) instead of the region beside it
    solid = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN,
                             cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (SOLID_SIDE, SOLID_SIDE)))
    ink &= ~(cv2.erode(solid, np.ones((5, 5), np.uint8)) > 0)
    # ... and inside a wide dark fill the XDoG edges are print noise: a gray page's solid black (a penguin's body,
    # a dog's patch) read as hundreds of ink crumbs, each a region (validation pages: 275 regions where the
    # drawing has 16). Its interior is paper; a line drawn in black over black cannot be seen there anyway. Not
    # inside a screen, whose dark tone still carries drawn lines (``drawn`` above)
    quiet = _quiet_interior(f, period, patches)
    ink &= ~quiet
    out = np.where(ink | quiet, np.where(ink, 0, 255), xdog(f / 255.0, **params)).astype(np.uint8)
    if patches is not None:
        p8 = patches.astype(np.uint8)
        edge = p8 - cv2.erode(p8, np.ones((3, 3), np.uint8))  # the patches' inner outline, one pixel
        # only where no line is near: beside a drawn outline it would cut a sliver region off
        r = max(2, int(round(period)))
        near = cv2.dilate(ink.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        out[(edge > 0) & (near == 0)] = 0
    return out


def _quiet_interior(tone: np.ndarray, period: float, patches: np.ndarray | None) -> np.ndarray:
    """(H, W) float32 tone -> (H, W) bool: the interior (4 px in from the edge) of every dark fill (smoothed tone
    below INK_LEVEL) at least QUIET_SIDE px wide, away from steps in its tone and outside the screened
    ``patches``."""
    sm = cv2.GaussianBlur(tone, (0, 0), max(1.0, 0.5 * period))
    dark = (sm < INK_LEVEL).astype(np.uint8)
    wide = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (QUIET_SIDE,) * 2))
    inner = cv2.erode(wide, np.ones((9, 9), np.uint8)) > 0
    # ... but not where the tone steps (a black nose on a dark gray head, a handset on a dark phone: an edge XDoG
    # finds, of more than QUIET_STEP levels a pixel; print noise of 4 levels smoothed so stays under 2.2 at its
    # 99.9th percentile)
    grad = np.hypot(cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3)) / 8.0
    inner &= cv2.dilate((grad > QUIET_STEP).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    return inner & ~patches if patches is not None else inner


def _levels(gray: np.ndarray) -> tuple[float, float]:
    """(H, W) uint8 -> its 0.5 % and 99.5 % gray levels (the ink and the paper of a scan)."""
    cdf = np.cumsum(np.bincount(gray.ravel(), minlength=256))
    lo, hi = (float(np.searchsorted(cdf, q * cdf[-1])) for q in (0.005, 0.995))
    return lo, hi


def _stretch(gray: np.ndarray) -> np.ndarray:
    """Levels stretched so the 0.5 % / 99.5 % levels become black / white (a dim scan's paper reads as paper)."""
    lo, hi = _levels(gray)
    if hi - lo < 8:
        return gray
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return lut[gray]


def _flat_midtones(gray: np.ndarray) -> float:
    """Share of pixels that are mid-gray (40..215) and flat (5x5 std < 6) once levels are stretched: gray fills,
    not anti-aliased edges or pencil strokes."""
    g = _stretch(gray)
    f = g.astype(np.float32)
    mean = cv2.blur(f, (5, 5))
    std = np.sqrt(np.maximum(cv2.blur(f * f, (5, 5)) - mean * mean, 0.0))
    return float(((g > 40) & (g < 215) & (std < FLAT_STD)).mean())


def page_kind(img: Image.Image) -> str:
    """What came in (one of :data:`KINDS`), without the work of :func:`read_page`'s descreening."""
    return read_page(img, analyse_only=True).kind


def read_page(img: Image.Image, analyse_only: bool = False) -> Page:
    """Any user image -> :class:`Page`. Line art and pencil are normalized as before
    (:func:`~tintline.data.lineart.normalize_input`) and carry no tone. A gray or screentoned page (and a color
    image, read by its lightness: it is recolored over its own shading) gets its screen removed, its own tone kept
    and line art made of its ink and the edges between its tones."""
    from .lineart import normalize_input

    rgba = np.asarray(to_rgba(img))
    alpha = rgba[..., 3]
    if alpha.max() == 0 or (alpha.min() < 255 and rgba[..., :3][alpha > 0].min(initial=255) >= 200):
        kind, rgb = "lines", None  # a drawing carried by alpha alone: line art
    else:
        rgb = composite_on_white(rgba) if alpha.min() < 255 else np.ascontiguousarray(rgba[..., :3])
        kind = "color" if _is_color(rgb) else ""
    gray = None if rgb is None else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    screen = None
    if gray is not None and not kind:
        screen = find_screen(gray)
        flat = screen is None and _flat_midtones(gray) >= GRAY_SHARE
        if screen is None and not flat:  # a soft scan's screen (a blurred one that reads as flat gray stays gray)
            screen = find_soft_screen(gray)
        kind = "screentone" if screen is not None else ("gray" if flat else "")
    if not kind or kind in ("lines", "pencil"):
        line = normalize_input(img)
        if not kind:
            lo, hi = _levels(gray if gray is not None else line)
            kind = "pencil" if 8 <= hi - lo < 160 else "lines"  # normalize_input's low-contrast case
        return Page(kind, line)
    if analyse_only:
        return Page(kind, np.empty((0, 0), np.uint8))
    if screen is None:
        return Page(kind, page_lines(gray), gray)
    dots, period = screen
    rank = screen_rank(gray, screen_lattice(gray, dots, period), period)
    if MID_SIDE > 0:
        dots = lattice_screen(gray, dots, period, rank)
    patches = screen_area(dots, period)
    if HOLE_REACH > 0:
        patches = fill_light_holes(patches, dots, gray, period)
    tone = descreen(gray, dots, period, patches)
    line = page_lines(tone, patches, period, drawn_ink(gray, dots, period, tone, patches, rank))
    return Page(kind, line, flatten_small_regions(tone, gray, line, period), period)


def flatten_small_regions(tone: np.ndarray, gray: np.ndarray, line: np.ndarray, period: float) -> np.ndarray:
    """A descreened ``tone`` (H, W) uint8 with every small closed region of the page's ``line`` art (fewer than
    ``FLAT_DOTS`` screen cells of ``period`` px, not touching the border) set to one flat gray: the mean of the
    screened page ``gray`` (H, W) uint8 over the region's pixels at least 2 px from its ink (its dots and paper:
    the share of it the screen covers).

    Why: the descreening average reaches about two thirds of a period across a line into the neighbouring regions;
    a small region (an eye, a button, a highlight) is mostly within that reach of its outline, and its tone came out
    too dark (regions under 800 px: 8 L* on average, the worst 10-30; small light shapes are mostly drawn inside
    darker ones). On 148 validation pages
    read as screentones, regions whose median tone was more than 10 L* off: 17 % -> 12 %; with region-fill and a dot
    in every region, wrongly colored regions 265 -> 218 of 1,030. Larger regions keep the local average (their own
    shading)."""
    from ..regions import segment  # regions imports this package's hint rendering: imported here, not at the top

    seg = segment(line)
    labels = seg.labels
    area = np.bincount(labels[~seg.ink], minlength=seg.n + 1)
    small = (area < FLAT_DOTS * period**2) & ~seg.border
    small[0] = False
    if not small.any():
        return tone
    inner = cv2.dilate(seg.ink.astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
    use = small[labels] & inner
    count = np.bincount(labels[use], minlength=seg.n + 1)
    mean = np.bincount(labels[use], weights=gray[use].astype(np.float64), minlength=seg.n + 1) / np.maximum(count, 1)
    sel = (small & (count >= 4))[labels] & ~seg.ink
    out = tone.copy()
    out[sel] = np.clip(mean[labels[sel]] + 0.5, 0, 255).astype(np.uint8)
    return out


def colorize_page(colorizer: object, img: Image.Image, hints: dict | None = None, soft_hints: bool | None = None,
                  keep_shading: bool | None = None) -> tuple[np.ndarray, Page]:
    """Any colorizer with ``colorize_lines(line, hints)`` on any user image -> ((H, W, 3) uint8, the :class:`Page`
    read). ``keep_shading`` None takes the colorizer's own ``keep_shading`` (None there too: on for the shaded
    kinds). ``soft_hints`` None is not passed on."""
    page = read_page(img)
    kw = {} if soft_hints is None else {"soft_hints": soft_hints}
    if page.tone is not None and getattr(colorizer, "accepts_tone", False):
        kw["tone"] = page.tone  # the colors follow the page's lightness (and a tone model sees its grays)
    rgb = np.asarray(colorizer.colorize_lines(page.line, hints, **kw))  # type: ignore[attr-defined]
    keep = getattr(colorizer, "keep_shading", None) if keep_shading is None else keep_shading
    return page.finish(rgb, keep), page
