"""Pictures of what the model sees and makes: sample grids for TensorBoard and HTML reports."""

from __future__ import annotations

import numpy as np
import torch


def _u8(t: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, 3) uint8 (gray replicated)."""
    t = t.detach().float().cpu().clamp(-1, 1)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return ((t + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def hint_overlay(inputs: torch.Tensor) -> np.ndarray:
    """Network inputs (B, 5, H, W) -> (B, H, W, 3) uint8: the line art, faded, with the hint marks drawn on it."""
    line = _u8(inputs[:, :1]).astype(np.float32)
    faded = 255 - (255 - line) * 0.5
    colors = _u8(inputs[:, 1:4]).astype(np.float32)
    mask = inputs[:, 4:5].detach().cpu().permute(0, 2, 3, 1).numpy() > 0.5  # (B, H, W, 1)
    return np.where(mask, colors, faded).astype(np.uint8)


def sample_grid(inputs: torch.Tensor, pred: torch.Tensor | None, target: torch.Tensor, max_rows: int = 8) -> np.ndarray:
    """One row per sample: line | hints | output | truth (output omitted when ``pred`` is None). -> (H', W', 3)."""
    n = min(inputs.shape[0], max_rows)
    cols = [_u8(inputs[:n, :1]), hint_overlay(inputs[:n])]
    if pred is not None:
        cols.append(_u8(pred[:n]))
    cols.append(_u8(target[:n]))
    h, w = cols[0].shape[1:3]
    gap = 4
    grid = np.full((n * (h + gap) - gap, len(cols) * (w + gap) - gap, 3), 255, np.uint8)
    for r in range(n):
        for c, col in enumerate(cols):
            grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = col[r]
    return grid


def tile(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Rows of equally sized (H, W, 3) or (H, W) uint8 images -> one (H', W', 3) uint8 grid on white."""
    cells = [[np.repeat(c[..., None], 3, axis=2) if c.ndim == 2 else c for c in r] for r in rows]
    h = max(c.shape[0] for r in cells for c in r)
    w = max(c.shape[1] for r in cells for c in r)
    ncol = max(len(r) for r in cells)
    grid = np.full((len(cells) * (h + gap) - gap, ncol * (w + gap) - gap, 3), 255, np.uint8)
    for i, r in enumerate(cells):
        for j, c in enumerate(r):
            grid[i * (h + gap) : i * (h + gap) + c.shape[0], j * (w + gap) : j * (w + gap) + c.shape[1]] = c
    return grid


def overlay_hints(line: np.ndarray, hint_colors: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """line (H, W) uint8, hint colors (H, W, 3), mask (H, W) bool -> faded line art with the marks, (H, W, 3)."""
    faded = (255 - (255 - line.astype(np.float32)) * 0.5).astype(np.uint8)
    rgb = np.repeat(faded[..., None], 3, axis=2)
    rgb[mask] = hint_colors[mask]
    return rgb
