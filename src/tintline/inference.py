"""Colorize line art of any size with optional hints: the one code path used by CLI, eval and the server.

The network works on a grid whose sides are multiples of its ``multiple`` (2**depth). Inputs are normalized
(:func:`tintline.data.lineart.normalize_input`), scaled down when their long side exceeds ``max_side`` (the model
was trained on images of about its training size, so line thickness should match), padded with paper to the
multiple, colorized, cropped back, and scaled up to the input size. When scaled, the original full-resolution
lines are multiplied back over the upscaled colors so the output keeps the input's crisp lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from .baselines import BASELINES, Baseline
from .checkpoint import SHIPPED_MODEL, load_generator
from .data.dataset import encode_input, to_uint8
from .data.hints import hint_image_to_hints, load_hints, render_hints
from .data.imageio import BadImage, Limits, read_image_file
from .data.lineart import normalize_input


class Colorizer:
    def __init__(self, model: str | Path, device: str = "cpu", max_side: int | None = None):
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device available")
        self.device = torch.device(device)
        self.net, self.meta = load_generator(model, self.device)
        self.multiple = int(getattr(self.net, "multiple", 1))
        self.encoding = self.meta.get("hint_encoding", "sparse")
        # default working size: the training image size. The network then sees lines as thick as in training, and
        # larger inputs cost no more (the colors are upscaled, the full-resolution ink is multiplied back on top)
        self.max_side = max_side or int(self.meta.get("image_size", 256))

    @torch.no_grad()
    def colorize_lines(self, line: np.ndarray, hints: dict | None = None) -> np.ndarray:
        """line (H, W) uint8 (paper 255) + validated hints in input pixels -> (H, W, 3) uint8 RGB."""
        h, w = line.shape
        scale = min(1.0, self.max_side / max(h, w))
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        small = cv2.resize(line, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else line
        hint_colors, mask = render_hints(hints or {"points": [], "strokes": []}, sh, sw, scale=scale)
        ph, pw = -sh % self.multiple, -sw % self.multiple
        # pad with paper (and no hints); split the padding so the drawing stays centred in the receptive field
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        small_p = np.pad(small, pads, constant_values=255)
        colors_p = np.pad(hint_colors, (*pads, (0, 0)))
        mask_p = np.pad(mask, pads)
        x = encode_input(small_p, colors_p, mask_p, self.encoding).unsqueeze(0).to(self.device)  # (1, C, H', W')
        y = to_uint8(self.net(x)[0])  # (H', W', 3)
        y = y[pads[0][0] : pads[0][0] + sh, pads[1][0] : pads[1][0] + sw]
        if scale < 1:
            y = cv2.resize(y, (w, h), interpolation=cv2.INTER_CUBIC)
            # multiply the crisp full-resolution ink back over the smooth upscaled colors
            # uint8 * uint8 / 255 with rounding in one OpenCV pass (~10x cheaper than through float32 arrays)
            y = cv2.multiply(y, cv2.merge([line, line, line]), scale=1.0 / 255.0)
        return np.ascontiguousarray(y)

    def colorize_image(self, img: Image.Image, hints: dict | None = None) -> np.ndarray:
        return self.colorize_lines(normalize_input(img), hints)


def default_model() -> Path | None:
    """The model shipped with the package, when there is one."""
    return SHIPPED_MODEL if SHIPPED_MODEL.is_file() else None


def load_colorizer(model: str | Path, device: str = "cpu") -> Colorizer | Baseline:
    """A checkpoint path or run directory -> :class:`Colorizer`; ``default`` -> the shipped model; a baseline name
    (``white``, ``region-fill``) -> that baseline. A path that exists wins over a name."""
    if not Path(model).exists() and str(model) in BASELINES.names():
        return BASELINES.create(str(model))
    return Colorizer(model, device=device)  # "default" resolves to the shipped model in resolve_model_path


def colorize_files(model: str | Path, inputs: Sequence[str], out_dir: Path, hints_path: str | None = None,
                   device: str = "cpu") -> list[Path]:
    """Colorize each input into ``out_dir/<stem>.png``. One hints file (JSON, or a hint image of the inputs' size)
    applies to every input."""
    hints, hint_img = None, None
    if hints_path:
        if Path(hints_path).suffix.lower() == ".json":
            hints = load_hints(hints_path)
        else:  # a hint image: transparent PNG of the input's size with colored marks
            hint_img = read_image_file(hints_path, Limits())
    for name in inputs:
        if not Path(name).is_file():
            raise FileNotFoundError(f"input not found: {name}")
    colorizer = load_colorizer(model, device=device)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in inputs:
        try:
            img = read_image_file(name, Limits())
        except BadImage as e:
            raise BadImage(e.reason, f"{name}: {e.detail}") from e
        if hint_img is not None:
            hints = hint_image_to_hints(hint_img, img.size)
        rgb = colorizer.colorize_image(img, hints)
        out = out_dir / f"{Path(name).stem}.png"
        if out in written:  # two inputs with the same name from different folders
            out = out_dir / f"{Path(name).stem}_{len(written)}.png"
        Image.fromarray(rgb).save(out)
        written.append(out)
    return written
