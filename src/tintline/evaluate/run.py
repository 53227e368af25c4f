"""`tintline eval`: score models and baselines on a dataset split and write an HTML report + metrics.json.

Every model sees identical inputs under each hint *protocol* (:class:`Protocol`, ``--hints``):

* ``simulated``: marks placed by the training simulator with a generator seeded per image and hint count, at 0 and
  8 hints (or at ``CURVE_COUNTS`` with ``--hint-curve``); results under the keys ``"0"``, ``"8"``, ...
* ``none``: no hints at all (key ``"none"``; the same input as ``"0"``, scored once when both are asked for).
* ``per-region``: one dot in every closed region (4-connected paper pixels of the clean line art, at least
  :func:`~.region_metrics.default_min_area` pixels, not touching the border) at its most interior point, in the
  region's true median color (:func:`~tintline.data.hints.region_dots`): what a colorist who flats every region
  gives; a region-true colorizer should then get every region right.
* ``largest:K``: the same dots in the K largest of those regions only.

``--gaps`` erases the same line segments for everyone. Each image is scored per pixel (PSNR, SSIM, ΔE00, chroma)
and per region (region accuracy, bleeding, hint adherence: see ``region_metrics``), under each protocol; numbers
are aggregated overall and per tag.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab
from tqdm import tqdm

from ..config import HintConfig
from ..data.dataset import load_pair
from ..data.hints import region_dots, render_hints, scale_hints, simulate_hints
from ..data.imageio import read_image_file
from ..data.manga import colorize_page, render_manga, sample_manga_params
from ..data.store import DatasetError, Entry, Store
from ..errors import UserError
from ..inference import load_colorizer
from ..monitor.html import esc, figure, line_plot, table, write_page
from ..monitor.images import overlay_hints, tile
from ..regions import label_regions
from .metrics import all_metrics
from .region_metrics import default_min_area, region_metrics, scored_regions

DEFAULT_COUNTS = (0, 8)
CURVE_COUNTS = (0, 1, 2, 4, 8, 16, 32)
DEFAULT_PROTOCOLS = ("simulated", "per-region", "largest:4", "none")
METRICS = ("psnr", "ssim", "delta_e00", "chroma", "region_acc", "region_acc_area", "bleeding", "hint_adherence")
LOWER_IS_BETTER = {"delta_e00", "bleeding"}


@dataclass
class Case:
    index: int
    entry: Entry
    color: np.ndarray  # (H, W, 3) uint8 truth
    line: np.ndarray  # (H, W) uint8 line art as the model sees it (with gaps when asked)
    clean_line: np.ndarray  # (H, W) uint8 line art that defines the scored regions
    page: np.ndarray | None = None  # (MANGA_SCALE H, MANGA_SCALE W) uint8 manga page given instead (--input manga)

    @property
    def key(self) -> str:
        return self.entry.sha256[:16]

    @property
    def shown(self) -> np.ndarray:
        """(H, W) uint8: what the colorizers were given, at the truth's size (for the report's pictures)."""
        if self.page is None:
            return self.line
        return cv2.resize(self.page, self.line.shape[::-1], interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Protocol:
    """One way of giving hints to every model; ``key`` names its results in metrics.json.

    kind "simulated" (``n`` hints from the training simulator), "none", "per-region" (a dot in every scored
    region) or "largest" (dots in the ``n`` largest regions)."""

    kind: str
    n: int = 0

    @property
    def key(self) -> str:
        # simulated counts keep their bare numbers as keys, so readers of older metrics.json files keep working
        return {"simulated": str(self.n), "largest": f"largest:{self.n}"}.get(self.kind, self.kind)

    @property
    def label(self) -> str:
        """Readable name for the report: "8 hints", "a dot in every region", ..."""
        if self.kind == "simulated":
            return f"{self.n} hint{'' if self.n == 1 else 's'}"
        if self.kind == "per-region":
            return "a dot in every region"
        if self.kind == "largest":
            return "a dot in the largest region" if self.n == 1 else f"dots in the {self.n} largest regions"
        return "none"

    @property
    def hintless(self) -> bool:
        """The model gets no hints ("none", or 0 simulated hints): the same input, so the same result."""
        return self.kind == "none" or (self.kind == "simulated" and self.n == 0)


def parse_protocols(specs: Sequence[str] | None = None, hint_curve: bool = False) -> tuple[Protocol, ...]:
    """``--hints`` values (None: :data:`DEFAULT_PROTOCOLS`) -> protocols in order, duplicates dropped.

    ``simulated`` expands to one protocol per hint count: ``DEFAULT_COUNTS``, or ``CURVE_COUNTS`` with
    ``hint_curve``. Raises :class:`UserError` on a malformed value (``largest:x``, ``largest:0``, ``foo``)."""
    out: dict[str, Protocol] = {}
    for spec in DEFAULT_PROTOCOLS if specs is None else specs:
        text = str(spec).strip()
        kind, sep, arg = text.partition(":")
        if text == "simulated":
            found = [Protocol("simulated", c) for c in (CURVE_COUNTS if hint_curve else DEFAULT_COUNTS)]
        elif text in ("none", "per-region"):
            found = [Protocol(text)]
        elif kind == "largest" and sep and arg.isdigit() and int(arg) > 0:
            found = [Protocol("largest", int(arg))]
        else:
            raise UserError(f"--hints {spec}: expected simulated, none, per-region or largest:K with K a whole"
                            " number >= 1")
        for p in found:
            out.setdefault(p.key, p)
    if not out:
        raise UserError("--hints: give at least one protocol (simulated, none, per-region, largest:K)")
    if hint_curve and not any(p.kind == "simulated" for p in out.values()):
        raise UserError("--hint-curve scores simulated hints at 0-32 marks: add --hints simulated")
    return tuple(out.values())


def add_gaps(line: np.ndarray, rng: np.random.Generator, n: int = 12, length: int = 6) -> np.ndarray:
    """Erase ``n`` short segments of the lines (white discs on ink pixels): lines that leak, as in rough sketches."""
    out = line.copy()
    ys, xs = np.nonzero(line < 128)
    if len(ys) == 0:
        return out
    for i in rng.choice(len(ys), size=min(n, len(ys)), replace=False):
        cv2.circle(out, (int(xs[i]), int(ys[i])), length // 2, 255, -1)
    return out


def _hints(case: Case, count: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, case.index, count])
    return simulate_hints(case.color, case.clean_line, HintConfig(), rng, count=count)


def protocol_hints(case: Case, protocol: Protocol, seed: int) -> dict:
    """The hints (validated form) ``protocol`` gives for ``case``: a function of the image, protocol and seed only,
    so every model gets the same. Region dots use the clean line art, the regions that are scored."""
    if protocol.hintless:
        return {"points": [], "strokes": []}
    if protocol.kind == "simulated":
        return _hints(case, protocol.n, seed)
    labels, n = label_regions(case.clean_line)
    return region_dots(case.color, labels, n, min_area=default_min_area(case.clean_line.shape),
                       largest=protocol.n if protocol.kind == "largest" else None)


class HintBook:
    """Hints per (image, protocol), made once and handed to every model alike (the region dots cost a labelling
    and a distance transform per image, the galleries ask again)."""

    def __init__(self, seed: int):
        self.seed = seed
        self._memo: dict[tuple[int, str], dict] = {}

    def __call__(self, case: Case, protocol: Protocol) -> dict:
        k = (case.index, protocol.key)
        if k not in self._memo:
            self._memo[k] = protocol_hints(case, protocol, self.seed)
        return self._memo[k]


def _mean(values: list[float]) -> float:
    vals = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else float("nan")


def image_attributes(dataset: Path, shas: list[str]) -> dict[str, dict]:
    """sha256 -> {"style": line-art extractor, "subject": share of the canvas with content} from the manifest."""
    out: dict[str, dict] = {}
    with Store.open(dataset) as store:
        for r in store.db.execute("SELECT sha256, line_params, content_frac FROM images WHERE status='accepted'"):
            try:
                params = json.loads(r["line_params"] or "{}")
                style = params.get("style") or params.get("extractor") or "unknown"
            except (json.JSONDecodeError, AttributeError):
                style = "unknown"
            out[r["sha256"]] = {"style": str(style), "subject": r["content_frac"]}
    return {s: out.get(s, {"style": "unknown", "subject": None}) for s in shas}


def failure_table(records: list[dict], attrs: dict[str, dict], count: int | str) -> list[list]:
    """Mean ΔE00 and region accuracy per line-art style, per complexity tercile (number of closed regions) and per
    subject-size tercile: where the model fails, not just how much. ``count``: the protocol key (a hint count or
    e.g. "per-region") whose results are grouped."""
    rows: list[list] = []

    def add(group: str, label: str, sub: list[dict]) -> None:
        if sub:
            rows.append([group, label, len(sub), _mean([r["results"][str(count)]["delta_e00"] for r in sub]),
                         _mean([r["results"][str(count)]["region_acc"] for r in sub])])

    for style in sorted({attrs[r["sha256"]]["style"] for r in records}):
        add("line-art style", style, [r for r in records if attrs[r["sha256"]]["style"] == style])
    for group, key in (("complexity (closed regions)", lambda r: r["results"][str(count)]["regions"]),
                       ("subject size (canvas share)", lambda r: attrs[r["sha256"]]["subject"])):
        vals = [(key(r), r) for r in records if key(r) is not None]
        if len(vals) < 3:
            continue
        a, b = np.quantile([v for v, _ in vals], [1 / 3, 2 / 3])
        add(group, f"low (≤ {a:.3g})", [r for v, r in vals if v <= a])
        add(group, f"middle ({a:.3g}–{b:.3g}]", [r for v, r in vals if a < v <= b])
        add(group, f"high (> {b:.3g})", [r for v, r in vals if v > b])
    return rows


INPUTS = ("lines", "manga")  # --input: the pairs' line art, or each test image as a gray / screentoned page
MANGA_SCALE = 2  # manga pages are printed at twice the pairs' size: a 4-8 px screen is 2-4 px at their size


def manga_page(color: np.ndarray, line: np.ndarray, seed: int, index: int) -> np.ndarray:
    """The ``--input manga`` page of test image ``index``: the image's lightness as a gray page or a screentone
    (half each), ruling, angle and noise drawn from (seed, index) so every model and run gets the same pages. The
    tones are continuous, as a grayscale print of the image is: posterized flat tones (the training style's other
    option) would lose lightness no colorizer can recover, and the scores would measure that loss. The lines are
    the pair's own ``line``, so line-art and manga input differ only by the tones. The page is
    :data:`MANGA_SCALE` times the pair's size (a screen is much finer than the drawing)."""
    rng = np.random.default_rng([seed, index, 11])
    h, w = line.shape
    size = (w * MANGA_SCALE, h * MANGA_SCALE)
    big = cv2.resize(color, size, interpolation=cv2.INTER_LINEAR)
    return render_manga(big, **{**sample_manga_params(rng), "levels": 0},
                        lines=cv2.resize(line, size, interpolation=cv2.INTER_LINEAR))


