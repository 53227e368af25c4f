"""Layers out of the colorizer: the OpenRaster file (tintline.regions.ora), ``colorize --layers`` and
``--soft-hints``. A tiny random generator stands in for a trained one: what is checked is the file format and that
the layers recompose to exactly the PNG the CLI wrote, not the colors' quality."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import cv2
import numpy as np
import pytest
from PIL import Image

from tintline.cli import main
from tintline.data.lineart import normalize_input
from tintline.errors import UserError
from tintline.regions.ora import MIMETYPE, ora_bytes, read_ora, write_ora
from tintline.regions.paint import Layers

H, W = 96, 160  # non-square, and larger than the model's 64 px: the network sees it scaled down
HINT = (0x33, 0x66, 0xCC)


def line_art() -> np.ndarray:
    """A closed rectangle with a circle inside it: (H, W) uint8, paper 255."""
    a = np.full((H, W), 255, np.uint8)
    cv2.rectangle(a, (10, 8), (150, 88), 0, 2)
    cv2.circle(a, (110, 48), 22, 0, 2)
    return a


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained UNet with the region hint encoding and the multiply blend (the shipped recipe's kind)."""
    from tintline.checkpoint import save_generator
    from tintline.models import create_generator

    args = {"in_channels": 9, "base": 8, "depth": 5, "max_width": 32, "blend": "multiply", "norm": "instance"}
    ckpt = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_generator(create_generator("unet", **args), ckpt, {"generator": {"name": "unet", "args": args},
                                                             "hint_encoding": "region", "image_size": 64})
    return ckpt


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("in")
    Image.fromarray(line_art()).save(d / "art.png")
    hints = {"points": [{"x": 40, "y": 48, "color": "#3366cc", "radius": 3}]}  # inside the rectangle, not the circle
    (d / "art.hints.json").write_text(json.dumps(hints))
    return d / "art.png", d / "art.hints.json"


def run_colorize(*args: str) -> None:
    assert main(["colorize", *args]) == 0


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


# ------------------------------------------------------------------------------------------ CLI round trip


def test_cli_layers_recompose_exactly_to_the_png(tiny_model, inputs, tmp_path, capsys):
    art, hints = inputs
    run_colorize(str(tiny_model), str(art), "-o", str(tmp_path), "--hints", str(hints), "--layers")
    png, ora = tmp_path / "art.png", tmp_path / "art.ora"
    assert capsys.readouterr().out.split() == [str(png), str(ora)]
    for name in ("art.png", "art.ora", "art_flat.png", "art_shading.png", "art_lines.png"):
        assert (tmp_path / name).is_file(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["art.png", "art.ora", "art_flat.png", "art_shading.png", "art_lines.png"])  # no temporary file left

    lay = read_ora(ora)
    assert lay.flat.shape == (H, W, 3) and lay.shading.shape == (H, W) and lay.lines.shape == (H, W)
    out = rgb(png)
    assert np.array_equal(lay.compose(), out)  # exactly the PNG the CLI wrote
    # the separate PNGs are the same layers
    assert np.array_equal(rgb(tmp_path / "art_flat.png"), lay.flat)
    assert np.array_equal(rgb(tmp_path / "art_shading.png"), lay.shading)
    assert np.array_equal(rgb(tmp_path / "art_lines.png"), lay.lines)
    # region-true: the lines layer is the line art, the hinted region is flat and exactly the hint's color
    assert np.array_equal(lay.lines, normalize_input(Image.open(art)))
    assert (lay.flat[20:30, 20:60] == HINT).all()
    assert lay.shading.min() >= 150  # the shading only darkens, and boundedly (paint.SHADING_FLOOR)
    # the same command without --layers writes the same PNG
    plain = tmp_path / "plain"
    run_colorize(str(tiny_model), str(art), "-o", str(plain), "--hints", str(hints))
    assert np.array_equal(rgb(plain / "art.png"), out)
    assert sorted(p.name for p in plain.iterdir()) == ["art.png"]


