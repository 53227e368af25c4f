"""Character mode: reference matching on a drawn character moved, scaled, mirrored and changed; the character file
(round trip through load_colorizer and the CLI, format versions); bad references; the Ren'Py Eileen sprites."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from tintline.character.matching import INK_THRESHOLD, MOTION_HI, MOTION_LO, Match, Reference, match_regions
from tintline.character.model import (
    CharacterColorizer,
    follow_hints,
    load_references,
    make_character,
    read_references,
    write_character,
)
from tintline.checkpoint import META_KEY, CheckpointError, read_meta
from tintline.cli import main
from tintline.data.hints import validate_hints
from tintline.data.imageio import BadImage, composite_on_white, read_image_file
from tintline.data.lineart import make_lineart
from tintline.data.sources import RENPY_IMAGES
from tintline.errors import UserError
from tintline.inference import Colorizer, default_model, load_colorizer
from tintline.regions import segment
from tintline.regions.paint import from_lab, to_lab

needs_model = pytest.mark.skipif(default_model() is None, reason="no model shipped in this installation")

SKIN, HAIR, EYE, SHIRT, SLEEVE, BAG, SKIRT = ((250, 220, 200), (200, 60, 40), (40, 60, 160), (220, 40, 60),
                                              (60, 170, 80), (240, 200, 40), (50, 50, 120))


def draw_character(h: int = 220, w: int = 180, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0,
                   mirror: bool = False, mouth: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A flat-colored character with dark outlines -> (color (h, w, 3) uint8, line (h, w) uint8). Asymmetric (a
    green sleeve on its left, a yellow bag on its right) so that a mirror image is not the same drawing."""
    color = np.full((h, w, 3), 255, np.uint8)
    line = np.full((h, w), 255, np.uint8)

    def p(x: float, y: float) -> tuple[int, int]:
        return round(w / 2 + (x - 90) * scale + dx), round(20 + (y - 20) * scale + dy)

    def r(v: float) -> int:
        return max(1, round(v * scale))

    shapes = [  # (kind, geometry, color), drawn back to front
        ("rect", ((55, 95), (125, 160)), SHIRT),
        ("rect", ((60, 160), (120, 205)), SKIRT),
        ("rect", ((30, 100), (55, 150)), SLEEVE),
        ("rect", ((125, 120), (160, 150)), BAG),
        ("ellipse", ((90, 55), (42, 40)), HAIR),
        ("ellipse", ((90, 65), (32, 30)), SKIN),
        ("circle", ((78, 62), 6), EYE),
        ("circle", ((102, 62), 6), EYE),
    ]
    if mouth:
        shapes.append(("ellipse", ((90, 82), (8, 4)), SHIRT))
    for kind, geo, col in shapes:
        for img, c, thick in ((color, col, -1), (color, (0, 0, 0), 2), (line, 0, 2)):
            if kind == "rect":
                cv2.rectangle(img, p(*geo[0]), p(*geo[1]), c, thick)
            elif kind == "circle":
                cv2.circle(img, p(*geo[0]), r(geo[1]), c, thick)
            else:
                cv2.ellipse(img, p(*geo[0]), (r(geo[1][0]), r(geo[1][1])), 0, 0, 360, c, thick)
    if mirror:
        color, line = np.ascontiguousarray(color[:, ::-1]), np.ascontiguousarray(line[:, ::-1])
    return color, line


def region_accuracy(votes: np.ndarray, seg, truth: np.ndarray, min_area: int = 20) -> float:
    """Share of the regions of ``seg`` (>= min_area paper pixels) whose CIELAB vote is within 10 of the truth's
    median color there."""
    lab = to_lab(truth)
    ok = []
    for r in range(1, seg.n + 1):
        px = lab[(seg.labels == r) & ~seg.ink]
        if len(px) >= min_area:
            ok.append(np.linalg.norm(votes[r] - np.median(px, axis=0)) <= 10)
    return float(np.mean(ok))


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference.build(*draw_character())


@pytest.mark.parametrize("variant", [
    {"scale": 1.15, "dx": 8, "dy": -4},
    {"scale": 0.85, "dx": -10, "dy": 6, "mirror": True},
    {"scale": 1.0, "dx": 5, "dy": 3, "mouth": True},
    {"scale": 0.9, "dx": 0, "dy": 0, "mirror": True, "mouth": True},
])
def test_matching_colors_a_moved_scaled_mirrored_changed_drawing(reference, variant):
    truth, line = draw_character(240, 200, **variant)
    m = match_regions(line, [reference])
    votes, conf, matched = m.votes()
    assert m.alignments[0].flip == variant.get("mirror", False)
    assert region_accuracy(votes, m.seg, truth) >= 0.9
    assert matched[1:].all() and (conf[1:] > 0).all() and (conf <= 1 + 1e-6).all()


