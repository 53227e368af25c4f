"""`tintline eval`: score models and baselines on a dataset split and write an HTML report + metrics.json.

Every model sees identical inputs: hints are placed by the training simulator with a generator seeded per image
and hint count, and ``--gaps`` erases the same line segments for everyone. Each image is scored per pixel (PSNR,
SSIM, ΔE00, chroma) and per region (region accuracy, bleeding, hint adherence: see ``region_metrics``), at each
hint count; numbers are aggregated overall and per tag.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab
from tqdm import tqdm

from ..config import HintConfig
from ..data.dataset import load_pair
from ..data.hints import render_hints, simulate_hints
from ..data.imageio import read_image_file
from ..data.store import DatasetError, Entry, Store
from ..errors import UserError
from ..inference import load_colorizer
from ..monitor.html import esc, figure, line_plot, table, write_page
from ..monitor.images import overlay_hints, tile
from .metrics import all_metrics
from .region_metrics import region_metrics, scored_regions

DEFAULT_COUNTS = (0, 8)
CURVE_COUNTS = (0, 1, 2, 4, 8, 16, 32)
METRICS = ("psnr", "ssim", "delta_e00", "chroma", "region_acc", "region_acc_area", "bleeding", "hint_adherence")
LOWER_IS_BETTER = {"delta_e00", "bleeding"}


@dataclass
class Case:
    index: int
    entry: Entry
    color: np.ndarray  # (H, W, 3) uint8 truth
    line: np.ndarray  # (H, W) uint8 line art as the model sees it (with gaps when asked)
    clean_line: np.ndarray  # (H, W) uint8 line art that defines the scored regions

    @property
    def key(self) -> str:
        return self.entry.sha256[:16]


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


def failure_table(records: list[dict], attrs: dict[str, dict], count: int) -> list[list]:
    """Mean ΔE00 and region accuracy per line-art style, per complexity tercile (number of closed regions) and per
    subject-size tercile: where the model fails, not just how much."""
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


def load_cases(dataset: Path, split: str, limit: int, gaps: bool, seed: int) -> list[Case]:
    with Store.open(dataset) as store:
        entries = store.entries(split)
    if not entries:
        raise DatasetError(f"{dataset}: split {split!r} has no accepted images; run 'tintline data build' first")
    cases = []
    for i, e in enumerate(entries[:limit] if limit else entries):
        color, line = load_pair(e)
        seen = add_gaps(line, np.random.default_rng([seed, i, 7])) if gaps else line
        cases.append(Case(i, e, color, seen, line))
    return cases


def score(predict, cases: list[Case], counts: tuple[int, ...], seed: int, desc: str, progress: bool) -> list[dict]:
    """predict(case, hints) -> (H, W, 3) uint8. Returns per-image records with metrics per hint count."""
    out = []
    for case in tqdm(cases, desc=desc, unit="img", disable=not progress):
        rec: dict = {"key": case.key, "sha256": case.entry.sha256, "tags": list(case.entry.tags), "results": {}}
        truth_lab, regions = rgb2lab(case.color), scored_regions(case.clean_line)
        for count in counts:
            hints = _hints(case, count, seed)
            pred = predict(case, hints)
            pred_lab = rgb2lab(pred)
            colors, mask = render_hints(hints, *case.line.shape)
            m = all_metrics(pred, case.color, pred_lab, truth_lab)
            m.update(region_metrics(pred, case.color, case.clean_line, colors, mask, pred_lab=pred_lab,
                                    truth_lab=truth_lab, regions=regions))
            rec["results"][str(count)] = m
        out.append(rec)
    return out


def summarize(records: list[dict], counts: tuple[int, ...]) -> dict:
    summary = {str(c): {k: _mean([r["results"][str(c)][k] for r in records]) for k in METRICS} for c in counts}
    tags = sorted({t for r in records for t in r["tags"]})
    per_tag = {}
    for t in tags:
        sub = [r for r in records if t in r["tags"]]
        per_tag[t] = {"images": len(sub), **{str(c): {k: _mean([r["results"][str(c)][k] for r in sub])
                                                       for k in METRICS} for c in counts}}
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


def evaluate(model: str | Path | None, dataset: Path, out_dir: Path, split: str = "test", limit: int = 0,
             device: str = "cpu", seed: int = 0, progress: bool = True, baselines: tuple[str, ...] = (),
             hint_curve: bool = False, gaps: bool = False, predictions: Path | None = None,
             compare: str | Path | None = None, worst: int = 6) -> Path:
    """Score ``model`` (and ``baselines``, and ``compare``, or the images in ``predictions``); write the report."""
    counts = CURVE_COUNTS if hint_curve else DEFAULT_COUNTS
    cases = load_cases(dataset, split, limit, gaps, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict] = {}
    predictors = {}

    def model_predictor(spec):
        colorizer = load_colorizer(spec, device=device)
        return colorizer, (lambda case, hints: colorizer.colorize_lines(case.line, hints))

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

        counts = (0,)  # an external tool gets no hints from us
        predictors[f"predictions:{predictions}"] = from_files
        models[f"predictions:{predictions}"] = {"meta": {"description": f"images from {predictions}"}}
    if not predictors:
        raise UserError("nothing to evaluate: give a MODEL, --baseline, --compare or --predictions")

    for name, fn in predictors.items():
        recs = score(fn, cases, counts, seed, f"eval {Path(name).name or name}", progress)
        models[name].update(summarize(recs, counts))
        models[name]["per_image"] = recs

    model = split_spec(model)[0] if model is not None else None  # from here on, models go by their labels
    compare = split_spec(compare)[0] if compare is not None else None
    report: dict = {"dataset": str(dataset), "split": split, "images": len(cases), "gaps": gaps, "seed": seed,
                    "hint_counts": list(counts), "models": models}
    names = list(models)
    if compare is not None and model is not None:
        report["comparison"] = _compare(models[str(model)], models[str(compare)], counts, seed)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=1, allow_nan=True))
    body = _html(report, names, cases, predictors, counts, seed, out_dir, worst, model, compare)
    return write_page(out_dir / "index.html", "tintline evaluation", body)


def _compare(a: dict, b: dict, counts: tuple[int, ...], seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out: dict = {}
    for c in counts:
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
                 seed: int = 0) -> int:
    """Write the split's line art as ``<key>.png`` for another colorizer; score its outputs with --predictions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = load_cases(dataset, split, limit, gaps, seed)
    for c in cases:
        Image.fromarray(c.line).save(out_dir / f"{c.key}.png")
    return len(cases)


