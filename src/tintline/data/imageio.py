"""Bounded, defensive image decoding shared by import, build, colorize and serve.

Every decode goes through :func:`decode_image`, which checks bytes, the declared pixel count (before decoding, so a
decompression bomb is refused without allocating it), the real format (sniffed from content, never from the file
name), and fully loads the pixels so a truncated file fails here rather than later.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError

# Pillow's own bomb guard raises only above 2x its limit; we do our own check with a clear reason instead.
Image.MAX_IMAGE_PIXELS = None

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"}


class BadImage(UserError):
    """The input is not an image we accept. ``reason`` is a short machine-friendly tag for the manifest."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 50_000_000


def decode_image(data: bytes, limits: Limits = Limits()) -> Image.Image:
    """Decode ``data`` into an RGBA image (first frame, EXIF orientation applied).

    Raises :class:`BadImage` with reason ``empty``, ``too-large-file``, ``not-an-image``, ``unsupported-format``,
    ``too-many-pixels`` or ``corrupt``.
    """
    if len(data) == 0:
        raise BadImage("empty", "zero-byte file")
    if len(data) > limits.max_bytes:
        raise BadImage("too-large-file", f"{len(data)} bytes > limit {limits.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except Exception as e:  # PIL raises many types for garbage input
        raise BadImage("not-an-image", f"cannot identify image ({e.__class__.__name__})") from e
    if img.format not in ALLOWED_FORMATS:
        raise BadImage("unsupported-format", f"format {img.format}")
    w, h = img.size
    if w <= 0 or h <= 0:
        raise BadImage("corrupt", f"invalid size {w}x{h}")
    if w * h > limits.max_pixels:
        raise BadImage("too-many-pixels", f"{w}x{h} = {w * h} pixels > limit {limits.max_pixels}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.seek(0)  # animated GIF/WebP: the first frame
            img.load()
            img = ImageOps.exif_transpose(img)
            img = to_rgba(img)
    except BadImage:
        raise
    except Exception as e:
        raise BadImage("corrupt", f"decoding failed ({e.__class__.__name__}: {str(e)[:80]})") from e
    return img


def to_rgba(img: Image.Image) -> Image.Image:
    """Any mode (16-bit, CMYK, palette+transparency, LA, ...) -> 8-bit RGBA."""
    if img.mode == "RGBA":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("PA")
    return img.convert("RGBA")


def read_image_file(path: str | Path, limits: Limits = Limits()) -> Image.Image:
    p = Path(path)
    size = p.stat().st_size
    if size > limits.max_bytes:
        raise BadImage("too-large-file", f"{size} bytes > limit {limits.max_bytes}")
    return decode_image(p.read_bytes(), limits)


def composite_on_white(img: Image.Image | np.ndarray) -> np.ndarray:
    """RGBA image (or (H, W, 4) uint8 array) -> (H, W, 3) uint8 RGB with transparency flattened onto white."""
    arr = img if isinstance(img, np.ndarray) else np.asarray(to_rgba(img))
    rgb, alpha = arr[..., :3], arr[..., 3:4]
    if alpha.min() == 255:  # opaque (most line art): nothing to blend
        return np.ascontiguousarray(rgb)
    # integer blend, rounded: rgb * a/255 + 255 * (1 - a/255)
    a = alpha.astype(np.uint32)
    return ((rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def save_png(arr: np.ndarray, path: str | Path) -> None:
    """Write atomically (temp file + rename), so a kill never leaves a half-written image under the real name."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    Image.fromarray(arr).save(tmp, format="PNG", compress_level=1)
    tmp.replace(p)


# zlib level 1 with the "sub" row filter and run-length matching: on colorized line art about twice as fast as
# Pillow's compress_level=1 for the same size (benchmarks/serve_stages.py); results are for viewing, not archival
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
               cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def encode_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG bytes, fast."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), _PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
