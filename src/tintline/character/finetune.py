"""Fine-tune a generator on one character's references: strong augmentation, no hints, minutes on a CPU.

A network trained on many drawings hedges on a character it never saw; a few minutes on that character's own
references teach it the character's colors (the method's final scope: one character is feasible where "anything"
is not). Each training sample is one reference, augmented the way new drawings of the character differ from it:

* geometry: scale 0.5-1.5 (around the network's working size), rotation up to ±20°, horizontal flip, an elastic
  warp (a smooth random displacement field, like a thin-plate warp of the limbs), a crop centred on a random pixel
  of the drawing;
* line art re-made after the warp in a random one of the project's line styles (:data:`tintline.data.lineart.
  LINE_STYLES`; the alpha style uses the drawing's non-white pixels as its mask), or the user's own line art warped
  the same way when it was given;
* no hints: the character model colors without them.

The objective is the training objective (:class:`tintline.objective.Pix2PixObjective`: L1, the region-pooled color
loss and, for a generator with a color-class head, the class loss). The head's palette is refitted to the
references' own region colors first (:func:`tintline.regions.palette.fit_palette`), so the head chooses among the
character's colors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..config import LossConfig
from ..data.dataset import encode_input, input_channels
from ..data.lineart import LINE_STYLES, make_lineart
from ..objective import Pix2PixObjective
from ..regions import segment
from ..regions.palette import fit_palette


@dataclass
class Augment:
    """Ranges of the reference augmentation (see the module docstring)."""

    scale: tuple[float, float] = (0.5, 1.5)
    rotate: float = 20.0  # degrees, either way
    elastic: float = 0.03  # displacement amplitude as a share of the image side
    crop: int = 128


def _alpha(color: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 on white -> (H, W) uint8 mask of the drawing (non-white pixels, closed and smoothed)."""
    drawn = (color.min(axis=2) < 245).astype(np.uint8) * 255
    return cv2.GaussianBlur(cv2.morphologyEx(drawn, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)), (3, 3), 0)