def test_ora_structure_follows_the_spec(tiny_model, inputs, tmp_path):
    art, hints = inputs
    run_colorize(str(tiny_model), str(art), "-o", str(tmp_path), "--hints", str(hints), "--layers")
    ora = tmp_path / "art.ora"
    raw = ora.read_bytes()
    # mimetype: the first entry, stored: its name at byte 30 and its content right after (how file(1) sniffs it)
    assert raw[30:38] == b"mimetype" and raw[38:54] == MIMETYPE
    with zipfile.ZipFile(ora) as zf:
        infos = zf.infolist()
        assert infos[0].filename == "mimetype"
        assert infos[0].compress_type == zipfile.ZIP_STORED and infos[0].extra == b""
        assert zf.read("mimetype") == b"image/openraster"
        names = {i.filename for i in infos}
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png", "data/flat.png", "data/shading.png",
                "data/lines.png"} <= names
        root = ET.fromstring(zf.read("stack.xml"))
        assert root.tag == "image" and (root.get("w"), root.get("h")) == (str(W), str(H))
        stack = root.find("stack")
        layers = list(stack)
        # first child = top layer
        assert [el.get("name") for el in layers] == ["lines", "shading", "flat"]
        assert [el.get("composite-op") for el in layers] == ["svg:multiply", "svg:multiply", "svg:src-over"]
        for el in layers:
            assert el.tag == "layer" and el.get("src").startswith("data/") and el.get("src") in names
            layer_png = Image.open(io.BytesIO(zf.read(el.get("src"))))
            assert layer_png.size == (W, H) and layer_png.mode == "RGBA"
        merged = Image.open(io.BytesIO(zf.read("mergedimage.png")))
        assert np.array_equal(np.asarray(merged.convert("RGB")), rgb(tmp_path / "art.png"))
        thumb = Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png")))
        assert max(thumb.size) <= 256 and thumb.size == (W, H)  # small images: never upscaled
        assert "interlace" not in thumb.info


def test_thumbnail_of_a_large_image_fits_256_keeping_the_aspect():
    h, w = 300, 700
    lay = Layers(np.full((h, w, 3), 200, np.uint8), np.full((h, w), 255, np.uint8), np.full((h, w), 255, np.uint8))
    with zipfile.ZipFile(io.BytesIO(ora_bytes(lay))) as zf:
        thumb = Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png")))
    assert thumb.size == (256, round(h * 256 / w))


def test_soft_hints_and_baselines_give_flat_only_layers(tiny_model, inputs, tmp_path):
    art, hints = inputs
    run_colorize(str(tiny_model), str(art), "-o", str(tmp_path / "true"), "--hints", str(hints))
    run_colorize(str(tiny_model), str(art), "-o", str(tmp_path / "soft"), "--hints", str(hints), "--soft-hints",
                 "--layers")
    soft = rgb(tmp_path / "soft" / "art.png")
    assert not np.array_equal(soft, rgb(tmp_path / "true" / "art.png"))  # the network's own output differs
    lay = read_ora(tmp_path / "soft" / "art.ora")
    assert np.array_equal(lay.flat, soft) and (lay.shading == 255).all() and (lay.lines == 255).all()

    run_colorize("region-fill", str(art), "-o", str(tmp_path / "base"), "--hints", str(hints), "--layers")
    base = rgb(tmp_path / "base" / "art.png")
    lay = read_ora(tmp_path / "base" / "art.ora")
    assert np.array_equal(lay.compose(), base) and np.array_equal(lay.flat, base)
    assert (lay.shading == 255).all() and (lay.lines == 255).all()
    assert (base[20:30, 20:60] == HINT).all()


# ------------------------------------------------------------------------------------------ writing, reading


def small_layers(h: int = 20, w: int = 30, seed: int = 0) -> Layers:
    rng = np.random.default_rng(seed)
    return Layers(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(150, 256, (h, w), dtype=np.uint8),
                  rng.integers(0, 256, (h, w), dtype=np.uint8))


def test_write_ora_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "x.ora"
    path.write_bytes(b"old")
    a = small_layers()
    assert write_ora(path, a, title="x & <y>") == path  # the title is escaped, not XML
    back = read_ora(path)
    for k in ("flat", "shading", "lines"):
        assert np.array_equal(getattr(back, k), getattr(a, k)), k
    with pytest.raises(ValueError):  # bad layers: refused before anything is written
        write_ora(path, Layers(a.flat, a.shading[:5], a.lines))
    assert [p.name for p in tmp_path.iterdir()] == ["x.ora"]
    assert np.array_equal(read_ora(path).flat, a.flat)  # the old file is untouched
    assert ora_bytes(a) == ora_bytes(a)  # reproducible: the same layers give the same bytes


def test_shading_opacity_is_the_layer_opacity_not_baked_in():
    a = small_layers()
    a.shading_opacity = 0.35
    data = ora_bytes(a)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        root = ET.fromstring(zf.read("stack.xml"))
        merged = np.asarray(Image.open(io.BytesIO(zf.read("mergedimage.png"))).convert("RGB"))
    assert {el.get("name"): el.get("opacity") for el in root.iter("layer")} == {
        "lines": "1.0", "shading": "0.35", "flat": "1.0"}
    back = read_ora(io.BytesIO(data))
    assert back.shading_opacity == 0.35 and np.array_equal(back.shading, a.shading)  # the pixels at full strength
    assert np.array_equal(back.compose(), a.compose()) and np.array_equal(merged, a.compose())


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i, zf.read(i)) for i in zf.infolist()]


