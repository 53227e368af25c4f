from __future__ import annotations

import json

import numpy as np
import pytest
from synth import cartoon

from tintline.baselines import BASELINES
from tintline.config import HintConfig
from tintline.data.dataset import encode_input, input_channels
from tintline.data.hints import (
    HintError,
    hints_to_json,
    load_hints,
    region_dots,
    render_hints,
    simulate_hints,
    validate_hints,
)
from tintline.regions import label_regions, region_fill


def _box_lines(h: int = 60, w: int = 90) -> np.ndarray:
    """Two closed boxes side by side on white paper: regions inside each box, plus the outside."""
    line = np.full((h, w), 255, np.uint8)
    line[10:50, 10] = line[10:50, 40] = line[10, 10:41] = line[49, 10:41] = 0
    line[10:50, 50] = line[10:50, 80] = line[10, 50:81] = line[49, 50:81] = 0
    return line


def test_render_point_and_stroke_land_where_asked_with_scale():
    hints = validate_hints({"points": [{"x": 20, "y": 10, "color": "#ff0000", "radius": 2}],
                            "strokes": [{"points": [[0, 30], [38, 30]], "color": "#00ff00", "width": 2}]})
    colors, mask = render_hints(hints, 25, 20, scale=0.5)  # a 40x50 image seen at half size
    assert mask[5, 10] and tuple(colors[5, 10]) == (255, 0, 0)
    assert mask[15, 0:19].all() and tuple(colors[15, 9]) == (0, 255, 0)
    assert not mask[22, 2]


@pytest.mark.parametrize("bad, where", [
    ([], "JSON object"),
    ({"dots": []}, "unknown key"),
    ({"points": [{"x": 1, "y": 2, "color": "red"}]}, "points[0].color"),
    ({"points": [{"x": "1", "y": 2, "color": "#000000"}]}, "points[0].x"),
    ({"strokes": [{"points": [], "color": "#000000"}]}, "strokes[0]"),
    ({"strokes": [{"points": [[1, 2, 3]], "color": "#000000"}]}, "strokes[0].points[0]"),
    ({"points": [{"x": 1, "y": 2, "color": "#000000", "radius": 0}]}, "radius"),
])
def test_validate_hints_names_the_bad_field(bad, where):
    with pytest.raises(HintError) as e:
        validate_hints(bad)
    assert where in str(e.value)


def test_hints_json_roundtrip(tmp_path):
    src = {"points": [{"x": 3, "y": 4, "color": "#0a0b0c", "radius": 2}],
           "strokes": [{"points": [[1, 1], [5, 5]], "color": "#ffffff", "width": 3}]}
    p = tmp_path / "h.json"
    p.write_text(json.dumps(src))
    again = hints_to_json(load_hints(p))
    assert again == src  # numbers compare equal as floats, colors come back as '#rrggbb'
    assert validate_hints(again) == load_hints(p)
    p.write_text("{not json")
    with pytest.raises(HintError, match="not valid JSON"):
        load_hints(p)


def test_simulated_hints_take_the_true_color_and_respect_p_none():
    color = cartoon(3, 64, 64)
    line = np.full((64, 64), 255, np.uint8)
    rng = np.random.default_rng(0)
    cfg = HintConfig(p_none=0.5, mean_count=6, p_region=0.0)  # random marks only
    counts = [sum(map(len, simulate_hints(color, line, cfg, rng).values())) for _ in range(400)]
    none_share = np.mean([c == 0 for c in counts])
    assert 0.42 < none_share < 0.58
    nonzero = [c for c in counts if c]
    assert 4 < np.mean(nonzero) < 8 and max(nonzero) <= cfg.max_count
    flat = np.zeros((32, 32, 3), np.uint8)
    flat[:] = (200, 40, 10)
    exact = HintConfig(p_stroke=0, color_noise=0)
    h = simulate_hints(flat, np.full((32, 32), 255, np.uint8), exact, rng, count=5)
    assert len(h["points"]) == 5 and all(p["color"] == (200, 40, 10) for p in h["points"])
    noisy = simulate_hints(flat, np.full((32, 32), 255, np.uint8), HintConfig(p_stroke=0), rng, count=20)
    assert all(max(abs(a - b) for a, b in zip(p["color"], (200, 40, 10), strict=True)) <= 15 for p in noisy["points"])


def test_drop_removes_the_expected_share_of_marks():
    color, line = cartoon(4, 64, 64), np.full((64, 64), 255, np.uint8)
    cfg = HintConfig(p_none=0.0, mean_count=10, max_count=32, p_region=0.0)
    rng = np.random.default_rng(1)
    kept = np.mean([sum(map(len, simulate_hints(color, line, cfg, rng, drop=0.5).values())) for _ in range(300)])
    full = np.mean([sum(map(len, simulate_hints(color, line, cfg, rng).values())) for _ in range(300)])
    assert 0.4 < kept / full < 0.6


