"""Regions that survive real line art (gap closing, tiny regions, line pixels, the cap) and region-true painting
(votes, exact hints, split regions, the background, layers), including bad input in bounded time."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from tintline.data.hints import validate_hints
from tintline.regions import MAX_REGIONS, RegionError, default_gap, label_regions, line_width, segment
from tintline.regions.paint import Layers, paint


def _divided_box(gap: int = 4, size: int = 128, width: int = 2) -> np.ndarray:
    """A closed square split in two by a vertical divider that has a ``gap``-pixel break in it."""
    line = np.full((size, size), 255, np.uint8)
    cv2.rectangle(line, (10, 10), (size - 11, size - 11), 0, width)
    mid = size // 2
    cv2.line(line, (mid, 10), (mid, size - 11), 0, width)
    if gap:
        line[50 : 50 + gap, mid - width : mid + width + 1] = 255
    return line


def test_line_width_is_measured():
    for w in (1, 2, 4, 6):
        line = np.full((200, 200), 255, np.uint8)
        line[:, 60 : 60 + w] = 0
        line[80 : 80 + w, :] = 0
        assert abs(line_width(line) - w) <= 0.25 * w + 0.2, w
    assert line_width(np.full((10, 10), 255, np.uint8)) == 0.0


def test_a_gap_in_a_stroke_does_not_merge_two_areas():
    line = _divided_box(gap=2)  # lines measure 3 px wide: the default closes breaks of about that
    assert label_regions(line)[1] == 2  # plain components: the two halves leak into each other (+ outside)
    seg = segment(line)
    assert seg.n == 3  # outside + left half + right half
    left, right = seg.labels[60, 30], seg.labels[60, 100]
    assert left != right and not seg.border[left] and not seg.border[right]
    assert seg.border[seg.labels[2, 2]]
    # each half is whole: all its interior pixels carry one label
    assert len(np.unique(seg.labels[15:110, 15:60])) == 1 and len(np.unique(seg.labels[15:110, 68:110])) == 1
    assert segment(line, gap=0).n == 2  # gap closing off: the plain components


def test_a_gap_wider_than_the_setting_stays_open():
    line = np.full((200, 200), 255, np.uint8)
    line[36:164, 36:164] = _divided_box(gap=20)  # a margin wider than the ball: the outside stays one region
    assert default_gap(line) < 20
    assert segment(line).n == 2
    assert segment(line, gap=22).n == 3


def test_every_pixel_has_a_region_and_line_pixels_take_the_nearest():
    line = _divided_box(gap=0, width=3)
    seg = segment(line)
    assert seg.labels.min() >= 1 and seg.labels.max() == seg.n
    left, right = seg.labels[60, 30], seg.labels[60, 100]
    mid = 64
    assert seg.ink[60, mid]
    assert seg.labels[60, mid - 1] == left and seg.labels[60, mid + 1] == right  # each side of the divider


def test_tiny_regions_are_merged_into_a_neighbour():
    line = _divided_box(gap=0)
    for x in range(20, 50, 8):  # little ink rings with a 2x2 hole: specks, not regions
        cv2.rectangle(line, (x, 80), (x + 3, 83), 0, 1)
    seg = segment(line)
    assert seg.n == 3
    assert label_regions(line)[1] > 3


def test_a_small_hinted_area_stays_a_region_and_keeps_its_hint():
    """Thick lines make a small closed area (here 6x6 px, below the 4-line-widths-squared merge size) look like a
    speck; with a hint in it, it stays a region, so its hint colors it and does not split its neighbour."""
    line = np.full((128, 128), 255, np.uint8)
    cv2.rectangle(line, (10, 10), (117, 117), 0, 5)  # a frame of 5-px lines: the merge size is ~100 px
    cv2.rectangle(line, (50, 50), (61, 61), 0, 3)  # an "eye": 6x6 paper pixels inside
    assert segment(line).n == 2  # the eye merged into the inside of the frame (and the outside)
    hints = validate_hints({"points": [{"x": 30, "y": 90, "color": "#884422", "radius": 3},
                                       {"x": 55.5, "y": 55.5, "color": "#ffffff", "radius": 2}]})
    marks = np.zeros(line.shape, bool)
    marks[53:59, 53:59] = True
    seg = segment(line, keep=marks)
    assert seg.n == 3 and seg.labels[55, 55] != seg.labels[90, 30]
    out = paint(line, np.full((128, 128, 3), 200, np.uint8), hints, seg=seg).compose()
    inside = (seg.labels == seg.labels[90, 30]) & (line == 255)
    assert (out[inside] == (0x88, 0x44, 0x22)).all()  # all of the frame's inside takes its hint: no split
    assert (out[55, 55] == 255).all()
    from tintline.baselines import BASELINES

    rf = BASELINES.create("region-fill").colorize_lines(line, hints)  # the paint bucket keeps it too
    assert (rf[inside] == (0x88, 0x44, 0x22)).all() and (rf[55, 55] == 255).all()


def test_the_region_cap_gives_a_clear_error():
    line = np.full((256, 256), 255, np.uint8)
    line[::16, :] = 0
    line[:, ::16] = 0  # 225 closed cells of 15x15
    assert segment(line).n >= 225
    with pytest.raises(RegionError, match="regions"):
        segment(line, max_regions=100)


@pytest.mark.parametrize("kind", ["black", "white", "noise", "tiny-cells"])
def test_degenerate_line_art_is_segmented_sensibly_and_fast(kind):
    rng = np.random.default_rng(0)
    line = {"black": np.zeros((1024, 1024), np.uint8),
            "white": np.full((1024, 1024), 255, np.uint8),
            "noise": rng.integers(0, 256, (1024, 1024), dtype=np.uint8),
            "tiny-cells": np.full((1024, 1024), 255, np.uint8)}[kind]
    if kind == "tiny-cells":  # ~100,000 regions of 1-2 pixels
        line[::3, :] = 0
        line[:, ::3] = 0
    t = time.perf_counter()
    seg = segment(line)
    assert time.perf_counter() - t < 5
    assert 1 <= seg.n <= MAX_REGIONS
    assert seg.labels.min() >= 1


def _two_boxes() -> np.ndarray:
    line = np.full((100, 160), 255, np.uint8)
    cv2.rectangle(line, (10, 10), (70, 90), 0, 2)
    cv2.rectangle(line, (90, 10), (150, 90), 0, 2)
    return line


def test_paint_gives_one_flat_color_per_region_from_the_network_vote():
    line = _two_boxes()
    fill = np.full((100, 160, 3), 255, np.uint8)
    fill[:, :80] = (200, 40, 40)  # the network paints the left box red, with some bleed across the right box
    fill[:, 80:] = (40, 40, 200)
    fill[40:60, 90:100] = (200, 40, 40)  # a red smear inside the blue box: outvoted
    layers = paint(line, fill, shading=0)
    img = layers.compose()
    inside_left, inside_right = img[15:85, 15:65], img[15:85, 95:145]
    assert (inside_left == inside_left[0, 0]).all() and (inside_right == inside_right[0, 0]).all()
    assert np.abs(inside_right[0, 0].astype(int) - (40, 40, 200)).max() <= 12
    assert np.abs(inside_left[0, 0].astype(int) - (200, 40, 40)).max() <= 12


def test_exact_hints_split_regions_and_color_the_background():
    line = _two_boxes()
    fill = np.full((100, 160, 3), 230, np.uint8)  # the network says: light gray everywhere
    hints = validate_hints({"points": [
        {"x": 30, "y": 30, "color": "#ff0000", "radius": 2},  # left box: exactly red
        {"x": 100, "y": 50, "color": "#00ff00", "radius": 2},  # right box: green on its left ...
        {"x": 140, "y": 50, "color": "#0000ff", "radius": 2},  # ... and blue on its right: split by nearest
        {"x": 3, "y": 3, "color": "#ffff00", "radius": 1},  # the background
    ]})
    flat = paint(line, fill, hints, shading=0).flat
    assert (flat[15:85, 15:65] == (255, 0, 0)).all()
    assert tuple(flat[50, 105]) == (0, 255, 0) and tuple(flat[50, 135]) == (0, 0, 255)
    assert tuple(flat[95, 80]) == (255, 255, 0) and tuple(flat[2, 158]) == (255, 255, 0)


def test_on_a_shaded_page_a_region_split_between_hints_follows_the_tone_edge():
    # a gray field (tone 90) with a white disc on it whose outline is open: lines alone make them one region
    line = np.full((120, 160), 255, np.uint8)
    cv2.rectangle(line, (5, 5), (154, 114), 0, 2)
    cv2.ellipse(line, (100, 60), (30, 30), 0, 40, 360, 0, 2)  # a 40 degree gap in the disc's outline
    tone = np.full_like(line, 90)
    cv2.circle(tone, (100, 60), 30, 255, -1)
    tone = np.minimum(tone, line)
    assert segment(line).labels[60, 100] == segment(line).labels[60, 20]  # one region through the gap
    fill = np.full((120, 160, 3), 200, np.uint8)
    # red on the field just left of the disc, white inside the disc near its right edge: by distance alone the
    # disc's left part would be red and the field right of the disc white
    hints = validate_hints({"points": [{"x": 60, "y": 60, "color": "#ff0000", "radius": 2},
                                       {"x": 125, "y": 60, "color": "#ffffff", "radius": 2}]})
    by_distance = paint(line, fill, hints, shading=0).flat
    assert tuple(by_distance[60, 80]) == (255, 0, 0) and tuple(by_distance[60, 145]) == (255, 255, 255)
    flat = paint(line, fill, hints, shading=0, tone=tone).flat
    inside = np.zeros_like(line, bool)
    inside[8:112, 8:152] = True  # within the frame
    paper = (line == 255) & inside
    disc, field = paper & (tone == 255), paper & (tone == 90)
    # up to its edge (a few pixels in the outline's corners may go either way)
    assert (flat[disc] == 255).all(-1).mean() > 0.99, "the disc is white"
    assert (flat[field] == (255, 0, 0)).all(-1).mean() > 0.99, "the field is red"


def test_a_large_region_is_split_along_the_tone_on_a_coarser_grid_in_bounded_time():
    from tintline.regions.paint import SPLIT_PIXELS, _split_by_tone

    side = 1500  # above SPLIT_PIXELS: flooded on a grid twice as coarse
    assert side * side > SPLIT_PIXELS
    tone = np.full((side, side), 120, np.uint8)
    tone[:, 701:] = 220  # an edge on an odd column: not on the coarse grid
    src = np.zeros((side, side), np.int32)
    src[100:103, 100:103] = 1  # a 3 px dot: still a seed on the coarse grid
    src[1400:1403, 1400:1403] = 2
    t0 = time.perf_counter()
    out = _split_by_tone(tone, src, np.ones((side, side), bool), np.ones((side, side), np.int32))
    assert time.perf_counter() - t0 < 5.0
    assert (out[:, :699] == 1).all() and (out[:, 703:] == 2).all()  # the edge, within the grid's 2 px


def test_a_mark_on_a_line_beside_the_background_does_not_flood_it():
    # a thick stroke on open paper (a gray fill a page reader took for ink looks like this): a dot wholly on it
    # used to color the region of its nearest paper, the whole background
    line = np.full((100, 160), 255, np.uint8)
    line[46:54, 20:140] = 0
    fill = np.full((100, 160, 3), 230, np.uint8)
    hints = validate_hints({"points": [{"x": 80, "y": 50, "color": "#ff0000", "radius": 2}]})
    flat = paint(line, fill, hints, shading=0).flat
    assert tuple(flat[10, 10]) != (255, 0, 0) and tuple(flat[90, 150]) != (255, 0, 0)
    # a hint on the paper of the background still colors it
    hints = validate_hints({"points": [{"x": 10, "y": 10, "color": "#ff0000", "radius": 2}]})
    assert tuple(paint(line, fill, hints, shading=0).flat[90, 150]) == (255, 0, 0)


def test_a_hint_touching_a_line_does_not_leak_across_it():
    line = _two_boxes()
    fill = np.full((100, 160, 3), 230, np.uint8)
    # a dot centred just inside the left box's right edge: part of it lies on the line
    hints = validate_hints({"points": [{"x": 67, "y": 50, "color": "#ff0000", "radius": 4}]})
    flat = paint(line, fill, hints, shading=0).flat
    assert tuple(flat[50, 40]) == (255, 0, 0)
    assert tuple(flat[50, 80]) != (255, 0, 0)  # the background between the boxes
    # hints entirely outside the image are ignored
    flat2 = paint(line, fill, validate_hints({"points": [{"x": -50, "y": 500, "color": "#ff0000"}]}), shading=0).flat
    assert tuple(flat2[50, 40]) != (255, 0, 0)


def test_layers_compose_and_shading_is_bounded_darkening():
    line = _two_boxes()
    fill = np.full((100, 160, 3), 200, np.uint8)
    fill[30:50, 20:40] = 100  # a shadow the network painted
    layers = paint(line, fill, shading=1.0, floor=0.6)
    assert layers.shading.min() >= int(0.6 * 255) - 1 and layers.shading.max() == 255
    assert layers.shading[40, 30] < 200 and layers.shading[70, 55] == 255
    ref = (layers.flat.astype(float) * layers.shading[..., None] * layers.lines[..., None] / 255**2)
    assert np.abs(layers.compose().astype(float) - ref).max() <= 0.5 + 1e-9
    flat_only = Layers(layers.flat, layers.shading, layers.lines, shading_opacity=0.0).compose()
    assert (flat_only[15:85, 15:65] == flat_only[15, 15]).all()
    half = Layers(layers.flat, layers.shading, layers.lines, shading_opacity=0.5).effective_shading()
    assert abs(int(half[40, 30]) - (255 - 0.5 * (255 - int(layers.shading[40, 30])))) <= 1


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained small region-encoding U-Net as a .safetensors model file."""
    import torch

    from tintline.checkpoint import save_generator
    from tintline.models import create_generator

    args = {"in_channels": 9, "base": 4, "depth": 3, "max_width": 8, "norm": "instance", "blend": "multiply"}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "g.safetensors"
    save_generator(create_generator("unet", **args), path,
                   {"generator": {"name": "unet", "args": args}, "hint_encoding": "region", "image_size": 256})
    return path


