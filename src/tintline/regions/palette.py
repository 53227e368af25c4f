"""The color palette of the color-class head: region colors of the training data, clustered in CIELAB.

A network that regresses a region's color hedges between the colors the region could have (the mean of a red and
a blue skirt is a grayish mauve; of "stays white" and "skin" a pale beige). The color-class head
(:class:`tintline.models.generator.ColorClasses`) instead predicts a distribution over a palette, and inference
picks its mode. The palette is fitted once per training run from the training pairs: every closed region's mean
true color (:func:`region_colors`), clustered by k-means in CIELAB, with paper white always one of the entries
(the most common answer of all, and the one a hedging network gets wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..data.manga import GRAY_L
from .paint import _bincount3, to_lab
from .segment import Segmentation, segment

WHITE_LAB = (100.0, 0.0, 0.0)


def region_colors(color: np.ndarray, seg: Segmentation) -> tuple[np.ndarray, np.ndarray]:
    """color (H, W, 3) uint8 RGB, seg of its line art -> (mean CIELAB color (n + 1, 3) float32, paper pixels per
    region (n + 1,)); row 0 (and regions of ink only) have count 0."""
    paper = seg.paper_labels().reshape(-1)
    lab = to_lab(color).reshape(-1, 3)
    counts = np.bincount(paper, minlength=seg.n + 1).astype(np.float64)
    counts[0] = 0
    means = _bincount3(paper, lab, seg.n) / np.maximum(counts, 1)[:, None]
    return means.astype(np.float32), counts


def fit_palette(pairs: Sequence[tuple[np.ndarray, np.ndarray]], k: int, seed: int = 0,
                min_area: int = 16) -> np.ndarray:
    """(color (H, W, 3) uint8, line (H, W) uint8) pairs -> (k, 3) float32 CIELAB palette, white first.

    k-means (OpenCV, 5 restarts, seeded) over the mean colors of all regions of at least ``min_area`` paper
    pixels, every region counting once (as region accuracy counts them); then the center nearest to paper white is
    replaced by exact white. Fewer distinct colors than ``k`` repeat the last ones (a palette always has k rows)."""
    if k < 2:
        raise ValueError(f"a palette needs at least 2 colors, got {k}")
    samples = []
    for color, line in pairs:
        seg = segment(line)
        means, counts = region_colors(color, seg)
        samples.append(means[counts >= min_area])
    data = np.concatenate(samples) if samples else np.zeros((0, 3), np.float32)
    data = np.concatenate([data, np.array([WHITE_LAB], np.float32)])  # white always exists
    distinct = np.unique(np.round(data, 1), axis=0).astype(np.float32)
    if len(distinct) <= k:
        centers = distinct
    else:
        cv2.setRNGSeed(seed)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 0.1)
        _, _, centers = cv2.kmeans(data, k, None, criteria, 5, cv2.KMEANS_PP_CENTERS)
    centers = np.asarray(centers, np.float32)
    d_white = np.linalg.norm(centers - np.array(WHITE_LAB, np.float32), axis=1)
    centers[int(np.argmin(d_white))] = WHITE_LAB
    order = np.argsort(np.linalg.norm(centers - np.array(WHITE_LAB, np.float32), axis=1), kind="stable")
    centers = centers[order]  # white first, then by distance from white
    if len(centers) < k:
        centers = np.concatenate([centers, np.repeat(centers[-1:], k - len(centers), axis=0)])
    return centers


def nearest_class(lab: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(N, 3) CIELAB colors, (K, 3) palette -> (N,) int64 index of the nearest palette color (CIE76)."""
    d = ((lab[:, None, :].astype(np.float32) - palette[None].astype(np.float32)) ** 2).sum(-1)
    return np.argmin(d, axis=1)


RADIUS = 10.0  # CIEDE2000: region accuracy counts a region right within this distance of its true color


def neighbourhoods(palette: np.ndarray, radius: float = RADIUS) -> np.ndarray:
    """(K, 3) CIELAB palette -> (K, K) float32, 1 where two palette colors are within ``radius`` CIEDE2000."""
    from skimage.color import deltaE_ciede2000

    p = palette.astype(np.float64)
    return (deltaE_ciede2000(p[:, None, :], p[None, :, :]) < radius).astype(np.float32)


def class_votes(probs: np.ndarray, palette: np.ndarray, near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-region color from class probabilities: the color most likely to be right, and how likely that is.

    probs (R, K) per region (rows sum to 1); palette (K, 3) CIELAB; near (K, K) from :func:`neighbourhoods`.
    A color c is right when the truth lies within the radius of it, so its chance is the probability mass of the
    palette colors near c; the choice is the palette color with the most mass around it (the mode of the
    distribution smoothed at the scale of the metric, not the mean of its modes), refined to the
    probability-weighted mean of its neighbourhood (the palette is coarser than the radius in places).
    Returns (colors (R, 3) float32 CIELAB, confidence (R,) float32 in [0, 1]).
    """
    mass = probs @ near  # (R, K): probability that the truth is near each palette color
    best = mass.argmax(1)  # (R,)
    conf = mass[np.arange(len(best)), best]
    w = probs * near[best]  # (R, K): the neighbourhood's probabilities
    colors = (w @ palette) / np.maximum(w.sum(1, keepdims=True), 1e-8)
    return colors.astype(np.float32), conf.astype(np.float32)


def region_lightness(tone: np.ndarray, seg: Segmentation) -> np.ndarray:
    """(H, W) uint8 gray page (its shading, as :func:`~tintline.data.manga.read_page` gives it) -> (n + 1,) float
    CIE L* per region of ``seg``: the mean over the region's paper pixels, NaN for regions without any."""
    lum = GRAY_L[tone]  # (H, W) L* of each gray level
    lbl = seg.labels[~seg.ink]
    total = np.bincount(lbl, weights=lum[~seg.ink], minlength=seg.n + 1)
    count = np.bincount(lbl, minlength=seg.n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def fit_lightness(probs: np.ndarray, palette: np.ndarray, lum: np.ndarray, sigma: float) -> np.ndarray:
    """Class probabilities (R, K) given each region's known lightness ``lum`` (R,) L* (NaN: unknown): weighed by a
    Gaussian of width ``sigma`` in L* around it (a gray page tells how light each region's color is; the head, which
    sees lines alone, does not know) and renormalized. Rows whose every color is far from their lightness get the
    nearest-lightness colors rather than nothing."""
    d = (palette[None, :, 0] - lum[:, None]) / sigma  # (R, K)
    d = d - np.abs(d).min(1, keepdims=True) * np.sign(d)  # the closest colors weigh 1, whatever the gap
    w = np.exp(-0.5 * d**2)
    out = probs * np.where(np.isnan(w), 1.0, w)
    s = out.sum(1, keepdims=True)
    return np.where(s > 0, out / np.where(s > 0, s, 1), probs)
