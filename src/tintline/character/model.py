"""The character file: one self-describing .safetensors that colors one character, usable wherever a MODEL is.

A character file is a generator checkpoint (:mod:`tintline.checkpoint`: the same tensors and ``tintline`` metadata as
its base model, so the network loads as usual) plus the character's colored references::

    tensors   <the generator's weights>                     copied from the base model (``--from``, default the
                                                            shipped model); a fine-tune will replace them
              character.ref.<i>.color  (H, W, 3) uint8 RGB  reference i, composited on white
              character.ref.<i>.line   (H, W) uint8         its line art (paper 255)
    metadata  tintline = {"format": 1, <base model's metadata>, "kind": "character",
                          "character": {"format": CHARACTER_FORMAT, "tintline_version", "name", "base_model",
                                        "network_weight", "fine_tune", "references": [{"source", "lines", "size"}]}}

Regions and region statistics are recomputed from the references at load (a few hundred ms), so they follow the
code that reads the file. Files are written atomically (a temporary file renamed into place): a killed run leaves
no half-written model.

:class:`CharacterColorizer` has the interface of :class:`tintline.inference.Colorizer`. Per closed region of the
target it combines the network's vote with the reference matching (:mod:`.matching`): the matching wins where its
confidence reaches ``network_weight``, the network elsewhere, and a network vote that agrees with a reference color
adds to it. A hint in a color the references do not have recolors every region of the hinted region's color
(:func:`follow_hints`). ``mode="match"`` colors by the matching alone (the baseline the issue asks for; the model spec
``match:FILE`` selects it anywhere a MODEL is named). Exact hints apply on top, as with every colorizer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .. import __version__
from ..checkpoint import FORMAT, META_KEY, NON_WEIGHT_PREFIX, CheckpointError, read_meta, resolve_model_path
from ..data.hints import render_hints
from ..data.imageio import BadImage, Limits, composite_on_white, read_image_file
from ..data.lineart import REFERENCE_XDOG, make_lineart, normalize_input
from ..errors import UserError
from ..inference import DEFAULT_SHADING, Colorizer
from ..regions import region_fill, segment
from ..regions.paint import Layers, from_lab, paint, to_lab
from .matching import SAME_COLOR, Match, Reference, match_regions, reference_pixels

CHARACTER_FORMAT = 1  # bumped when the layout of the references or their metadata changes
KIND = "character"
PREFIX = NON_WEIGHT_PREFIX + "ref."  # reference tensors: character.ref.<i>.color / .line
MAX_REFERENCES = 8
MAX_SIDE = 768  # references are scaled to a common long side: the smallest one's, at most this
MIN_SIDE = 64
NETWORK_WEIGHT = 0.3  # the network's vote weighs like a reference color with this matching probability
NETWORK_WEIGHT_TUNED = 0.5  # ... when the network was fine-tuned on the character's references
RECOLOR_SHARE = 0.2  # a hint in a new color recolors its like parts when its region is this share of their area
MAX_MINUTES = 120.0
MIN_COLORED = 0.005  # a reference with fewer colored pixels (CIELAB chroma > COLORED_CHROMA) has no color
COLORED_CHROMA = 15.0
MODES = ("combined", "match")


# ---------------------------------------------------------------------------------------------------- writing


def check_colored(rgb: np.ndarray, number: int) -> None:
    """Refuse a reference without color (gray, or line art only): (H, W, 3) uint8; ``number`` counts from 1."""
    lab = to_lab(rgb[:: max(1, rgb.shape[0] // 256), :: max(1, rgb.shape[1] // 256)])  # a sample is enough
    share = float((np.hypot(lab[..., 1], lab[..., 2]) > COLORED_CHROMA).mean())
    if share < MIN_COLORED:
        raise UserError(f"reference {number} has no color: only {share:.1%} of its pixels are colored (is it line"
                        " art or a grayscale image? a character is made from colored drawings)")


def _read(path: str | Path, what: str) -> Any:
    try:
        return read_image_file(path, Limits())
    except BadImage as e:
        raise BadImage(e.reason, f"{what} {path}: {e.detail}") from e
    except OSError as e:
        raise UserError(f"{what} {path}: cannot read ({e.__class__.__name__})") from e


def load_references(images: Sequence[str | Path], lines: Sequence[str | Path] | None = None
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Reference image files (and optional line-art files, one per reference, of the same sizes) -> [(color (H, W, 3)
    uint8 on white, line (H, W) uint8)], all scaled to one long side (the smallest reference's, at most
    ``MAX_SIDE``). Line art not given is made by the project's XDoG extractor (``REFERENCE_XDOG``) after scaling.
    Every problem is a one-line :class:`UserError`."""
    if not images:
        raise UserError("a character needs at least one colored reference")
    if len(images) > MAX_REFERENCES:
        raise UserError(f"{len(images)} references: a character takes at most {MAX_REFERENCES} (pick the most"
                        " different views)")
    if lines and len(lines) != len(images):
        raise UserError(f"--lines gives {len(lines)} line-art files for {len(images)} references (one each, in"
                        " the same order)")
    colors = []
    for i, name in enumerate(images, 1):
        if not Path(name).is_file():
            raise UserError(f"reference {i} not found: {name}")
        rgb = composite_on_white(_read(name, f"reference {i}"))
        check_colored(rgb, i)
        if min(rgb.shape[:2]) < MIN_SIDE:
            raise UserError(f"reference {i} is {rgb.shape[1]}x{rgb.shape[0]}: at least {MIN_SIDE} px a side")
        colors.append(rgb)
    given = []
    for i, name in enumerate(lines or [], 1):
        if not Path(name).is_file():
            raise UserError(f"line art {i} not found: {name}")
        line = normalize_input(_read(name, f"line art {i}"))
        if line.shape != colors[i - 1].shape[:2]:
            raise UserError(f"line art {i} is {line.shape[1]}x{line.shape[0]} but reference {i} is"
                            f" {colors[i - 1].shape[1]}x{colors[i - 1].shape[0]}: they must be the same drawing")
        given.append(line)
    side = min(MAX_SIDE, min(max(c.shape[:2]) for c in colors))
    out = []
    for i, rgb in enumerate(colors):
        s = side / max(rgb.shape[:2])
        size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if s != 1 else rgb
        if given:
            line = cv2.resize(given[i], size, interpolation=cv2.INTER_AREA) if s != 1 else given[i]
        else:
            line = make_lineart(rgb, None, "xdog", REFERENCE_XDOG)
        out.append((np.ascontiguousarray(rgb), np.ascontiguousarray(line)))
    return out