def load_cases(dataset: Path, split: str, limit: int, gaps: bool, seed: int, input_kind: str = "lines"
               ) -> list[Case]:
    with Store.open(dataset) as store:
        entries = store.entries(split)
    if not entries:
        raise DatasetError(f"{dataset}: split {split!r} has no accepted images; run 'tintline data build' first")
    cases = []
    for i, e in enumerate(entries[:limit] if limit else entries):
        color, line = load_pair(e)
        seen = add_gaps(line, np.random.default_rng([seed, i, 7])) if gaps else line
        page = manga_page(color, line, seed, i) if input_kind == "manga" else None
        cases.append(Case(i, e, color, seen, line, page))
    return cases


Predict = Callable[[Case, dict], np.ndarray]


def score(predict: Predict, cases: list[Case], protocols: Sequence[Protocol], seed: int, desc: str, progress: bool,
          hints: HintBook | None = None) -> list[dict]:
    """predict(case, hints) -> (H, W, 3) uint8. Returns per-image records with metrics per protocol key.

    ``hints``: a shared :class:`HintBook` (so every model gets the very same hints without recomputing them)."""
    book = HintBook(seed) if hints is None else hints
    out = []
    for case in tqdm(cases, desc=desc, unit="img", disable=not progress):
        rec: dict = {"key": case.key, "sha256": case.entry.sha256, "tags": list(case.entry.tags), "results": {}}
        truth_lab, regions = rgb2lab(case.color), scored_regions(case.clean_line)
        hintless: dict | None = None
        for p in protocols:
            if p.hintless and hintless is not None:
                rec["results"][p.key] = dict(hintless)  # "none" and "0" are the same input: scored once
                continue
            h = book(case, p)
            pred = predict(case, h)
            pred_lab = rgb2lab(pred)
            colors, mask = render_hints(h, *case.line.shape)
            m = all_metrics(pred, case.color, pred_lab, truth_lab)
            m.update(region_metrics(pred, case.color, case.clean_line, colors, mask, pred_lab=pred_lab,
                                    truth_lab=truth_lab, regions=regions))
            rec["results"][p.key] = m
            if p.hintless:
                hintless = m
        out.append(rec)
    return out


