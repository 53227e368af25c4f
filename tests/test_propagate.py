"""Hint propagation (tintline.regions.propagate): an unhinted region takes a hint's exact color where the color-class
head means that color, and keeps the head's own choice where the head is sure of something else."""

from __future__ import annotations

import numpy as np

from tintline.regions import segment
from tintline.regions.paint import to_lab
from tintline.regions.propagate import (
    HINT_BIAS,
    HINT_COEF,
    MIN_P,
    OWN_BIAS,
    OWN_COEF,
    UNSURE,
    candidate_features,
    hint_colors,
    propagate,
    unsure,
)


def _three_boxes() -> np.ndarray:
    """(96, 96) line art: a frame cut into three boxes by two vertical lines (regions left, middle, right), a
    solid black square in the right one."""
    line = np.full((96, 96), 255, np.uint8)
    line[42:56, 66:80] = 0
    line[10:86, 10:12] = line[10:86, 84:86] = 0
    line[10:12, 10:86] = line[84:86, 10:86] = 0
    line[10:86, 36:38] = line[10:86, 60:62] = 0
    return line


def _dot(x: int, y: int, rgb: tuple[int, int, int]) -> dict:
    return {"x": float(x), "y": float(y), "color": rgb, "radius": 2.0}


def test_hint_colors_merge_alike_marks_and_find_their_regions():
    line = _three_boxes()
    seg = segment(line)
    left, middle = seg.labels[48, 20], seg.labels[48, 48]
    hints = {"points": [_dot(20, 30, (220, 30, 30)), _dot(20, 60, (224, 34, 28)), _dot(48, 48, (30, 40, 220)),
                        _dot(73, 49, (0, 200, 0))],  # the last one lies on the black square only
             "strokes": []}
    hc = hint_colors(hints, seg)
    assert hc is not None
    assert len(hc.lab) == 2  # the two reds are one color; the mark on ink gives none
    assert hc.marks == 3
    assert list(hc.region) == [left, middle]
    np.testing.assert_allclose(hc.share, [2 / 3, 1 / 3])
    assert hint_colors({"points": [], "strokes": []}, seg) is None
    assert hint_colors({"points": [_dot(73, 49, (0, 200, 0))], "strokes": []}, seg) is None


def test_a_region_the_head_means_as_a_hint_color_takes_it_exactly():
    line = _three_boxes()
    seg = segment(line)
    left, middle, right = (int(seg.labels[48, x]) for x in (20, 48, 72))
    red = (200, 40, 40)
    hc = hint_colors({"points": [_dot(20, 48, red)], "strokes": []}, seg)
    # a palette whose red is near the hint but not it (the palette is coarser than the metric), a blue, white
    palette = to_lab(np.array([[255, 255, 255], [214, 52, 44], [40, 40, 200]], np.uint8)).astype(np.float32)
    probs = np.full((seg.n + 1, 3), 1 / 3)
    probs[middle] = (0.05, 0.85, 0.10)  # the head means red here
    probs[right] = (0.02, 0.03, 0.95)  # and is sure of blue there
    choice = palette[probs.argmax(1)]
    conf = probs.max(1)
    votes = choice.copy()
    eligible = np.ones(seg.n + 1, bool)
    eligible[[0, left]] = False  # the hinted region is painted by its hint anyway
    feats = candidate_features(hc, probs, conf, choice, choice, palette, seg)
    assert feats.shape == (seg.n + 1, 1, 9)
    out, taken = propagate(votes, hc, feats, conf, eligible)
    assert taken[middle] and not taken[right] and not taken[left]
    np.testing.assert_allclose(out[middle], to_lab(np.array([red], np.uint8))[0], atol=1e-4)  # exact, not the palette's
    np.testing.assert_array_equal(out[right], votes[right])


def test_a_likely_hint_color_is_taken_unless_the_head_is_unsure_of_the_whole_drawing():
    """A hint color more likely right than the head's choice, but under MIN_P: taken on a drawing the head is sure
    of elsewhere, not on one where it is unsure of everything (an input unlike its training drawings)."""
    line = _three_boxes()
    seg = segment(line)
    left, middle, right = (int(seg.labels[48, x]) for x in (20, 48, 72))
    outside = int(seg.labels[2, 2])
    red, blue = (200, 40, 40), (40, 40, 200)
    hc = hint_colors({"points": [_dot(20, 48, red), _dot(72, 20, blue)], "strokes": []}, seg)
    assert list(hc.region) == [left, right]
    palette = to_lab(np.array([[255, 255, 255], [214, 52, 44], [40, 40, 200], [40, 160, 40], [230, 200, 40],
                               [120, 60, 20]], np.uint8)).astype(np.float32)
    eligible = np.zeros(seg.n + 1, bool)
    eligible[[middle, outside]] = True
    taken_when = {}
    for outside_conf in (0.9, 0.1):
        probs = np.full((seg.n + 1, 6), 1 / 6)
        probs[middle] = (0.225, 0.1, 0.0, 0.225, 0.225, 0.225)  # a little red, unsure of anything
        choice = palette[probs.argmax(1)]
        conf = probs.max(1)
        conf[outside] = outside_conf  # the head's confidence in the rest of the drawing
        feats = candidate_features(hc, probs, conf, choice, choice, palette, seg)
        p_hint = 1 / (1 + np.exp(-(feats[middle] @ HINT_COEF + HINT_BIAS)))
        p_own = 1 / (1 + np.exp(-(OWN_COEF * conf[middle] + OWN_BIAS)))
        assert p_own < p_hint.max() < MIN_P  # the case the floor decides
        assert unsure(conf, eligible) == (outside_conf < UNSURE)
        out, taken = propagate(choice.copy(), hc, feats, conf, eligible)
        taken_when[outside_conf] = bool(taken[middle])
        if taken[middle]:
            np.testing.assert_allclose(out[middle], to_lab(np.array([red], np.uint8))[0], atol=1e-4)
    assert taken_when == {0.9: True, 0.1: False}
