"""The colorist's three layers (:class:`~tintline.regions.paint.Layers`) as an OpenRaster file (``.ora``).

OpenRaster is the layered-image exchange format of Krita, GIMP and MyPaint. Followed here, from the specification
at https://www.openraster.org/ (baseline: "File Layout Specification" and "Layer Stack Specification"):

* a Zip archive whose **first** entry is ``mimetype``, STORED (not compressed), holding exactly
  ``image/openraster`` (no newline), so the type can be sniffed from byte 30 of the file;
* ``stack.xml`` (UTF-8): ``<image version w h>`` holding one root ``<stack>``; the stack's **first child is the
  top layer**. Each ``<layer>`` names its PNG by its full path in the archive (``src="data/…png"``) and its blend
  mode by a ``composite-op`` from W3C Compositing and Blending (``svg:src-over``, ``svg:multiply``);
* the layer PNGs under ``data/``; ``mergedimage.png``, the full-size composite (required since 0.0.5);
  ``Thumbnails/thumbnail.png``, a non-interlaced 8-bit PNG of at most 256x256 pixels, aspect kept, never upscaled.

tintline's stack, top to bottom::

    lines    svg:multiply   the line art (paper 255 = no change)
    shading  svg:multiply   the network's shading, only darkening (255 = no change)
    flat     svg:src-over   one flat color per closed region

so ``mergedimage.png`` = :meth:`Layers.compose` = flat × shading × lines. The shading layer's strength
(``Layers.shading_opacity``) is its ``opacity`` attribute, not baked into its pixels, so it can be turned up or
down in the editor. Layers are written as opaque 8-bit RGBA (gray layers with R = G = B): every reader takes RGBA,
and the layers stay in the image's color space in Krita (a grayscale PNG would become a grayscale layer). GIMP 2.10
and later may blend ``multiply`` in linear light and Krita rounds each multiply separately, so an editor's own
composite can differ from ``mergedimage.png`` by a level or two; ``mergedimage.png`` is the exact one.
"""

from __future__ import annotations

import io
import os
import secrets
import zipfile
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree as ET

import cv2
import numpy as np

from ..data.imageio import BadImage, Limits, composite_on_white, decode_image
from ..errors import UserError
from .paint import Layers

MIMETYPE = b"image/openraster"
SPEC_VERSION = "0.0.5"  # the Layer Stack version whose requirements (mergedimage.png) are met
THUMBNAIL_SIDE = 256
# (name, composite-op), top to bottom: the order of stack.xml
STACK = (("lines", "svg:multiply"), ("shading", "svg:multiply"), ("flat", "svg:src-over"))
MAX_STACK_XML = 1024 * 1024  # bytes; tintline's is < 1 KB, Krita's for hundreds of layers well under this
READ_LIMITS = Limits()  # per layer PNG: the same byte and pixel limits as any other input image
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # Zip entry dates: the same layers give the same bytes (reproducible files)
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]  # layers are mostly flat areas: level 3 is small and quick


