"""The color-class head: palette fitting, the region-pooled class loss, the mode-seeking region vote, and its use
at inference (an unhinted region takes the head's choice only when it is confident enough)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tintline.checkpoint import load_generator, save_generator
from tintline.losses import region_class_loss, srgb_to_lab
from tintline.models import create_generator
from tintline.regions.paint import to_lab
from tintline.regions.palette import WHITE_LAB, class_votes, fit_palette, nearest_class, neighbourhoods

ARGS = {"in_channels": 9, "base": 8, "depth": 4, "max_width": 16, "norm": "instance", "blend": "multiply"}


@pytest.mark.parametrize("name", ["unet", "resunet"])
def test_the_head_gives_logits_at_half_resolution_and_learns(name):
    torch.manual_seed(0)
    g = create_generator(name, **ARGS, classes=6).train()
    x = torch.rand(2, 9, 64, 96) * 2 - 1
    y, logits = g(x, classes=True)
    assert y.shape == (2, 3, 64, 96) and logits.shape == (2, 6, 32, 48)
    assert torch.equal(g(x), y) if name == "unet" else g(x).shape == y.shape  # plain forward: the image alone
    (y.square().mean() + logits.square().mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.classes.parameters())
    assert g.classes.palette.shape == (6, 3)  # a buffer: saved with the weights, not trained
    with pytest.raises(ValueError, match="no color-class head"):
        create_generator(name, **ARGS)(x, classes=True)


def test_the_palette_is_saved_with_the_weights(tmp_path):
    g = create_generator("unet", **ARGS, classes=3)
    g.classes.palette.copy_(torch.tensor([WHITE_LAB, (50.0, 60.0, 40.0), (30.0, 10.0, -50.0)]))
    path = tmp_path / "g.safetensors"
    save_generator(g, path, {"generator": {"name": "unet", "args": {**ARGS, "classes": 3}}})
    loaded, _ = load_generator(path)
    assert torch.equal(loaded.classes.palette, g.classes.palette)


def _pair(colors: list[tuple[int, int, int]], size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Line art of len(colors) side-by-side boxes and its coloring (white paper around them)."""
    line = np.full((size, size), 255, np.uint8)
    color = np.full((size, size, 3), 255, np.uint8)
    w = (size - 8) // len(colors)
    for i, c in enumerate(colors):
        x0 = 4 + i * w
        color[8:-8, x0 : x0 + w] = c
        cv2.rectangle(line, (x0, 8), (x0 + w - 1, size - 9), 0, 2)
    return color, line


def test_fit_palette_finds_the_colors_with_white_first():
    red, blue = (220, 30, 30), (30, 60, 200)
    pairs = [_pair([red, blue]), _pair([blue, red, red])]
    pal = fit_palette(pairs, k=3)
    assert pal.shape == (3, 3) and tuple(pal[0]) == WHITE_LAB
    for c in (red, blue):
        lab = to_lab(np.array([[c]], np.uint8))[0]
        assert np.linalg.norm(pal - lab, axis=1).min() < 1.0
    assert fit_palette([_pair([red])], k=8).shape == (8, 3)  # fewer colors than k: rows repeat
    with pytest.raises(ValueError):
        fit_palette(pairs, k=1)


def test_region_class_loss_prefers_the_true_class_and_counts_regions_equally():
    palette = torch.tensor([WHITE_LAB, (53.0, 80.0, 67.0), (32.0, 79.0, -108.0)])  # white, red, blue (sRGB)
    target = torch.ones(1, 3, 8, 8)  # white...
    target[:, :, :, 4:] = torch.tensor([-1.0, -1.0, 1.0]).view(1, 3, 1, 1)  # ...and a blue right half
    labels = torch.ones(1, 8, 8, dtype=torch.int64)
    labels[:, :, 4:] = 2
    labels[:, 0, :] = 0  # ink
    assert nearest_class(srgb_to_lab(torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1))[:, 0, 0][None].numpy(),
                         palette.numpy())[0] == 2
    right = torch.full((1, 3, 4, 4), -5.0)
    right[:, 0, :, :2] = 5.0  # white on the left (grid columns 0-1 = pixels 0-3)
    right[:, 2, :, 2:] = 5.0  # blue on the right
    wrong = right.flip(1)
    good, bad = (region_class_loss(z, target, labels, palette) for z in (right, wrong))
    assert good < 0.5 < bad
    assert region_class_loss(right, target, torch.zeros_like(labels), palette) == 0  # no region: nothing to learn