def test_a_part_joined_to_the_background_by_a_gap_is_split_off_in_the_same_pose(reference):
    """A gap in the hair's outline joins the hair to the background: the hair is a small share of that one region,
    so the share rule left it to the background's white; in the same pose it is split off and takes its color."""
    _, line = draw_character(dx=3, dy=2)
    line = line.copy()
    line[10:30, 80:100] = 255  # the top of the hair's outline erased
    m = match_regions(line, [reference])
    votes, _, _ = m.votes()
    hair = m.seg.labels[42, 63]  # left of the face
    assert not m.seg.border[hair]
    assert np.linalg.norm(votes[hair] - to_lab(np.array([[HAIR]], np.uint8))[0, 0]) < 10


def test_matching_is_bounded_in_time(reference):
    import time

    _, line = draw_character(512, 512, scale=2.0)
    ref = Reference.build(*draw_character(512, 512, scale=2.0, dx=20))
    match_regions(line, [ref])  # warm-up (FFT plans, OpenCV)
    t = time.perf_counter()
    match_regions(line, [ref, reference])
    assert time.perf_counter() - t < 1.0


def test_a_blank_target_gets_no_confident_colors(reference):
    m = match_regions(np.full((64, 80), 255, np.uint8), [reference])
    votes, conf, _ = m.votes()
    assert votes.shape == (m.seg.n + 1, 3) and np.isfinite(votes).all()
    # all ink: no paper to sample (the same-pose colors once failed on an empty sample)
    m = match_regions(np.zeros((220, 180), np.uint8), [reference])
    votes, _, _ = m.votes()
    assert np.isfinite(votes).all()


