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
        "bomb.png": ("too-many-pixels", _bomb()),
    }
    for name, (_, data) in out.items():
        write(root / "bad" / name, data)
    return {name: reason for name, (reason, _) in out.items()}


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, format="PNG")
    return buf.getvalue()