@pytest.mark.parametrize("kind", ["black", "white", "noise", "one-region", "tiny-cells"])
def test_bad_line_art_gets_a_sensible_result_in_bounded_time(tiny_model, kind):
    from tintline.inference import Colorizer

    rng = np.random.default_rng(1)
    side = 1024
    line = {"black": np.zeros((side, side), np.uint8), "white": np.full((side, side), 255, np.uint8),
            "noise": rng.integers(0, 256, (side, side), dtype=np.uint8),
            "one-region": np.full((side, side), 255, np.uint8),
            "tiny-cells": np.full((side, side), 255, np.uint8)}[kind]
    if kind == "one-region":
        cv2.circle(line, (512, 512), 500, 0, 3)
    if kind == "tiny-cells":
        line[::3, :] = 0
        line[:, ::3] = 0
    # hints on a line, far outside the image and on paper
    hints = validate_hints({"points": [{"x": 512, "y": 12, "color": "#ff0000", "radius": 4},
                                       {"x": -4000, "y": 99999, "color": "#00ff00"},
                                       {"x": 300, "y": 500, "color": "#0000ff", "radius": 3}]})
    t = time.perf_counter()
    out = Colorizer(tiny_model, shading=0).colorize_lines(line, hints)
    assert time.perf_counter() - t < 30
    assert out.shape == (side, side, 3)
    if kind == "one-region":
        assert (out[500, 300] == (0, 0, 255)).all()  # the blue dot colors the whole disc
        assert (out[512, 512] == (0, 0, 255)).all()