def sprite(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A Ren'Py demo sprite at half size on white -> (color, its line art by color edges)."""
    color = composite_on_white(read_image_file(Path(RENPY_IMAGES) / f"{name}.png"))
    color = cv2.resize(color, (color.shape[1] // 2, color.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return color, make_lineart(color, None, "edges", {"sigma": 1.0, "threshold": 60.0, "width": 2})


def test_material_colors_blend_shades_of_one_material_only():
    """A skirt drawn in a dark and a light band of one hue: each band's material color lies between the two; the
    black-outlined hair and skin, the shirt and the paper keep their own colors."""
    color, line = draw_character()
    light = (110, 110, 190)  # a lighter shade of SKIRT (50, 50, 120): same hue
    cv2.rectangle(color, (70, 185), (110, 202), light, -1)
    cv2.rectangle(color, (70, 185), (110, 202), (0, 0, 0), 2)
    cv2.rectangle(line, (70, 185), (110, 202), 0, 2)
    ref = Reference.build(color, line)
    mat = ref.material_colors()
    lab_dark, lab_light = (to_lab(np.array([[c]], np.uint8))[0, 0] for c in (SKIRT, light))

    def region_at(x: int, y: int) -> int:
        return int(ref.stats.index[ref.seg.labels[y, x]])

    dark_i, light_i = region_at(65, 175), region_at(90, 195)
    for i in (dark_i, light_i):
        t = np.dot(mat[i] - lab_dark, lab_light - lab_dark) / np.dot(lab_light - lab_dark, lab_light - lab_dark)
        assert 0.05 < t < 0.95, t  # strictly between the two shades
    for x, y in ((90, 65), (90, 100), (5, 5)):  # skin, shirt, paper: no shade of theirs is adjacent
        i = region_at(x, y)
        assert np.allclose(mat[i], ref.colors[i], atol=1e-3)


def test_motion_tells_a_new_face_from_a_new_pose():
    """The dense flow's median length: Eileen with another face (same pose) stays below MOTION_LO (her exact
    shades are kept), Lucy in another pose goes beyond MOTION_HI (her shades blend)."""

    for ref_name, target, low in (("eileen happy", "eileen concerned", True), ("lucy happy", "lucy mad", False)):
        ref = Reference.build(*sprite(ref_name))
        m = match_regions(sprite(target)[1], [ref])
        motion = m.alignments[0].motion(ref.line < INK_THRESHOLD, ref.frame.size)
        assert (motion < MOTION_LO) if low else (motion > MOTION_HI), (target, motion)
        shades_kept = np.allclose(m.colors, ref.colors)
        assert shades_kept == low


def _write_refs(tmp_path: Path, n: int = 1, size: tuple[int, int] = (220, 180)) -> list[Path]:
    paths = []
    for i in range(n):
        color, _ = draw_character(*size, dx=3 * i)
        paths.append(tmp_path / f"ref{i}.png")
        Image.fromarray(color).save(paths[-1])
    return paths


@needs_model
def test_character_file_round_trip(tmp_path, capsys):
    refs = _write_refs(tmp_path)
    out = tmp_path / "hero.safetensors"
    assert main(["character", *map(str, refs), "-o", str(out), "--name", "hero"]) == 0
    assert "hero" in capsys.readouterr().out
    meta = read_meta(out)
    assert meta["kind"] == "character" and meta["character"]["name"] == "hero"
    assert meta["character"]["references"][0]["source"] == "ref0.png" and meta["generator"]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))  # no temporary file left
    truth, line = draw_character(240, 200, scale=1.1, dx=6, mirror=True)
    combined, alone = load_colorizer(out), load_colorizer(f"match:{out}")
    assert isinstance(combined, CharacterColorizer) and combined.mode == "combined" and alone.mode == "match"
    assert "hero" in combined.meta["description"]
    for c in (combined, alone):
        pred = c.colorize_lines(line)
        assert pred.shape == (240, 200, 3) and pred.dtype == np.uint8
        lay = c.colorize_layers(line)
        assert np.array_equal(lay.compose(), pred)
    # matching alone: the shirt of the mirrored, scaled target is the reference's shirt color
    pred = alone.colorize_lines(line)
    seg = segment(line)
    shirt = seg.labels[110, 100]
    assert np.abs(np.median(pred[(seg.labels == shirt) & ~seg.ink], axis=0) - SHIRT).max() <= 12
    # an exact hint still wins over the matching
    hints = validate_hints({"points": [{"x": 100, "y": 110, "color": "#00ff00", "radius": 2}]})
    assert tuple(alone.colorize_lines(line, hints)[120, 100]) == (0, 255, 0)
    # a hint in a color the references lack recolors that part everywhere: one eye hinted green, both turn green
    eyes = [(200 - round(100 + (x - 90) * 1.1 + 6), round(20 + 42 * 1.1)) for x in (78, 102)]  # mirrored, scaled
    hints = validate_hints({"points": [{"x": eyes[0][0], "y": eyes[0][1], "color": "#00ff00", "radius": 1}]})
    pred = alone.colorize_lines(line, hints)
    assert all(tuple(pred[y, x]) == (0, 255, 0) for x, y in eyes)
    # the network alone reads the same file (the references are not weights)
    assert isinstance(Colorizer(out), Colorizer)
    # and the CLI colorizes with it
    Image.fromarray(line).save(tmp_path / "target.png")
    assert main(["colorize", f"match:{out}", str(tmp_path / "target.png"), "-o", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "target.png").is_file()


@needs_model
def test_references_of_different_sizes_share_one_long_side(tmp_path):
    small = _write_refs(tmp_path, 1)[0]
    big = tmp_path / "big.png"
    Image.fromarray(draw_character(660, 540, scale=3.0)[0]).save(big)
    refs = load_references([small, big])
    assert [max(c.shape[:2]) for c, _ in refs] == [220, 220]
    out = write_character(tmp_path / "two.safetensors", refs)
    assert [c.shape for c, _ in read_references(out)] == [c.shape for c, _ in refs]


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


@needs_model
def test_bad_references_get_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "c.safetensors")
    color, line = draw_character()
    gray = tmp_path / "gray.png"
    Image.fromarray(cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)).save(gray)
    assert "reference 1 has no color" in _one_line_error(capsys, ["character", str(gray), "-o", out])
    lines_only = tmp_path / "lines.png"
    Image.fromarray(line).save(lines_only)
    assert "reference 1 has no color" in _one_line_error(capsys, ["character", str(lines_only), "-o", out])
    refs = _write_refs(tmp_path, 9)
    assert "at most 8" in _one_line_error(capsys, ["character", *map(str, refs), "-o", out])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(Image.fromarray(color).tobytes()[:500])
    assert "reference 1" in _one_line_error(capsys, ["character", str(corrupt), "-o", out])
    with pytest.raises(BadImage):
        load_references([corrupt])
    assert "--lines gives 2" in _one_line_error(capsys, ["character", str(refs[0]), "-o", out, "--lines",
                                                         str(lines_only), str(lines_only)])
    small_lines = tmp_path / "small_lines.png"
    Image.fromarray(line[:100]).save(small_lines)
    assert "same drawing" in _one_line_error(capsys, ["character", str(refs[0]), "-o", out, "--lines",
                                                      str(small_lines)])
    assert "between 0 and" in _one_line_error(capsys, ["character", str(refs[0]), "-o", out, "--minutes", "-1"])
    assert "not found" in _one_line_error(capsys, ["character", str(tmp_path / "nope.png"), "-o", out])
    assert ".safetensors" in _one_line_error(capsys, ["character", str(refs[0]), "-o", str(tmp_path / "c.png")])
    assert not Path(out).exists()
    # given line art is used as is (same size as its reference)
    Image.fromarray(line).save(lines_only)
    assert main(["character", str(refs[0]), "-o", out, "--lines", str(lines_only)]) == 0
    assert np.array_equal(read_references(out)[0][1], line)


