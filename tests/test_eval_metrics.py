"""Evaluation metrics on constructed images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tintline.data.hints import render_hints, validate_hints
from tintline.evaluate.metrics import all_metrics, chroma, delta_e, psnr
from tintline.evaluate.region_metrics import region_metrics, scored_regions


def _two_boxes(h: int = 60, w: int = 100, left_w: int = 30, right_w: int = 30) -> np.ndarray:
    """Two closed boxes inside the canvas (the outside touches the border: background, not scored)."""
    line = np.full((h, w), 255, np.uint8)
    line[10:50, 10] = line[10:50, 10 + left_w] = line[10, 10 : 11 + left_w] = line[49, 10 : 11 + left_w] = 0
    x0 = 20 + left_w
    line[10:50, x0] = line[10:50, x0 + right_w] = line[10, x0 : x0 + right_w + 1] = 0
    line[49, x0 : x0 + right_w + 1] = 0
    return line


def _paint(line: np.ndarray, colors: list[tuple[int, int, int]]) -> np.ndarray:
    reg = scored_regions(line)
    img = np.full((*line.shape, 3), 255, np.uint8)
    for k, c in enumerate(colors, start=1):
        img[reg.labels == k] = c
    img[line < 128] = 0
    return img


def test_two_equal_regions_one_wrong_is_half_accuracy():
    line = _two_boxes()
    assert scored_regions(line).n == 2  # the outside is background
    truth = _paint(line, [(200, 30, 30), (30, 30, 200)])
    pred = _paint(line, [(200, 30, 30), (30, 200, 30)])
    m = region_metrics(pred, truth, line)
    assert m["region_acc"] == pytest.approx(0.5)
    assert m["region_acc_area"] == pytest.approx(0.5)
    assert region_metrics(truth, truth, line)["region_acc"] == 1.0


def test_area_weighting_counts_pixels():
    line = _two_boxes(w=120, left_w=60, right_w=20)  # left box 3x the right one
    truth = _paint(line, [(200, 30, 30), (30, 30, 200)])
    pred = _paint(line, [(200, 30, 30), (30, 200, 30)])  # the small one wrong
    m = region_metrics(pred, truth, line)
    assert m["region_acc"] == pytest.approx(0.5)
    assert m["region_acc_area"] == pytest.approx(59 * 39 / (59 * 39 + 19 * 39), abs=0.01)


def test_tiny_regions_merge_into_their_neighbour():
    line = _two_boxes()
    line[30, 15:18] = 0
    line[28:33, 15] = line[28:33, 17] = 0
    line[28, 15:18] = line[32, 15:18] = 0  # a 1x3-pixel pocket inside the left box
    assert scored_regions(line, min_area=16).n == 2


def test_bleeding_is_one_for_flat_fills_and_grows_with_smear():
    line = _two_boxes()
    truth = _paint(line, [(200, 30, 30), (30, 30, 200)])
    assert region_metrics(truth, truth, line)["bleeding"] == pytest.approx(1.0)
    smeared = truth.copy()
    smeared[10:50, 10:45] = (115, 30, 115)  # colors run across the boundary
    smeared[10:50, 11:25] = (200, 30, 30)
    assert region_metrics(smeared, truth, line)["bleeding"] > 1.5


def test_hint_adherence_counts_hinted_regions_only():
    line = _two_boxes()
    pred = _paint(line, [(255, 0, 0), (0, 0, 255)])
    hints = validate_hints({"points": [{"x": 25, "y": 30, "color": "#ff0000", "radius": 2},
                                       {"x": 65, "y": 30, "color": "#00ff00", "radius": 2}]})
    colors, mask = render_hints(hints, *line.shape)
    m = region_metrics(pred, pred, line, colors, mask)
    assert m["hint_adherence"] == pytest.approx(0.5)
    assert np.isnan(region_metrics(pred, pred, line)["hint_adherence"])


def test_pixel_metrics_known_values():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[0, 0] = 255  # one pixel fully wrong: MSE = 255^2 * 3 / 192
    assert psnr(a, a) == 100.0
    assert psnr(b, a) == pytest.approx(10 * np.log10(255**2 / (255**2 * 3 / 192)), rel=1e-6)
    assert delta_e(a, a) == 0.0
    gray = np.full((4, 4, 3), 128, np.uint8)
    assert chroma(gray) < 0.01 and chroma(np.full((4, 4, 3), (255, 0, 0), np.uint8)) > 50
    with pytest.raises(ValueError, match="shape mismatch"):
        all_metrics(a, a[:4])


def test_failure_table_groups_by_style_complexity_and_subject_size():
    from tintline.evaluate.run import failure_table

    recs, attrs = [], {}
    for i in range(6):
        sha = f"s{i}"
        # ΔE00 grows with the number of regions; styles alternate
        recs.append({"sha256": sha, "results": {"0": {"delta_e00": float(10 * (i + 1)), "region_acc": 1.0 / (i + 1),
                                                      "regions": i + 1}}})
        attrs[sha] = {"style": "xdog" if i % 2 else "edges", "subject": 0.1 * (i + 1)}
    rows = {(g, lab.split(" ")[0]): (n, d) for g, lab, n, d, _ in failure_table(recs, attrs, 0)}
    assert rows[("line-art style", "xdog")] == (3, pytest.approx((20 + 40 + 60) / 3))
    assert rows[("line-art style", "edges")] == (3, pytest.approx((10 + 30 + 50) / 3))
    lo = rows[("complexity (closed regions)", "low")]
    hi = rows[("complexity (closed regions)", "high")]
    assert lo[0] + rows[("complexity (closed regions)", "middle")][0] + hi[0] == 6
    assert lo[1] < hi[1]  # the simplest drawings fail least here
    assert ("subject size (canvas share)", "high") in rows
