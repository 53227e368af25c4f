"""Hint propagation: an unhinted region may take the exact color of a hint given elsewhere on the drawing.

Drawings reuse their colors: on the demo's validation drawings with dots in the 4 largest regions, 58 % of the other
closed regions are within CIEDE2000 10 of one of those dots' colors, yet the network's own choice is right for only
23 % of them. The color-class head votes over a palette that is coarser than the metric, so even when it "means" a
hinted color its palette color often lies more than 10 away. This module lets every hint color compete with the
head's choice, region by region:

* for each unhinted region r and each hint color h, a logistic model gives P(the truth of r is within 10 of h) from
  what inference knows (:func:`candidate_features`): the head's probability mass near h, its confidence in its own
  choice, how far its choice and the regression's vote are from h, the region's size against the hinted region's,
  whether h is white, and how many of the hints share h's color;
* a second logistic model gives P(the head's own choice is right) from its confidence (the mass near it);
* the region takes the most likely hint color when that beats its own choice, and only a hint given in the same
  figure (:func:`figures`; on a page of several drawings one drawing's colors say nothing of another's);
* on a drawing the head is unsure of as a whole (its mean confidence over the regions it votes for below
  :data:`UNSURE`, which only the least sure tenth of the training drawings are) the hint color must also be at least
  :data:`MIN_P` likely. The rule is fitted on clip art and does not transfer to drawings unlike them: on shaded anime
  sprites the head is unsure of everything and its pale gray is often right for skin and white cloth, which the rule
  would hand a hinted dress's color at 15-30 % odds (docs/results.md). A low mean confidence is the classic sign of
  such an input (the maximum-softmax-probability baseline of Hendrycks & Gimpel, "A Baseline for Detecting
  Misclassified and Out-of-Distribution Examples in Neural Networks", ICLR 2017).

Both models are fitted on the training split (``python benchmarks/fit_propagation.py``, which prints the
coefficients below and :data:`UNSURE`); hint colors within :data:`SAME_HINT` of each other count as one candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.hints import render_hint_items
from .paint import to_lab
from .palette import RADIUS
from .palette import WHITE_LAB as _WHITE
from .segment import Segmentation

SAME_HINT = 10.0  # CIEDE2000: hints closer than this are one color (the metric's radius)
MAX_COLORS = 256  # distinct hint colors beyond which nothing propagates (bounds the color-pair comparisons)
WHITE_LAB = np.array(_WHITE)
CLIP = 3.0  # color distances enter the model in units of the radius, clipped here (far is far)

FEATURES = ("mass", "confidence", "choice_distance", "log_area_ratio", "vote_distance", "white", "share",
            "log_hints", "choice_near")
# fitted by benchmarks/fit_propagation.py on the demo's training split (see docs/results.md); one weight per
# FEATURES entry, then the bias
HINT_COEF = np.array([6.715, -2.389, -0.01766, 0.2253, -0.5971, -1.192, 1.65, -0.05575, -0.2617])
HINT_BIAS = 0.1485
OWN_COEF = 7.011  # P(the head's own choice is right) = sigmoid(OWN_COEF * confidence + OWN_BIAS)
OWN_BIAS = -3.04
MIN_P = 0.35  # on an unsure drawing a hint color is taken only when it is at least this likely right ...
UNSURE = 0.23  # ... an unsure drawing: the head's mean confidence below this (10th percentile of training drawings)


@dataclass
class HintColors:
    """The distinct hint colors of a drawing: lab (m, 3) CIELAB, region (m,) the region of ``seg`` each was given
    in (its mark's paper pixels' most common region), share (m,) the fraction of marks of (about) that color, marks
    the number of marks on paper. A figure is a connected group of regions and ink apart from the background (the
    regions that touch the image border): one drawing of a page of drawings (a page of panels is one figure)."""

    lab: np.ndarray
    region: np.ndarray
    share: np.ndarray
    marks: int
    figure: np.ndarray  # (m,) the figure each hint color was given in (0: the background)
    region_figure: np.ndarray  # (n + 1,) the figure of every region (0: the background)

    def allowed(self) -> np.ndarray:
        """(n + 1, m) bool: a hint color may propagate to a region of the same figure (on a page of several
        drawings, one drawing's colors say nothing of another's); a hint in the background, to every figure (the
        background showing through a figure's holes)."""
        return (self.region_figure[:, None] == self.figure[None, :]) | (self.figure == 0)[None, :]


def hint_colors(hints: dict | None, seg: Segmentation) -> HintColors | None:
    """Validated hints -> their distinct colors and regions (``None`` when no mark lands on paper)."""
    if not hints or not (hints.get("points") or hints.get("strokes")):
        return None
    from skimage.color import deltaE_ciede2000

    h, w = seg.labels.shape
    ids, colors = render_hint_items(hints, h, w)  # (H, W) item id + 1, (m + 1, 3) uint8
    paper = (ids > 0) & ~seg.ink
    if not paper.any():
        return None
    # each mark's region: the one most of its paper pixels lie in (sparse: marks x regions could be 10^4 x 10^4)
    uniq, cnt = np.unique(ids[paper].astype(np.int64) * (seg.n + 1) + seg.labels[paper], return_counts=True)
    item, reg = uniq // (seg.n + 1), uniq % (seg.n + 1)
    order = np.lexsort((-cnt, item))  # by mark, most pixels first (stable: ties keep the lower region)
    item, reg = item[order], reg[order]
    first = np.r_[True, item[1:] != item[:-1]]
    items, regions = item[first], reg[first]  # (k,) the marks on paper, in order, and their regions
    # alike colors are compared once per distinct color, in the order of their first mark
    ucol, ufirst, ucount = np.unique(colors[items], axis=0, return_index=True, return_counts=True)
    if len(ucol) > MAX_COLORS:
        return None  # a hint image's anti-aliased edges, not a user's palette: no propagation
    by_first = np.argsort(ufirst)
    ucol, ufirst, ucount = ucol[by_first], ufirst[by_first], ucount[by_first]
    lab = to_lab(ucol).astype(np.float64)  # (u, 3)
    same = deltaE_ciede2000(lab[:, None, :], lab[None, :, :]) < SAME_HINT  # (u, u)
    share = same.astype(np.float64) @ ucount / len(items)  # the fraction of marks of (about) each color
    # one candidate per group of alike colors: the first color of each group
    keep = np.array([not same[i, :i].any() for i in range(len(ucol))])
    region = regions[ufirst]
    fig = figures(seg)
    return HintColors(lab[keep], region[keep], share[keep], len(items), fig[region[keep]], fig)


def figures(seg: Segmentation) -> np.ndarray:
    """(n + 1,) int32: the figure of every region, 1.. for the 8-connected groups of ink and non-background
    regions, 0 for the background (regions touching the image border)."""
    import cv2

    background = seg.border[seg.labels] & ~seg.ink  # (H, W)
    _, comp = cv2.connectedComponents((~background).astype(np.uint8), connectivity=8)
    fig = np.zeros(seg.n + 1, np.int32)
    inside = ~background
    fig[seg.labels[inside]] = comp[inside]  # a region lies within one component: any of its pixels tells it
    fig[seg.border] = 0
    return fig


def candidate_features(hc: HintColors, probs: np.ndarray, conf: np.ndarray, choice: np.ndarray, vote: np.ndarray,
                       palette: np.ndarray, seg: Segmentation) -> np.ndarray:
    """(R, m, len(FEATURES)) float64 for regions 0..n of ``seg`` and the hint colors ``hc``.

    probs (R, K) the head's class probabilities per region; conf (R,) its mass near its choice; choice (R, 3) the
    head's color, vote (R, 3) the regression's (CIELAB); palette (K, 3)."""
    from skimage.color import deltaE_ciede2000

    r, m = len(probs), len(hc.lab)
    near = (deltaE_ciede2000(palette[:, None, :].astype(np.float64), hc.lab[None]) < RADIUS).astype(np.float64)
    mass = probs @ near  # (R, m): probability that the truth is near each hint color
    hl = np.broadcast_to(hc.lab[None], (r, m, 3))
    d_choice = deltaE_ciede2000(np.broadcast_to(choice[:, None, :].astype(np.float64), (r, m, 3)), hl) / RADIUS
    d_vote = deltaE_ciede2000(np.broadcast_to(vote[:, None, :].astype(np.float64), (r, m, 3)), hl) / RADIUS
    areas = np.maximum(seg.areas.astype(np.float64), 1.0)
    log_area = np.log(areas[:, None] / areas[hc.region][None, :])  # (R, m)
    white = deltaE_ciede2000(hc.lab, np.broadcast_to(WHITE_LAB, hc.lab.shape)) < RADIUS  # (m,)
    f = np.empty((r, m, len(FEATURES)))
    f[..., 0] = mass
    f[..., 1] = conf[:, None]
    f[..., 2] = np.minimum(d_choice, CLIP)
    f[..., 3] = log_area
    f[..., 4] = np.minimum(d_vote, CLIP)
    f[..., 5] = white[None, :]
    f[..., 6] = hc.share[None, :]
    f[..., 7] = np.log(hc.marks)
    f[..., 8] = d_choice < 1.0
    return f


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def drawing_confidence(conf: np.ndarray, eligible: np.ndarray) -> float:
    """The head's mean confidence (R,) over the regions it votes for (``eligible`` (R,) bool); 0 without any."""
    return float(conf[eligible].mean()) if eligible.any() else 0.0


def unsure(conf: np.ndarray, eligible: np.ndarray) -> bool:
    """Whether the head is unsure of the drawing as a whole (:data:`UNSURE`): hint colors then need :data:`MIN_P`."""
    return drawing_confidence(conf, eligible) < UNSURE


def propagate(votes: np.ndarray, hc: HintColors, features: np.ndarray, conf: np.ndarray,
              eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """votes (R, 3) CIELAB per region -> (votes with regions taken over by a hint color, taken (R,) bool).

    features: :func:`candidate_features`; conf (R,) the head's confidence in its own choice; ``eligible`` (R,) bool:
    the regions that may change (those the head votes for; hinted regions among them are painted by their hints
    afterwards anyway). The floor :data:`MIN_P` applies when :func:`unsure` says so."""
    p_hint = _sigmoid(features @ HINT_COEF + HINT_BIAS) * hc.allowed()  # (R, m)
    best = p_hint.argmax(1)
    p_best = p_hint[np.arange(len(best)), best]
    p_own = _sigmoid(OWN_COEF * conf + OWN_BIAS)
    take = eligible & (p_best > np.maximum(p_own, MIN_P if unsure(conf, eligible) else 0.0))
    out = votes.copy()
    out[take] = hc.lab[best[take]]
    return out, take