@needs_model
def test_a_character_file_of_another_format_is_refused(tmp_path, capsys):
    out = make_character(_write_refs(tmp_path), tmp_path / "c.safetensors")
    meta = read_meta(out)
    meta["character"]["format"] = 99
    meta["character"]["tintline_version"] = "9.0"
    newer = tmp_path / "newer.safetensors"
    save_file(load_file(str(out)), str(newer), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(CheckpointError, match="character format 99"):
        load_colorizer(newer)
    Image.fromarray(draw_character()[1]).save(tmp_path / "t.png")
    err = _one_line_error(capsys, ["colorize", str(newer), str(tmp_path / "t.png"), "-o", str(tmp_path / "o")])
    assert "format 99" in err and "9.0" in err
    with pytest.raises(CheckpointError, match="needs a character file"):
        load_colorizer(f"match:{default_model()}")
    with pytest.raises(UserError, match="mode"):
        CharacterColorizer(out, mode="nope")


@pytest.mark.skipif(not (Path(RENPY_IMAGES) / "eileen happy.png").is_file(), reason="Ren'Py demo not installed")
def test_eileen_concerned_from_eileen_happy():
    """The real sprites (same pose, another face), line art by color edges; matching alone, no network."""

    ref = Reference.build(*sprite("eileen happy"))
    truth, line = sprite("eileen concerned")
    line = np.ascontiguousarray(line[:, ::-1])  # mirrored, too
    truth = np.ascontiguousarray(truth[:, ::-1])
    m = match_regions(line, [ref])
    votes, _, _ = m.votes()
    assert m.alignments[0].flip
    assert region_accuracy(votes, m.seg, truth, min_area=100) >= 0.9
    # the same pose: a region (not one cut by split_leaky) takes the median of its material's colors in the aligned
    # reference under it; where the face did not change, that is the truth's color (the best-matched shade band
    # alone was 0.4 CIELAB units off on average, up to 0.76)
    assert m.dense is not None
    lab = to_lab(truth)
    errors = [np.linalg.norm(votes[r] - np.median(px, axis=0)) for r in range(1, m.seg.n + 1)
              if m.dense.paper[r] > 0 and len(px := lab[(m.seg.labels == r) & ~m.seg.ink]) >= 100]
    assert len(errors) >= 3 and np.mean(errors) < 0.1, errors


@needs_model
def test_the_same_pose_carries_the_references_shading(tmp_path):
    """Eileen concerned from a character made of Eileen happy (same pose): the regions take the reference's own
    lit and shaded pixels of their material, not one flat color each (CIELAB error per paper pixel, median 3.4 with
    flat colors), and an exact hint still paints its region in the hint's color alone."""
    out = make_character([Path(RENPY_IMAGES) / "eileen happy.png"], tmp_path / "eileen.safetensors", name="eileen")
    alone = load_colorizer(f"match:{out}")
    truth, line = sprite("eileen concerned")
    pred = alone.colorize_lines(line)
    sel = (line >= 200) & ~np.all(truth == 255, axis=2)  # paper of the sprite
    err = np.linalg.norm(to_lab(pred)[sel] - to_lab(truth)[sel], axis=1)
    assert np.median(err) < 2.0, np.median(err)
    m = match_regions(line, alone.references, segment(line))
    seg = m.seg  # the regions the colorizer paints
    jacket = seg.labels[300, 60]
    hints = validate_hints({"points": [{"x": 60, "y": 300, "color": "#00ff00", "radius": 2}]})
    hinted = alone.colorize_layers(line, hints).flat[(seg.labels == jacket) & ~seg.ink]
    assert len(hinted) > 500 and (hinted == (0, 255, 0)).all(axis=1).all()
    # ... also a hint in the very color the matching gave the region: it is then that color alone, not shaded
    own = tuple(int(v) for v in from_lab(m.votes()[0][jacket][None, None])[0, 0])
    hints = validate_hints({"points": [{"x": 60, "y": 300, "color": "#{:02x}{:02x}{:02x}".format(*own), "radius": 2}]})
    hinted = alone.colorize_layers(line, hints).flat[(seg.labels == jacket) & ~seg.ink]
    assert (hinted == own).all(axis=1).all()


def test_materials_chain_colored_shades_but_not_grays():
    """Hair in three bands, orange -> red -> magenta (each next to the next, 25 degrees of hue apart): one material,
    so a target region over all three takes their median. Three grays side by side (white, gray, dark gray): each
    is a shade of its neighbour, but white and dark gray are not one material."""
    def lch(lightness: float, chroma: float, hue: float) -> tuple[int, ...]:
        h = np.radians(hue)
        lab = np.array([[[lightness, chroma * np.cos(h), chroma * np.sin(h)]]], np.float32)
        return tuple(int(v) for v in from_lab(lab)[0, 0])

    color = np.full((120, 200, 3), 255, np.uint8)
    line = np.full((120, 200), 255, np.uint8)
    bands = [lch(55, 50, 60), lch(55, 50, 35), lch(55, 50, 10), (245, 245, 245), (190, 190, 190), (140, 140, 140)]
    for i, c in enumerate(bands):
        x0 = 10 + 30 * i
        color[20:100, x0 : x0 + 30] = c
    cv2.rectangle(color, (10, 20), (189, 99), (0, 0, 0), 2)
    cv2.rectangle(line, (10, 20), (189, 99), 0, 2)
    ref = Reference.build(color, line)
    mat = ref.materials()
    at = [int(ref.stats.index[ref.seg.labels[60, 25 + 30 * i]]) for i in range(len(bands))]
    assert len(set(at)) == len(bands) and min(at) >= 0  # each band is a region of its own
    orange, red, magenta, white, gray, dark = at
    assert mat[orange, magenta] and mat[magenta, orange] and mat[orange, red]
    assert mat[white, gray] and mat[gray, dark]
    assert not mat[white, dark] and not mat[red, gray]


def test_fine_tune_augments_and_learns_the_character(tmp_path):
    """The fine-tune: augmented samples are drawings of the character (not blank crops); a few steps lower the
    loss; the file carries the tuned weights, the palette refitted to the references' colors, and its summary."""
    import torch

    from tintline.character.finetune import Augment, augment
    from tintline.checkpoint import save_generator
    from tintline.models import create_generator

    color, line = draw_character()
    rng = np.random.default_rng(0)
    aug = Augment(crop=96)
    for _ in range(4):
        col, lin = augment(color, None, rng, 128, aug)
        assert col.shape == (96, 96, 3) and lin.shape == (96, 96)
    col, lin = augment(color, line, np.random.default_rng(1), 128, Augment(scale=(1.0, 1.0), rotate=0.0,
                                                                          elastic=0.0, crop=96))
    assert (lin < 128).any() and (col.min(axis=2) < 200).any()  # the given line art, warped with the drawing
    args = {"in_channels": 9, "base": 8, "depth": 4, "max_width": 16, "norm": "instance", "blend": "multiply",
            "classes": 16}
    torch.manual_seed(0)
    base = tmp_path / "base.safetensors"
    save_generator(create_generator("unet", **args), base, {"generator": {"name": "unet", "args": args},
                                                            "hint_encoding": "region", "image_size": 128})
    ref = tmp_path / "ref.png"
    Image.fromarray(color).save(ref)
    out = make_character([ref], tmp_path / "c.safetensors", base=base, max_steps=60, progress=False)
    info = read_meta(out)["character"]
    tuned = info["fine_tune"]
    assert tuned["steps"] == 60 and tuned["loss_end"] < tuned["loss_start"]
    weights, before = load_file(str(out)), load_file(str(base))
    assert any(not torch.equal(weights[k], before[k]) for k in before if k.startswith("up."))
    palette = weights["classes.palette"].float().numpy()
    hair = to_lab(np.array([[HAIR]], np.uint8))[0, 0]
    assert np.linalg.norm(palette - hair, axis=1).min() < 3  # the character's own colors
    assert load_colorizer(out).colorize_lines(line).shape == line.shape + (3,)


def test_the_server_lists_a_character_and_serves_its_references(tmp_path):
    """The page's Character panel: /api/models marks the character; its references come back as PNGs."""
    import io

    import httpx
    import torch

    from tintline.checkpoint import save_generator
    from tintline.models import create_generator
    from tintline.serve.app import create_app
    from tintline.serve.background import running_server

    args = {"in_channels": 9, "base": 8, "depth": 4, "max_width": 16, "norm": "instance", "blend": "multiply"}
    torch.manual_seed(0)
    base = tmp_path / "base.safetensors"
    save_generator(create_generator("unet", **args), base, {"generator": {"name": "unet", "args": args},
                                                            "hint_encoding": "region", "image_size": 128})
    color, line = draw_character()
    big = cv2.resize(color, (600, 733), interpolation=cv2.INTER_NEAREST)
    char = write_character(tmp_path / "anna.safetensors", [(big, cv2.resize(line, (600, 733)))], base=base,
                           name="Anna")
    app = create_app([char, "region-fill"])
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        models = {m["name"]: m for m in c.get("/api/models").json()["models"]}
        assert models["anna"]["character"] == {"name": "Anna", "references": 1}
        assert "character" not in models["region-fill"]
        r = c.get("/api/models/anna/references/0")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        preview = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
        assert max(preview.shape[:2]) == 256 and (preview.min(axis=2) < 200).any()
        assert c.get("/api/models/anna/references/1").status_code == 404
        assert "not a character" in c.get("/api/models/region-fill/references/0").json()["error"]
        assert c.get("/api/models/nope/references/0").status_code == 404
        page = c.get("/static/app.js").text
        assert "character-panel" in c.get("/").text and "/references/" in page


def test_a_new_color_recolors_like_parts_but_not_a_large_color_area_from_a_small_piece():
    """follow_hints: a hint in a color no reference shows recolors the other regions of its color when its region is
    one of a few like parts (two eyes), not when it is a small piece of a large area of that color (an open mouth
    matched as skin: one red dot turned the face and arms red); a reference's own shade, which another pose's
    blended colors may not contain, is a correction of its region alone."""
    line = np.full((120, 200), 255, np.uint8)
    cv2.rectangle(line, (2, 2), (197, 117), 0, 2)
    line[:, 100:102] = 0  # a large left and right area ...
    for cx in (30, 60, 140):  # ... with small boxes in them: two "eyes" on the left, a "mouth" on the right
        cv2.rectangle(line, (cx - 6, 50), (cx + 6, 62), 0, 2)
    seg = segment(line, gap=0)
    at = {name: int(seg.labels[y, x]) for name, (x, y) in
          {"left": (80, 20), "right": (180, 20), "eye1": (30, 56), "eye2": (60, 56), "mouth": (140, 56)}.items()}
    skin, blue = np.array([85.0, 10.0, 15.0]), np.array([50.0, 0.0, -40.0])
    votes = np.tile(skin, (seg.n + 1, 1)).astype(np.float32)
    votes[[at["eye1"], at["eye2"]]] = blue
    shade = np.array([70.0, 14.0, 20.0])  # a darker skin a reference shows, not among the blended colors
    match = Match(seg, np.arange(1, seg.n + 1), np.zeros((seg.n, 2)), np.array([skin, blue], np.float32), [],
                  palette=np.array([skin, blue, shade], np.float32))

    def hinted(name: str, rgb: tuple[int, int, int]) -> np.ndarray:
        x, y = {"eye1": (30, 56), "mouth": (140, 56)}[name]
        color = "#{:02x}{:02x}{:02x}".format(*rgb)
        return follow_hints(votes, validate_hints({"points": [{"x": x, "y": y, "color": color, "radius": 2}]}), match,
                            line)

    green = to_lab(np.array([[0, 200, 0]], np.uint8))[0]
    out = hinted("eye1", (0, 200, 0))  # both eyes turn green
    np.testing.assert_allclose(out[at["eye2"]], green, atol=0.5)
    np.testing.assert_array_equal(out[[at["left"], at["right"]]], votes[[at["left"], at["right"]]])
    out = hinted("mouth", (200, 30, 30))  # a red mouth: the skin stays skin
    np.testing.assert_array_equal(out, votes)
    shade_rgb = tuple(int(v) for v in from_lab(shade[None].astype(np.float32))[0])
    out = hinted("eye1", shade_rgb)  # a reference's own shade: a correction of that region alone
    np.testing.assert_array_equal(out, votes)
