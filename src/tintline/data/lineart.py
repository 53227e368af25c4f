"""Line art: extraction from color images (to make training pairs) and normalization of user input.

Both live here so that what the model sees at training time and at inference time is made by one module.
Line art is a (H, W) uint8 array: 255 = paper, 0 = ink.

Extraction styles are a registry (:data:`LINE_STYLES`, name -> :class:`LineStyle`); the build picks one style and
its parameters per sample, deterministically from the image's hash and the seed (:func:`choose_style`), so the
model does not learn one extractor's exact look:

* ``xdog``: extended difference of Gaussians with varied parameters (soft, pen-like lines);
* ``adaptive``: a local-mean adaptive threshold (hard, marker-like lines on the darker side of each edge);
* ``edges``: color gradient magnitude, thresholded and thinned to one pixel (Zhang-Suen), then redrawn at a width;
* ``alpha``: the outline of the alpha mask plus XDoG interior lines, only for sources with transparency;
* ``manga``: not line art but the gray page an artist would have drawn: the color's lightness as flat gray tones or
  a halftone screen, with lines (:func:`tintline.data.manga.render_manga`). Share 0 by default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .imageio import composite_on_white, to_rgba
from .manga import render_manga, sample_manga_params

# Bumped when an extractor changes its output for the same parameters (pairs are then re-made).
LINEART_VERSION = 2


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 in [0, 1] (ITU-R 601 luma)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _to_u8(unit: np.ndarray) -> np.ndarray:
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------- xdog


def xdog(gray: np.ndarray, sigma: float, k: float, tau: float, eps: float, phi: float) -> np.ndarray:
    """Extended difference of Gaussians (Winnemöller et al. 2012).

    gray: (H, W) float32 in [0, 1]. Returns (H, W) uint8 line art. The sharpened image ``(1+tau)·G_s - tau·G_ks``
    is soft-thresholded: values above ``eps`` are paper, below fall off with a tanh of slope ``phi``.
    """
    g1 = cv2.GaussianBlur(gray, (0, 0), sigma)
    g2 = cv2.GaussianBlur(gray, (0, 0), sigma * k)
    d = (1.0 + tau) * g1 - tau * g2
    out = np.where(d >= eps, 1.0, 1.0 + np.tanh(phi * (d - eps)))
    return _to_u8(out)


# Fixed parameters for the reference extraction that the "entangled" measurements use (not a training style).
REFERENCE_XDOG = {"sigma": 0.7, "k": 1.8, "tau": 21.0, "eps": 0.0, "phi": 80.0}


def sample_xdog_params(rng: np.random.Generator) -> dict[str, float]:
    """Parameters drawn per sample, so the model does not learn one extractor's exact line look."""
    return {
        "sigma": float(rng.uniform(0.5, 0.9)),
        "k": float(rng.uniform(1.6, 2.0)),
        "tau": float(rng.uniform(18.0, 24.0)),
        "eps": float(rng.uniform(-0.1, 0.1)),
        "phi": float(rng.uniform(40.0, 120.0)),
    }


def extract_lineart(rgb: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """(H, W, 3) uint8 color image -> (H, W) uint8 line art by XDoG with ``params``."""
    return xdog(to_gray(rgb), **params)


# --------------------------------------------------------------------------------------------- adaptive


def adaptive_lines(rgb: np.ndarray, block: int, c: float, blur: float) -> np.ndarray:
    """Local-mean adaptive threshold: a pixel is ink when it is ``c`` levels darker than its ``block`` neighbourhood.

    Flat areas of any color become paper; each edge leaves a line on its darker side.
    """
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if blur > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), blur)
    out = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block | 1, c)
    return cv2.GaussianBlur(out, (0, 0), 0.6)  # anti-alias the hard threshold


def sample_adaptive_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "block": int(rng.choice([7, 9, 11, 13, 15])),
        "c": float(rng.uniform(4.0, 10.0)),
        "blur": float(rng.uniform(0.0, 1.0)),
    }


# ------------------------------------------------------------------------------------------------ edges


