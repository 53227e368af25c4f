"""Native detail (issue 14): large inputs scaled so their lines are as thick as in training and run on overlapping
tiles; and the tone input of gray pages (issue 16): a tone-encoded network and colors that follow a page's
lightness."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from synth import cartoon  # noqa: E402

from tintline.checkpoint import save_generator  # noqa: E402
from tintline.data.dataset import encode_input  # noqa: E402
from tintline.data.hints import region_dots  # noqa: E402
from tintline.data.lineart import REFERENCE_XDOG, make_lineart  # noqa: E402
from tintline.inference import (  # noqa: E402
    TILE_OVERLAP,
    ClassMap,
    Colorizer,
    TiledClassMap,
    blend_window,
    tile_starts,
)
from tintline.models import create_generator  # noqa: E402
from tintline.regions import label_regions, segment  # noqa: E402
from tintline.regions.palette import fit_lightness, region_lightness  # noqa: E402


def _model(path: Path, encoding: str = "region", classes: int = 0) -> Path:
    args = {"in_channels": {"region": 9, "tone": 11}[encoding], "base": 4, "depth": 3, "max_width": 8,
            "norm": "instance", "blend": "multiply", **({"classes": classes} if classes else {})}
    torch.manual_seed(0)
    net = create_generator("unet", **args)
    if classes:  # a fitted palette: a head whose palette is all zeros counts as untrained and is not used
        with torch.no_grad():
            net.classes.palette.copy_(torch.from_numpy(_palette(classes)))
    save_generator(net, path, {"generator": {"name": "unet", "args": args}, "hint_encoding": encoding,
                               "image_size": 256})
    return path


def _palette(k: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([np.linspace(5, 100, k), rng.uniform(-40, 40, k), rng.uniform(-40, 40, k)], 1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _model(tmp_path_factory.mktemp("tiny") / "g.safetensors", classes=16)


def _page(side: int = 900, cells: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A page of cartoon drawings with thin (training-thick) lines: (color, line art)."""
    cell = side // cells
    color = np.full((side, side, 3), 255, np.uint8)
    for k in range(cells * cells):
        y, x = (k // cells) * cell, (k % cells) * cell
        color[y : y + cell, x : x + cell] = cartoon(200 + k, cell, cell)
    return color, make_lineart(color, None, "xdog", REFERENCE_XDOG)


def test_tiles_cover_the_image_and_overlap():
    for n in (100, 512, 513, 900, 1000, 4096):
        starts = tile_starts(n, 512, 64)
        assert starts[0] == 0 and starts[-1] + min(n, 512) == n
        assert all(b - a <= 512 - 64 for a, b in zip(starts, starts[1:], strict=False))  # overlap >= 64
    win = blend_window(100, 80, 16, top=True, bottom=False, left=False, right=True)
    assert win.min() > 0 and win.max() == 1.0
    assert win[0, 0] < 0.1 and win[-1, 0] == 1.0 and win[-1, -1] < 0.1  # ramps on the sides with neighbours


def test_native_detail_works_at_the_training_line_width_and_never_below_the_fixed_size(tiny):
    _, line = _page(900)
    fixed, native = Colorizer(tiny, detail="fixed"), Colorizer(tiny, detail="native")
    assert fixed.work_scale(line) == pytest.approx(256 / 900)
    s = native.work_scale(line)
    assert 256 / 900 < s <= 1.0
    thick = cv2.erode(line, np.ones((9, 9), np.uint8))  # lines 4x thicker: a smaller working image
    assert native.work_scale(thick) < s
    assert native.work_scale(np.full((900, 900), 255, np.uint8)) == pytest.approx(256 / 900)  # no ink: fixed
    with pytest.raises(Exception, match="detail"):
        Colorizer(tiny, detail="huge")
    auto = Colorizer(tiny)  # the default: native for pages over 1024 px, fixed below
    assert auto.work_scale(line) == pytest.approx(256 / 900)
    _, big = _page(1200, 4)
    assert auto.work_scale(big) == pytest.approx(native.work_scale(big))
    assert native.work_scale(big) > 256 / 1200


def test_tiles_bound_the_network_input_and_leave_no_seam(tiny):
    """The same page colorized whole and as tiles: the network never sees more than a tile, the tiled colors
    match the whole-image colors, and they change no faster across the tile borders than elsewhere."""
    color, line = _page(900)
    whole, tiled = Colorizer(tiny, detail="native"), Colorizer(tiny, detail="native")
    whole.tile = 1024
    tiled.tile = 384
    sizes: list[tuple[int, int]] = []
    tiled.net.down[0].register_forward_hook(lambda m, i, o: sizes.append(tuple(i[0].shape[-2:])))
    labels, n = label_regions(line)
    hints = region_dots(color, labels, n, 48, largest=4)
    a, fill_a, scale, _ = whole._network(line, hints, classes=True)
    b, fill_b, _, cmap = tiled._network(line, hints, classes=True)
    assert len(sizes) > 1 and max(h * w for h, w in sizes) <= 384 * 384
    assert isinstance(cmap, TiledClassMap)
    diff = np.abs(fill_a.astype(float) - fill_b.astype(float))
    assert diff.mean() < 6.0, diff.mean()
    # seams: the column-to-column change at the borders of the tiled fill against the same columns of the whole one
    starts = tile_starts(fill_b.shape[1], 384, TILE_OVERLAP)[1:]
    borders = [x + TILE_OVERLAP // 2 for x in starts]  # the middle of each cross-fade
    step_b = np.abs(np.diff(fill_b.astype(float), axis=1))[:, borders].mean()
    step_a = np.abs(np.diff(fill_a.astype(float), axis=1))[:, borders].mean()
    assert step_b <= step_a * 1.5 + 1.0, (step_b, step_a)
    # region-true output from both: the same flat color in almost every region
    out_a, out_b = whole.colorize_lines(line, hints), tiled.colorize_lines(line, hints)
    seg = segment(line)
    same = (np.abs(out_a.astype(int) - out_b.astype(int)).max(-1) <= 12)[~seg.ink]
    assert same.mean() > 0.9, same.mean()


def test_class_maps_of_tiles_pool_like_one_map():
    """Splitting a class map into two tiles (weights 1) gives the same per-region probabilities as the whole."""
    rng = np.random.default_rng(0)
    line = np.full((64, 64), 255, np.uint8)
    cv2.rectangle(line, (10, 10), (50, 40), 0, 2)
    seg = segment(line)
    k = 5
    logits = rng.normal(size=(k, 32, 32)).astype(np.float32)
    ys = xs = np.arange(32) * 2 + 0.5
    pal = _palette(k)
    whole = ClassMap(logits, ys, xs, pal)
    left = ClassMap(logits[:, :, :16], ys, xs[:16], pal, np.ones((32, 16)))
    right = ClassMap(logits[:, :, 16:], ys, xs[16:], pal, np.ones((32, 16)))
    p1, c1 = whole.region_probs(seg, 1.0)
    p2, c2 = TiledClassMap([left, right], pal).region_probs(seg, 1.0)
    assert np.allclose(p1, p2) and np.allclose(c1, c2)


def test_the_tone_encoding_adds_the_page_and_a_has_tone_plane():
    line = np.full((32, 32), 255, np.uint8)
    cv2.circle(line, (16, 16), 8, 0, 1)
    colors, mask = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), bool)
    tone = np.full((32, 32), 128, np.uint8)
    without = encode_input(line, colors, mask, "tone")
    with_tone = encode_input(line, colors, mask, "tone", tone=tone)
    assert without.shape == with_tone.shape == (11, 32, 32)
    assert (without[9:] == 0).all()
    assert (with_tone[10] == 1).all() and torch.allclose(with_tone[9], torch.full((32, 32), 128 / 127.5 - 1), atol=1e-6)
    assert torch.equal(without[:9], encode_input(line, colors, mask, "region"))