def test_a_large_page_keeps_colors_inside_its_lines(tiny_model):
    """The network sees the page at 256 px; regions and colors are decided at full size: no color crosses a line."""
    from tintline.inference import Colorizer

    page = np.full((2048, 2048), 255, np.uint8)
    for k in range(0, 2048, 37):  # many thin lines: regions of a few pixels at the network's scale
        cv2.line(page, (k, 0), (2047 - k // 2, 2047), 0, 2)
        cv2.line(page, (0, k), (2047, (k * 7) % 2048), 0, 2)
    seg = segment(page)
    paper = ~seg.ink
    dist = cv2.distanceTransform(paper.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    hints = validate_hints({"points": [{"x": int(x), "y": int(y), "color": "#cc3300", "radius": 3}]})
    out = Colorizer(tiny_model, shading=0).colorize_lines(page, hints)
    # with flat colors, every region's paper pixels are one color
    lab = seg.labels[paper]
    rgb = out[paper].astype(np.int64)
    key = rgb[:, 0] * 65536 + rgb[:, 1] * 256 + rgb[:, 2]
    lo = np.full(seg.n + 1, np.iinfo(np.int64).max)
    hi = np.full(seg.n + 1, -1)
    np.minimum.at(lo, lab, key)
    np.maximum.at(hi, lab, key)
    present = np.bincount(lab, minlength=seg.n + 1) > 0
    assert (lo[present] == hi[present]).all()
    hinted = seg.labels == seg.labels[y, x]
    assert (out[hinted & paper] == (0xCC, 0x33, 0x00)).all()


def test_the_background_stays_paper_unless_hinted(tiny_model):
    from tintline.inference import Colorizer

    line = _two_boxes()
    c = Colorizer(tiny_model, shading=0)
    out = c.colorize_lines(line)
    assert (out[2, 2] == 255).all() and (out[95, 80] == 255).all()  # the background: paper
    hinted = c.colorize_lines(line, validate_hints({"points": [{"x": 3, "y": 3, "color": "#336699"}]}))
    assert tuple(hinted[95, 80]) == (0x33, 0x66, 0x99)


def test_colorize_gap_option(tiny_model, tmp_path):
    """`colorize --gap`: 0 turns gap closing off (a hint floods through the break), the default keeps the halves
    apart, a negative width is a one-line error."""
    import json

    from PIL import Image

    from tintline.cli import main

    Image.fromarray(_divided_box(gap=2)).save(tmp_path / "box.png")
    (tmp_path / "h.json").write_text(json.dumps({"points": [{"x": 30, "y": 60, "color": "#ff0000", "radius": 3}]}))
    outs = {}
    for label, extra in (("default", []), ("open", ["--gap", "0"])):
        assert main(["colorize", str(tiny_model), str(tmp_path / "box.png"), "-o", str(tmp_path / label),
                     "--hints", str(tmp_path / "h.json"), *extra]) == 0
        outs[label] = np.asarray(Image.open(tmp_path / label / "box.png").convert("RGB"))
    assert tuple(outs["default"][60, 30]) == (255, 0, 0) and tuple(outs["default"][60, 100]) != (255, 0, 0)
    assert tuple(outs["open"][60, 100]) == (255, 0, 0)
    assert main(["colorize", str(tiny_model), str(tmp_path / "box.png"), "-o", str(tmp_path / "x"),
                 "--gap", "-1"]) == 2


def test_a_hint_inside_a_solid_black_area_colors_nothing_but_one_on_a_line_colors_its_region():
    """A dot deep inside a filled black shape means that shape (ink): it must not flood the region that the ink's
    nearest paper belongs to (here the background). A dot on a thin line still colors the region beside it."""
    from tintline.regions.paint import paint

    line = np.full((120, 160), 255, np.uint8)
    line[30:70, 30:70] = 0  # a solid black square on the background
    line[20:100, 100:102] = 0  # a thin vertical line ...
    line[20:22, 100:150] = 0
    line[98:100, 100:150] = 0
    line[20:100, 148:150] = 0  # ... closing a box on the right
    fill = np.full((120, 160, 3), 255, np.uint8)
    deep = {"points": [{"x": 50, "y": 50, "color": (200, 30, 30), "radius": 3}], "strokes": []}
    out = paint(line, fill, deep).compose()
    assert (out[5, 5] == 255).all() and (out[60, 120] == 255).all()  # background and box stay white
    on_line = {"points": [{"x": 100, "y": 60, "color": (30, 30, 200), "radius": 1}], "strokes": []}
    out = paint(line, fill, on_line).compose()
    assert out[60, 120, 2] > 150 and out[60, 120, 0] < 100 or out[60, 90, 2] > 150 and out[60, 90, 0] < 100
