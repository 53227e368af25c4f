"""Manga pages: the training style that renders them, the reader that detects, descreens and keeps their shading,
the CLI / eval paths that use it."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from synth import cartoon, png_bytes, write

from tintline.baselines import BASELINES
from tintline.data.lineart import LINE_STYLES, REFERENCE_XDOG, extract_lineart
from tintline.data.manga import (
    INK_LEVEL,
    KINDS,
    _flat_midtones,
    colorize_page,
    find_screen,
    find_soft_screen,
    gray_of_lightness,
    keep_lightness,
    lightness,
    read_page,
    render_manga,
    sample_manga_params,
    screen_lattice,
    screen_rank,
)
from tintline.regions import segment

SIDE = 384  # a screen of 6 px is fine detail at this size, as on a scanned page


@pytest.fixture(scope="module")
def drawing() -> np.ndarray:
    return cartoon(11, SIDE, SIDE)


def _interior(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels deep inside flat regions (8 px from any color change)."""
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 10, 30)
    return cv2.distanceTransform((edges == 0).astype(np.uint8), cv2.DIST_L2, 3) > 8


def test_render_gray_page_carries_the_lightness_and_screens_print_it_as_dots(drawing):
    gray = render_manga(drawing)
    inside = _interior(drawing)
    assert gray.shape == drawing.shape[:2] and gray.dtype == np.uint8
    assert np.abs(lightness(np.repeat(gray[..., None], 3, 2)) - lightness(drawing))[inside].mean() < 1.0
    screen = render_manga(drawing, screen=True, period=6.0, angle=45.0)
    mid = (screen > 20) & (screen < 235)
    assert mid.mean() < 0.05  # ink or paper, nothing between
    # averaged over a few dots, the screen prints the gray it stands for
    avg = cv2.blur(screen.astype(np.float32), (13, 13))
    deep = cv2.erode(inside.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    assert np.abs(avg - gray)[deep].mean() < 12
    posterized = render_manga(drawing, levels=3)
    assert len(np.unique(posterized[inside])) <= 4  # 3 flat tones (and a stray line pixel)
    assert "manga" in LINE_STYLES and set(sample_manga_params(np.random.default_rng(0))) >= {"levels", "screen"}


def test_the_reader_tells_lines_pencil_gray_screentone_and_color_apart(drawing):
    lines = extract_lineart(drawing, REFERENCE_XDOG)
    pencil = (150 + lines.astype(np.float32) * 0.4).astype(np.uint8)  # faint gray strokes on gray paper
    cases = {
        "lines": lines,
        "pencil": pencil,
        "gray": render_manga(drawing),
        "screentone": render_manga(drawing, screen=True, period=6.0, angle=30.0, noise=2.0, seed=1),
        "color": drawing,
    }
    assert set(cases) == set(KINDS)
    for kind, arr in cases.items():
        page = read_page(Image.fromarray(arr))
        assert page.kind == kind, (kind, page.kind)
        assert page.line.shape == drawing.shape[:2]
        assert (page.tone is None) == (kind in ("lines", "pencil"))
    assert read_page(Image.fromarray(cases["screentone"])).period == pytest.approx(6.0, rel=0.2)
    one_bit = Image.fromarray(lines < 128).convert("1")  # a 1-bit scan of line art
    assert read_page(one_bit).kind == "lines"


def test_descreening_keeps_the_tone_and_the_regions_of_the_untoned_page(drawing):
    gray = render_manga(drawing)
    screened = read_page(Image.fromarray(render_manga(drawing, screen=True, period=6.0, angle=45.0)))
    plain = read_page(Image.fromarray(gray))
    deep = cv2.erode(_interior(drawing).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert screened.tone is not None
    assert np.abs(screened.tone.astype(float) - gray)[deep].mean() < 10  # the dots' tone, not the dots
    assert screened.tone[deep].std() < gray[deep].std() + 15
    n_screen, n_plain = segment(screened.line).n, segment(plain.line).n
    assert abs(n_screen - n_plain) <= max(1, round(0.05 * n_plain)), (n_screen, n_plain)


def test_a_thick_line_over_a_dark_screen_is_no_part_of_the_screen():
    # a dark flat tone, screened (its dots join into a mesh around paper holes), a 7 px line drawn across it: the
    # line covers the holes under it, so the reader must not take it for screen (and average it into the tone)
    rgb = np.full((SIDE, SIDE, 3), 255, np.uint8)
    rgb[64:320, 64:320] = 100
    lines = np.full((SIDE, SIDE), 255, np.uint8)
    cv2.line(lines, (80, 100), (300, 290), 0, 7)
    page = render_manga(rgb, screen=True, period=6.0, angle=45.0, lines=lines)
    found = find_screen(page)
    assert found is not None and found[1] == pytest.approx(6.0, rel=0.2)
    screen = found[0]
    middle = cv2.erode((lines < 128).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert screen[middle].mean() < 0.6  # (all of it before: the whole mesh was screen)
    away = cv2.distanceTransform(lines, cv2.DIST_L2, 3) > 12
    away[:80], away[-80:], away[:, :80], away[:, -80:] = False, False, False, False  # inside the dark patch
    assert screen[away].mean() > 0.9
    read = read_page(Image.fromarray(page))
    # the line stays ink, unbroken along its centre (its outermost pixels, within reach of the holes, may go to
    # the screen: inside a screened patch only what is no dot is ink)
    centre = np.full_like(lines, 255)
    cv2.line(centre, (80, 100), (300, 290), 0, 1)
    assert (read.line[centre < 128] < 128).mean() > 0.99
    assert (read.line[middle] < 128).mean() > 0.9 and (read.line[away] < 128).mean() < 0.05


@pytest.mark.parametrize("period, angle", [(5.0, 15.0), (6.0, 45.0), (7.5, 30.0)])
def test_the_screen_lattice_predicts_where_the_dots_print(period, angle):
    # a screened gradient (coverage 0.1 to 0.9 across the page): the lattice found in the page, its phase tracked
    # locally, tells dot pixels from paper pixels by their rank below the coverage
    gray = np.repeat(np.linspace(230, 25, SIDE).astype(np.uint8)[None, :], SIDE, 0)
    page = render_manga(np.repeat(gray[..., None], 3, 2), screen=True, period=period, angle=angle, noise=2.0, seed=3)
    dots, found = find_screen(page)
    freqs = screen_lattice(page, dots, found)
    assert 1.0 / np.hypot(*freqs.T) == pytest.approx([period, period], rel=0.1)
    assert abs(float(freqs[0] @ freqs[1])) < 0.1 * float(freqs[0] @ freqs[0])  # 90 degrees apart
    printed = screen_rank(page, freqs, found) < 1.0 - gray / 255.0
    inner = (slice(30, -30), slice(30, -30))
    assert (printed == (page < 128))[inner].mean() > 0.9  # (a lattice in the wrong phase: ~0.5)


@pytest.mark.parametrize("period, angle, gray", [(5.0, 15.0, 150), (6.0, 45.0, 150), (6.0, 30.0, 160)])
def test_a_thin_line_across_a_screen_is_read_as_a_line(period, angle, gray):
    # a 2 px circle drawn inside a screened disc of ~40 % coverage: where it crosses the screen it touches the dots
    # and joins them into chains no bigger than a few dots, which the blob rule took for screen (the circle was
    # lost: disc and inner disc one region, in all 36 such pages); the lattice says the line lies on paper sites
    rgb = np.full((SIDE, SIDE, 3), 255, np.uint8)
    cv2.circle(rgb, (192, 192), 170, (gray, gray, gray), -1)
    lines = np.full((SIDE, SIDE), 255, np.uint8)
    cv2.circle(lines, (192, 192), 170, 0, 3)
    cv2.circle(lines, (192, 192), 90, 0, 2)
    for seed in (0, 1):
        page = render_manga(rgb, screen=True, period=period, angle=angle, noise=3.0, seed=seed, lines=lines)
        read = read_page(Image.fromarray(page))
        assert read.kind == "screentone"
        labels = segment(read.line).labels
        inside, ring, paper = labels[192, 192], labels[192, 322], labels[5, 5]
        assert len({inside, ring, paper}) == 3 and min(inside, ring) > 0, (inside, ring, paper)


def test_a_dark_screen_joined_to_a_solid_black_is_still_screen():
    # a screened shape (its dots join into a mesh) touching a larger solid black (a lizard's screened body and its
    # black tail): mesh and black are one dark component, with few holes for its area. The mesh is screen, the
    # black is not. (Before: the whole component was ink, the body a black net over white holes.)
    rgb = np.full((SIDE, SIDE, 3), 255, np.uint8)
    rgb[40:200, 40:200] = 0
    rgb[60:180, 200:280] = 100
    page = render_manga(rgb, screen=True, period=6.0, angle=45.0)
    found = find_screen(page)
    assert found is not None
    assert found[0][70:170, 210:270].mean() > 0.9 and found[0][60:180, 60:180].mean() < 0.05
    read = read_page(Image.fromarray(page))
    assert read.tone is not None and abs(float(np.median(read.tone[70:170, 210:270])) - 100) < 25
    assert (read.line[70:170, 210:270] < 128).mean() < 0.05  # the body is a region, not ink
    assert np.median(read.tone[60:180, 60:180]) < INK_LEVEL  # the black stays black


def test_a_dark_screen_at_the_ink_level_is_a_fill_not_crumbs_of_ink():
    # a screened dark tone whose descreened gray sits at the ink level (70), framed by a drawn line: inside the
    # screened patch only what was drawn is ink, so the patch is one region (before: 17 % of it was ink crumbs)
    rgb = np.full((SIDE, SIDE, 3), 255, np.uint8)
    rgb[64:320, 64:320] = INK_LEVEL
    lines = np.full((SIDE, SIDE), 255, np.uint8)
    cv2.rectangle(lines, (64, 64), (320, 320), 0, 3)
    page = render_manga(rgb, screen=True, period=6.0, angle=45.0, noise=3.0, seed=1, lines=lines)
    read = read_page(Image.fromarray(page))
    assert read.kind == "screentone" and abs(float(np.median(read.tone[90:290, 90:290])) - INK_LEVEL) < 10
    inside = read.line[80:300, 80:300]
    assert (inside < 128).mean() < 0.01
    labels = segment(read.line).labels[80:300, 80:300]
    assert (labels == labels[110, 110]).mean() > 0.97
    assert (read.line[64:67, 100:280] < 128).mean() > 0.9  # the frame stays


def test_small_light_shapes_in_a_dark_screen_keep_their_own_tone():
    # eyes / buttons: small light circles (L* 85) outlined inside a dark screened area (L* 20). The descreening
    # average reaches across their outlines into the dark screen around them (they read 77-81, 4-8 L* too dark);
    # a small closed region now takes the coverage of its own screen, one flat tone
    rgb = np.full((400, 400, 3), 255, np.uint8)
    lines = np.full((400, 400), 255, np.uint8)
    dark, light = (int(gray_of_lightness(np.array([v]))[0]) for v in (20.0, 85.0))
    cv2.rectangle(rgb, (40, 40), (360, 360), (dark,) * 3, -1)
    cv2.rectangle(lines, (40, 40), (360, 360), 0, 3)
    centres = [(110, 110), (200, 200), (290, 150), (150, 290)]
    for c in centres:
        cv2.circle(rgb, c, 9, (light,) * 3, -1)
        cv2.circle(lines, c, 9, 0, 2)
    page = render_manga(rgb, screen=True, period=6.0, angle=45.0, noise=2.0, lines=lines)
    read = read_page(Image.fromarray(page))
    assert read.kind == "screentone"
    read_l = [float(np.median(lightness(np.dstack([read.tone[y - 4 : y + 5, x - 4 : x + 5]] * 3)))) for x, y in centres]
    assert np.mean(np.abs(np.array(read_l) - 85.0)) < 3.5, read_l
    assert abs(float(np.median(lightness(np.dstack([read.tone[60:100, 250:340]] * 3)))) - 20.0) < 3  # the dark stays


def test_a_page_with_a_little_flat_gray_is_a_gray_page():
    # thin gray bands (a few tenths of a percent of the page) inside outlines: a gray page, not line art whose
    # grays would be ink; clean line art stays line art
    page = np.full((SIDE, SIDE), 255, np.uint8)
    for y in (100, 200):
        cv2.rectangle(page, (60, y), (160, y + 14), 0, 2)
        page[y + 3 : y + 12, 63:158] = 120
    cv2.circle(page, (250, 250), 60, 0, 2)  # and a drawing in plain lines beside them
    noisy = np.clip(page + np.random.default_rng(0).normal(0, 3, page.shape), 0, 255).astype(np.uint8)
    assert 0.002 < _flat_midtones(noisy) < 0.01  # (below the 1 % that made a gray page before)
    assert read_page(Image.fromarray(noisy)).kind == "gray"
    lines = np.where(page == 120, 255, page).astype(np.uint8)
    assert read_page(Image.fromarray(lines)).kind == "lines"


def test_a_screen_among_more_specks_than_dots_is_found_by_its_lattice():
    # a light screened patch on a page strewn with ink specks (print dirt, stippling) that outnumber its dots: the
    # specks are compact and some lie at the dots' spacing, but in no common direction; the dots all lie along the
    # screen's angle. (Before: "most compact marks are on a grid" failed here and the dots stayed ink.)
    rng = np.random.default_rng(3)
    rgb = np.full((SIDE, SIDE, 3), 255, np.uint8)
    rgb[40:160, 40:160] = 200
    page = render_manga(rgb, screen=True, period=6.0, angle=30.0, noise=1.0, seed=2)
    specks = page.copy()
    for y, x in rng.integers(0, SIDE - 2, (700, 2)):
        if not (30 <= y < 170 and 30 <= x < 170):
            specks[y:y + 2, x:x + 2] = 0
    found = find_screen(specks)
    assert found is not None and found[1] == pytest.approx(6.0, rel=0.2)
    assert found[0][40:160, 40:160].any() and read_page(Image.fromarray(specks)).kind == "screentone"
    # the specks alone are no screen
    alone = specks.copy()
    alone[30:170, 30:170] = 255
    assert find_screen(alone) is None and read_page(Image.fromarray(alone)).kind != "screentone"


@pytest.mark.parametrize(("sigma", "angle"), [(1.8, 15.0), (2.0, 45.0)])
def test_a_soft_scan_of_a_screen_is_read_as_a_screen(drawing, sigma, angle):
    # a screentoned page scanned soft (blurred after printing): its light dots never reach 128 and its dark ones merge
    # below it, so the blobs at 128 find no lattice and the page read as line art, every dot a speck; found by the
    # dots' contrast with the page around them instead, it is descreened to nearly the tone it was printed from
    page = cv2.GaussianBlur(render_manga(drawing, screen=True, period=5.5, angle=angle, noise=2.0), (0, 0), sigma)
    assert find_screen(page) is None  # (what the reader had before)
    read = read_page(Image.fromarray(page))
    assert read.kind == "screentone" and read.period == pytest.approx(5.5, rel=0.2)
    gray = render_manga(drawing)  # the same page unscreened
    inside = cv2.erode(_interior(drawing).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert np.abs(read.tone.astype(np.float32) - gray)[inside].mean() < 4.0
    def ripple(x: np.ndarray) -> float:  # mean deviation from the 11 px local mean: the dots' texture
        f = x.astype(np.float32)
        return float(np.abs(f - cv2.blur(f, (11, 11)))[inside].mean())

    assert ripple(read.tone) < 0.25 * ripple(page)  # the dots are gone, not kept as texture


@pytest.mark.parametrize(("side", "noise"), [(SIDE, 8.0), (2 * SIDE, 5.0)])
def test_print_noise_on_a_gray_page_is_no_soft_screen(side, noise):
    # print noise makes blobs darker than the page around them too, and by chance some of them sit on a grid (a gray
    # page with noise 5-8 passed the lattice test by those alone); a soft screen has far more of its blobs on it.
    # (read_page asks only pages that are not gray, but the rule stands on its own)
    page = render_manga(cartoon(11, side, side), noise=noise)
    assert find_soft_screen(page) is None


def test_a_light_screen_counts_by_the_area_it_covers_not_by_its_dots():
    # a pale tone screened: its dots are ~1 px and cover well under 1 % of the page, the patch a sixth of it
    rgb = np.full((SIDE, SIDE, 3), 255, np.uint8)
    rgb[40:200, 40:200] = 245
    page = render_manga(rgb, screen=True, period=6.0, angle=45.0)
    assert (page < 128).mean() < 0.01
    read = read_page(Image.fromarray(page))
    assert read.kind == "screentone" and read.tone is not None
    assert (read.line[60:180, 60:180] < 128).mean() < 0.01  # the dots are tone, not ink specks


@pytest.mark.parametrize(("lum", "period", "angle"), [(95.0, 4.5, 15.0), (97.0, 5.2, 112.7), (97.0, 4.5, 15.0)])
def test_a_very_light_screen_with_missing_dots_is_one_even_region(lum, period, angle):
    # a pale disc (L* 95-97, ~4-7 % coverage) screened on a black page: its dots are under a pixel and many cells
    # print none, in a moire pattern; the holes they leave in the screened patch were paper in the tone, each ringed
    # by an edge (55-96 regions inside the disc, or a tenth of it ink, before fill_light_holes)
    g = int(gray_of_lightness(np.array([lum]))[0])
    rgb = np.zeros((SIDE, SIDE, 3), np.uint8)
    cv2.circle(rgb, (192, 192), 140, (g,) * 3, -1)
    lines = np.full((SIDE, SIDE), 255, np.uint8)
    cv2.circle(lines, (192, 192), 140, 0, 3)
    page = render_manga(rgb, screen=True, period=period, angle=angle, noise=2.0, lines=lines)
    read = read_page(Image.fromarray(page))
    assert read.kind == "screentone"
    inside = np.zeros((SIDE, SIDE), np.uint8)
    cv2.circle(inside, (192, 192), 130, 1, -1)
    inside = inside > 0
    labels = segment(read.line).labels
    assert set(np.unique(labels[inside])) - {0} == {labels[192, 192]}
    assert (read.line[inside] < 128).mean() < 0.005
    assert read.tone[inside].std() < 4.0 and abs(float(np.median(read.tone[inside])) - g) < 6


@pytest.mark.parametrize(("period", "angle"), [(5.0, 15.0), (6.0, 75.0)])
def test_a_screen_near_50_percent_whose_dots_chain_is_found_by_the_lattice(period, angle):
    # a 50 % screen with print noise: dots and paper holes both chain, so neither is blobs and the blob reader
    # missed the patch (96-125 regions inside it, half of it ink, its tone 77-101 levels off); a light screen
    # beside it gives the lattice, which predicts the patch's dots
    rgb = np.full((SIDE, SIDE, 3), 255, np.uint8)
    lines = np.full((SIDE, SIDE), 255, np.uint8)
    for (x0, x1), g in (((30, 160), 204), ((200, 354), 128)):
        cv2.rectangle(rgb, (x0, 30), (x1, 354), (g,) * 3, -1)
        cv2.rectangle(lines, (x0, 30), (x1, 354), 0, 3)
    page = render_manga(rgb, screen=True, period=period, angle=angle, noise=4.0, lines=lines)
    read = read_page(Image.fromarray(page))
    assert read.kind == "screentone"
    labels = segment(read.line).labels
    inside = labels[50:334, 220:334]
    assert set(np.unique(inside)) - {0} == {labels[192, 277]}
    assert (read.line[50:334, 220:334] < 128).mean() < 0.1
    assert np.abs(read.tone[50:334, 220:334].astype(float) - 128).mean() < 15


@pytest.mark.parametrize("offset", [-5, 5])
def test_a_noisy_fill_near_the_ink_level_is_one_region_not_speckle(offset):
    # a dark gray fill 5 levels off INK_LEVEL with print noise: pixel by pixel, a good share of it falls on the
    # other side of the level; the 3x3 majority keeps it one region with (nearly) no ink inside
    page = np.full((SIDE, SIDE), 255, np.uint8)
    page[60:320, 60:320] = INK_LEVEL + offset
    page = np.clip(page + np.random.default_rng(0).normal(0, 4, page.shape), 0, 255).astype(np.uint8)
    cv2.rectangle(page, (60, 60), (320, 320), 0, 2)
    read = read_page(Image.fromarray(page))
    inner = read.line[80:300, 80:300] < 128
    specks = cv2.connectedComponents(inner.astype(np.uint8))[0] - 1
    assert read.kind == "gray" and inner.mean() < 0.05 and specks < 200, (inner.mean(), specks)  # (0.11-0.88, 3239)
    assert segment(read.line).n == 2


def test_keep_shading_keeps_the_pages_lightness_and_takes_only_the_colors(drawing):
    page = render_manga(drawing)
    rgb_page = Image.fromarray(page)
    white = BASELINES.create("white")
    out, info = colorize_page(white, rgb_page)  # no coloring: the page itself comes back
    assert info.kind == "gray"
    assert np.abs(out.astype(int) - page[..., None]).max() <= 2
    fill = BASELINES.create("region-fill")
    inside = _interior(drawing)
    ys, xs = np.nonzero(inside & (np.abs(drawing.astype(int) - 255).sum(2) > 60))
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    hints = {"points": [{"x": x, "y": y, "color": (220, 40, 40), "radius": 3}], "strokes": []}
    kept, _ = colorize_page(fill, rgb_page, hints)
    dl = np.abs(lightness(kept) - lightness(np.repeat(page[..., None], 3, 2)))
    assert dl.mean() <= 3.0  # the target: the page's own lightness survives
    lab = cv2.cvtColor(kept.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    assert np.hypot(lab[y, x, 1], lab[y, x, 2]) > 10  # and the hinted region is colored
    flat, _ = colorize_page(fill, rgb_page, hints, keep_shading=False)
    assert np.abs(flat.astype(int) - kept.astype(int)).mean() > 1  # off: the flat coloring of its line art
    tone = gray_of_lightness(np.full((4, 4), 50.0))
    assert abs(float(lightness(keep_lightness(np.full((4, 4, 3), (0, 0, 255), np.uint8), tone)).mean()) - 50) < 1


def test_colorize_cli_writes_the_input_kind_and_keeps_shading_unless_told(drawing, tmp_path):
    from tintline.cli import main

    src = write(tmp_path / "page.png", png_bytes(render_manga(drawing, screen=True, period=6.0)))
    assert main(["colorize", "white", str(src), "-o", str(tmp_path / "a")]) == 0
    out = Image.open(tmp_path / "a" / "page.png")
    assert out.text["tintline:input"] == "screentone"
    kept = np.asarray(out.convert("L")).astype(int)
    assert main(["colorize", "white", str(src), "-o", str(tmp_path / "b"), "--no-keep-shading"]) == 0
    flat = np.asarray(Image.open(tmp_path / "b" / "page.png").convert("L")).astype(int)
    deep = cv2.erode(_interior(drawing).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    gray = render_manga(drawing)
    assert np.abs(kept - gray)[deep].mean() < 10  # the descreened tone
    assert np.abs(flat - gray)[deep].mean() > np.abs(kept - gray)[deep].mean() + 20  # paper where tones were


def test_bad_manga_input_gets_a_result_not_a_crash():
    """An all-screentone page and a moiré-heavy tiny scan: a sensible page or a one-line reason, never a crash."""
    from tintline.errors import UserError

    white, fill = BASELINES.create("white"), BASELINES.create("region-fill")
    all_tone = render_manga(np.full((256, 256, 3), 128, np.uint8), screen=True, period=5.0)
    out, page = colorize_page(white, Image.fromarray(all_tone))
    assert page.kind == "screentone" and out.shape == (256, 256, 3)
    assert abs(float(out.mean()) - float(all_tone.mean())) < 15  # its tone, without the dots
    moire = render_manga(cartoon(3, 48, 48), screen=True, period=2.3, angle=15.0)
    try:
        out, page = colorize_page(fill, Image.fromarray(moire))
        assert out.shape == (48, 48, 3)
    except UserError as e:
        assert "\n" not in str(e)


def test_eval_input_manga_scores_pages_and_names_what_was_read(built_dataset, tmp_path):
    from tintline.evaluate.run import evaluate

    reports = {}
    for kind in ("lines", "manga"):
        evaluate(None, built_dataset, tmp_path / kind, limit=3, progress=False, baselines=("white", "region-fill"),
                 protocols=["none", "per-region"], input_kind=kind)
        reports[kind] = json.loads((tmp_path / kind / "metrics.json").read_text())
    manga = reports["manga"]
    assert manga["input"] == "manga" and sum(manga["input_kinds"].values()) == manga["images"] > 0
    # a gray page carries the drawing's lightness: "no coloring" is closer to the truth than bare line art
    de = {k: r["models"]["white"]["summary"]["none"]["delta_e00"] for k, r in reports.items()}
    assert de["manga"] < de["lines"]
    assert "manga page" in (tmp_path / "manga" / "index.html").read_text()


def test_a_build_with_the_manga_style_makes_gray_page_inputs(tmp_path):
    from tintline.data.build import build
    from tintline.data.sources import import_source
    from tintline.data.store import Store

    for i in range(6):
        write(tmp_path / "src" / f"c{i}.png", png_bytes(cartoon(500 + i, 160, 160)))
    with Store.create(tmp_path / "ds") as store:
        import_source(store, str(tmp_path / "src"), progress=False)
        shares = {"xdog": 0, "adaptive": 0, "edges": 0, "alpha": 0, "manga": 1}
        store.save_config(store.load_config({"size": 96, "min_side": 32, "workers": 1, "line_styles": shares}))
        build(store, store.load_config(), progress=False)
        entries = store.entries("train") + store.entries("val") + store.entries("test")
        styles = {json.loads(r[0])["style"] for r in store.db.execute(
            "SELECT line_params FROM images WHERE status='accepted'")}
    assert entries and styles == {"manga"}
    # tones (gray or dots) cover much more of each page than the drawing's lines alone would
    inked = [(np.asarray(Image.open(e.line_path)) < 215).mean() for e in entries]
    lines = [(extract_lineart(np.asarray(Image.open(e.color_path).convert("RGB")), REFERENCE_XDOG) < 215).mean()
             for e in entries]
    assert np.mean(inked) > 2 * np.mean(lines)


def test_a_solid_black_fill_on_a_gray_page_is_one_region_not_crumbs():
    # a black body (a penguin's, a dog's patch) printed with noise: the XDoG edges of that noise read as hundreds of
    # ink crumbs, each a region of its own (validation pages: up to 275 regions where the drawing has 16); a black
    # nose on a dark gray head (both darker than the ink level) keeps its edge
    rgb = np.full((SIDE, SIDE, 3), 255, np.uint8)
    lines = np.full((SIDE, SIDE), 255, np.uint8)
    cv2.circle(rgb, (140, 160), 100, (0, 0, 0), -1)
    rgb[300:360, 60:340] = 150  # a gray band: a gray page
    rgb[200:380, 250:380] = 60  # a dark gray head ...
    cv2.circle(rgb, (315, 290), 30, (0, 0, 0), -1)  # ... and its black nose, no line around it
    cv2.circle(lines, (140, 160), 100, 0, 2)
    cv2.rectangle(lines, (60, 300), (340, 360), 0, 2)
    page = render_manga(rgb, screen=False, noise=4.0, seed=1, lines=lines)
    read = read_page(Image.fromarray(page))
    seg = segment(read.line)
    inside = np.unique(seg.labels[90:230, 70:210][~seg.ink[90:230, 70:210]])
    assert read.kind == "gray" and len(inside) == 1, len(inside)
    nose, head = seg.labels[290, 315], seg.labels[215, 365]
    assert nose != head and not seg.ink[290, 315] and not seg.ink[215, 365]
    assert seg.n <= 6, seg.n  # the body, the band, the head, the nose, the paper around them (and a sliver)