def summarize(records: list[dict], keys: Sequence[str | int]) -> dict:
    """Per-image records -> {"summary": {key: {metric: mean}}, "per_tag": {tag: {"images": n, key: {...}}}}."""
    summary = {str(c): {k: _mean([r["results"][str(c)][k] for r in records]) for k in METRICS} for c in keys}
    tags = sorted({t for r in records for t in r["tags"]})
    per_tag = {}
    for t in tags:
        sub = [r for r in records if t in r["tags"]]
        per_tag[t] = {"images": len(sub), **{str(c): {k: _mean([r["results"][str(c)][k] for r in sub])
                                                       for k in METRICS} for c in keys}}
    return {"summary": summary, "per_tag": per_tag}


def _heat(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel ΔE00 as a heat map (black 0 -> red/yellow 40+)."""
    de = deltaE_ciede2000(rgb2lab(truth), rgb2lab(pred))
    v = np.clip(de / 40.0 * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(v, cv2.COLORMAP_INFERNO)[..., ::-1]


def _bootstrap_ci(diff: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    diff = diff[~np.isnan(diff)]
    if len(diff) < 2:
        return float("nan"), float("nan")
    means = rng.choice(diff, size=(n, len(diff)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def split_spec(spec: str | Path) -> tuple[str, str | Path]:
    """``"LABEL=MODEL"`` (a trained baseline under its label, e.g. ``pix2pix=runs/pix2pix``) -> (label, model);
    anything else (a path that exists, a baseline name) is its own label."""
    text = str(spec)
    if "=" in text and not Path(text).exists():
        label, _, path = text.partition("=")
        return label, path
    return text, spec


def colorize_case_page(colorizer: object, case: Case, hints: dict) -> tuple[np.ndarray, str]:
    """``--input manga``: the case's page (:func:`manga_page`, at MANGA_SCALE) colorized as a user's page would be
    (read, descreened, its shading kept), hints scaled with it -> (RGB at the case's size, the kind read)."""
    assert case.page is not None
    rgb, page = colorize_page(colorizer, Image.fromarray(case.page), scale_hints(hints, MANGA_SCALE))
    return cv2.resize(rgb, case.color.shape[1::-1], interpolation=cv2.INTER_AREA), page.kind


def evaluate(model: str | Path | None, dataset: Path, out_dir: Path, split: str = "test", limit: int = 0,
             device: str = "cpu", seed: int = 0, progress: bool = True, baselines: tuple[str, ...] = (),
             hint_curve: bool = False, gaps: bool = False, predictions: Path | None = None,
             compare: str | Path | None = None, worst: int = 6, protocols: Sequence[str] | None = None,
             input_kind: str = "lines") -> Path:
    """Score ``model`` (and ``baselines``, and ``compare``, or the images in ``predictions``) under every hint
    protocol (``protocols``: ``--hints`` values, None for :data:`DEFAULT_PROTOCOLS`); write the report.

    ``input_kind`` "manga": every colorizer gets each test image as a gray or screentoned manga page
    (:func:`manga_page`) and reads it as a user's page would be read (:func:`tintline.data.manga.colorize_page`:
    detected, descreened, its shading kept); the scored regions stay the pairs' line art's."""
    if input_kind not in INPUTS:
        raise UserError(f"--input {input_kind}: expected one of {', '.join(INPUTS)}")
    prots = parse_protocols(protocols, hint_curve)
    if predictions is not None:
        prots = tuple(p for p in prots if p.hintless)  # an external tool gets no hints from us
        if not prots:
            raise UserError("--predictions scores another tool's images without hints: add --hints none")
    cases = load_cases(dataset, split, limit, gaps, seed, input_kind)
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict] = {}
    kinds: dict[str, str] = {}  # case key -> what the page reader found in its page
    predictors = {}

    def model_predictor(spec):
        colorizer = load_colorizer(spec, device=device)
        if input_kind == "lines":
            return colorizer, (lambda case, hints: colorizer.colorize_lines(case.line, hints))

        def from_page(case: Case, hints: dict) -> np.ndarray:
            rgb, kinds[case.key] = colorize_case_page(colorizer, case, hints)
            return rgb

        return colorizer, from_page

    specs = [s for s in (model, compare) if s is not None] + [b for b in baselines if b not in (model, compare)]
    if "mean-color" in specs:
        specs.remove("mean-color")
        mean = mean_color_image(dataset, cases[0].color.shape)
        predictors["mean-color"] = lambda case, hints: (mean if mean.shape == case.color.shape else
                                                        cv2.resize(mean, case.color.shape[1::-1]))
        models["mean-color"] = {"meta": {"description": "per-pixel mean of the training split"}}
    for spec in specs:
        label, path = split_spec(spec)
        colorizer, fn = model_predictor(path)
        predictors[label] = fn
        models[label] = {"meta": {k: v for k, v in colorizer.meta.items() if k in
                                      ("step", "git_commit", "git_describe", "dataset_fingerprint", "description")}}
    if predictions is not None:
        if not predictions.is_dir():
            raise UserError(f"predictions folder not found: {predictions}")
        missing = [c.key for c in cases if not (predictions / f"{c.key}.png").is_file()]
        if missing:
            raise UserError(f"{predictions}: {len(missing)} of {len(cases)} predictions missing, e.g. {missing[0]}.png"
                            f" (write the inputs with --write-inputs DIR; name each output like its input)")

        def from_files(case: Case, hints: dict) -> np.ndarray:
            img = np.asarray(read_image_file(predictions / f"{case.key}.png").convert("RGB"))
            if img.shape != case.color.shape:
                img = cv2.resize(img, case.color.shape[1::-1], interpolation=cv2.INTER_AREA)
            return img

        predictors[f"predictions:{predictions}"] = from_files
        models[f"predictions:{predictions}"] = {"meta": {"description": f"images from {predictions}"}}
    if not predictors:
        raise UserError("nothing to evaluate: give a MODEL, --baseline, --compare or --predictions")

    keys = [p.key for p in prots]
    book = HintBook(seed)  # one set of hints for every model
    for name, fn in predictors.items():
        recs = score(fn, cases, prots, seed, f"eval {Path(name).name or name}", progress, hints=book)
        models[name].update(summarize(recs, keys))
        models[name]["per_image"] = recs

    model = split_spec(model)[0] if model is not None else None  # from here on, models go by their labels
    compare = split_spec(compare)[0] if compare is not None else None
    report: dict = {"dataset": str(dataset), "split": split, "images": len(cases), "gaps": gaps, "seed": seed,
                    "input": input_kind, "input_kinds": {k: list(kinds.values()).count(k) for k in set(kinds.values())},
                    "input_kind_of": kinds,
                    "hint_counts": [p.n for p in prots if p.kind == "simulated"], "protocols": keys,
                    "protocol_labels": {p.key: p.label for p in prots}, "models": models}
    names = list(models)
    if compare is not None and model is not None:
        report["comparison"] = _compare(models[str(model)], models[str(compare)], keys, seed)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=1, allow_nan=True))
    body = _html(report, names, cases, predictors, prots, book, out_dir, worst, model, compare)
    return write_page(out_dir / "index.html", "tintline evaluation", body)


