"""Closed regions of line art, shared by training, inference, evaluation and the baselines.

* :mod:`.segment`: ink, gap closing (stroke ends joined to nearby ink), tiny-region merging, line pixels to their
  nearest region, the region-count cap; the plain 4-connected labelling the evaluation scores with; the classical
  region fill.
* :mod:`.paint`: region-consistent output: one robust flat color per region voted from the network, exact hints,
  a bounded shading layer, and the flat / shading / line layers.
* :mod:`.ora`: the layers as an OpenRaster file (Krita, GIMP, MyPaint open it).
* :mod:`.palette`: the color-class palette and the choice of a region's most-likely-right color.
* :mod:`.propagate`: hint propagation, an unhinted region taking a hint's exact color where that is likelier right.
"""

from .segment import (
    INK_THRESHOLD,
    MAX_REGIONS,
    RegionError,
    Segmentation,
    default_gap,
    label_regions,
    line_width,
    region_fill,
    segment,
)

__all__ = ["INK_THRESHOLD", "MAX_REGIONS", "RegionError", "Segmentation", "default_gap", "label_regions",
           "line_width", "region_fill", "segment"]
