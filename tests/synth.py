"""Generated test images with known answers (no files shipped): colorful cartoons, and every kind of bad file."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def cartoon(seed: int, h: int = 96, w: int = 96) -> np.ndarray:
    """A flat-colored drawing with dark outlines: (h, w, 3) uint8 on white."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 255, np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        color = tuple(int(c) for c in rng.integers(30, 230, 3))
        if rng.random() < 0.5:
            c = (int(rng.integers(w // 5, 4 * w // 5)), int(rng.integers(h // 5, 4 * h // 5)))
            r = int(rng.integers(min(h, w) // 8, min(h, w) // 3))
            cv2.circle(img, c, r, color, -1)
            cv2.circle(img, c, r, (20, 20, 20), 2)
        else:
            p0 = (int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2)))
            p1 = (int(rng.integers(w // 2, w)), int(rng.integers(h // 2, h)))
            cv2.rectangle(img, p0, p1, color, -1)
            cv2.rectangle(img, p0, p1, (20, 20, 20), 2)
    return img


def png_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_corpus(root: Path, n_good: int = 24, size: int = 96) -> dict[str, list[str]]:
    """A folder corpus with tag sub-folders; returns the expected outcome of each file, by file name."""
    expect: dict[str, list[str]] = {"accepted": [], "near-duplicate": [], "bad": []}
    for i in range(n_good):
        tag = "cats" if i % 2 else "dogs"
        write(root / tag / f"good_{i}.png", png_bytes(cartoon(i, size, size)))
        expect["accepted"].append(f"good_{i}.png")
    # near-duplicate: the same drawing re-encoded as JPEG at another size
    big = cv2.resize(cartoon(0, size, size), (size * 2, size * 2), interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="JPEG", quality=90)
    write(root / "dogs" / "good_0_copy.jpg", buf.getvalue())
    # the group keeps its largest member (the 2x copy); the original is the recorded near-duplicate
    expect["accepted"].remove("good_0.png")
    expect["accepted"].append("good_0_copy.jpg")
    expect["near-duplicate"].append("good_0.png")
    # exact duplicate bytes in another folder: one manifest row, two origins
    write(root / "extra" / "good_1_again.png", png_bytes(cartoon(1, size, size)))
    return expect


def bad_files(root: Path, size: int = 96) -> dict[str, str]:
    """Bad inputs -> the rejection reason the build must record."""
    good = png_bytes(cartoon(99, size, size))
    gray = cv2.cvtColor(cv2.cvtColor(cartoon(98, size, size), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    out = {
        "zero.png": ("empty", b""),
        "text.png": ("not-an-image", b"hello, I am not a picture\n" * 10),
        "svg.png": ("not-an-image", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'),
        "truncated.png": ("corrupt", good[: len(good) // 2]),
        "garbage.jpg": ("not-an-image", bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))),
        "tiny.png": ("too-small", png_bytes(cartoon(97, 20, 20))),
        "gray.png": ("no-color", png_bytes(gray)),
        "blank.png": ("blank", png_bytes(np.full((size, size, 3), 255, np.uint8))),
        # 1-bit 12000x12000: a few KB on disk, 144 M pixels declared -> refused before decoding
        "bomb.png": ("too-many-pixels", bomb_png()),
    }
    for name, (_, data) in out.items():
        write(root / "bad" / name, data)
    return {name: reason for name, (reason, _) in out.items()}


def bomb_png() -> bytes:
    """A decompression bomb: a 1-bit 12000x12000 PNG, a few KB declaring 144 M pixels (144 MB decoded as mode 1,
    576 MB as RGBA)."""
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ filter fixtures
# Images with a known answer for each per-image filter of the build (tests/test_build_filters.py).


def text_page(h: int = 200, w: int = 260, color: tuple[int, int, int] = (150, 0, 0)) -> np.ndarray:
    """Rows of words in a dark color on white, nothing else: mostly text (colored, so it passes no-color)."""
    img = np.full((h, w, 3), 255, np.uint8)
    words = ["Linked Image", "Not Found", "lorem ipsum", "dolor sit amet", "consectetur"]
    for i, y in enumerate(range(28, h - 10, 34)):
        cv2.putText(img, words[i % len(words)], (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.8, color, 2, cv2.LINE_AA)
    return img


def placeholder_badge(h: int = 300, w: int = 240) -> np.ndarray:
    """Inkscape's "Linked Image Not Found" badge as openclipart shows it: a red frame, a red square with a white X
    and black bold text, on a white page."""
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (10, 10), (w - 11, h - 11), (255, 0, 0), 4)
    s = w // 3
    x0, y0 = (w - s) // 2, 30
    cv2.rectangle(img, (x0, y0), (x0 + s, y0 + s), (255, 0, 0), -1)
    m = s // 4
    cv2.line(img, (x0 + m, y0 + m), (x0 + s - m, y0 + s - m), (255, 255, 255), max(2, s // 10))
    cv2.line(img, (x0 + s - m, y0 + m), (x0 + m, y0 + s - m), (255, 255, 255), max(2, s // 10))
    for i, word in enumerate(("Linked", "Image", "Not Found")):
        cv2.putText(img, word, (30, y0 + s + 45 + 40 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 3, cv2.LINE_AA)
    return img


def small_subject(canvas: int = 400, subject: int = 30, seed: int = 3) -> np.ndarray:
    """A tiny drawing in the corner of a big white page."""
    img = np.full((canvas, canvas, 3), 255, np.uint8)
    img[20 : 20 + subject, 30 : 30 + subject] = cartoon(seed, subject, subject)
    return img


def banner(h: int = 60, w: int = 420, seed: int = 4) -> np.ndarray:
    """A drawing squeezed into a long strip (extreme aspect ratio)."""
    return cv2.resize(cartoon(seed, 96, 96), (w, h), interpolation=cv2.INTER_AREA)


def entangled(h: int = 160, w: int = 160, seed: int = 5) -> np.ndarray:
    """Colored confetti: hundreds of tiny outlined specks, far too busy to be line art."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 255, np.uint8)
    for _ in range(h * w // 40):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(img, c, int(rng.integers(1, 3)), color, -1)
    return img


def nearly_gray(seed: int = 6, size: int = 96) -> np.ndarray:
    """A cartoon desaturated to a faint tint (chroma below the color threshold everywhere)."""
    rgb = cartoon(seed, size, size).astype(np.float32)
    gray = rgb.mean(axis=2, keepdims=True)
    return np.clip(gray + (rgb - gray) * 0.12 + 0.5, 0, 255).astype(np.uint8)


def on_transparent(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 4): ``rgb`` with its white paper made transparent."""
    alpha = np.where((rgb >= 245).all(axis=2), 0, 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def png16(rgb: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG of ``rgb`` (values scaled to 0..65535)."""
    ok, data = cv2.imencode(".png", (rgb[..., ::-1].astype(np.uint16) * 257))
    assert ok
    return data.tobytes()


def cmyk_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def palette_transparent(rgb: np.ndarray) -> bytes:
    """A palette PNG whose white paper is the transparent palette entry."""
    img = Image.fromarray(rgb).quantize(colors=32)
    pal = np.array(img.getpalette()[: 3 * 32]).reshape(-1, 3)
    white = int(np.argmax(pal.sum(axis=1)))
    buf = io.BytesIO()
    img.save(buf, format="PNG", transparency=white)
    return buf.getvalue()


def animated(frames: list[np.ndarray], fmt: str) -> bytes:
    buf = io.BytesIO()
    imgs = [Image.fromarray(f) for f in frames]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    imgs[0].save(buf, format=fmt, save_all=True, append_images=imgs[1:], duration=100, loop=0, **kw)
    return buf.getvalue()


def exif_rotated_jpeg(rgb: np.ndarray) -> bytes:
    """A JPEG whose stored pixels are ``rgb`` turned 90 degrees counter-clockwise, with EXIF orientation 6 (rotate
    90 clockwise to display): decoded correctly it is ``rgb`` again, upright."""
    stored = np.ascontiguousarray(np.rot90(rgb, 1))
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()
