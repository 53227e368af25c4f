"""Line-art styles (registry), thinning, per-sample style choice, and the inference-side input normalization."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image
from synth import cartoon, on_transparent

from tintline.config import DataConfig
from tintline.data.lineart import (
    LINE_STYLES,
    alpha_outline,
    choose_style,
    make_lineart,
    normalize_input,
    thin,
)


@pytest.mark.parametrize("style", sorted(s for s in LINE_STYLES if s != "manga"))  # manga: a page (test_manga.py)
@pytest.mark.parametrize("shape", [(96, 160), (160, 96)])  # non-square: swapped axes would show
def test_every_style_draws_dark_lines_on_white(style, shape):
    rgba = on_transparent(cartoon(7, *shape))
    rgb, alpha = rgba[..., :3].copy(), rgba[..., 3].copy()
    params = LINE_STYLES[style].sample(np.random.default_rng(1))
    line = make_lineart(rgb, alpha if LINE_STYLES[style].needs_alpha else None, style, params)
    assert line.shape == shape and line.dtype == np.uint8
    ink = line < 128
    assert 0.005 < ink.mean() < 0.35, (style, ink.mean())  # some lines, mostly paper
    assert np.median(line) > 200
    # lines sit where the drawing has edges: near a color change, not in the middle of flat areas
    edges = cv2.dilate(cv2.Canny(rgb, 50, 150), np.ones((7, 7), np.uint8)) > 0
    assert (ink & edges).sum() > 0.8 * ink.sum(), style
    # deterministic
    assert np.array_equal(line, make_lineart(rgb, alpha if LINE_STYLES[style].needs_alpha else None, style, params))


def test_registry_matches_config_names():
    DataConfig(line_styles={name: 1.0 for name in LINE_STYLES})  # every registered style is a valid config name
    with pytest.raises(ValueError, match="unknown line styles"):
        DataConfig(line_styles={"watercolor": 1.0})
    with pytest.raises(ValueError, match="needs an alpha"):
        make_lineart(cartoon(1), None, "alpha", LINE_STYLES["alpha"].sample(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="unknown line-art style"):
        make_lineart(cartoon(1), None, "nope", {})


def test_choose_style_is_deterministic_and_follows_shares():
    shares = {"xdog": 0.5, "adaptive": 0.25, "edges": 0.25, "alpha": 1.0}
    picks = [choose_style(np.random.default_rng(i), shares, has_alpha=False)[0] for i in range(800)]
    assert "alpha" not in picks  # only for sources with transparency
    counts = {k: picks.count(k) / len(picks) for k in ("xdog", "adaptive", "edges")}
    assert abs(counts["xdog"] - 0.5) < 0.07 and abs(counts["adaptive"] - 0.25) < 0.07, counts
    with_alpha = [choose_style(np.random.default_rng(i), shares, has_alpha=True)[0] for i in range(400)]
    assert 0.35 < with_alpha.count("alpha") / 400 < 0.65
    a = choose_style(np.random.default_rng(5), shares, True)
    assert a == choose_style(np.random.default_rng(5), shares, True)
    assert choose_style(np.random.default_rng(0), {"alpha": 1.0, "xdog": 0.0}, False)[0] == "xdog"  # fallback


def test_thin_gives_one_pixel_lines_and_keeps_topology():
    mask = np.zeros((60, 90), np.uint8)
    cv2.circle(mask, (45, 28), 18, 1, 7)  # a thick ring
    cv2.line(mask, (5, 57), (85, 57), 1, 4)  # a thick bar, apart from the ring
    skel = thin(mask.astype(bool))
    assert skel.sum() < 0.4 * mask.sum()
    assert not (skel & ~mask.astype(bool)).any()  # only removes pixels
    # no 2x2 block of ink survives: the lines are one pixel wide
    s = skel.astype(np.uint8)
    assert not (s[:-1, :-1] & s[1:, :-1] & s[:-1, 1:] & s[1:, 1:]).any()
    # the ring stays one closed curve (its hole survives) and the bar one piece
    n_fg = cv2.connectedComponents(s, connectivity=8)[0] - 1
    n_bg = cv2.connectedComponents(1 - s, connectivity=4)[0] - 1
    assert (n_fg, n_bg) == (2, 2)


def test_alpha_outline_follows_the_silhouette():
    alpha = np.zeros((50, 70), np.uint8)
    alpha[10:40, 20:60] = 255
    band = alpha_outline(alpha, 2)
    assert band[10, 30] and band[25, 20] and band[39, 59]  # edges of the rectangle
    assert not band[25, 40] and not band[5, 5]  # not inside, not outside


# ----------------------------------------------------------------------------------------- normalization


def _lines(h=80, w=120) -> np.ndarray:
    img = np.full((h, w), 255, np.uint8)
    cv2.rectangle(img, (10, 10), (w - 10, h - 10), 0, 2)
    cv2.line(img, (10, 10), (w - 10, h - 10), 0, 2)
    return img


def test_normalize_gray_pencil_scan():
    lines = _lines()
    pencil = (200 + (lines.astype(np.float32) / 255.0) * 35).astype(np.uint8)  # gray lines on off-white paper
    out = normalize_input(Image.fromarray(pencil))
    assert out.shape == lines.shape
    assert out[lines == 0].mean() < 60  # lines become dark ink
    assert (out[lines == 255] == 255).mean() > 0.95  # the paper becomes white


def test_normalize_removes_jpeg_noise_on_paper():
    buf = io.BytesIO()
    Image.fromarray(_lines()).save(buf, format="JPEG", quality=30)
    out = normalize_input(Image.open(buf))
    far = cv2.dilate((_lines() < 128).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0  # paper away from lines
    assert (out[far] == 255).mean() > 0.97
    assert out[_lines() == 0].mean() < 90


@pytest.mark.parametrize("ink", ["black", "white"])
def test_normalize_alpha_only_line_art(ink):
    lines = _lines()
    alpha = 255 - lines  # the drawing is in the alpha channel
    value = 0 if ink == "black" else 255
    rgba = np.dstack([np.full(lines.shape + (3,), value, np.uint8), alpha])
    out = normalize_input(Image.fromarray(rgba, "RGBA"))
    assert out[lines == 0].mean() < 40 and out[lines == 255].mean() > 240


def test_normalize_fully_transparent_image_reads_its_colors():
    lines = _lines()
    rgba = np.dstack([np.repeat(lines[..., None], 3, axis=2), np.zeros_like(lines)])
    out = normalize_input(Image.fromarray(rgba, "RGBA"))
    assert out[lines == 0].mean() < 40 and out[lines == 255].mean() > 240


def test_normalize_keeps_clean_line_art():
    lines = _lines()
    out = normalize_input(Image.fromarray(lines))
    assert np.array_equal(out, lines)
