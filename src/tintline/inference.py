"""Colorize line art of any size with optional hints: the one code path used by CLI, eval and the server.

The network works on a grid whose sides are multiples of its ``multiple`` (2**depth). Inputs are normalized
(:func:`tintline.data.lineart.normalize_input`), scaled down when their long side exceeds ``max_side`` (the model
was trained on images of about its training size, so line thickness should match), padded with paper to the
multiple, colorized, cropped back, and scaled up to the input size. The output is then made region-true
(:mod:`tintline.regions.paint`): regions come from the full-resolution line art, so colors never cross a closed
line; hinted regions take their hint's color exactly. ``soft_hints`` keeps the network's own output instead (with
the full-resolution lines multiplied back over the upscaled colors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .baselines import BASELINES, Baseline
from .checkpoint import SHIPPED_MODEL, load_generator
from .data.dataset import encode_input, to_uint8
from .data.hints import hint_image_to_hints, load_hints, render_hint_items, render_hints
from .data.imageio import BadImage, Limits, read_image_file
from .data.manga import Page, colorize_page, page_kind, read_page
from .errors import UserError
from .models.generator import multiply_blend
from .regions import Segmentation, segment
from .regions import propagate as propagation
from .regions.ora import write_ora
from .regions.paint import Layers, paint, region_votes
from .regions.palette import class_votes, fit_lightness, neighbourhoods, region_lightness
from .regions.segment import line_width

SOFT_PREFIX = "soft:"  # a model name prefix: that model with soft hints
OWN_PREFIX = "own:"  # a model name prefix: that model without hint propagation (its own colors for unhinted regions)
DEFAULT_WHITE = 6.0  # unhinted regions voted within this CIELAB distance of white are painted white
DEFAULT_SHADING = 0.0  # strength of the network's shading on the flat colors (0: flat colors only)
# an unhinted region takes its color-class choice when the class head gives it at least this chance of being
# right (CIEDE2000 < 10); otherwise the regression's vote (calibrated on validation: benchmarks/shading.py)
DEFAULT_CONFIDENCE = 0.0
# a gray page tells each region's lightness: the class head's choice is weighed by how well each palette color's L*
# fits the region's (a Gaussian of this width in L* units; 0: not used). Chosen on validation pages.
DEFAULT_TONE_SIGMA = 10.0
# on a gray page whose lightness is kept, an unhinted region whose best color is less likely to be right than this
# stays neutral (the page's own gray): no coloring rather than a likely wrong one (0: always colored)
DEFAULT_TONE_FLOOR = 0.3
# native detail (issue 14): the input is scaled so its lines are about as thick as in training, never below the
# fixed working size; beyond TILE px the network runs on overlapping tiles (activation memory bounded by the tile)
TRAIN_LINE_WIDTH = 2.0  # median stroke width (line_width) of the demo's training pairs at 256 px: 2.1; models
# trained since record their own ("line_width" in the model's metadata)
TILE = 512  # tile side in working pixels (a multiple of the networks' 64)
TILE_OVERLAP = 64
MAX_WORK_SIDE = 4096  # the working image's long side never exceeds this (time bound on huge thin-lined inputs)
AUTO_NATIVE_SIDE = 1024  # detail "auto": native above this long side (pages), fixed below (served drawings stay fast)
DETAILS = ("auto", "native", "fixed")


@dataclass
class ClassMap:
    """The color-class head's output for one image: logits (K, h, w) float32 on the head's grid, the small
    (network-size) image's row and column of each grid point, ys (h,) and xs (w,) float, and the palette (K, 3)."""

    logits: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    palette: np.ndarray
    weights: np.ndarray | None = None  # (h, w) each grid point's blending weight (tiles); None: 1 everywhere

    def pool(self, seg: Segmentation, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Weighted sums of the logits over each region of ``seg`` (full resolution; the working image is ``scale``
        times it) -> (sums (n + 1, K) float64, total weight per region (n + 1,))."""
        h, w = seg.labels.shape
        fy = np.clip(((self.ys + 0.5) / scale).astype(np.int64), 0, h - 1)
        fx = np.clip(((self.xs + 0.5) / scale).astype(np.int64), 0, w - 1)
        lbl = seg.labels[np.ix_(fy, fx)]  # (h', w') the region under each grid point
        sel = ~seg.ink[np.ix_(fy, fx)]
        k = self.logits.shape[0]
        wt = np.ones(lbl.shape) if self.weights is None else self.weights
        flat = torch.from_numpy(np.ascontiguousarray(self.logits[:, sel].T)).double()  # (N, K)
        wsel = torch.from_numpy(wt[sel].astype(np.float64))
        ids = torch.from_numpy(lbl[sel].astype(np.int64))
        counts = torch.zeros(seg.n + 1, dtype=torch.float64).index_add_(0, ids, wsel)
        pooled = torch.zeros(seg.n + 1, k, dtype=torch.float64).index_add_(0, ids, flat * wsel[:, None])
        return pooled.numpy(), counts.numpy()

    def region_probs(self, seg: Segmentation, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Pool the logits over each region of ``seg`` -> (probabilities (n + 1, K), weight of the grid points per
        region (n + 1,)); rows without grid points are uniform."""
        return _softmax_pooled(*self.pool(seg, scale))


@dataclass
class TiledClassMap:
    """The class maps of the tiles of one image (grid coordinates in the whole working image, blending weights
    set): a region's logits are averaged over every tile that sees it, weighted like the tiles' colors."""

    maps: list[ClassMap]
    palette: np.ndarray

    def region_probs(self, seg: Segmentation, scale: float) -> tuple[np.ndarray, np.ndarray]:
        pooled, counts = self.maps[0].pool(seg, scale)
        for m in self.maps[1:]:
            p, c = m.pool(seg, scale)
            pooled += p
            counts += c
        return _softmax_pooled(pooled, counts)


@dataclass
class HeadChoice:
    """What the network says about each region of a segmentation (rows 0..n; row 0 unused).

    fill (H, W, 3) uint8 its fill color at the input's size; own (n + 1, 3) CIELAB the regression's robust vote;
    stride the vote's sampling stride. With a color-class head: palette (K, 3), probs (n + 1, K) its class
    probabilities per region, colors (n + 1, 3) CIELAB its choice, conf (n + 1,) the probability mass near that
    choice, take (n + 1,) bool the regions that use it, ab_only: colors alike in a*b* count as alike (a gray page
    whose lightness is kept). Without a head these are None."""

    fill: np.ndarray
    own: np.ndarray
    stride: int
    palette: np.ndarray | None = None
    probs: np.ndarray | None = None
    colors: np.ndarray | None = None
    conf: np.ndarray | None = None
    take: np.ndarray | None = None
    ab_only: bool = False


def _softmax_pooled(pooled: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = torch.from_numpy(pooled / np.maximum(counts, 1e-12)[:, None])
    return torch.softmax(mean, 1).numpy(), counts


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``n`` pixels, neighbours overlapping by ``overlap`` or more
    (the last tile ends at the edge)."""
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, tile - overlap))
    return [*starts, n - tile]


def blend_window(h: int, w: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool) -> np.ndarray:
    """(h, w) float32 weights of one tile: linear ramps over ``overlap`` pixels on the sides that have a neighbour
    (flags), 1 elsewhere. Overlapping tiles' weights are normalized by their sum, so colors cross-fade over the
    overlap instead of meeting at a seam."""
    def ramp(n: int, start: bool, end: bool) -> np.ndarray:
        r = np.ones(n, np.float32)
        k = min(overlap, n)
        edge = (np.arange(k, dtype=np.float32) + 0.5) / k  # (0, 1): never 0, so every pixel has some weight
        if start:
            r[:k] = np.minimum(r[:k], edge)
        if end:
            r[n - k:] = np.minimum(r[n - k:], edge[::-1])
        return r

    return np.outer(ramp(h, top, bottom), ramp(w, left, right))


class Colorizer:
    """A generator with its pre- and post-processing.

    ``soft_hints=False`` (the default) gives region-true output (:mod:`tintline.regions.paint`): regions found on
    the full-resolution line art, hinted regions in exactly their hint's color, every other region one flat color
    voted from the network, the network's shading on top (scaled by ``shading``, 0..1). ``soft_hints=True`` is the
    network's own output (hints are suggestions it may blend or ignore, colors may cross lines): the behaviour
    before region-true output, kept for comparison and for drawings whose lines are not closed at all.

    ``tone`` (the methods' keyword): a gray page's own shading, (H, W) uint8 as :func:`read_page` gives it. It
    tells each region's lightness, which the color choice follows (``tone_sigma``), and a ``tone``-encoded
    generator sees it as input.
    """

    accepts_tone = True  # colorize_page passes a gray page's tone (subclasses that cannot use it say False)

    def __init__(self, model: str | Path, device: str = "cpu", max_side: int | None = None,
                 soft_hints: bool = False, shading: float = DEFAULT_SHADING, white: float = DEFAULT_WHITE,
                 paper_background: bool = True, confidence: float = DEFAULT_CONFIDENCE, detail: str = "auto"):
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device available")
        self.device = torch.device(device)
        if str(model).lower().endswith(".onnx"):  # run by onnxruntime (CPU): tintline export MODEL OUT.onnx
            from .onnx_model import load_onnx

            self.net, self.meta = load_onnx(model)
        else:
            self.net, self.meta = load_generator(model, self.device)
        self.multiple = int(getattr(self.net, "multiple", 1))
        self.encoding = self.meta.get("hint_encoding", "sparse")
        # default working size: the training image size. The network then sees lines as thick as in training, and
        # larger inputs cost no more (the colors are upscaled, the regions and the ink come from the full size)
        self.max_side = max_side or int(self.meta.get("image_size", 256))
        self.soft_hints = soft_hints
        self.shading = shading
        self.white = white
        # the background of line art is paper: on a page of many drawings the network, seeing it at 256 px, tints
        # it (a pale pink on the 4096-px benchmark page); a hint in the background still colors it
        self.paper_background = paper_background
        self.gap: int | None = None  # gap closing in input pixels (None: the measured line width; 0: none)
        # gray / screentoned / color pages: keep their own lightness, the colors over it (None: on for those kinds)
        self.keep_shading: bool | None = None
        # color classes (a generator with a color-class head): used for unhinted regions at this confidence or
        # more; above 1: never (the regression's vote alone)
        self.confidence = confidence
        head = getattr(self.net, "classes", None)
        self.palette = head.palette.float().cpu().numpy() if isinstance(head, torch.nn.Module) else None
        if self.palette is not None and not np.abs(self.palette).any():
            self.palette = None  # a head whose palette was never fitted (an untrained network): not used
        self._near = neighbourhoods(self.palette) if self.palette is not None else None
        # over a gray page whose lightness is kept, only a color's a*b* reach the output: colors that differ in L*
        # alone (white, grays, black) give the same result, so they are neighbours there
        self._near_ab = (neighbourhoods(np.c_[np.full(len(self.palette), 50.0), self.palette[:, 1:]])
                         if self.palette is not None else None)
        self.tone_sigma = DEFAULT_TONE_SIGMA
        # unhinted regions may take a hint's exact color where that is likelier right than the head's own choice
        self.propagate = True
        self.tone_floor = DEFAULT_TONE_FLOOR
        if detail not in DETAILS:
            raise UserError(f"detail {detail!r}: expected one of {', '.join(DETAILS)}")
        self.detail = detail
        self.tile = TILE
        self.line_width = float(self.meta.get("line_width", TRAIN_LINE_WIDTH))

    def work_scale(self, line: np.ndarray) -> float:
        """The factor from the input to the network's working image. ``fixed``: the long side at ``max_side`` (the
        training size; never enlarged). ``native``: lines as thick as in training (the model's ``line_width``), so a
        large page keeps its detail, never smaller than ``fixed`` gives and never over MAX_WORK_SIDE. ``auto``:
        native for inputs whose long side exceeds AUTO_NATIVE_SIDE, fixed for smaller ones."""
        h, w = line.shape
        fixed = min(1.0, self.max_side / max(h, w))
        small = self.detail == "auto" and max(h, w) <= AUTO_NATIVE_SIDE
        if self.detail == "fixed" or small or fixed >= 1.0:
            return fixed
        lw = line_width(line)  # 0 without ink: nothing to match
        native = min(1.0, self.line_width / lw, MAX_WORK_SIDE / max(h, w)) if lw > 0 else fixed
        return max(fixed, native)

    @torch.no_grad()
    def _network(self, line: np.ndarray, hints: dict | None, classes: bool = False, tone: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, float, ClassMap | TiledClassMap | None]:
        """line (H, W) uint8 -> (output (h, w, 3) uint8, fill (h, w, 3) uint8, scale, class map) at the working
        size (:meth:`work_scale`).

        output is the network's image (fill multiplied by the line art for ``blend: multiply`` generators); fill is
        the color it paints under the lines (the same as output for ``blend: direct``). The class map is given when
        ``classes`` is asked and the generator has a color-class head (None otherwise). ``tone`` (H, W) uint8 goes
        to generators of the ``tone`` encoding (others ignore it). A working image larger than ``tile`` runs as
        overlapping tiles, cross-faded (:func:`blend_window`); their class maps pool per region together."""
        h, w = line.shape
        scale = self.work_scale(line)
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))

        def shrink(a: np.ndarray) -> np.ndarray:
            return cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else a

        small = shrink(line)
        small_t = shrink(tone) if tone is not None and self.encoding == "tone" else None
        hint_colors, mask = render_hints(hints or {"points": [], "strokes": []}, sh, sw, scale=scale)
        t = self.tile
        if max(sh, sw) <= t:
            out, fill, cmap = self._run(small, hint_colors, mask, small_t, classes)
            return out, fill, scale, cmap
        acc_out = np.zeros((sh, sw, 3), np.float32)
        acc_fill = np.zeros((sh, sw, 3), np.float32)
        total = np.zeros((sh, sw, 1), np.float32)
        maps = []
        for y0 in tile_starts(sh, t, TILE_OVERLAP):
            for x0 in tile_starts(sw, t, TILE_OVERLAP):
                cut = (slice(y0, y0 + t), slice(x0, x0 + t))
                out, fill, cmap = self._run(small[cut], hint_colors[cut], mask[cut],
                                            None if small_t is None else small_t[cut], classes)
                th, tw = out.shape[:2]
                win = blend_window(th, tw, TILE_OVERLAP, y0 > 0, y0 + th < sh, x0 > 0, x0 + tw < sw)
                acc_out[cut] += out * win[..., None]
                acc_fill[cut] += fill * win[..., None]
                total[cut] += win[..., None]
                if cmap is not None:
                    iy = np.clip(np.round(cmap.ys).astype(np.int64), 0, th - 1)
                    ix = np.clip(np.round(cmap.xs).astype(np.int64), 0, tw - 1)
                    cmap.weights = win[np.ix_(iy, ix)]
                    cmap.ys, cmap.xs = cmap.ys + y0, cmap.xs + x0  # in the whole working image
                    cmap.logits = cmap.logits.astype(np.float16)  # kept until the regions are known: halve it
                    maps.append(cmap)
        out = np.clip(acc_out / total + 0.5, 0, 255).astype(np.uint8)
        fill = np.clip(acc_fill / total + 0.5, 0, 255).astype(np.uint8)
        return out, fill, scale, (TiledClassMap(maps, maps[0].palette) if maps else None)

    def _run(self, small: np.ndarray, hint_colors: np.ndarray, mask: np.ndarray, tone: np.ndarray | None,
             classes: bool) -> tuple[np.ndarray, np.ndarray, ClassMap | None]:
        """One network pass over a working image (or a tile of it): (h, w) line art, (h, w, 3) hint colors, (h, w)
        mask, (h, w) tone or None -> (output, fill (h, w, 3) uint8, class map in its own pixel coordinates)."""
        sh, sw = small.shape
        ph, pw = -sh % self.multiple, -sw % self.multiple
        # pad with paper (and no hints); split the padding so the drawing stays centred in the receptive field
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        small_p = np.pad(small, pads, constant_values=255)
        colors_p = np.pad(hint_colors, (*pads, (0, 0)))
        mask_p = np.pad(mask, pads)
        tone_p = None if tone is None else np.pad(tone, pads, constant_values=255)
        seg_p = None
        if self.encoding in ("region", "tone"):  # the encoding floods hints into these regions (as in training)
            seg = segment(small)
            labels_p = np.pad(seg.labels, pads)  # padding: label 0, a region of its own that no hint reaches
            seg_p = Segmentation(labels_p, seg.n, np.pad(seg.ink, pads), seg.areas, seg.border)
        x = encode_input(small_p, colors_p, mask_p, self.encoding, seg=seg_p, tone=tone_p).unsqueeze(0)
        x = x.to(self.device)
        want = classes and self.palette is not None
        logits_t = None
        if hasattr(self.net, "fill_and_classes"):
            fill_t, logits_t = self.net.fill_and_classes(x, want)  # (1, 3, H', W'), (1, K, H'/s, W'/s) or None
            out_t = multiply_blend(fill_t, x[:, :1]) if getattr(self.net, "blend", "direct") == "multiply" else fill_t
        else:
            out_t = fill_t = self.net(x)
        crop = (slice(pads[0][0], pads[0][0] + sh), slice(pads[1][0], pads[1][0] + sw))
        cmap = None
        if logits_t is not None and self.palette is not None:
            s = x.shape[-2] // logits_t.shape[-2]  # the head's stride on the padded grid
            ys = np.arange(logits_t.shape[-2]) * s + (s - 1) / 2 - pads[0][0]  # grid centres in small-image rows
            xs = np.arange(logits_t.shape[-1]) * s + (s - 1) / 2 - pads[1][0]
            ry, rx = (ys >= 0) & (ys <= sh - 1), (xs >= 0) & (xs <= sw - 1)
            logits = logits_t[0].float().cpu().numpy()[:, ry][:, :, rx]
            cmap = ClassMap(logits, ys[ry], xs[rx], self.palette)
        return to_uint8(out_t[0])[crop], to_uint8(fill_t[0])[crop], cmap

    def head_choice(self, line: np.ndarray, hints: dict | None, seg: Segmentation, tone: np.ndarray | None = None
                    ) -> HeadChoice:
        """Run the network and vote every region of ``seg`` (full resolution): the regression's robust vote and,
        for a generator with a color-class head, the head's choice (see :class:`HeadChoice`)."""
        h, w = line.shape
        use_classes = self.palette is not None and self.confidence <= 1.0
        _, fill, scale, cmap = self._network(line, hints, classes=use_classes, tone=tone)
        if scale < 1:
            fill = cv2.resize(fill, (w, h), interpolation=cv2.INTER_LINEAR)
        stride = max(1, int(1 / scale))  # the fill was upsampled: sampling every stride-th pixel sees all of it
        own = region_votes(fill, seg, stride)
        if cmap is None or self._near is None:
            return HeadChoice(fill, own, stride)
        probs, counts = cmap.region_probs(seg, scale)
        near = self._near
        if tone is not None:
            if self.tone_sigma > 0:
                probs = fit_lightness(probs, cmap.palette, region_lightness(tone, seg), self.tone_sigma)
            if self.keep_shading is not False:  # the page's L* replaces the color's: alike in a*b* = alike
                near = self._near_ab
        colors, conf = class_votes(probs, cmap.palette, near)
        take = (conf >= self.confidence) & (counts > 0)
        take[0] = False
        return HeadChoice(fill, own, stride, cmap.palette, probs, colors, conf, take, near is self._near_ab)

    def network_votes(self, line: np.ndarray, hints: dict | None, seg: Segmentation, tone: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The network's color for every region of ``seg`` (full resolution).

        -> (fill (H, W, 3) uint8 upsampled to the input, own (n + 1, 3) CIELAB: the regression's robust vote,
        votes (n + 1, 3) CIELAB: the color-class head's choice where it is confident (``confidence``), the
        regression's vote elsewhere and for models without a head; an unhinted region takes a hint's color instead
        where that is more likely right (``propagate``, :mod:`tintline.regions.propagate`), vote stride)."""
        c = self.head_choice(line, hints, seg, tone)
        if c.probs is None:
            return c.fill, c.own, c.own, c.stride
        votes = np.where(c.take[:, None], c.colors, c.own).astype(np.float32)
        if c.ab_only and self.tone_floor > 0:  # kept shading: unsure regions stay the page's gray
            votes[c.take & (c.conf < self.tone_floor)] = (100.0, 0.0, 0.0)
        if self.propagate:
            hc = propagation.hint_colors(hints, seg)
            if hc is not None:
                feats = propagation.candidate_features(hc, c.probs, c.conf, c.colors, c.own, c.palette, seg)
                votes, _ = propagation.propagate(votes, hc, feats, c.conf, c.take)
                votes = votes.astype(np.float32)
        return c.fill, c.own, votes, c.stride

    def colorize_layers(self, line: np.ndarray, hints: dict | None = None, tone: np.ndarray | None = None) -> Layers:
        """line (H, W) uint8 (paper 255) + validated hints in input pixels -> region-true :class:`Layers`."""
        marks = render_hint_items(hints, *line.shape)[0] > 0 if hints else None  # hinted regions stay regions
        seg = segment(line, gap=self.gap, keep=marks)
        fill, own, votes, stride = self.network_votes(line, hints, seg, tone=tone)
        return paint(line, fill, hints, seg=seg, shading=self.shading, vote_stride=stride, white=self.white,
                     paper_background=self.paper_background, votes=votes, own=own, tone=tone)

    def colorize_lines(self, line: np.ndarray, hints: dict | None = None, soft_hints: bool | None = None,
                       tone: np.ndarray | None = None) -> np.ndarray:
        """line (H, W) uint8 (paper 255) + validated hints in input pixels -> (H, W, 3) uint8 RGB."""
        soft = self.soft_hints if soft_hints is None else soft_hints
        if not soft:
            return self.colorize_layers(line, hints, tone=tone).compose()
        h, w = line.shape
        y, _, scale, _ = self._network(line, hints, tone=tone)
        if scale < 1:
            y = cv2.resize(y, (w, h), interpolation=cv2.INTER_CUBIC)
            # multiply the crisp full-resolution ink back over the smooth upscaled colors
            # uint8 * uint8 / 255 with rounding in one OpenCV pass (~10x cheaper than through float32 arrays)
            y = cv2.multiply(y, cv2.merge([line, line, line]), scale=1.0 / 255.0)
        return np.ascontiguousarray(y)

    def colorize_image(self, img: Image.Image, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        """Any user image: line art, pencil, a gray or screentoned page, a color image (:mod:`tintline.data.manga`;
        shaded pages keep their own lightness unless ``keep_shading`` is False)."""
        return colorize_page(self, img, hints, soft_hints=soft_hints)[0]


def default_model() -> Path | None:
    """The model shipped with the package, when there is one."""
    return SHIPPED_MODEL if SHIPPED_MODEL.is_file() else None


def load_colorizer(model: str | Path, device: str = "cpu") -> Colorizer | Baseline:
    """A checkpoint path or run directory -> :class:`Colorizer`; ``default`` -> the shipped model; a baseline name
    (``white``, ``region-fill``) -> that baseline; ``soft:MODEL`` -> MODEL with soft hints (the network's own
    output, for comparisons in eval); ``own:MODEL`` -> MODEL without hint propagation (unhinted regions keep the
    network's own choice; for comparisons); a character file (``tintline character``; ``match:FILE`` for its reference
    matching alone) -> :class:`~tintline.character.model.CharacterColorizer`; ``ensemble:A,B`` -> the per-pixel
    average of those models' outputs (:class:`~tintline.ensemble.OutputEnsemble`). A path that exists wins over a
    name."""
    if not Path(model).exists() and str(model) in BASELINES.names():
        return BASELINES.create(str(model))
    if not Path(model).exists() and str(model).startswith("ensemble:"):
        from .ensemble import OutputEnsemble

        return OutputEnsemble(str(model), device=device)  # type: ignore[return-value]
    if not Path(model).exists() and str(model).startswith(SOFT_PREFIX):
        return Colorizer(str(model)[len(SOFT_PREFIX):], device=device, soft_hints=True)
    if not Path(model).exists() and str(model).startswith(OWN_PREFIX):
        own = Colorizer(str(model)[len(OWN_PREFIX):], device=device)
        own.propagate = False
        return own
    from .character.model import CharacterColorizer, character_spec  # imported here: it imports this module

    spec = character_spec(model)
    if spec is not None:
        return CharacterColorizer(spec[0], mode=spec[1], device=device)
    return Colorizer(model, device=device)  # "default" resolves to the shipped model in resolve_model_path


def image_layers(rgb: np.ndarray) -> Layers:
    """(H, W, 3) uint8 image without a layer decomposition -> :class:`Layers` with the image as the flat layer and
    blank multiply layers (255), so that ``compose()`` gives the image back exactly."""
    h, w = rgb.shape[:2]
    blank = np.full((h, w), 255, np.uint8)
    return Layers(np.ascontiguousarray(rgb, dtype=np.uint8), blank, blank.copy())


def colorize_to_layers(colorizer: object, img: Image.Image, hints: dict | None = None,
                       soft_hints: bool | None = None, page: Page | None = None) -> Layers:
    """Any colorizer (a :class:`Colorizer`, a baseline, or an object with ``colorize_image``) -> :class:`Layers`
    whose ``compose()`` is exactly what ``colorize_image`` gives for the same arguments.

    A region-true :class:`Colorizer` gives its flat / shading / line layers. Outputs with no such decomposition (the
    network's own output with ``soft_hints``, the baselines, other objects) become :func:`image_layers`: the whole
    image in the flat layer. ``soft_hints`` None leaves the colorizer's own default (and is not passed on, so
    objects whose ``colorize_image`` takes no ``soft_hints`` work). ``page``: ``img`` already read
    (:func:`~tintline.data.manga.read_page`), so a caller that wants its kind reads it once."""
    soft = bool(getattr(colorizer, "soft_hints", False)) if soft_hints is None else soft_hints
    layered = getattr(colorizer, "colorize_layers", None)
    kw = {} if soft_hints is None else {"soft_hints": soft_hints}
    if not callable(getattr(colorizer, "colorize_lines", None)):  # an object with colorize_image alone
        return image_layers(np.asarray(colorizer.colorize_image(img, hints, **kw)))  # type: ignore[attr-defined]
    page = page if page is not None else read_page(img)
    keep = getattr(colorizer, "keep_shading", None)
    tone = {"tone": page.tone} if page.tone is not None and getattr(colorizer, "accepts_tone", False) else {}
    if not soft and callable(layered):
        lay = layered(page.line, hints, **tone)
        if page.tone is None or keep is False:
            return lay
        return image_layers(page.finish(lay.compose(), keep))  # the page's own shading: one flat layer
    rgb = np.asarray(colorizer.colorize_lines(page.line, hints, **kw, **tone))  # type: ignore[attr-defined]
    return image_layers(page.finish(rgb, keep))


def layer_paths(png: Path) -> dict[str, Path]:
    """``<stem>.png`` -> the files ``--layers`` writes beside it: ora, flat, shading, lines."""
    return {"ora": png.with_suffix(".ora"), **{k: png.with_name(f"{png.stem}_{k}.png")
                                                for k in ("flat", "shading", "lines")}}


def configure(colorizer: object, gap: int | None = None, confidence: float | None = None,
              keep_shading: bool | None = None, detail: str | None = None, propagate: bool | None = None) -> object:
    """Set the options a user gave (None: leave the colorizer's default) on a colorizer that has them; -> it.
    Baselines and plugin objects without an option are left as they are."""
    if detail is not None and detail not in DETAILS:
        raise UserError(f"--detail {detail}: expected one of {', '.join(DETAILS)}")
    for name, value in (("gap", gap), ("confidence", confidence), ("keep_shading", keep_shading),
                        ("detail", detail), ("propagate", propagate)):
        if value is not None and hasattr(colorizer, name):
            setattr(colorizer, name, value)
    return colorizer


def colorize_files(model: str | Path, inputs: Sequence[str], out_dir: Path, hints_path: str | None = None,
                   device: str = "cpu", soft_hints: bool = False, layers: bool = False,
                   gap: int | None = None, confidence: float | None = None,
                   keep_shading: bool | None = None, detail: str | None = None,
                   propagate: bool | None = None) -> list[Path]:
    """Colorize each input into ``out_dir/<stem>.png``; return those paths. One hints file (JSON, or a hint image
    of the inputs' size) applies to every input.

    ``soft_hints``: the network's own output instead of region-true colors (:class:`Colorizer`). ``layers``: also
    write ``<stem>.ora`` (OpenRaster: lines and shading multiply over flat, :mod:`tintline.regions.ora`) and the
    layers as ``<stem>_flat.png`` (RGB), ``<stem>_shading.png`` (at full strength; the .ora carries the shading's
    opacity) and ``<stem>_lines.png`` (gray, 255 = no change); ``<stem>.png`` is then exactly the .ora's
    composite. Outputs without layers (baselines, ``soft_hints``) have the whole image in the flat layer and blank
    shading and lines. ``gap``: the gap-closing width in pixels for a network model (None: the measured line
    width; 0: none). ``confidence``: see :class:`Colorizer` (None: its default). ``keep_shading``: a gray,
    screentoned or color page keeps its own lightness (None: yes for those; the PNG's ``tintline:input`` text says
    what kind of input was read). ``detail``: ``fixed`` or ``native`` (see :meth:`Colorizer.work_scale`; None:
    the colorizer's default). ``propagate``: False keeps unhinted regions from taking a hint's color (None: on)."""
    hints, hint_img = None, None
    if hints_path:
        if Path(hints_path).suffix.lower() == ".json":
            hints = load_hints(hints_path)
        else:  # a hint image: transparent PNG of the input's size with colored marks
            hint_img = read_image_file(hints_path, Limits())
    for name in inputs:
        if not Path(name).is_file():
            raise FileNotFoundError(f"input not found: {name}")
    colorizer = configure(load_colorizer(model, device=device), gap=gap, confidence=confidence,
                          keep_shading=keep_shading, detail=detail, propagate=propagate)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[Path] = set()  # every file written so far, layers included
    for name in inputs:
        try:
            img = read_image_file(name, Limits())
        except BadImage as e:
            raise BadImage(e.reason, f"{name}: {e.detail}") from e
        if hint_img is not None:
            hints = hint_image_to_hints(hint_img, img.size)
        out = out_dir / f"{Path(name).stem}.png"
        siblings = set(layer_paths(out).values()) if layers else set()
        if out in taken or siblings & taken:  # two inputs with the same name from different folders (or a_flat.png)
            out = out_dir / f"{Path(name).stem}_{len(written)}.png"
        info = PngInfo()  # the PNG says what came in: lines, pencil, gray, screentone or color
        if not layers and callable(getattr(colorizer, "colorize_lines", None)):
            rgb, page = colorize_page(colorizer, img, hints, soft_hints=soft_hints)
            info.add_text("tintline:input", page.kind)
            Image.fromarray(rgb).save(out, pnginfo=info)
        elif not layers:
            info.add_text("tintline:input", page_kind(img))
            Image.fromarray(colorizer.colorize_image(img, hints, soft_hints=soft_hints)).save(out, pnginfo=info)
        else:
            page = read_page(img)
            lay = colorize_to_layers(colorizer, img, hints, soft_hints=soft_hints, page=page)
            info.add_text("tintline:input", page.kind)
            Image.fromarray(lay.compose()).save(out, pnginfo=info)
            extra = layer_paths(out)
            write_ora(extra["ora"], lay, title=out.stem)
            Image.fromarray(lay.flat).save(extra["flat"])
            Image.fromarray(lay.shading).save(extra["shading"])
            Image.fromarray(lay.lines).save(extra["lines"])
            taken.update(extra.values())
        taken.add(out)
        written.append(out)
    return written