def _png_rgba(arr: np.ndarray) -> bytes:
    """(H, W) gray or (H, W, 3) RGB uint8 -> opaque RGBA PNG bytes (non-interlaced, 8 bits per channel)."""
    code = cv2.COLOR_GRAY2BGRA if arr.ndim == 2 else cv2.COLOR_RGB2BGRA
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(arr), code), _PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _png_rgb(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> RGB PNG bytes."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), _PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def thumbnail(rgb: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """(H, W, 3) uint8 -> the largest copy that fits in side x side, aspect kept, never upscaled."""
    h, w = rgb.shape[:2]
    k = min(1.0, side / max(h, w))
    if k >= 1.0:
        return rgb
    tw, th = max(1, min(side, round(w * k))), max(1, min(side, round(h * k)))
    return cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)


def _check_layers(layers: Layers) -> tuple[int, int]:
    h, w = layers.lines.shape[:2]
    ok = (layers.flat.shape == (h, w, 3) and layers.shading.shape == (h, w) and layers.lines.shape == (h, w)
          and all(a.dtype == np.uint8 for a in (layers.flat, layers.shading, layers.lines)))
    if not ok or h < 1 or w < 1:
        raise ValueError(f"layers must be flat (H, W, 3), shading and lines (H, W), all uint8; got "
                         f"{layers.flat.shape} {layers.flat.dtype}, {layers.shading.shape} {layers.shading.dtype}, "
                         f"{layers.lines.shape} {layers.lines.dtype}")
    return h, w


def stack_xml(w: int, h: int, title: str = "tintline", shading_opacity: float = 1.0) -> bytes:
    """The Layer Stack document for tintline's three layers on a w x h image (UTF-8 bytes)."""
    opacity = {"shading": repr(float(min(max(shading_opacity, 0.0), 1.0)))}  # repr: read back to the same float
    image = ET.Element("image", {"version": SPEC_VERSION, "w": str(w), "h": str(h), "xres": "72", "yres": "72"})
    stack = ET.SubElement(image, "stack", {"name": title})
    for name, op in STACK:  # first child = top layer
        ET.SubElement(stack, "layer", {"name": name, "src": f"data/{name}.png", "x": "0", "y": "0",
                                       "opacity": opacity.get(name, "1.0"), "visibility": "visible",
                                       "composite-op": op})
    ET.indent(image)
    return ET.tostring(image, encoding="UTF-8", xml_declaration=True) + b"\n"


def ora_bytes(layers: Layers, title: str = "tintline") -> bytes:
    """:class:`Layers` -> the bytes of an OpenRaster file (see the module docstring for what it holds)."""
    h, w = _check_layers(layers)
    merged = layers.compose()  # (H, W, 3)
    members = [
        ("mimetype", MIMETYPE, zipfile.ZIP_STORED),  # first and uncompressed, as the spec requires
        ("stack.xml", stack_xml(w, h, title, layers.shading_opacity), zipfile.ZIP_DEFLATED),
        # PNG data is already deflated: storing it again compressed costs time and gains nothing
        ("data/lines.png", _png_rgba(layers.lines), zipfile.ZIP_STORED),
        ("data/shading.png", _png_rgba(layers.shading), zipfile.ZIP_STORED),
        ("data/flat.png", _png_rgba(layers.flat), zipfile.ZIP_STORED),
        ("Thumbnails/thumbnail.png", _png_rgb(thumbnail(merged)), zipfile.ZIP_STORED),
        ("mergedimage.png", _png_rgb(merged), zipfile.ZIP_STORED),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, method in members:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = method
            info.external_attr = 0o644 << 16  # rw-r--r-- when unpacked with unzip
            zf.writestr(info, data)
    return buf.getvalue()


def write_ora(path: str | Path, layers: Layers, title: str = "tintline") -> Path:
    """Write ``layers`` as an OpenRaster file at ``path``, atomically: a temporary file in the same folder, then
    ``os.replace``, so a reader (or a crash) never sees half a file under the real name. Returns the path."""
    p = Path(path)
    data = ora_bytes(layers, title)
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 leaves the permissions to the umask, like any other file the user writes
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


# ------------------------------------------------------------------------------------------------ reading


def _int(el: ET.Element, key: str, default: str | None = None) -> int:
    v = el.get(key, default)
    try:
        return int(v)  # type: ignore[arg-type]  # None (a missing attribute) raises TypeError
    except (TypeError, ValueError):
        raise UserError(f"<{el.tag}> has no valid integer {key}= ({str(v)[:40]!r})") from None


def _opacity(el: ET.Element) -> float:
    try:
        opacity = float(el.get("opacity", "1"))
    except ValueError:
        raise UserError(f"layer {el.get('name')!r}: opacity {el.get('opacity')[:20]!r} is not a number") from None
    if not 0.0 <= opacity <= 1.0:
        raise UserError(f"layer {el.get('name')!r}: opacity {opacity} is not in [0, 1]")
    return opacity


def _layer_pixels(zf: zipfile.ZipFile, el: ET.Element, w: int, h: int, bake_opacity: bool = True) -> np.ndarray:
    """One <layer> -> (h, w, 3) uint8 RGB on the image canvas, composited over white: white is both blank paper
    for the flat layer and "no change" for a multiply layer. Offsets and visibility are applied, and the opacity
    unless ``bake_opacity`` is False (the shading layer keeps its own)."""
    canvas = np.full((h, w, 3), 255, np.uint8)
    if el.get("visibility", "visible") == "hidden":
        return canvas
    src = el.get("src", "")
    try:
        info = zf.getinfo(src)
    except KeyError:
        raise UserError(f"layer {el.get('name')!r}: src {src[:80]!r} is not in the file") from None
    if info.file_size > READ_LIMITS.max_bytes:
        raise UserError(f"layer {el.get('name')!r}: {src} is {info.file_size} bytes (limit {READ_LIMITS.max_bytes})")
    try:
        rgba = np.asarray(decode_image(zf.read(info), READ_LIMITS)).copy()  # (h', w', 4)
    except BadImage as e:
        raise UserError(f"layer {el.get('name')!r}: {src}: {e}") from None
    opacity = _opacity(el) if bake_opacity else 1.0
    if opacity < 1.0:
        rgba[..., 3] = np.round(rgba[..., 3] * opacity).astype(np.uint8)
    x, y = _int(el, "x", "0"), _int(el, "y", "0")
    # paste at (x, y), clipped to the canvas (editors such as Krita store layers cropped to their content)
    lh, lw = rgba.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + lw, w), min(y + lh, h)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = composite_on_white(rgba[y0 - y:y1 - y, x0 - x:x1 - x])
    return canvas


def _read(zf: zipfile.ZipFile) -> Layers:
    infos = zf.infolist()
    if not infos or infos[0].filename != "mimetype":
        raise UserError("the first entry is not 'mimetype'")
    if infos[0].compress_type != zipfile.ZIP_STORED or zf.read(infos[0]) != MIMETYPE:
        raise UserError("'mimetype' is not an uncompressed 'image/openraster'")
    try:
        info = zf.getinfo("stack.xml")
    except KeyError:
        raise UserError("no stack.xml") from None
    if info.file_size > MAX_STACK_XML:
        raise UserError(f"stack.xml is {info.file_size} bytes (limit {MAX_STACK_XML})")
    try:
        # expat (>= 2.4.1, bundled with Python) refuses entity-expansion bombs; ElementTree fetches nothing external
        root = ET.fromstring(zf.read(info))
    except ET.ParseError as e:
        raise UserError(f"stack.xml is not valid XML ({e})") from None
    if root.tag != "image":
        raise UserError(f"stack.xml: the root element is <{root.tag[:40]}>, not <image>")
    w, h = _int(root, "w"), _int(root, "h")
    if w < 1 or h < 1 or w * h > READ_LIMITS.max_pixels:
        raise UserError(f"stack.xml: image size {w}x{h} is empty or over {READ_LIMITS.max_pixels} pixels")
    stack = root.find("stack")
    if stack is None:
        raise UserError("stack.xml: <image> has no <stack>")
    # by name; document order = top to bottom (nested stacks included, their layers in place)
    order = [el.get("name") for el in stack.iter("layer")]
    found: dict[str, ET.Element] = {}
    for el in stack.iter("layer"):
        found.setdefault(el.get("name", ""), el)
    missing = [name for name, _ in STACK if name not in found]
    if missing:
        raise UserError(f"stack.xml: no layer named {', '.join(map(repr, missing))} (tintline writes lines, shading"
                        " and flat)")
    for name, op in STACK:
        got = found[name].get("composite-op", "svg:src-over")  # the spec's default
        if got != op:
            raise UserError(f"stack.xml: layer {name!r} has composite-op {got[:40]!r}, expected {op!r}")
    if order.index("flat") < max(order.index("lines"), order.index("shading")):
        raise UserError("stack.xml: layer 'flat' must lie below 'lines' and 'shading'")
    flat = _layer_pixels(zf, found["flat"], w, h)
    # a multiply layer is one gray level per pixel; an edited colored one is read as its luma
    shading = cv2.cvtColor(_layer_pixels(zf, found["shading"], w, h, bake_opacity=False), cv2.COLOR_RGB2GRAY)
    lines = cv2.cvtColor(_layer_pixels(zf, found["lines"], w, h), cv2.COLOR_RGB2GRAY)
    return Layers(flat, shading, lines, shading_opacity=_opacity(found["shading"]))


def read_ora(path: str | Path | BinaryIO) -> Layers:
    """An OpenRaster file (a path or a binary file object) -> :class:`Layers`: flat (H, W, 3), shading and lines
    (H, W), uint8, found by their ``name`` attribute, and the shading layer's opacity as ``shading_opacity``.
    Other layers are ignored; a layer's offset and visibility (and the opacity of flat and lines) are applied over
    white (paper for flat, "no change" for the multiply layers).

    Raises :class:`~tintline.errors.UserError` (one line) for a file that is not a Zip, whose first entry is not an
    uncompressed ``mimetype`` of ``image/openraster``, or whose stack lacks these layers or their blend modes."""
    label = str(path) if isinstance(path, (str, Path)) else str(getattr(path, "name", "OpenRaster data"))
    try:
        with zipfile.ZipFile(path) as zf:
            return _read(zf)
    except UserError as e:
        msg = f"{label}: not a tintline OpenRaster file: {e}"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:  # also a member's bad CRC
        msg = f"{label}: not an OpenRaster file (not a valid Zip archive: {e})"
    except (RuntimeError, NotImplementedError, ValueError) as e:  # an encrypted member, an unknown compression
        msg = f"{label}: cannot read the OpenRaster file ({str(e)[:120]})"
    raise UserError(" ".join(msg.split()))  # one line, whatever the underlying message held
