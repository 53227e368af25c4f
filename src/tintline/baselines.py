"""Learning-free colorizers, selectable by name wherever a model is: ``white`` and ``region-fill``.

They share the model interface (``colorize_lines(line, hints)``, ``colorize_image(img, hints)``) so eval, the CLI
and the server treat them like checkpoints: every learned number has a floor to be read against.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .data.hints import render_hints
from .data.manga import colorize_page
from .models.registry import Registry
from .regions import region_fill


class Baseline:
    name = "baseline"
    meta: dict = {}
    keep_shading: bool | None = None  # gray pages: keep their lightness (None: on for gray / screentone / color)

    def colorize_lines(self, line: np.ndarray, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        raise NotImplementedError

    def colorize_image(self, img: Image.Image, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        return colorize_page(self, img, hints)[0]


BASELINES: Registry = Registry("baseline")


@BASELINES.register("white")
class White(Baseline):
    """The line art itself: black lines on white paper, no color at all."""

    name = "white"
    meta = {"description": "the line art itself (no color)"}

    def colorize_lines(self, line: np.ndarray, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        return np.repeat(line[..., None], 3, axis=2)


@BASELINES.register("region-fill")
class RegionFill(Baseline):
    """Each closed region (gap-closed, :func:`tintline.regions.segment`) takes the mean color of the hints inside it;
    regions without hints stay white. The ink is multiplied back on top so lines stay as drawn."""

    name = "region-fill"
    meta = {"description": "classical region fill of the hints (no learning)"}

    def colorize_lines(self, line: np.ndarray, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        h, w = line.shape
        colors, mask = render_hints(hints or {"points": [], "strokes": []}, h, w)
        fill, filled = region_fill(line, colors, mask)
        out = np.full((h, w, 3), 255, np.float32)
        out[filled] = fill[filled]
        out *= line.astype(np.float32)[..., None] / 255.0
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
