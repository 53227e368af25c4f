"""Training samples: paired crops and flips drawn once and applied to both images, plus simulated hints.

Tensor conventions (shared with inference through :func:`encode_input` and :func:`to_uint8`):
line (1, H, W) in [-1, 1] with paper = +1; hint colors (3, H, W) in [-1, 1], zero where no hint; mask (1, H, W)
in {0, 1}; target RGB (3, H, W) in [-1, 1]. The network input is their concatenation, (5, H, W), plus for the
``region`` encoding the region fill of the hints, (4, H, W) more, plus for the ``tone`` encoding the page's gray
tone and a plane saying whether there is one, (2, H, W) more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from ..config import HintConfig
from ..regions import Segmentation, region_fill, segment
from .hints import render_hints, simulate_hints
from .manga import training_tone
from .store import Entry


def _to_unit(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> float (C, H, W) in [-1, 1]."""
    t = torch.from_numpy(np.array(arr, dtype=np.float32)).div_(127.5).sub_(1.0)  # copy: PIL arrays are read-only
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)


HINT_ENCODINGS = {"sparse": 5, "region": 9, "tone": 11}  # name -> network input channels


def input_channels(encoding: str) -> int:
    if encoding not in HINT_ENCODINGS:
        raise ValueError(f"unknown hint encoding {encoding!r}; known: {', '.join(HINT_ENCODINGS)}")
    return HINT_ENCODINGS[encoding]


def _marks(colors: np.ndarray, mask: np.ndarray) -> list[torch.Tensor]:
    m = torch.from_numpy(np.array(mask, dtype=np.float32)).unsqueeze(0)  # (1, H, W)
    return [_to_unit(colors) * m, m]