def _compare(a: dict, b: dict, keys: Sequence[str | int], seed: int) -> dict:
    """Paired per-image differences a - b per protocol key and metric: mean and 95% bootstrap interval."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    for c in keys:
        out[str(c)] = {}
        for k in METRICS:
            diff = np.array([ra["results"][str(c)][k] - rb["results"][str(c)][k]
                             for ra, rb in zip(a["per_image"], b["per_image"], strict=True)], float)
            lo, hi = _bootstrap_ci(diff, rng)
            out[str(c)][k] = {"mean_diff": _mean(list(diff)), "ci95": [lo, hi]}
    return out


def mean_color_image(dataset: Path, shape: tuple[int, ...], max_images: int = 1000) -> np.ndarray:
    """Per-pixel mean color of (up to ``max_images`` of) the training split: the 'mean-color' baseline."""
    with Store.open(dataset) as store:
        entries = store.entries("train")[:max_images]
    if not entries:
        raise DatasetError(f"{dataset}: no training images for the mean-color baseline")
    acc = np.zeros(shape, np.float64)
    for e in entries:
        color = load_pair(e)[0]
        acc += color if color.shape == shape else cv2.resize(color, shape[1::-1], interpolation=cv2.INTER_AREA)
    return np.clip(acc / len(entries) + 0.5, 0, 255).astype(np.uint8)


def write_inputs(dataset: Path, out_dir: Path, split: str = "test", limit: int = 0, gaps: bool = False,
                 seed: int = 0, input_kind: str = "lines") -> int:
    """Write the split's line art (or manga pages) as ``<key>.png`` for another colorizer; score its outputs with
    --predictions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = load_cases(dataset, split, limit, gaps, seed, input_kind)
    for c in cases:
        Image.fromarray(c.page if c.page is not None else c.line).save(out_dir / f"{c.key}.png")
    return len(cases)


