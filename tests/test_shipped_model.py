"""Known answers for the model shipped in the package: a regression to random weights, to a broken painting step or to
a coloring worse than no coloring fails here (the floors of the region-true issue, on drawings the tests make)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from synth import cartoon  # noqa: E402

from tintline.baselines import BASELINES  # noqa: E402
from tintline.data.hints import region_dots  # noqa: E402
from tintline.data.lineart import REFERENCE_XDOG, make_lineart  # noqa: E402
from tintline.evaluate.metrics import delta_e  # noqa: E402
from tintline.evaluate.region_metrics import region_metrics  # noqa: E402
from tintline.inference import default_model, load_colorizer  # noqa: E402
from tintline.regions import label_regions  # noqa: E402

pytestmark = pytest.mark.skipif(default_model() is None, reason="no model shipped in this installation")


def _drawings(n: int = 6, size: int = 256) -> list[tuple[np.ndarray, np.ndarray]]:
    """Clip-art-like drawings: white paper, a few flat-colored closed shapes with dark outlines, and their line art
    from the training extractor."""
    out = []
    for seed in range(n):
        color = cartoon(100 + seed, size, size)
        out.append((color, make_lineart(color, None, "xdog", REFERENCE_XDOG)))
    return out


def _scores(colorizer, drawings, protocol: str) -> tuple[float, float]:
    accs, des = [], []
    for color, line in drawings:
        labels, n = label_regions(line)
        hints = region_dots(color, labels, n, 48) if protocol == "per-region" else None
        pred = colorizer.colorize_lines(line, hints)
        accs.append(region_metrics(pred, color, line)["region_acc"])
        des.append(delta_e(pred, color))
    return float(np.nanmean(accs)), float(np.mean(des))


def test_a_dot_in_every_region_is_as_good_as_the_paint_bucket():
    drawings = _drawings()
    acc, de = _scores(load_colorizer("default"), drawings, "per-region")
    acc_fill, de_fill = _scores(BASELINES.create("region-fill"), drawings, "per-region")
    assert acc >= min(0.98, acc_fill - 0.02), (acc, acc_fill)
    assert de <= de_fill + 1.0, (de, de_fill)


def test_without_hints_it_is_not_worse_than_the_line_art():
    drawings = _drawings()
    acc, de = _scores(load_colorizer("default"), drawings, "none")
    acc_white, de_white = _scores(BASELINES.create("white"), drawings, "none")
    assert acc >= acc_white - 0.05, (acc, acc_white)
    assert de <= de_white + 0.5, (de, de_white)


def test_the_network_itself_follows_the_hints(tmp_path):
    """With soft hints nothing paints the regions for the network: the shipped weights must carry the hints' colors
    into the regions, and an untrained network of the same architecture must not (so this test can tell)."""
    import torch

    from tintline.checkpoint import load_generator, save_generator
    from tintline.models import create_generator

    drawings = _drawings()
    soft = load_colorizer("default")
    soft.soft_hints = True
    acc, _ = _scores(soft, drawings, "per-region")
    _, meta = load_generator("default")
    torch.manual_seed(0)
    g = meta["generator"]
    save_generator(create_generator(g["name"], **g["args"]), tmp_path / "untrained.safetensors", meta)
    untrained = load_colorizer(tmp_path / "untrained.safetensors")
    untrained.soft_hints = True
    acc_untrained, _ = _scores(untrained, drawings, "per-region")
    assert acc >= 0.6 and acc_untrained <= 0.4, (acc, acc_untrained)


def _spots(seed: int, size: int = 256) -> np.ndarray:
    """A panel of one color with nine round spots of another (two sizes), dark outlines: a drawing that repeats a
    color, as clothes, eyes and buttons do."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 255, np.uint8)
    panel, spot = (tuple(int(c) for c in rng.integers(30, 230, 3)) for _ in range(2))
    cv2.rectangle(img, (30, 30), (226, 226), panel, -1)
    cv2.rectangle(img, (30, 30), (226, 226), (20, 20, 20), 2)
    for i in range(3):
        for j in range(3):
            r = 14 + (i + j) % 2 * 4
            cv2.circle(img, (70 + 58 * i, 70 + 58 * j), r, spot, -1)
            cv2.circle(img, (70 + 58 * i, 70 + 58 * j), r, (20, 20, 20), 2)
    return img


def test_a_hinted_color_propagates_to_the_regions_that_repeat_it():
    """Dots in the 2 largest regions (the panel and one big spot): the other spots must take the spot's hinted color
    (hint propagation), which neither the paint bucket nor the network's own choice does."""
    scores = {}
    for name in ("default", "own", "region-fill"):
        colorizer = load_colorizer(f"own:{default_model()}" if name == "own" else name)
        accs = []
        for seed in range(6):
            color = _spots(seed)
            line = make_lineart(color, None, "xdog", REFERENCE_XDOG)
            labels, n = label_regions(line)
            pred = colorizer.colorize_lines(line, region_dots(color, labels, n, 48, largest=2))
            accs.append(region_metrics(pred, color, line)["region_acc"])
        scores[name] = float(np.nanmean(accs))
    assert scores["default"] >= max(scores["own"], scores["region-fill"]) + 0.1, scores


def test_colorize_no_propagate_keeps_hints_in_their_own_regions(tmp_path):
    """`tintline colorize --no-propagate`: no region but the hinted ones takes a hint's exact color; by default the
    repeated spots do (on this drawing the shipped model propagates the spot's hint to 8 of the 9 spots)."""
    import json

    from PIL import Image

    from tintline.cli import main

    color = _spots(2)
    line = make_lineart(color, None, "xdog", REFERENCE_XDOG)
    labels, n = label_regions(line)
    hints = region_dots(color, labels, n, 48, largest=2)
    Image.fromarray(line).save(tmp_path / "in.png")
    as_hex = [{**p, "color": "#{:02x}{:02x}{:02x}".format(*p["color"])} for p in hints["points"]]
    (tmp_path / "in.hints.json").write_text(json.dumps({"points": as_hex, "strokes": []}))
    panel = labels[128, 40]  # left of the spots
    spot = next(np.array(p["color"]) for p in hints["points"] if labels[int(p["y"]), int(p["x"])] != panel)
    centres = [(70 + 58 * i, 70 + 58 * j) for i in range(3) for j in range(3)]
    exact = {}
    for flag in ("--propagate", "--no-propagate"):
        out = tmp_path / flag
        assert main(["colorize", "default", str(tmp_path / "in.png"), "-o", str(out), "--hints",
                     str(tmp_path / "in.hints.json"), flag]) == 0
        pred = np.asarray(Image.open(out / "in.png").convert("RGB")).astype(int)
        exact[flag] = sum(int(np.abs(pred[y, x] - spot).max() <= 2) for x, y in centres)
    assert exact["--no-propagate"] <= 1 and exact["--propagate"] >= 5, exact