def write_character(out: str | Path, refs: Sequence[tuple[np.ndarray, np.ndarray]], base: str | Path = "default",
                    name: str | None = None, sources: Sequence[dict] | None = None,
                    weights: dict[str, Any] | None = None, fine_tune: dict | None = None) -> Path:
    """Write the character file ``out`` (atomically) from references [(color (H, W, 3) uint8, line (H, W) uint8)]
    and the generator of ``base`` (a model spec; a character file's generator when it is one). ``sources``: one
    JSON-able dict per reference for the metadata (where it came from). ``weights``: a fine-tuned state dict of
    that generator, stored instead of the base's weights (in the base file's dtypes), with ``fine_tune`` (its
    summary) in the metadata."""
    out = Path(out)
    if out.suffix.lower() != ".safetensors":
        raise UserError(f"-o {out}: a character file is a .safetensors file")
    if not 1 <= len(refs) <= MAX_REFERENCES:
        raise UserError(f"a character takes 1 to {MAX_REFERENCES} references, got {len(refs)}")
    src = resolve_model_path(base)
    meta = read_meta(src)
    tensors = {k: v for k, v in load_file(str(src)).items() if not k.startswith(NON_WEIGHT_PREFIX)}
    import torch

    if weights is not None:
        if set(weights) != set(tensors):
            raise ValueError("fine-tuned weights do not match the base model's tensors")
        tensors = {k: weights[k].detach().cpu().to(tensors[k].dtype).contiguous() for k in tensors}

    for i, (color, line) in enumerate(refs):
        if color.shape[:2] != line.shape or color.dtype != np.uint8 or line.dtype != np.uint8:
            raise ValueError(f"reference {i + 1}: color {color.shape} {color.dtype} and line {line.shape}"
                             f" {line.dtype} must be (H, W, 3) and (H, W) uint8 of one size")
        tensors[f"{PREFIX}{i}.color"] = torch.from_numpy(np.ascontiguousarray(color))
        tensors[f"{PREFIX}{i}.line"] = torch.from_numpy(np.ascontiguousarray(line))
    meta = {k: v for k, v in meta.items() if k not in ("format", "kind", "character", "description")}
    meta["kind"] = KIND
    meta["character"] = {
        "format": CHARACTER_FORMAT, "tintline_version": __version__, "name": name or out.stem,
        "base_model": str(base), "network_weight": NETWORK_WEIGHT if fine_tune is None else NETWORK_WEIGHT_TUNED,
        "fine_tune": fine_tune,
        "references": [{**(sources[i] if sources else {}), "size": [int(c.shape[1]), int(c.shape[0])]}
                       for i, (c, _) in enumerate(refs)],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={META_KEY: json.dumps({"format": FORMAT, **meta})})
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def make_character(images: Sequence[str | Path], out: str | Path, lines: Sequence[str | Path] | None = None,
                   base: str | Path = "default", name: str | None = None, minutes: float = 0.0,
                   max_steps: int = 0, progress: bool = True) -> Path:
    """``tintline character``: reference files -> the character file ``out`` (see the module docstring).

    ``minutes`` > 0 fine-tunes the base model's network on the references for that long
    (:func:`tintline.character.finetune.fine_tune`; ``max_steps`` > 0 stops after that many steps instead, for
    tests); 0 keeps the base network as it is (reference matching + the base network)."""
    if not 0 <= minutes <= MAX_MINUTES:
        raise UserError(f"--minutes {minutes}: must be between 0 and {MAX_MINUTES:g}")
    resolve_model_path(base)  # a bad --from fails before any image is read
    refs = load_references(images, lines)
    sources = [{"source": Path(p).name, "lines": Path(lines[i]).name if lines else "xdog"}
               for i, p in enumerate(images)]
    weights = summary = None
    if minutes > 0 or max_steps > 0:
        from ..checkpoint import load_generator
        from .finetune import fine_tune

        net, meta = load_generator(base)
        summary = fine_tune(net, [(c, ln if lines else None) for c, ln in refs], minutes,
                            meta.get("hint_encoding", "sparse"), side=int(meta.get("image_size", 256)),
                            max_steps=max_steps, progress=progress)
        weights = net.state_dict()
        summary["minutes"] = minutes
    return write_character(out, refs, base=base, name=name, sources=sources, weights=weights, fine_tune=summary)


