"""Line art: extraction from color images (to make training pairs) and normalization of user input.

Both live here so that what the model sees at training time and at inference time is made by one module.
Line art is a (H, W) uint8 array: 255 = paper, 0 = ink.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .imageio import composite_on_white


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 in [0, 1] (ITU-R 601 luma)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def xdog(gray: np.ndarray, sigma: float, k: float, tau: float, eps: float, phi: float) -> np.ndarray:
    """Extended difference of Gaussians (Winnemöller et al. 2012).

    gray: (H, W) float32 in [0, 1]. Returns (H, W) uint8 line art. The sharpened image ``(1+tau)·G_s - tau·G_ks``
    is soft-thresholded: values above ``eps`` are paper, below fall off with a tanh of slope ``phi``.
    """
    g1 = cv2.GaussianBlur(gray, (0, 0), sigma)
    g2 = cv2.GaussianBlur(gray, (0, 0), sigma * k)
    d = (1.0 + tau) * g1 - tau * g2
    out = np.where(d >= eps, 1.0, 1.0 + np.tanh(phi * (d - eps)))
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


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


def normalize_input(img: Image.Image) -> np.ndarray:
    """User line art (any mode; alpha composited on white; color or gray scans) -> (H, W) uint8 line art.

    Levels are stretched so the paper is white and the darkest ink black: a gray pencil scan or a yellowed page
    then looks like the extracted line art the model was trained on.
    """
    gray = cv2.cvtColor(composite_on_white(img), cv2.COLOR_RGB2GRAY).astype(np.float32)
    lo, hi = np.percentile(gray, 0.5), np.percentile(gray, 99.5)
    if hi - lo < 8:  # blank page: nothing to stretch
        return gray.astype(np.uint8)
    out = (gray - lo) / (hi - lo) * 255.0
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