def _zhang_suen_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each 8-neighbourhood code (bit i = neighbour P(i+2): N, NE, E, SE, S, SW, W, NW), whether Zhang-Suen's
    first / second sub-iteration deletes the centre pixel."""
    tables = np.zeros((2, 256), np.uint8)
    for code in range(256):
        p = [(code >> i) & 1 for i in range(8)]  # P2..P9
        b = sum(p)
        a = sum(p[i] == 0 and p[(i + 1) % 8] == 1 for i in range(8))
        if not (2 <= b <= 6 and a == 1):
            continue
        n, e, s, w = p[0], p[2], p[4], p[6]
        tables[0, code] = (n * e * s == 0) and (e * s * w == 0)
        tables[1, code] = (n * e * w == 0) and (n * s * w == 0)
    return tables[0], tables[1]


_ZS_TABLES = _zhang_suen_tables()
_ZS_KERNEL = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)  # neighbour -> its bit, as above


def thin(mask: np.ndarray, max_iter: int = 64) -> np.ndarray:
    """Zhang-Suen thinning of a boolean (H, W) mask to one-pixel-wide curves.

    Each sub-iteration is one 3x3 correlation (the neighbourhood code of every pixel) and one table look-up.
    """
    img = mask.astype(np.uint8)
    for _ in range(max_iter):
        changed = False
        for table in _ZS_TABLES:
            code = cv2.filter2D(img, -1, _ZS_KERNEL, borderType=cv2.BORDER_CONSTANT)  # (H, W) uint8, exact
            kill = cv2.LUT(code, table) & img
            if kill.any():
                img = img - kill
                changed = True
        if not changed:
            break
    return img.astype(bool)


def edge_lines(rgb: np.ndarray, sigma: float, threshold: float, width: int) -> np.ndarray:
    """Color edges (Sobel magnitude on Lab, so equal-brightness color borders count too), thresholded, thinned to
    one pixel and redrawn ``width`` pixels wide."""
    lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (0, 0), sigma), cv2.COLOR_RGB2LAB).astype(np.float32)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt((gx * gx + gy * gy).sum(axis=2))  # (H, W)
    skeleton = thin(mag > threshold)
    ink = skeleton.astype(np.uint8)
    if width > 1:
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width)))
    out = np.where(ink > 0, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(out, (0, 0), 0.5)


def sample_edge_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "sigma": float(rng.uniform(0.6, 1.2)),
        "threshold": float(rng.uniform(60.0, 120.0)),
        "width": int(rng.choice([1, 2, 2, 3])),
    }


# ------------------------------------------------------------------------------------------------ alpha


def alpha_outline(alpha: np.ndarray, width: int) -> np.ndarray:
    """(H, W) uint8 alpha -> (H, W) bool: a band ``width`` pixels wide just inside the opaque silhouette."""
    mask = (alpha >= 128).astype(np.uint8)
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1)))
    return (mask > 0) & (inner == 0)


def alpha_lines(rgb: np.ndarray, alpha: np.ndarray, width: int, **xdog_params: float) -> np.ndarray:
    """The silhouette's outline (from the alpha channel, crisp even where the subject's edge is faint) drawn over
    XDoG interior lines."""
    inner = extract_lineart(rgb, xdog_params)
    outline = alpha_outline(alpha, width)
    out = inner.copy()
    out[outline] = 0
    return cv2.GaussianBlur(out, (0, 0), 0.5)


def sample_alpha_params(rng: np.random.Generator) -> dict[str, float]:
    return {"width": int(rng.choice([1, 2, 2, 3])), **sample_xdog_params(rng)}


# ---------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class LineStyle:
    """One extractor: ``sample(rng) -> params`` and ``extract(rgb, alpha, params) -> line``."""

    name: str
    sample: Callable[[np.random.Generator], dict]
    extract: Callable[[np.ndarray, np.ndarray | None, dict], np.ndarray]
    needs_alpha: bool = False


LINE_STYLES: dict[str, LineStyle] = {
    "xdog": LineStyle("xdog", sample_xdog_params, lambda rgb, alpha, p: extract_lineart(rgb, p)),
    "adaptive": LineStyle("adaptive", sample_adaptive_params, lambda rgb, alpha, p: adaptive_lines(rgb, **p)),
    "edges": LineStyle("edges", sample_edge_params, lambda rgb, alpha, p: edge_lines(rgb, **p)),
    "alpha": LineStyle("alpha", sample_alpha_params, lambda rgb, alpha, p: alpha_lines(rgb, alpha, **p), True),
    # a gray or screentoned manga page instead of line art (tintline.data.manga); off unless given a share
    "manga": LineStyle("manga", sample_manga_params, lambda rgb, alpha, p: render_manga(rgb, **p)),
}


def choose_style(rng: np.random.Generator, shares: dict[str, float], has_alpha: bool) -> tuple[str, dict]:
    """Pick a style by ``shares`` (styles that need alpha only when the source has it) and draw its parameters.

    Falls back to ``xdog`` when no share applies (e.g. only ``alpha`` configured and the source is opaque).
    """
    names = [n for n, s in shares.items() if s > 0 and (has_alpha or not LINE_STYLES[n].needs_alpha)]
    if not names:
        names, weights = ["xdog"], np.ones(1)
    else:
        weights = np.array([shares[n] for n in names], dtype=np.float64)
    u = rng.random()
    name = names[min(int(np.searchsorted(np.cumsum(weights / weights.sum()), u, side="right")), len(names) - 1)]
    return name, LINE_STYLES[name].sample(rng)


def make_lineart(rgb: np.ndarray, alpha: np.ndarray | None, style: str, params: dict) -> np.ndarray:
    """(H, W, 3) uint8 color, optional (H, W) uint8 alpha -> (H, W) uint8 line art in ``style``."""
    if style not in LINE_STYLES:
        raise ValueError(f"unknown line-art style {style!r}; known: {', '.join(LINE_STYLES)}")
    st = LINE_STYLES[style]
    if st.needs_alpha and alpha is None:
        raise ValueError(f"line-art style {style!r} needs an alpha channel")
    return st.extract(rgb, alpha, params)


# ------------------------------------------------------------------------------------------- user input


def normalize_input(img: Image.Image) -> np.ndarray:
    """User line art (any mode; alpha composited on white; color or gray scans) -> (H, W) uint8 line art.

    * alpha: lines drawn only in the alpha channel (ink color black or white, background transparent) become dark
      lines on white; an image whose alpha is entirely zero is read by its colors instead of as blank;
    * levels are stretched so the paper is white and the darkest ink black: a gray pencil scan or a yellowed page
      then looks like the extracted line art the model was trained on, and faint pencil is darkened a little
      (gamma) so it reads as lines rather than as shading;
    * JPEG noise: near-paper values (ringing and blocks around lines) are snapped to white.
    """
    rgba = np.asarray(to_rgba(img))
    alpha = rgba[..., 3]
    a_min, a_max = int(alpha.min()), int(alpha.max())
    if a_max == 0:  # fully transparent: some exporters leave the drawing in the color channels only
        g = cv2.cvtColor(np.ascontiguousarray(rgba[..., :3]), cv2.COLOR_RGB2GRAY)
    elif a_min < 255 and rgba[..., :3][alpha > 0].min(initial=255) >= 200:
        # light (e.g. white) ink carried by alpha on a transparent background: the alpha itself is the drawing
        g = 255 - alpha
    elif a_min == 255:  # opaque, the usual case: nothing to composite
        g = cv2.cvtColor(rgba, cv2.COLOR_RGBA2GRAY)
    else:
        g = cv2.cvtColor(composite_on_white(rgba), cv2.COLOR_RGB2GRAY)
    # g (H, W) uint8, so the whole level mapping is a 256-entry lookup table (~1 ms at 512²)
    cdf = np.cumsum(np.bincount(g.ravel(), minlength=256))  # 0.5 % / 99.5 % levels from the histogram
    lo, hi = (float(np.searchsorted(cdf, q * cdf[-1], side="left")) for q in (0.005, 0.995))
    if hi - lo < 8:  # blank page: nothing to stretch
        return g
    v = np.clip((np.arange(256, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)
    if hi - lo < 160:  # a low-contrast (pencil) scan: darken the mid-tones so lines read as ink
        v = v**1.6
    v = np.where(v > 0.92, 1.0, v)  # JPEG ringing and paper grain near white -> paper
    return _to_u8(v)[g]