# ---------------------------------------------------------------------------------------------------- reading


def character_meta(meta: dict, path: str | Path) -> dict:
    """The ``character`` part of a character file's metadata, or a one-line :class:`CheckpointError` when this
    version of tintline cannot read it."""
    info = meta.get("character")
    if meta.get("kind") != KIND or not isinstance(info, dict):
        raise CheckpointError(f"{path}: not a character file (make one with 'tintline character')")
    if info.get("format") != CHARACTER_FORMAT:
        made = info.get("tintline_version", "an unknown version")
        raise CheckpointError(f"{path}: character format {info.get('format')!r} (made by tintline {made}) is not"
                              f" readable by tintline {__version__}, which reads format {CHARACTER_FORMAT}; remake"
                              " it with 'tintline character'")
    return info


def read_references(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """A character file -> its references [(color (H, W, 3) uint8, line (H, W) uint8)]."""
    info = character_meta(read_meta(Path(path)), path)
    refs = []
    with safe_open(str(path), framework="numpy") as f:
        keys = set(f.keys())
        for i in range(len(info.get("references", []))):
            ck, lk = f"{PREFIX}{i}.color", f"{PREFIX}{i}.line"
            if ck not in keys or lk not in keys:
                raise CheckpointError(f"{path}: reference {i + 1} is missing from the file")
            color, line = f.get_tensor(ck), f.get_tensor(lk)
            if color.dtype != np.uint8 or color.ndim != 3 or color.shape[2] != 3 or line.shape != color.shape[:2]:
                raise CheckpointError(f"{path}: reference {i + 1} has shapes {color.shape}, {line.shape}")
            refs.append((color, line))
    if not refs:
        raise CheckpointError(f"{path}: a character file without references")
    return refs


def character_spec(model: str | Path) -> tuple[Path, str] | None:
    """A model spec -> (character file, mode) when it names a character file (``match:FILE`` for matching alone),
    else None (a plain checkpoint, a run directory, a baseline, ``default``)."""
    text = str(model)
    mode = "combined"
    if text.startswith("match:") and not Path(text).exists():
        mode, text = "match", text[len("match:"):]
    p = Path(text)
    is_char = p.is_file() and p.suffix.lower() != ".onnx" and read_meta(p).get("kind") == KIND
    if mode == "match" and not is_char:
        why = "" if p.is_file() else f" ({p} not found)"
        raise CheckpointError(f"{model}: 'match:' needs a character file made by 'tintline character'{why}")
    return (p, mode) if is_char else None


def follow_hints(votes: np.ndarray, hints: dict | None, match: Match, line: np.ndarray) -> np.ndarray:
    """The rest follows a hint: votes (n + 1, 3) CIELAB per region of ``match.seg`` -> votes where a hint that
    *recolors* a part of the character recolors all of it.

    A hinted region whose hint color is none of the references' colors (farther than ``SAME_COLOR`` from all of
    ``match.palette``: their regions' own colors and their materials') is a recolor: every unhinted region that got
    the same color as it (within ``SAME_COLOR``) takes the hint's color too (hint one eye green, both eyes turn
    green), when the hinted region is at least ``RECOLOR_SHARE`` of the area of that color: one of a few like parts.
    A new color in a small piece of a large color area is a correction of that piece: in a new pose an open mouth
    the reference does not show is matched as skin, and a red dot in it turned the whole face and both arms red
    (``python benchmarks/character.py --clicks 8``: Lucy's corrections got worse with the second dot, 0.76 -> 0.64;
    now 0.84). A hint in a reference color is a correction of that region only
    (:func:`~tintline.regions.paint.paint` applies it exactly; its neighbours keep their own matches)."""
    if not hints or not (hints.get("points") or hints.get("strokes")) or len(match.colors) == 0:
        return votes
    seg = match.seg
    h, w = seg.labels.shape
    colors, mask = render_hints(hints, h, w)
    fill, filled = region_fill(line, colors, mask, seg=seg)  # (H, W, 3) each hinted region's mean hint color
    hinted = np.zeros(seg.n + 1, bool)
    hinted[seg.labels[filled]] = True
    if not hinted.any():
        return votes
    first = np.full(seg.n + 1, -1, np.int64)  # any one filled pixel per hinted region (all carry its color)
    flat_idx = np.flatnonzero(filled.ravel())
    first[seg.labels.ravel()[flat_idx]] = flat_idx
    regions = np.flatnonzero(hinted)
    hint_lab = to_lab(fill.reshape(-1, 3)[first[regions]])  # (k, 3)
    palette = match.colors if match.palette is None else match.palette  # every color the references show
    recolor = np.linalg.norm(hint_lab[:, None] - palette[None], axis=-1).min(axis=1) >= SAME_COLOR
    out = votes.copy()
    area = seg.areas.astype(np.float64)
    for r, lab in zip(regions[recolor].tolist(), hint_lab[recolor], strict=True):
        same = (np.linalg.norm(votes - votes[r], axis=1) < SAME_COLOR) & ~hinted
        if area[r] >= RECOLOR_SHARE * (area[r] + area[same].sum()):
            out[same] = lab
    return out


class CharacterColorizer(Colorizer):
    """A :class:`~tintline.inference.Colorizer` for one character: the network of the character file, its
    references matched region by region (:mod:`.matching`), combined per region by confidence.

    mode ``combined`` (default) or ``match`` (the matching alone: no network, no shading; ``soft_hints`` does not
    apply). Other arguments as for :class:`Colorizer`; ``soft_hints`` in ``combined`` mode gives the network's own
    output (the references unused)."""

    accepts_tone = False  # its matching and votes work on the lines alone

    def __init__(self, model: str | Path, mode: str = "combined", device: str = "cpu", max_side: int | None = None,
                 soft_hints: bool = False, shading: float = DEFAULT_SHADING):
        if mode not in MODES:
            raise UserError(f"character mode {mode!r}: expected one of {', '.join(MODES)}")
        path = resolve_model_path(model)
        info = character_meta(read_meta(path), path)  # checked before the network is built
        super().__init__(path, device=device, max_side=max_side, soft_hints=soft_hints, shading=shading)
        self.mode = mode
        self.name = str(info.get("name") or path.stem)
        self.network_weight = float(info.get("network_weight", NETWORK_WEIGHT))
        self.reference_images = read_references(path)  # [(color (H, W, 3), line (H, W))] uint8, as stored
        self.references = [Reference.build(color, line) for color, line in self.reference_images]
        what = "reference matching alone" if mode == "match" else "reference matching + network"
        self.meta = {**self.meta, "description": f"character '{self.name}': {len(self.references)} reference(s),"
                                                 f" {what}"}

    def colorize_layers(self, line: np.ndarray, hints: dict | None = None, tone: np.ndarray | None = None) -> Layers:
        """line (H, W) uint8 (paper 255) + validated hints in input pixels -> :class:`Layers` (see the class); a
        ``tone`` is not used (the matching works on lines)."""
        match = match_regions(line, self.references, segment(line))
        if self.mode == "match":
            votes, _, matched = match.votes()
            final = follow_hints(votes, hints, match, line)
            flat = from_lab(final)[match.seg.labels]  # as the network's fill: flat, so no shading
            layers = paint(line, flat, hints, seg=match.seg, shading=self.shading, votes=final)
        else:
            # the network's vote per region (its color-class choice where confident, as for any model)
            fill, own, net_votes, stride = self.network_votes(line, hints, match.seg)
            votes, _, matched = match.votes(net_votes, self.network_weight)
            final = follow_hints(votes, hints, match, line)
            layers = paint(line, fill, hints, seg=match.seg, shading=self.shading, votes=final, vote_stride=stride,
                           own=own)
        use = matched & (final == votes).all(axis=1)  # the matching's own colors: no hint recolored them
        if hints and (hints.get("points") or hints.get("strokes")):
            h, w = line.shape
            marked = render_hints(hints, h, w)[1] & ~match.seg.ink
            use[match.seg.labels[marked]] = False  # a hinted region is the hint's color alone, even the reference's
        return self.reference_shades(layers, match, final, use)

    def reference_shades(self, layers: Layers, match: Match, votes: np.ndarray, use: np.ndarray) -> Layers:
        """The same pose: regions colored by the matching (``use``: neither hinted nor recolored by a hint) take the
        aligned reference's own pixels of their material (:func:`~tintline.character.matching.reference_pixels`) in
        the flat layer, with no network shading over them; pixels a hint painted keep the hint. Another pose: as
        is."""
        got = reference_pixels(match, self.references, votes, use)
        if got is None:
            return layers
        rgb, mask = got
        mask &= (layers.flat == from_lab(votes)[match.seg.labels]).all(axis=-1)  # not painted by an exact hint
        flat, shading = layers.flat.copy(), layers.shading.copy()
        flat[mask], shading[mask] = rgb[mask], 255
        return Layers(flat, shading, layers.lines, layers.shading_opacity)

    def colorize_lines(self, line: np.ndarray, hints: dict | None = None, soft_hints: bool | None = None) -> np.ndarray:
        """line (H, W) uint8 + validated hints -> (H, W, 3) uint8 RGB."""
        return super().colorize_lines(line, hints, soft_hints=False if self.mode == "match" else soft_hints)