def encode_input(line: np.ndarray, hint_colors: np.ndarray, mask: np.ndarray, encoding: str = "sparse",
                 seg: Segmentation | None = None, tone: np.ndarray | None = None) -> torch.Tensor:
    """line (H, W) uint8, hint_colors (H, W, 3) uint8, mask (H, W) bool -> (C, H, W) float network input.

    sparse: [line, hint rgb, hint mask] (5 channels). region: the same plus the hints flooded into their closed
    regions, [fill rgb, fill mask] (9 channels), so hints reach whole areas from the first step of training.
    tone: region's 9 plus [tone, has tone] (11 channels): ``tone`` (H, W) uint8 is a gray page's own shading (the
    page descreened, lines included; paper 255), zeros and a 0 plane when there is none (line art).
    """
    parts = [_to_unit(line), *_marks(hint_colors, mask)]
    if encoding in ("region", "tone"):
        parts += _marks(*region_fill(line, hint_colors, mask, seg=seg))
    if encoding == "tone":
        h, w = line.shape
        given = tone is not None
        parts += [_to_unit(tone) if given else torch.zeros(1, h, w), torch.full((1, h, w), float(given))]
    elif encoding not in ("sparse", "region"):
        input_channels(encoding)  # raises with the known names
    return torch.cat(parts, dim=0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) in [-1, 1] -> (H, W, 3) / (H, W) uint8."""
    a = ((t.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8)
    return a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()


def load_pair(entry: Entry) -> tuple[np.ndarray, np.ndarray]:
    """-> color (H, W, 3) uint8, line (H, W) uint8."""
    with Image.open(entry.color_path) as c, Image.open(entry.line_path) as line:
        return np.asarray(c.convert("RGB")), np.asarray(line.convert("L"))


class PairDataset(Dataset):
    """Accepted entries of one split as dicts of tensors: input (5, C, C), target (3, C, C), line, hints, mask.

    ``train=True``: random zoom in ``scale``, random crop of side ``crop`` and horizontal flip (each drawn once and
    applied to line art and color alike), random hints. Indexed by ``(epoch, index)`` (what :class:`EpochSampler`
    yields) the randomness is a function of ``(seed, epoch, index)``: the same sample of the same epoch is the same
    crop with the same hints in every run, on every rank, before and after a resume. Indexed by a plain int it is
    drawn from torch's global generator (a shuffling DataLoader of your own).
    ``train=False``: the full image, and hints drawn from a generator seeded by the sample index, so every
    evaluation of the same model sees the same hints.
    """

    def __init__(self, entries: Sequence[Entry], hints: HintConfig, crop: int | None = None, flip: bool = False,
                 train: bool = True, seed: int = 0, hint_count: int | None = None, encoding: str = "sparse",
                 scale: tuple[float, float] = (1.0, 1.0), p_tone: float = 0.0):
        input_channels(encoding)
        if not entries:
            raise ValueError("no entries")
        self.entries = list(entries)
        self.hints = hints
        self.crop = crop
        self.flip = flip
        self.train = train
        self.seed = seed
        self.hint_count = hint_count
        self.encoding = encoding
        self.scale = scale
        self.p_tone = p_tone  # tone encoding: share of samples that also get their page's gray tone
        self.drop = 0.0  # share of hint marks dropped; the trainer raises it during training (HintConfig.drop)

    def __len__(self) -> int:
        return len(self.entries)

    def _rng(self, index: int, epoch: int | None) -> np.random.Generator:
        if self.train and epoch is not None:
            return np.random.default_rng([self.seed, epoch, index])
        if self.train:
            # torch's seed differs per worker and per epoch, and is itself seeded by torch.manual_seed
            return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        return np.random.default_rng([self.seed, index])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (None, int(key))
        color, line = load_pair(self.entries[index])
        rng = self._rng(index, epoch)
        if self.train and self.scale != (1.0, 1.0):
            # one random zoom for both images; zoomed out, a crop shows the whole drawing and its paper around it
            s = float(rng.uniform(*self.scale))
            side = max(self.crop or 1, round(color.shape[0] * s))
            if side != color.shape[0]:
                color = cv2.resize(color, (side, side), interpolation=cv2.INTER_AREA)
                line = cv2.resize(line, (side, side), interpolation=cv2.INTER_AREA)
        if self.crop and self.crop < color.shape[0]:
            y = int(rng.integers(0, color.shape[0] - self.crop + 1))
            x = int(rng.integers(0, color.shape[1] - self.crop + 1))
            color = color[y : y + self.crop, x : x + self.crop]
            line = line[y : y + self.crop, x : x + self.crop]
        if self.flip and rng.random() < 0.5:
            color, line = color[:, ::-1], line[:, ::-1]
        hints = simulate_hints(color, line, self.hints, rng, count=self.hint_count, drop=self.drop)
        hint_colors, mask = render_hints(hints, *line.shape)
        seg = segment(line)  # once: the hint encoding's region fill and the region-pooled loss share it
        tone = None
        if self.encoding == "tone" and self.p_tone > 0 and rng.random() < self.p_tone:
            tone = training_tone(np.ascontiguousarray(color), np.ascontiguousarray(line), rng)
        return {
            "input": encode_input(line, hint_colors, mask, self.encoding, seg=seg, tone=tone),
            "target": _to_unit(color),
            "regions": torch.from_numpy(seg.paper_labels().astype(np.int64)),  # (H, W), 0 on ink
            "index": torch.tensor(index),
        }


class EpochSampler(Sampler):
    """An endless, deterministic, resumable and rank-sharded order of ``(epoch, index)`` keys for :class:`PairDataset`.

    Epoch ``e`` is a permutation of ``range(n)`` drawn from ``(seed, e)``; rank ``r`` of ``world`` takes every
    ``world``-th index of it starting at ``r`` (the DDP split: no two ranks see the same image in an epoch), truncated
    to whole batches so every epoch has :attr:`batches_per_epoch` batches on every rank. ``start_batch`` skips that
    many batches without loading them, which is how a resumed run continues the data order exactly where the
    checkpoint left it (the order does not depend on any generator state).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1, start_batch: int = 0):
        if n // world < batch_size:
            raise ValueError(f"{n} training images are too few for batch size {batch_size} on {world} rank(s)")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.batches_per_epoch = (n // world) // batch_size
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = divmod(self.start_batch, self.batches_per_epoch)
        per_epoch = self.batches_per_epoch * self.batch_size
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)[self.rank :: self.world][:per_epoch]
            for i in order[skip * self.batch_size :].tolist():
                yield epoch, i
            epoch, skip = epoch + 1, 0