def _rezip(members: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, method in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def _edit(fn) -> bytes:
    """A good file's members (name, data, method) -> fn -> a new zip."""
    good = [(i.filename, d, i.compress_type) for i, d in _members(ora_bytes(small_layers()))]
    return _rezip(fn(good))


def _edit_stack(fn) -> bytes:
    def go(members):
        out = []
        for name, data, method in members:
            if name == "stack.xml":
                root = ET.fromstring(data)
                fn(root)
                data = ET.tostring(root)
            out.append((name, data, method))
        return out
    return _edit(go)


def _set(name: str, key: str, value: str):
    def fn(root):
        next(el for el in root.iter("layer") if el.get("name") == name).set(key, value)
    return fn


def _flat_on_top(root):
    stack = root.find("stack")
    flat = next(el for el in stack if el.get("name") == "flat")
    stack.remove(flat)
    stack.insert(0, flat)


BAD_ORA = {
    "empty": (b"", "not a valid Zip"),
    "a PNG": (cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes(), "not a valid Zip"),
    "truncated": (ora_bytes(small_layers())[:400], "not a valid Zip"),
    "mimetype not first": (_edit(lambda m: m[1:2] + m[:1] + m[2:]), "first entry"),
    "mimetype compressed": (_edit(lambda m: [(n, d, zipfile.ZIP_DEFLATED if n == "mimetype" else c)
                                             for n, d, c in m]), "uncompressed"),
    "wrong mimetype": (_edit(lambda m: [(n, b"image/png" if n == "mimetype" else d, c) for n, d, c in m]),
                       "image/openraster"),
    "no stack.xml": (_edit(lambda m: [x for x in m if x[0] != "stack.xml"]), "no stack.xml"),
    "stack.xml not XML": (_edit(lambda m: [(n, b"<image w=" if n == "stack.xml" else d, c) for n, d, c in m]),
                          "not valid XML"),
    "no size": (_edit_stack(lambda r: r.attrib.pop("w")), "integer w"),
    "no shading layer": (_edit_stack(_set("shading", "name", "shadows")), "'shading'"),
    "lines not multiply": (_edit_stack(_set("lines", "composite-op", "svg:src-over")), "composite-op"),
    "flat on top": (_edit_stack(_flat_on_top), "below"),
    "missing layer PNG": (_edit(lambda m: [x for x in m if x[0] != "data/flat.png"]), "not in the file"),
    "corrupt layer PNG": (_edit(lambda m: [(n, d[:60] if n == "data/lines.png" else d, c) for n, d, c in m]),
                          "data/lines.png"),
    "bad opacity": (_edit_stack(_set("flat", "opacity", "lots")), "opacity"),
}


@pytest.mark.parametrize("name", list(BAD_ORA))
def test_bad_ora_is_a_one_line_user_error(name, tmp_path):
    data, expect = BAD_ORA[name]
    path = tmp_path / "bad.ora"
    path.write_bytes(data)
    with pytest.raises(UserError) as e:
        read_ora(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)) and expect in msg, msg


def test_read_ora_applies_offsets_opacity_and_visibility():
    """Editors store layers cropped to their content (Krita) or hidden: read them over white, as an editor shows
    them (white: blank paper for flat, no change for the multiply layers)."""
    a = small_layers(20, 30)

    def crop_shading(members):
        out = []
        for name, data, method in members:
            if name == "data/shading.png":
                data = cv2.imencode(".png", np.full((5, 6), 100, np.uint8))[1].tobytes()
            out.append((name, data, method))
        return out

    raw = _edit(crop_shading)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = [(i.filename, zf.read(i), i.compress_type) for i in zf.infolist()]
    root = ET.fromstring(dict((n, d) for n, d, _ in members)["stack.xml"])
    for el in root.iter("layer"):
        if el.get("name") == "shading":
            el.set("x", "27")
            el.set("y", "-2")
        if el.get("name") == "lines":
            el.set("visibility", "hidden")
        if el.get("name") == "flat":
            el.set("opacity", "0.5")
    members = [(n, ET.tostring(root) if n == "stack.xml" else d, c) for n, d, c in members]
    back = read_ora(io.BytesIO(_rezip(members)))
    expect = np.full((20, 30), 255, np.uint8)
    expect[0:3, 27:30] = 100  # the 5x6 patch at (27, -2), clipped to the canvas
    assert np.array_equal(back.shading, expect)
    assert (back.lines == 255).all()  # hidden: no effect
    half = ((a.flat.astype(np.uint32) * 128 + 255 * 127 + 127) // 255).astype(np.uint8)  # alpha round(255 * 0.5)
    assert np.array_equal(back.flat, half)
