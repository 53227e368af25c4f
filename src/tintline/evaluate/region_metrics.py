"""Region-level color metrics: what a person checks when looking at a colorized drawing.

Regions are the closed areas of the line art (4-connected paper pixels, see :mod:`tintline.regions`); regions
smaller than ``min_area`` pixels (by default 48 at 256 px, scaled with the image area: :func:`default_min_area`, the
same definition as the evaluation's ``per-region`` hints) are merged into their nearest large neighbour, and the
background (regions that touch the image border) is left out, or it would dominate every number.

* **region accuracy**: share of regions whose median predicted color is within ΔE00 ≤ ``tol`` of the median true
  color — unweighted (every region counts once) and area-weighted.
* **bleeding**: mean ΔE00 of predicted pixels to their region's median predicted color, divided by the same for the
  truth (1 = as uniform as the truth; larger = colors smear across regions or within them).
* **hint adherence**: of the regions that received a hint, the share whose median predicted color is within
  ``tol`` of the hint's color.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab

from ..regions import label_regions


@dataclass
class Regions:
    labels: np.ndarray  # (H, W) int32: 0 = ink or background, 1..n = scored regions
    n: int
    areas: np.ndarray  # (n + 1,) pixels per label


MIN_AREA_256 = 48  # smallest scored region (pixels) in a 256-px image; scaled by area for other sizes


def default_min_area(shape: tuple[int, ...]) -> int:
    """Smallest scored / hinted region in pixels for an image of ``shape`` (H, W, ...): 48 at 256 px, scaled by the
    image area, ``(max(H, W) / 256) ** 2``, so a region is "too small to count" at the same share of the drawing
    whatever the resolution. At least 1."""
    side = max(shape[0], shape[1])
    return max(1, round(MIN_AREA_256 * (side / 256) ** 2))


def scored_regions(line: np.ndarray, min_area: int | None = None) -> Regions:
    """line (H, W) uint8 -> closed non-background regions, tiny ones merged into the nearest large one.

    ``min_area`` None: :func:`default_min_area` of the line's shape (the ``per-region`` protocol's definition)."""
    if min_area is None:
        min_area = default_min_area(line.shape)
    labels, n = label_regions(line)
    if n == 0:
        return Regions(np.zeros_like(labels), 0, np.zeros(1, np.int64))
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    big = areas >= min_area
    big[0] = False
    tiny_px = (labels > 0) & ~big[labels]
    if tiny_px.any() and big.any():
        # nearest pixel of a large region, for every pixel (distance transform over "not large region")
        _, (iy, ix) = ndimage.distance_transform_edt(~big[labels], return_indices=True)
        labels = labels.copy()
        labels[tiny_px] = labels[iy[tiny_px], ix[tiny_px]]
    elif tiny_px.any():
        labels = np.where(tiny_px, 0, labels)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    labels = np.where(np.isin(labels, border), 0, labels)
    # renumber 1..k
    keep = np.unique(labels)
    keep = keep[keep > 0]
    remap = np.zeros(max(n + 1, int(labels.max()) + 1), np.int32)
    remap[keep] = np.arange(1, len(keep) + 1)
    labels = remap[labels]
    return Regions(labels, len(keep), np.bincount(labels.ravel(), minlength=len(keep) + 1))


def _region_medians(img: np.ndarray, reg: Regions) -> np.ndarray:
    """(H, W, 3) uint8 -> (n + 1, 3) float median RGB per label (row 0 unused)."""
    out = np.zeros((reg.n + 1, 3))
    if reg.n == 0:
        return out
    flat_l = reg.labels.ravel()
    order = np.argsort(flat_l, kind="stable")
    sorted_l = flat_l[order]
    bounds = np.searchsorted(sorted_l, np.arange(reg.n + 2))
    px = img.reshape(-1, 3)[order]
    for k in range(1, reg.n + 1):
        seg = px[bounds[k] : bounds[k + 1]]
        if len(seg):
            out[k] = np.median(seg, axis=0)
    return out


def _lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in 0..255 (float or uint8) -> Lab."""
    return rgb2lab(np.asarray(rgb, np.float64).reshape(-1, 1, 3) / 255.0).reshape(np.shape(rgb))


def _spread(img_lab: np.ndarray, med_lab: np.ndarray, reg: Regions) -> float:
    """Mean ΔE00 of region pixels to their region's median color."""
    sel = reg.labels > 0
    if not sel.any():
        return 0.0
    return float(deltaE_ciede2000(img_lab[sel], med_lab[reg.labels[sel]]).mean())


def region_metrics(pred: np.ndarray, truth: np.ndarray, line: np.ndarray, hint_colors: np.ndarray | None = None,
                   hint_mask: np.ndarray | None = None, tol: float = 10.0, min_area: int | None = None,
                   pred_lab: np.ndarray | None = None, truth_lab: np.ndarray | None = None,
                   regions: Regions | None = None) -> dict[str, float]:
    """pred, truth (H, W, 3) uint8; line (H, W) uint8; optional rendered hints. NaN where a metric is undefined
    (no scored region, or no hinted region). Precomputed CIELAB images and regions may be passed to save time;
    ``min_area`` None: the size-scaled default of :func:`scored_regions`."""
    reg = scored_regions(line, min_area) if regions is None else regions
    nan = float("nan")
    if reg.n == 0:
        return {"region_acc": nan, "region_acc_area": nan, "bleeding": nan, "hint_adherence": nan, "regions": 0}
    med_p, med_t = _lab(_region_medians(pred, reg)), _lab(_region_medians(truth, reg))
    de = deltaE_ciede2000(med_p[1:], med_t[1:])  # (n,)
    ok = de <= tol
    area = reg.areas[1:].astype(np.float64)
    pred_lab = _lab(pred) if pred_lab is None else pred_lab
    truth_lab = _lab(truth) if truth_lab is None else truth_lab
    bleed = (_spread(pred_lab, med_p, reg) + 1.0) / (_spread(truth_lab, med_t, reg) + 1.0)
    out = {
        "region_acc": float(ok.mean()),
        "region_acc_area": float((ok * area).sum() / area.sum()),
        "bleeding": float(bleed),
        "hint_adherence": nan,
        "regions": int(reg.n),
    }
    if hint_colors is not None and hint_mask is not None and hint_mask.any():
        sel = hint_mask & (reg.labels > 0)
        hinted = np.unique(reg.labels[sel])
        if len(hinted):
            hint_med = _lab(_region_medians(np.where(sel[..., None], hint_colors, 0).astype(np.uint8),
                                            Regions(np.where(sel, reg.labels, 0), reg.n, reg.areas)))
            d = deltaE_ciede2000(med_p[hinted], hint_med[hinted])
            out["hint_adherence"] = float((d <= tol).mean())
    return out