def test_simulated_marks_stay_inside_one_large_region_and_off_the_lines():
    line = _box_lines()
    line[20:24, 60:64] = 0  # a speck: tiny regions around it must get no hints
    labels, _ = label_regions(line)
    color = np.full((60, 90, 3), 255, np.uint8)
    color[11:49, 11:40] = (220, 20, 20)
    cfg = HintConfig(p_stroke=0.6, min_region=48)
    rng = np.random.default_rng(2)
    strokes = 0
    for _ in range(50):
        h = simulate_hints(color, line, cfg, rng, count=6)
        strokes += len(h["strokes"])
        for kind in ("points", "strokes"):
            for mark in h[kind]:
                _, mask = render_hints({"points": [mark] if kind == "points" else [],
                                        "strokes": [mark] if kind == "strokes" else []}, *line.shape)
                assert (line[mask] >= 160).all(), "a mark crosses a line"
                assert len(np.unique(labels[mask])) == 1, "a mark spans two regions"
    assert strokes > 20


def test_region_fill_floods_only_hinted_closed_regions():
    line = _box_lines()
    labels, n = label_regions(line)
    assert n == 3  # outside + two boxes
    colors, mask = render_hints(validate_hints({"points": [{"x": 25, "y": 30, "color": "#ff0000", "radius": 2}]}),
                                *line.shape)
    fill, filled = region_fill(line, colors, mask)
    assert filled[15:45, 15:35].all() and tuple(fill[30, 20]) == (255, 0, 0)
    assert not filled[15:45, 55:75].any()  # the other box got no hint
    assert not filled[0:5, :].any()  # nor the outside
    assert not filled[line < 160].any()  # ink is never filled


def test_region_fill_baseline_colors_inside_the_lines_and_keeps_ink():
    line = _box_lines()
    out = BASELINES.create("region-fill").colorize_lines(
        line, validate_hints({"points": [{"x": 65, "y": 30, "color": "#0000ff", "radius": 1}]}))
    assert out.shape == (60, 90, 3)
    assert tuple(out[30, 65]) == (0, 0, 255) and tuple(out[30, 25]) == (255, 255, 255)
    assert tuple(out[30, 50]) == (0, 0, 0)  # the box's ink


@pytest.mark.parametrize("encoding", ["sparse", "region"])
def test_encode_input_channels(encoding):
    line = _box_lines()
    colors, mask = render_hints(validate_hints({"points": [{"x": 25, "y": 30, "color": "#ff0000"}]}), *line.shape)
    x = encode_input(line, colors, mask, encoding)
    assert x.shape == (input_channels(encoding), 60, 90)
    assert x[0].max() == 1 and x[0].min() == -1  # paper +1, ink -1
    assert x[4].sum() == mask.sum()  # sparse mask
    if encoding == "region":
        assert x[8, 30, 20] == 1 and x[5, 30, 20] == 1 and x[6, 30, 20] == -1  # red flood inside the box
        assert x[8, 30, 65] == 0
    with pytest.raises(ValueError, match="unknown hint encoding"):
        encode_input(line, colors, mask, "nope")


def test_colorize_cli_with_a_hint_image_and_region_fill(tmp_path):
    from PIL import Image

    from tintline.cli import main

    line = _box_lines()
    Image.fromarray(line).save(tmp_path / "lines.png")
    marks = np.zeros((60, 90, 4), np.uint8)
    marks[28:32, 20:24] = (0, 160, 0, 255)  # a green mark inside the left box
    Image.fromarray(marks).save(tmp_path / "marks.png")
    assert main(["colorize", "region-fill", str(tmp_path / "lines.png"), "-o", str(tmp_path / "out"),
                 "--hints", str(tmp_path / "marks.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "out" / "lines.png"))
    assert tuple(out[40, 30]) == (0, 160, 0) and tuple(out[40, 70]) == (255, 255, 255)
    Image.fromarray(marks[:30]).save(tmp_path / "small.png")  # wrong size: a one-line error, exit 2
    assert main(["colorize", "region-fill", str(tmp_path / "lines.png"), "-o", str(tmp_path / "out"),
                 "--hints", str(tmp_path / "small.png")]) == 2


def test_region_dots_put_one_dot_of_the_median_color_deep_inside_each_closed_region():
    line = _box_lines()
    color = np.full((60, 90, 3), 255, np.uint8)
    color[11:49, 11:40] = (220, 20, 20)
    color[11:15, 11:40] = (0, 0, 0)  # a dark band: the median ignores it
    color[11:49, 51:80] = (20, 20, 220)
    labels, n = label_regions(line)
    dots = region_dots(color, labels, n, min_area=48)
    assert len(dots["points"]) == 2 and not dots["strokes"]  # the outside touches the border: no dot
    for p in dots["points"]:
        x, y, r = int(p["x"]), int(p["y"]), int(p["radius"])
        assert (line[y - r : y + r + 1, x - r : x + r + 1] >= 160).all()  # the dot is off the lines
        assert p["color"] == tuple(int(v) for v in color[y, x])
    assert len(region_dots(color, labels, n, min_area=48, largest=1)["points"]) == 1
    assert len(region_dots(color, labels, n, min_area=48, skip_border=False)["points"]) == 3


def test_training_hints_mix_random_marks_and_region_dots():
    line = _box_lines()
    color = np.full((60, 90, 3), 255, np.uint8)
    cfg = HintConfig(p_none=0.0, p_region=1.0, p_stroke=0.0)
    rng = np.random.default_rng(0)
    counts = [len(simulate_hints(color, line, cfg, rng)["points"]) for _ in range(200)]
    assert max(counts) <= 2 and 0 < np.mean(counts) < 2  # region dots, some regions dropped