def test_a_region_model_widened_to_the_tone_encoding_starts_as_it_was(tmp_path):
    from tintline.train.trainer import _widen_input

    src = create_generator("unet", in_channels=9, base=4, depth=3, max_width=8)
    dst = create_generator("unet", in_channels=11, base=4, depth=3, max_width=8)
    dst.load_state_dict(_widen_input(src.state_dict(), dst.state_dict(), 9))
    src.eval()
    dst.eval()
    x = torch.randn(1, 11, 64, 64)
    assert torch.allclose(src(x[:, :9]), dst(x), atol=1e-5)


def test_colors_follow_a_gray_pages_lightness():
    line = np.full((40, 80), 255, np.uint8)
    line[:, 39:41] = 0  # two regions: left, right
    seg = segment(line)
    tone = np.where(np.arange(80)[None, :] < 40, 60, 230).astype(np.uint8).repeat(40, 0)  # dark left, light right
    lum = region_lightness(tone, seg)
    left, right = seg.labels[20, 10], seg.labels[20, 70]
    assert lum[left] < 35 < 85 < lum[right]
    palette = np.array([[25, 20, 10], [90, -10, 30]], np.float32)  # a dark and a light color
    probs = np.full((seg.n + 1, 2), 0.5)
    probs[left] = [0.3, 0.7]  # the head prefers the light color for the dark region: the page says otherwise
    fitted = fit_lightness(probs, palette, lum, 10.0)
    assert fitted[left].argmax() == 0 and fitted[right].argmax() == 1
    assert np.allclose(fitted.sum(1), 1.0)


def test_a_tone_model_sees_the_page_and_a_gray_page_keeps_its_lightness(tmp_path):
    """A tone-encoded model gets the page's tone through colorize_page (its output changes with the tone), and a
    line-art input gives it no tone."""
    from PIL import Image

    from tintline.data.manga import colorize_page, render_manga

    model = _model(tmp_path / "tone.safetensors", "tone")
    c = Colorizer(model, soft_hints=True)
    seen: list[torch.Tensor] = []
    c.net.down[0].register_forward_hook(lambda m, i, o: seen.append(i[0][0, 9:].clone()))
    color = cartoon(7, 192, 192)
    page = render_manga(color, lines=make_lineart(color, None, "xdog", REFERENCE_XDOG))
    rgb, read = colorize_page(c, Image.fromarray(page))
    assert read.kind == "gray" and (seen[-1][1] == 1).all() and seen[-1][0].std() > 0.1
    line = make_lineart(color, None, "xdog", REFERENCE_XDOG)
    colorize_page(c, Image.fromarray(line))
    assert (seen[-1] == 0).all()