# ------------------------------------------------------------------------------------------- HTML


def _fmt(v: float) -> float | str:
    return "–" if isinstance(v, float) and math.isnan(v) else v


def _html(report: dict, names: list[str], cases: list[Case], predictors: dict, counts: tuple[int, ...], seed: int,
          out_dir: Path, worst: int, model, compare) -> str:
    models = report["models"]
    head = ["model", "hints", "PSNR ↑", "SSIM ↑", "ΔE00 ↓", "chroma", "region acc ↑", "region acc (area) ↑",
            "bleeding ↓", "hint adherence ↑"]
    rows = [[n, c, *(_fmt(models[n]["summary"][str(c)][k]) for k in METRICS)] for n in names for c in counts]
    truth_chroma = _mean([all_metrics(c.color, c.color)["chroma"] for c in cases[:50]])
    parts = [
        f"<p>Dataset <code>{esc(report['dataset'])}</code>, split <b>{esc(report['split'])}</b>, "
        f"{report['images']} images{', lines with gaps' if report['gaps'] else ''}. Truth chroma (first 50): "
        f"{truth_chroma:.1f}.</p>",
        table(head, rows),
        "<p class='note'>Hints are dots of the true color placed by the training simulator, seeded per image and"
        " count, identical for every model. Region metrics score the closed regions of the line art (background"
        " left out; ΔE00 ≤ 10 counts as right). Bleeding is the within-region color spread relative to the truth's"
        " (1 = as flat as the truth). Chroma tells washed-out outputs apart.</p>",
    ]
    if len(counts) > 2:
        parts.append("<h2>Hint curves</h2>")
        for k, title in (("delta_e00", "ΔE00 (lower is better)"), ("region_acc", "region accuracy"),
                         ("hint_adherence", "hint adherence")):
            series = {n: [(c, models[n]["summary"][str(c)][k]) for c in counts] for n in names}
            parts.append(line_plot(series, f"{title} vs. number of hints", xlabel="hints per image"))
    # per-tag table for MODEL (else the first scored), at the first and last count
    first = str(model) if model is not None and str(model) in models else names[0]  # galleries: MODEL's
    tag_rows = [[t, d["images"], *(_fmt(d[str(c)][k]) for c in (counts[0], counts[-1])
                                   for k in ("delta_e00", "region_acc"))]
                for t, d in sorted(models[first]["per_tag"].items(), key=lambda kv: -kv[1]["images"])[:20]]
    parts += [f"<h2>Per tag ({esc(first)})</h2>",
              table(["tag", "images", f"ΔE00 @{counts[0]}", f"region acc @{counts[0]}",
                     f"ΔE00 @{counts[-1]}", f"region acc @{counts[-1]}"], tag_rows)]
    attrs = image_attributes(Path(report["dataset"]), [r["sha256"] for r in models[first]["per_image"]])
    for c in dict.fromkeys((counts[0], counts[-1])):
        parts += [f"<h2>Failure statistics ({esc(first)}, {c} hints)</h2>",
                  table(["by", "group", "images", "ΔE00 ↓", "region acc ↑"],
                        [[g, lab, n, _fmt(d), _fmt(a)] for g, lab, n, d, a in
                         failure_table(models[first]["per_image"], attrs, c)])]
    # distributions
    parts.append("<h2>Distribution of per-image ΔE00 (no hints)</h2>")
    bins = np.linspace(0, 40, 21)
    series = {}
    for n in names:
        vals = [r["results"][str(counts[0])]["delta_e00"] for r in models[n]["per_image"]]
        hist, _ = np.histogram(vals, bins=bins)
        series[n] = [(float(b), float(h)) for b, h in zip(bins[:-1], hist, strict=True)]
    parts.append(line_plot(series, "images per ΔE00 bin", xlabel="ΔE00"))
    # galleries: worst-K for the same model
    fn = predictors[first]
    for crit, c, label in (("delta_e00", counts[0], "by ΔE00 without hints"),
                           ("region_acc", counts[-1], f"by region accuracy with {counts[-1]} hints")):
        recs = models[first]["per_image"]
        vals = np.array([r["results"][str(c)][crit] for r in recs], float)
        vals = np.where(np.isnan(vals), -np.inf if crit in LOWER_IS_BETTER else np.inf, vals)
        order = np.argsort(-vals if crit in LOWER_IS_BETTER else vals)[:worst]
        order = sorted(order, key=lambda i: (recs[i]["tags"][:1], i))  # grouped by tag
        rows_img, caps = [], []
        for i in order:
            case = cases[i]
            hints = _hints(case, c, seed)
            pred = fn(case, hints)
            rows_img.append([case.line, overlay_hints(case.line, *render_hints(hints, *case.line.shape)), pred,
                             case.color, _heat(pred, case.color)])
            caps.append([case.key, " ".join(case.entry.tags), recs[i]["results"][str(c)][crit]])
        fname = f"worst_{crit}.png"
        Image.fromarray(tile(rows_img)).save(out_dir / fname)
        parts += [f"<h2>Worst {worst} {esc(label)} ({esc(first)})</h2>",
                  figure(fname, "line art | hints | output | truth | ΔE00 heat map (black 0, yellow ≥ 40)"),
                  table(["image", "tags", crit], caps)]
    # samples: first images, every model, without and with hints
    rows_img = []
    for case in cases[:8]:
        hints = _hints(case, counts[-1], seed)
        row = [case.line, overlay_hints(case.line, *render_hints(hints, *case.line.shape))]
        for n in names:
            row += [predictors[n](case, _hints(case, 0, seed))]
            if counts[-1]:
                row += [predictors[n](case, hints)]
        rows_img.append([*row, case.color])
    Image.fromarray(tile(rows_img)).save(out_dir / "samples.png")
    cols = " | ".join(f"{n} (0 hints) | {n} ({counts[-1]} hints)" if counts[-1] else f"{n}" for n in names)
    parts += ["<h2>Samples</h2>", figure("samples.png", f"line art | hints | {cols} | truth")]
    if "comparison" in report:
        cmp_rows = [[k, c, _fmt(v["mean_diff"]), _fmt(v["ci95"][0]), _fmt(v["ci95"][1])]
                    for c, d in report["comparison"].items() for k, v in d.items()]
        parts += [f"<h2>Comparison: {esc(model)} minus {esc(compare)}</h2>",
                  table(["metric", "hints", "mean difference", "95% CI low", "95% CI high"], cmp_rows),
                  "<p class='note'>Bootstrap over images (2000 resamples). An interval that excludes 0 is a"
                  " difference this test set supports.</p>"]
        a, b = models[str(model)]["per_image"], models[str(compare)]["per_image"]
        diffs = np.array([abs(ra["results"]["0"]["delta_e00"] - rb["results"]["0"]["delta_e00"])
                          for ra, rb in zip(a, b, strict=True)])
        rows_img = []
        for i in np.argsort(-diffs)[:worst]:
            case = cases[i]
            rows_img.append([case.line, predictors[str(model)](case, _hints(case, 0, seed)),
                             predictors[str(compare)](case, _hints(case, 0, seed)), case.color])
        Image.fromarray(tile(rows_img)).save(out_dir / "differ_most.png")
        parts.append(figure("differ_most.png", f"where they differ most: line art | {model} | {compare} | truth"))
    return "".join(parts)