# ------------------------------------------------------------------------------------------- HTML


def _fmt(v: float) -> float | str:
    return "–" if isinstance(v, float) and math.isnan(v) else v


def _focus(protocols: Sequence[Protocol]) -> tuple[Protocol, Protocol]:
    """(the no-hint protocol, the hinted one the galleries and per-tag tables show): the first hintless protocol
    (else the first), and ``per-region`` when scored (else the last)."""
    plain = next((p for p in protocols if p.hintless), protocols[0])
    hinted = next((p for p in protocols if p.kind == "per-region"), protocols[-1])
    return plain, hinted


def _with(p: Protocol) -> str:
    """"without hints" / "with 8 hints" / "with a dot in every region", for captions."""
    return "without hints" if p.hintless else f"with {p.label}"


def _html(report: dict, names: list[str], cases: list[Case], predictors: dict, protocols: Sequence[Protocol],
          hints: HintBook, out_dir: Path, worst: int, model, compare) -> str:
    models = report["models"]
    labels = {p.key: p.label for p in protocols}
    head = ["model", "hints", "PSNR ↑", "SSIM ↑", "ΔE00 ↓", "chroma", "region acc ↑", "region acc (area) ↑",
            "bleeding ↓", "hint adherence ↑"]
    rows = [[n, p.label, *(_fmt(models[n]["summary"][p.key][k]) for k in METRICS)] for n in names for p in protocols]

    def acc_de(n: str, key: str) -> str:
        s = models[n]["summary"][key]
        return " / ".join("–" if math.isnan(v) else f"{v:{f}}" for v, f in ((s["region_acc"], ".3f"),
                                                                             (s["delta_e00"], ".2f")))

    # the headline: how each model does under each protocol, on the two numbers a colorist reads first
    compact = table(["protocol", *names], [[p.label, *(acc_de(n, p.key) for n in names)] for p in protocols])
    truth_chroma = _mean([all_metrics(c.color, c.color)["chroma"] for c in cases[:50]])
    parts = [
        f"<p>Dataset <code>{esc(report['dataset'])}</code>, split <b>{esc(report['split'])}</b>, "
        f"{report['images']} images{', lines with gaps' if report['gaps'] else ''}. Truth chroma (first 50): "
        f"{truth_chroma:.1f}.</p>",
        *([f"<p>Input: each test image as a <b>manga page</b> (gray tones or screentone); the reader found "
           f"{esc(', '.join(f'{k} {v}' for k, v in sorted(report['input_kinds'].items())))}.</p>"]
          if report.get("input") == "manga" else []),
        "<h2>Protocol × model: region accuracy ↑ / ΔE00 ↓</h2>",
        compact,
        "<h2>All metrics</h2>",
        table(head, rows),
        "<p class='note'>Hint protocols, identical for every model: <i>N hints</i> are dots and short strokes of"
        " the true color placed by the training simulator, seeded per image and count; <i>a dot in every region</i>"
        " is one dot at the most interior point of every closed region (the scored ones: 4-connected, not touching"
        " the border, at least 48 px at 256 px scaled by image area) in the region's true median color, what a"
        " colorist who flats every region gives; <i>dots in the K largest regions</i> are those dots in the K"
        " largest regions only; <i>none</i> gives no hints. Region metrics score the closed regions of the line"
        " art (background left out; ΔE00 ≤ 10 counts as right). Bleeding is the within-region color spread"
        " relative to the truth's (1 = as flat as the truth). Chroma tells washed-out outputs apart.</p>",
    ]
    counts = [p for p in protocols if p.kind == "simulated"]
    if len(counts) > 2:
        parts.append("<h2>Hint curves</h2>")
        for k, title in (("delta_e00", "ΔE00 (lower is better)"), ("region_acc", "region accuracy"),
                         ("hint_adherence", "hint adherence")):
            series = {n: [(p.n, models[n]["summary"][p.key][k]) for p in counts] for n in names}
            parts.append(line_plot(series, f"{title} vs. number of hints", xlabel="hints per image"))
    # per-tag table for MODEL (else the first scored), without hints and with the per-region dots (else the last)
    plain, hinted = _focus(protocols)
    focus = list(dict.fromkeys((plain, hinted)))
    first = str(model) if model is not None and str(model) in models else names[0]  # galleries: MODEL's
    tag_rows = [[t, d["images"], *(_fmt(d[p.key][k]) for p in focus for k in ("delta_e00", "region_acc"))]
                for t, d in sorted(models[first]["per_tag"].items(), key=lambda kv: -kv[1]["images"])[:20]]
    parts += [f"<h2>Per tag ({esc(first)})</h2>",
              table(["tag", "images", *(f"{m} ({p.label})" for p in focus for m in ("ΔE00", "region acc"))],
                    tag_rows)]
    attrs = image_attributes(Path(report["dataset"]), [r["sha256"] for r in models[first]["per_image"]])
    for p in focus:
        parts += [f"<h2>Failure statistics ({esc(first)}, {esc(p.label)})</h2>",
                  table(["by", "group", "images", "ΔE00 ↓", "region acc ↑"],
                        [[g, lab, n, _fmt(d), _fmt(a)] for g, lab, n, d, a in
                         failure_table(models[first]["per_image"], attrs, p.key)])]
    # distributions
    parts.append(f"<h2>Distribution of per-image ΔE00 ({esc('no hints' if plain.hintless else plain.label)})</h2>")
    bins = np.linspace(0, 40, 21)
    series = {}
    for n in names:
        vals = [r["results"][plain.key]["delta_e00"] for r in models[n]["per_image"]]
        hist, _ = np.histogram(vals, bins=bins)
        series[n] = [(float(b), float(h)) for b, h in zip(bins[:-1], hist, strict=True)]
    parts.append(line_plot(series, "images per ΔE00 bin", xlabel="ΔE00"))
    # galleries: worst-K for the same model
    fn = predictors[first]
    for crit, p, label in (("delta_e00", plain, f"by ΔE00 {_with(plain)}"),
                           ("region_acc", hinted, f"by region accuracy {_with(hinted)}")):
        recs = models[first]["per_image"]
        vals = np.array([r["results"][p.key][crit] for r in recs], float)
        vals = np.where(np.isnan(vals), -np.inf if crit in LOWER_IS_BETTER else np.inf, vals)
        order = np.argsort(-vals if crit in LOWER_IS_BETTER else vals)[:worst]
        order = sorted(order, key=lambda i: (recs[i]["tags"][:1], i))  # grouped by tag
        rows_img, caps = [], []
        for i in order:
            case = cases[i]
            h = hints(case, p)
            pred = fn(case, h)
            rows_img.append([case.shown, overlay_hints(case.shown, *render_hints(h, *case.line.shape)), pred,
                             case.color, _heat(pred, case.color)])
            caps.append([case.key, " ".join(case.entry.tags), recs[i]["results"][p.key][crit]])
        fname = f"worst_{crit}.png"
        Image.fromarray(tile(rows_img)).save(out_dir / fname)
        parts += [f"<h2>Worst {worst} {esc(label)} ({esc(first)})</h2>",
                  figure(fname, "line art | hints | output | truth | ΔE00 heat map (black 0, yellow ≥ 40)"),
                  table(["image", "tags", crit], caps)]
    # samples: first images, every model, without hints and with the hinted protocol's
    rows_img = []
    for case in cases[:8]:
        h = hints(case, hinted)
        row = [case.shown, overlay_hints(case.shown, *render_hints(h, *case.line.shape))]
        for n in names:
            row += [predictors[n](case, hints(case, plain))]
            if not hinted.hintless:
                row += [predictors[n](case, h)]
        rows_img.append([*row, case.color])
    Image.fromarray(tile(rows_img)).save(out_dir / "samples.png")
    cols = " | ".join(f"{n} ({plain.label}) | {n} ({hinted.label})" if not hinted.hintless else f"{n}"
                      for n in names)
    parts += ["<h2>Samples</h2>", figure("samples.png", f"line art | hints | {cols} | truth")]
    if "comparison" in report:
        cmp_rows = [[k, labels.get(c, c), _fmt(v["mean_diff"]), _fmt(v["ci95"][0]), _fmt(v["ci95"][1])]
                    for c, d in report["comparison"].items() for k, v in d.items()]
        parts += [f"<h2>Comparison: {esc(model)} minus {esc(compare)}</h2>",
                  table(["metric", "hints", "mean difference", "95% CI low", "95% CI high"], cmp_rows),
                  "<p class='note'>Bootstrap over images (2000 resamples). An interval that excludes 0 is a"
                  " difference this test set supports.</p>"]
        a, b = models[str(model)]["per_image"], models[str(compare)]["per_image"]
        diffs = np.array([abs(ra["results"][plain.key]["delta_e00"] - rb["results"][plain.key]["delta_e00"])
                          for ra, rb in zip(a, b, strict=True)])
        rows_img = []
        for i in np.argsort(-diffs)[:worst]:
            case = cases[i]
            rows_img.append([case.shown, predictors[str(model)](case, hints(case, plain)),
                             predictors[str(compare)](case, hints(case, plain)), case.color])
        Image.fromarray(tile(rows_img)).save(out_dir / "differ_most.png")
        parts.append(figure("differ_most.png", f"where they differ most ({_with(plain)}): line art | {model} |"
                                               f" {compare} | truth"))
    return "".join(parts)
