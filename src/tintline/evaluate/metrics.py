"""Per-image metrics on uint8 RGB images of equal shape. Higher is better for PSNR/SSIM, lower for ΔE00."""

from __future__ import annotations

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    if np.array_equal(pred, truth):
        return 100.0  # identical: report a finite cap instead of infinity, so means stay finite
    return float(peak_signal_noise_ratio(truth, pred, data_range=255))


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(structural_similarity(truth, pred, channel_axis=2, data_range=255))


def delta_e(pred: np.ndarray, truth: np.ndarray, pred_lab: np.ndarray | None = None,
            truth_lab: np.ndarray | None = None) -> float:
    """Mean CIEDE2000 color difference over all pixels (about 2.3 is a just-noticeable difference)."""
    return float(deltaE_ciede2000(rgb2lab(truth) if truth_lab is None else truth_lab,
                                  rgb2lab(pred) if pred_lab is None else pred_lab).mean())


def chroma(img: np.ndarray, lab: np.ndarray | None = None) -> float:
    """Mean CIELAB chroma: 0 for a gray image. Compared with the truth's, it tells a washed-out model apart."""
    lab = rgb2lab(img) if lab is None else lab
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def all_metrics(pred: np.ndarray, truth: np.ndarray, pred_lab: np.ndarray | None = None,
                truth_lab: np.ndarray | None = None) -> dict[str, float]:
    """Pixel metrics; pass the CIELAB images when already computed (rgb2lab dominates the cost)."""
    if pred.shape != truth.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs truth {truth.shape}")
    pred_lab = rgb2lab(pred) if pred_lab is None else pred_lab
    return {"psnr": psnr(pred, truth), "ssim": ssim(pred, truth),
            "delta_e00": delta_e(pred, truth, pred_lab, truth_lab), "chroma": chroma(pred, pred_lab)}
