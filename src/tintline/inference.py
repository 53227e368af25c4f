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
from .data.hints import hint_image_to_hints, load_hints, render_hints
from .data.imageio import BadImage, Limits, read_image_file
from .data.manga import Page, colorize_page, page_kind, read_page
from .models.generator import multiply_blend
from .regions import Segmentation, segment
from .regions.ora import write_ora
from .regions.paint import Layers, paint, region_votes
from .regions.palette import class_votes, neighbourhoods

SOFT_PREFIX = "soft:"  # a model name prefix: that model with soft hints
DEFAULT_WHITE = 6.0  # unhinted regions voted within this CIELAB distance of white are painted white
DEFAULT_SHADING = 0.0  # strength of the network's shading on the flat colors (0: flat colors only)
# an unhinted region takes its color-class choice when the class head gives it at least this chance of being
# right (CIEDE2000 < 10); otherwise the regression's vote (calibrated on validation: benchmarks/shading.py)
DEFAULT_CONFIDENCE = 0.0


@dataclass
class ClassMap:
    """The color-class head's output for one image: logits (K, h, w) float32 on the head's grid, the small
    (network-size) image's row and column of each grid point, ys (h,) and xs (w,) float, and the palette (K, 3)."""

    logits: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    palette: np.ndarray

    def region_probs(self, seg: Segmentation, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Pool the logits over each region of ``seg`` (full resolution; the small image is ``scale`` times it) ->
        (probabilities (n + 1, K), grid points per region (n + 1,)); rows without grid points are uniform."""
        h, w = seg.labels.shape
        fy = np.clip(((self.ys + 0.5) / scale).astype(np.int64), 0, h - 1)
        fx = np.clip(((self.xs + 0.5) / scale).astype(np.int64), 0, w - 1)
        lbl = seg.labels[np.ix_(fy, fx)]  # (h', w') the region under each grid point
        sel = ~seg.ink[np.ix_(fy, fx)]
        k = self.logits.shape[0]
        flat = torch.from_numpy(np.ascontiguousarray(self.logits[:, sel].T))  # (N, K)
        ids = torch.from_numpy(lbl[sel].astype(np.int64))
        counts = torch.bincount(ids, minlength=seg.n + 1).double()
        pooled = torch.zeros(seg.n + 1, k, dtype=torch.float64).index_add_(0, ids, flat.double())
        pooled /= counts.clamp_min(1)[:, None]
        return torch.softmax(pooled, 1).numpy(), counts.numpy()


class Colorizer:
    """A generator with its pre- and post-processing.

    ``soft_hints=False`` (the default) gives region-true output (:mod:`tintline.regions.paint`): regions found on
    the full-resolution line art, hinted regions in exactly their hint's color, every other region one flat color
    voted from the network, the network's shading on top (scaled by ``shading``, 0..1). ``soft_hints=True`` is the
    network's own output (hints are suggestions it may blend or ignore, colors may cross lines): the behaviour
    before region-true output, kept for comparison and for drawings whose lines are not closed at all.
    """

    def __init__(self, model: str | Path, device: str = "cpu", max_side: int | None = None,
                 soft_hints: bool = False, shading: float = DEFAULT_SHADING, white: float = DEFAULT_WHITE,
                 paper_background: bool = True, confidence: float = DEFAULT_CONFIDENCE):
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

    @torch.no_grad()
    def _network(self, line: np.ndarray, hints: dict | None,
                 classes: bool = False) -> tuple[np.ndarray, np.ndarray, float, ClassMap | None]:
        """line (H, W) uint8 -> (output (h, w, 3) uint8, fill (h, w, 3) uint8, scale, class map) at the working
        size.

        output is the network's image (fill multiplied by the line art for ``blend: multiply`` generators); fill is
        the color it paints under the lines (the same as output for ``blend: direct``). The class map is given when
        ``classes`` is asked and the generator has a color-class head (None otherwise)."""
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
        seg_p = None
        if self.encoding == "region":  # the encoding floods hints into these regions (as in training)
            seg = segment(small)
            labels_p = np.pad(seg.labels, pads)  # padding: label 0, a region of its own that no hint reaches
            seg_p = Segmentation(labels_p, seg.n, np.pad(seg.ink, pads), seg.areas, seg.border)
        x = encode_input(small_p, colors_p, mask_p, self.encoding, seg=seg_p).unsqueeze(0).to(self.device)
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
        return to_uint8(out_t[0])[crop], to_uint8(fill_t[0])[crop], scale, cmap

    def network_votes(self, line: np.ndarray, hints: dict | None, seg: Segmentation
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The network's color for every region of ``seg`` (full resolution).

        -> (fill (H, W, 3) uint8 upsampled to the input, own (n + 1, 3) CIELAB: the regression's robust vote,
        votes (n + 1, 3) CIELAB: the color-class head's choice where it is confident (``confidence``), the
        regression's vote elsewhere and for models without a head, vote stride)."""
        h, w = line.shape
        use_classes = self.palette is not None and self.confidence <= 1.0
        _, fill, scale, cmap = self._network(line, hints, classes=use_classes)
        if scale < 1:
            fill = cv2.resize(fill, (w, h), interpolation=cv2.INTER_LINEAR)
        stride = max(1, int(1 / scale))  # the fill was upsampled: sampling every stride-th pixel sees all of it
        own = region_votes(fill, seg, stride)
        votes = own
        if cmap is not None and self._near is not None:
            probs, counts = cmap.region_probs(seg, scale)
            colors, conf = class_votes(probs, cmap.palette, self._near)
            take = (conf >= self.confidence) & (counts > 0)
            take[0] = False
            votes = np.where(take[:, None], colors, own).astype(np.float32)
        return fill, own, votes, stride

    def colorize_layers(self, line: np.ndarray, hints: dict | None = None) -> Layers:
        """line (H, W) uint8 (paper 255) + validated hints in input pixels -> region-true :class:`Layers`."""
        seg = segment(line, gap=self.gap)
        fill, own, votes, stride = self.network_votes(line, hints, seg)
        return paint(line, fill, hints, seg=seg, shading=self.shading, vote_stride=stride, white=self.white,
                     paper_background=self.paper_background, votes=votes, own=own)

    def colorize_lines(self, line: np.ndarray, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        """line (H, W) uint8 (paper 255) + validated hints in input pixels -> (H, W, 3) uint8 RGB."""
        soft = self.soft_hints if soft_hints is None else soft_hints
        if not soft:
            return self.colorize_layers(line, hints).compose()
        h, w = line.shape
        y, _, scale, _ = self._network(line, hints)
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
    output, for comparisons in eval); a character file (``tintline character``; ``match:FILE`` for its reference
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
    if not soft and callable(layered):
        lay = layered(page.line, hints)
        if page.tone is None or keep is False:
            return lay
        return image_layers(page.finish(lay.compose(), keep))  # the page's own shading: one flat layer
    rgb = np.asarray(colorizer.colorize_lines(page.line, hints, **kw))  # type: ignore[attr-defined]
    return image_layers(page.finish(rgb, keep))


def layer_paths(png: Path) -> dict[str, Path]:
    """``<stem>.png`` -> the files ``--layers`` writes beside it: ora, flat, shading, lines."""
    return {"ora": png.with_suffix(".ora"), **{k: png.with_name(f"{png.stem}_{k}.png")
                                                for k in ("flat", "shading", "lines")}}


def colorize_files(model: str | Path, inputs: Sequence[str], out_dir: Path, hints_path: str | None = None,
                   device: str = "cpu", soft_hints: bool = False, layers: bool = False,
                   gap: int | None = None, confidence: float | None = None,
                   keep_shading: bool | None = None) -> list[Path]:
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
    what kind of input was read)."""
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
    if gap is not None and isinstance(colorizer, Colorizer):
        colorizer.gap = gap
    if confidence is not None and isinstance(colorizer, Colorizer):
        colorizer.confidence = confidence
    if keep_shading is not None and hasattr(colorizer, "keep_shading"):
        colorizer.keep_shading = keep_shading
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