def augment(color: np.ndarray, line: np.ndarray | None, rng: np.random.Generator, side: int,
            aug: Augment) -> tuple[np.ndarray, np.ndarray]:
    """One training sample from a reference: color (H, W, 3) uint8 on white, its line art (H, W) uint8 when the user
    gave it (else None: made from the warped color), ``side`` the network's working long side -> (color crop
    (c, c, 3), line crop (c, c)) with c = ``aug.crop``."""
    h, w = color.shape[:2]
    s = float(rng.uniform(*aug.scale)) * side / max(h, w)
    angle = float(rng.uniform(-aug.rotate, aug.rotate))
    out = max(aug.crop, int(math.ceil(max(h, w) * s)))  # a square canvas holding the whole turned drawing
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, s)
    m[:, 2] += (out / 2 - w / 2, out / 2 - h / 2)
    if rng.random() < 0.5:  # mirror: x -> out - x after the turn
        m[0] = -m[0]
        m[0, 2] += out
    # elastic: a random displacement on a 4x4 grid, upsampled smoothly (limbs bend, proportions shift)
    grid = rng.normal(0, aug.elastic * out, (2, 4, 4)).astype(np.float32)
    dx, dy = (cv2.resize(g, (out, out), interpolation=cv2.INTER_CUBIC) for g in grid)
    yy, xx = np.mgrid[0:out, 0:out].astype(np.float32)
    inv = cv2.invertAffineTransform(m)  # output pixel -> reference pixel, then displaced
    mx = (inv[0, 0] * (xx + dx) + inv[0, 1] * (yy + dy) + inv[0, 2]).astype(np.float32)  # (out, out)
    my = (inv[1, 0] * (xx + dx) + inv[1, 1] * (yy + dy) + inv[1, 2]).astype(np.float32)
    # remap samples and does not average: a shrunk drawing is blurred first against aliasing
    src = cv2.GaussianBlur(color, (0, 0), 0.4 / s) if s < 0.75 else color
    warped = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    if line is not None:
        lines = cv2.remap(line, mx, my, cv2.INTER_LINEAR, borderValue=255)
    else:
        names = list(LINE_STYLES)
        style = names[int(rng.integers(len(names)))]
        params = LINE_STYLES[style].sample(rng)
        alpha = _alpha(warped) if LINE_STYLES[style].needs_alpha else None
        lines = make_lineart(warped, alpha, style, params)
    c = aug.crop
    # centre the crop on a random pixel of the drawing (a uniform crop is mostly paper around a sprite)
    ys, xs = np.nonzero(warped[::4, ::4].min(axis=2) < 245)
    if len(ys):
        k = int(rng.integers(len(ys)))
        y0 = int(np.clip(ys[k] * 4 - c // 2, 0, out - c))
        x0 = int(np.clip(xs[k] * 4 - c // 2, 0, out - c))
    else:
        y0, x0 = int(rng.integers(0, out - c + 1)), int(rng.integers(0, out - c + 1))
    return (np.ascontiguousarray(warped[y0 : y0 + c, x0 : x0 + c]),
            np.ascontiguousarray(lines[y0 : y0 + c, x0 : x0 + c]))


def _to_unit(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(a.astype(np.float32) / 127.5 - 1.0)
    return t.permute(2, 0, 1) if t.ndim == 3 else t[None]


def make_batch(refs: Sequence[tuple[np.ndarray, np.ndarray | None]], rng: np.random.Generator, size: int,
               encoding: str, side: int, aug: Augment) -> dict[str, torch.Tensor]:
    """``size`` augmented samples, hint-free, as the trainer's batches: input, target, regions (0 on ink)."""
    inputs, targets, regions = [], [], []
    c = aug.crop
    for _ in range(size):
        color, line = refs[int(rng.integers(len(refs)))]
        col, lin = augment(color, line, rng, side, aug)
        seg = segment(lin)
        inputs.append(encode_input(lin, np.zeros((c, c, 3), np.uint8), np.zeros((c, c), bool), encoding, seg=seg))
        targets.append(_to_unit(col))
        regions.append(torch.from_numpy(seg.paper_labels().astype(np.int64)))
    return {"input": torch.stack(inputs), "target": torch.stack(targets), "regions": torch.stack(regions)}


def fine_tune(net: torch.nn.Module, refs: Sequence[tuple[np.ndarray, np.ndarray | None]], minutes: float,
              encoding: str, side: int = 256, batch_size: int = 8, lr: float = 2e-4, seed: int = 0,
              aug: Augment | None = None, progress: bool = True, max_steps: int = 0,
              on_step: Callable[[int, float], None] | None = None) -> dict:
    """Train ``net`` (a generator, modified in place) on the references for ``minutes`` of wall-clock time (or
    ``max_steps`` steps when > 0). refs: [(color (H, W, 3) uint8 on white, user line art (H, W) uint8 or None)].
    Returns a summary for the character file's metadata: steps, seconds, first and last loss (mean of 20 steps)."""
    aug = aug or Augment()
    net.train()
    input_channels(encoding)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    head = getattr(net, "classes", None)
    palette = None
    if isinstance(head, torch.nn.Module):
        pairs = [(c, line if line is not None else make_lineart(c, None, "xdog", LINE_STYLES["xdog"].sample(rng)))
                 for c, line in refs]
        head.palette.copy_(torch.from_numpy(fit_palette(pairs, len(head.palette), seed=seed)))
        palette = head.palette
    objective = Pix2PixObjective(net, None, LossConfig(), palette=palette)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr, betas=(0.5, 0.999))
    budget = minutes * 60.0
    losses: list[float] = []
    start = time.monotonic()
    bar = tqdm(total=max_steps if max_steps else int(budget), unit="step" if max_steps else "s",
               desc="fine-tune", disable=not progress, dynamic_ncols=True)
    step = 0
    while True:
        elapsed = time.monotonic() - start
        if (max_steps and step >= max_steps) or (not max_steps and elapsed >= budget):
            break
        batch = make_batch(refs, rng, batch_size, encoding, side, aug)
        fake = objective.generate(batch)
        loss, logs = objective.g_step(batch, fake)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(logs["loss/g"]))
        if on_step is not None:
            on_step(step, losses[-1])
        if max_steps:
            bar.update(1)
        else:
            bar.n = min(int(time.monotonic() - start), int(budget))
            bar.refresh()
        bar.set_postfix_str(f"step {step} | loss {np.mean(losses[-20:]):.2f}", refresh=False)
    bar.close()
    net.eval()
    return {"steps": step, "seconds": round(time.monotonic() - start, 1), "batch_size": batch_size, "lr": lr,
            "loss_start": round(float(np.mean(losses[:20])), 3) if losses else None,
            "loss_end": round(float(np.mean(losses[-20:])), 3) if losses else None}