def test_class_votes_pick_a_mode_not_the_mean_of_modes():
    palette = np.array([WHITE_LAB, (53.0, 80.0, 67.0), (32.0, 79.0, -108.0), (45.0, 75.0, -20.0)], np.float32)
    near = neighbourhoods(palette)
    assert near.trace() == 4 and near[1, 2] == 0
    probs = np.array([[0.05, 0.5, 0.45, 0.0],  # red or blue, never the purple between them
                      [0.9, 0.05, 0.05, 0.0]], np.float32)
    colors, conf = class_votes(probs, palette, near)
    assert np.allclose(colors[0], palette[1]) and conf[0] == pytest.approx(0.5)
    assert np.allclose(colors[1], palette[0]) and conf[1] == pytest.approx(0.9)


def _model_with_palette(tmp_path, color_lab: tuple[float, float, float]):
    """An untrained head whose palette is one color repeated: every region's class vote is that color, with
    confidence 1."""
    torch.manual_seed(0)
    args = {**ARGS, "classes": 4}
    g = create_generator("unet", **args)
    g.classes.palette.copy_(torch.tensor([color_lab] * 4))
    path = tmp_path / "g.safetensors"
    save_generator(g, path, {"generator": {"name": "unet", "args": args}, "hint_encoding": "region",
                             "image_size": 128})
    return path


def test_colorizer_uses_confident_class_votes_for_unhinted_regions(tmp_path):
    from tintline.data.hints import validate_hints
    from tintline.inference import Colorizer

    green = (87.7, -86.2, 83.2)  # sRGB (0, 255, 0)
    model = _model_with_palette(tmp_path, green)
    color, line = _pair([(0, 0, 0), (0, 0, 0)], size=128)
    hints = validate_hints({"points": [{"x": 30, "y": 60, "color": "#3366cc"}]})  # the left box
    with_classes = Colorizer(model, confidence=0.5).colorize_lines(line, hints)
    assert tuple(with_classes[60, 30]) == (0x33, 0x66, 0xCC)  # a hint still wins
    right = with_classes[60, 95].astype(int)
    assert right[1] > 240 and right[0] < 30 and right[2] < 30  # the unhinted box: the head's green
    assert (with_classes[2, 2] == 255).all()  # the background stays paper
    without = Colorizer(model, confidence=2.0).colorize_lines(line, hints)  # above 1: the regression's vote
    assert not (without[60, 95].astype(int)[1] > 240 and without[60, 95].astype(int)[0] < 30)


def test_a_head_with_an_unfitted_palette_is_ignored(tmp_path):
    from tintline.inference import Colorizer

    model = _model_with_palette(tmp_path, (0.0, 0.0, 0.0))
    c = Colorizer(model)
    assert c.palette is None
    _, line = _pair([(0, 0, 0)], size=128)
    assert c.colorize_lines(line).shape == (128, 128, 3)


def test_colorize_confidence_option(tmp_path, capsys):
    from tintline.cli import main

    green = (87.7, -86.2, 83.2)
    model = _model_with_palette(tmp_path, green)
    _, line = _pair([(0, 0, 0), (0, 0, 0)], size=128)
    from PIL import Image

    Image.fromarray(line).save(tmp_path / "in.png")
    outs = {}
    for c in ("0", "2"):
        assert main(["colorize", str(model), str(tmp_path / "in.png"), "-o", str(tmp_path / c), "--confidence", c]) == 0
        outs[c] = np.asarray(Image.open(tmp_path / c / "in.png").convert("RGB"))
    assert outs["0"][60, 95, 1] > 240 and outs["0"][60, 95, 0] < 30  # the head's color
    assert not np.array_equal(outs["0"], outs["2"])
    bad = ["colorize", str(model), str(tmp_path / "in.png"), "-o", str(tmp_path / "x"), "--confidence", "-1"]
    assert main(bad) != 0
    assert "--confidence" in capsys.readouterr().err
