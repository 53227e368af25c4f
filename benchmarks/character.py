"""Character mode on the Ren'Py demo sprites: reference matching alone, the network alone, and both, without hints.

    python benchmarks/character.py [-o DIR] [--base MODEL] [--minutes M] [--clicks K]

Characters are made as ``tintline character REF.png`` makes them (:func:`tintline.character.model.make_character`:
the sprite file composited on white, line art by the XDoG extractor): **Eileen** from "eileen happy" (targets
"eileen concerned" and "eileen vhappy": same pose, another face) and **Lucy** from "lucy happy" (target "lucy mad":
another pose, arms and body moved); with `make bench-data`, **Sylvie** of Ren'Py's "The Question", a character no
dataset here holds, from "sylvie green normal" (targets "sylvie green giggle" and "sylvie green surprised"). Targets
are the sprites as benchmarks/region_true.py loads them (cropped,
512 px, a paper frame), also mirrored, with line art in each of the four styles of the project's extractors
(fixed parameters, below; ``alpha`` outlines the sprite's silhouette). No hints.

Rows: ``match`` (``match:FILE``: the matching alone), ``network`` (``--base``, the shipped model by default, no
references), ``combined`` (the character file); with ``--minutes M`` also characters whose network was fine-tuned
on the reference for M minutes (``tintline character --minutes M``): ``tuned-network`` (that network alone, as a
plain model) and ``tuned`` (the fine-tuned character file: matching + the tuned network). Scores, with the
helpers of benchmarks/region_true.py:

* **region accuracy** (share of regions whose output median is within ΔE00 10 of the truth's): ``strict`` over
  the region-true issue's scored regions (4-connected, not touching the border, >= 48 px at 256 px; on the XDoG
  line art of these softly shaded sprites there are almost none, so the count is given) and ``closed`` over the
  gap-closed regions of :func:`tintline.regions.segment` that are not background (most of their pixels
  transparent in the sprite) and have >= 48 px at 256 px of paper;
* **ΔE00** over the non-line pixels of those gap-closed regions (non-line, non-background pixels);
* seconds to make a character (one reference), to load it, and to colorize a 512 px target (median).

``--clicks K``: also the corrections a user would make, as interactive segmentation counts clicks (NoC): after
each coloring, a dot of the truth's color in the largest wrong closed region, at the most interior point of its
pixels that are off, up to K dots; the region accuracy (closed) after 0, 1, 2, 4 ... K dots and the mean number
of dots until it reaches 0.95 (K + 1 when it never does) for the character file, the network alone and the paint
bucket (``region-fill``).

Writes ``DIR/character.json``, pictures ``DIR/character_<style>.png`` (rows: line art, match, network, combined,
truth) and with ``--clicks`` plots ``DIR/clicks_<character>.svg``; prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)
from PIL import Image
from region_true import THE_QUESTION_IMAGES, load_sprite, min_area, score, sprite_path

from tintline.character.model import make_character
from tintline.data.hints import region_dots
from tintline.data.lineart import REFERENCE_XDOG, make_lineart
from tintline.evaluate.region_metrics import Regions, scored_regions
from tintline.inference import Colorizer, load_colorizer
from tintline.monitor.html import line_plot
from tintline.monitor.images import tile
from tintline.regions import segment

CHARACTERS = {"eileen": ("eileen happy", ("eileen concerned", "eileen vhappy")), "lucy": ("lucy happy", ("lucy mad",))}
if THE_QUESTION_IMAGES.is_dir():  # `make bench-data`: a character that is in no dataset here, same dress, other faces
    CHARACTERS["sylvie"] = ("sylvie green normal", ("sylvie green giggle", "sylvie green surprised"))
STYLES = {
    "xdog": REFERENCE_XDOG,
    "adaptive": {"block": 11, "c": 7.0, "blur": 0.5},
    "edges": {"sigma": 1.0, "threshold": 60.0, "width": 2},
    "alpha": {"width": 2, **REFERENCE_XDOG},
}
METHODS = ("match", "network", "combined")
TUNED = ("tuned-network", "tuned")
PICTURE_TARGETS = ("eileen concerned", "lucy mad", "sylvie green surprised")


def background(color: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sprite on white, framed by paper -> (H, W) bool: the pure white connected to the frame
    (where the sprite was transparent)."""
    white = np.all(color == 255, axis=2).astype(np.uint8)
    _, lab = cv2.connectedComponents(white, connectivity=4)
    outside = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return np.isin(lab, outside[outside > 0])


def closed_regions(line: np.ndarray, bg: np.ndarray) -> Regions:
    """The gap-closed regions of ``line`` that are not background and have >= ``min_area`` paper pixels."""
    seg = segment(line)
    paper = seg.paper_labels()
    total = np.bincount(seg.labels.ravel(), minlength=seg.n + 1)
    in_bg = np.bincount(seg.labels.ravel(), weights=bg.ravel(), minlength=seg.n + 1)
    keep = (in_bg < 0.5 * np.maximum(total, 1)) & (seg.areas >= min_area(line.shape))
    keep[0] = False
    remap = np.zeros(seg.n + 1, np.int32)
    remap[keep] = np.arange(1, int(keep.sum()) + 1)
    labels = remap[paper]
    return Regions(labels, int(keep.sum()), np.bincount(labels.ravel(), minlength=int(keep.sum()) + 1))


def targets() -> list[tuple[str, str, bool, str, np.ndarray, np.ndarray, np.ndarray]]:
    """-> [(character, target, mirrored, style, color, line, background)]."""
    out = []
    for char, (_, names) in CHARACTERS.items():
        for name in names:
            color0, _ = load_sprite(name)
            for mirrored in (False, True):
                color = np.ascontiguousarray(color0[:, ::-1]) if mirrored else color0
                bg = background(color)
                alpha = np.where(bg, 0, 255).astype(np.uint8)
                for style, params in STYLES.items():
                    out.append((char, name, mirrored, style, color, make_lineart(color, alpha, style, params), bg))
    return out


CLICK_METHODS = ("combined", "network", "region-fill")
CLICK_GOAL = 0.95


def wrong_regions(lab_p: np.ndarray, lab_t: np.ndarray, regions: Regions) -> np.ndarray:
    """Output and truth (H, W, 3) CIELAB -> (n + 1,) bool: the regions whose output median is more than ΔE00 10
    from the truth's (as ``score``)."""
    from skimage.color import deltaE_ciede2000

    wrong = np.zeros(regions.n + 1, bool)
    for r in range(1, regions.n + 1):
        m = regions.labels == r
        wrong[r] = deltaE_ciede2000(np.median(lab_p[m], axis=0), np.median(lab_t[m], axis=0)) > 10.0
    return wrong


def click_curve(model, color: np.ndarray, line: np.ndarray, regions: Regions, clicks: int) -> list[float]:
    """Region accuracy (closed) after 0..``clicks`` corrections. Each is a dot where a user would put it: in the
    largest region still wrong, at the most interior point of its pixels that are off (more than ΔE00 10 from the
    truth's median color of the region: a region may be half right), in the truth's median color of those pixels."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    hints: dict = {"points": [], "strokes": []}
    accs = []
    lab_t = rgb2lab(color)
    for k in range(clicks + 1):
        pred = model.colorize_lines(line, hints if hints["points"] else None)
        accs.append(score(pred, color, line, regions)["region_acc"])
        if k == clicks:
            break
        lab_p = rgb2lab(pred)
        wrong = wrong_regions(lab_p, lab_t, regions)
        if not wrong.any():
            accs += [accs[-1]] * (clicks - k)
            break
        r = int(np.flatnonzero(wrong)[np.argmax(regions.areas[wrong])])
        inside = regions.labels == r
        truth = np.median(lab_t[inside], axis=0)
        off = inside & (deltaE_ciede2000(lab_p, np.broadcast_to(truth, lab_p.shape)) > 10.0)
        dot = region_dots(color, (off if off.any() else inside).astype(np.int32), 1, min_area=1, skip_border=False)
        hints["points"] += dot["points"]
    return accs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", default="character-bench", type=Path)
    ap.add_argument("--base", default="default", help="the network (alone, and in the characters)")
    ap.add_argument("--minutes", type=float, default=0.0, help="also fine-tuned characters (minutes each)")
    ap.add_argument("--clicks", type=int, default=0, help="also K corrections, one dot each (see above)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    methods = METHODS + (TUNED if args.minutes > 0 else ())
    files, tuned_files, make_s, tune_s = {}, {}, [], []
    for char, (ref, _) in CHARACTERS.items():
        t = time.perf_counter()
        files[char] = make_character([sprite_path(ref)], args.out / f"{char}.safetensors",
                                     base=args.base, name=char)
        make_s.append(time.perf_counter() - t)
        if args.minutes > 0:
            t = time.perf_counter()
            tuned_files[char] = make_character([sprite_path(ref)],
                                               args.out / f"{char}-tuned.safetensors", base=args.base, name=char,
                                               minutes=args.minutes)
            tune_s.append(time.perf_counter() - t)
    models, load_s = {}, []
    for char, f in files.items():
        t = time.perf_counter()
        combined = load_colorizer(f)  # the references' regions are recomputed here
        load_s.append(time.perf_counter() - t)
        models[char] = {"match": load_colorizer(f"match:{f}"), "network": load_colorizer(args.base),
                        "combined": combined}
        models[char]["region-fill"] = load_colorizer("region-fill")
        if char in tuned_files:
            models[char]["tuned-network"] = Colorizer(tuned_files[char])  # the fine-tuned network as a plain model
            models[char]["tuned"] = load_colorizer(tuned_files[char])
    rows: list[dict] = []
    curves: list[dict] = []
    pictures: dict[str, list[list[np.ndarray]]] = {s: [] for s in STYLES}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for char, name, mirrored, style, color, line, bg in targets():
        strict = scored_regions(line, min_area(line.shape))
        closed = closed_regions(line, bg)
        preds = []
        for method in methods:
            t = time.perf_counter()
            pred = models[char][method].colorize_lines(line)
            seconds[method].append(time.perf_counter() - t)
            s_closed = score(pred, color, line, closed)
            s_strict = score(pred, color, line, strict) if strict.n else {"region_acc": float("nan")}
            rows.append({"character": char, "target": name, "mirrored": mirrored, "style": style, "method": method,
                         "strict_acc": s_strict["region_acc"], "strict_n": strict.n,
                         "closed_acc": s_closed["region_acc"], "closed_n": closed.n,
                         "delta_e00": s_closed["delta_e00"]})
            preds.append(pred)
        for method in CLICK_METHODS if args.clicks > 0 else ():
            curves.append({"character": char, "target": name, "mirrored": mirrored, "style": style,
                           "method": method, "accuracy": click_curve(models[char][method], color, line, closed,
                                                                     args.clicks)})
        if name in PICTURE_TARGETS:
            pictures[style].append([np.repeat(line[..., None], 3, axis=2), *preds, color])
        print(f"  {name}{' mirrored' if mirrored else ''} {style}: " + ", ".join(
            f"{r['method']} {r['closed_acc']:.2f}/{r['delta_e00']:.1f}" for r in rows[-len(methods):]),
            file=sys.stderr)
    for style, pic in pictures.items():
        Image.fromarray(tile(pic)).save(args.out / f"character_{style}.png")
    report = {"machine": cpu_model(), "command": " ".join(sys.argv), "rows": rows, "make_seconds": make_s,
              "fine_tune_make_seconds": tune_s, "load_seconds": load_s, "clicks": curves,
              "colorize_seconds_median": {m: float(np.median(v)) for m, v in seconds.items()}}
    (args.out / "character.json").write_text(json.dumps(report, indent=1))

    def mean(sel: list[dict], key: str) -> str:
        v = [r[key] for r in sel if not np.isnan(r[key])]
        return f"{np.mean(v):.3f}" if v else "n/a"

    groups = {f"{pose}{' mirrored' if mirrored else ''}": (lambda r, c=char, m=mirrored: r["character"] == c
                                                            and r["mirrored"] == m)
              for char, pose in (("eileen", "same pose (Eileen)"), ("lucy", "other pose (Lucy mad)"),
                                 ("sylvie", "unseen character, same dress (Sylvie)")) if char in CHARACTERS
              for mirrored in (False, True)}
    print(f"machine: {report['machine']}\n\nall four line styles, no hints:\n\n"
          "| targets | method | region acc (closed) | ΔE00 | region acc (strict) | strict regions scored |\n"
          "|---|---|---|---|---|---|")
    for gname, pred in groups.items():
        for method in methods:
            sel = [r for r in rows if pred(r) and r["method"] == method]
            n_strict = sum(r["strict_n"] for r in sel)
            de = float(np.mean([r["delta_e00"] for r in sel]))
            print(f"| {gname} | {method} | {mean(sel, 'closed_acc')} | {de:.2f} | {mean(sel, 'strict_acc')} |"
                  f" {n_strict} in {len(sel)} images |")
    print("\nper line style (all targets, plain and mirrored):\n\n| style | method | region acc (closed) | ΔE00 |\n"
          "|---|---|---|---|")
    for style in STYLES:
        for method in methods:
            sel = [r for r in rows if r["style"] == style and r["method"] == method]
            print(f"| {style} | {method} | {mean(sel, 'closed_acc')} |"
                  f" {float(np.mean([r['delta_e00'] for r in sel])):.2f} |")
    for char in sorted({c["character"] for c in curves}):  # a plot per character: accuracy against dots
        series = {m: list(enumerate(np.mean([c["accuracy"] for c in curves
                                             if c["character"] == char and c["method"] == m], axis=0).tolist()))
                  for m in CLICK_METHODS}
        (args.out / f"clicks_{char}.svg").write_text(line_plot(
            series, f"{char}: region accuracy after k corrections (all styles, plain and mirrored)", xlabel="dots"))
    if curves:
        shown = sorted({0, args.clicks, *(2**i for i in range(8) if 2**i < args.clicks)})
        print(f"\ncorrections (a dot in the largest wrong region, one at a time), region accuracy (closed) after k dots"
              f" and the mean dots until >= {CLICK_GOAL} ({args.clicks + 1}: never within {args.clicks}):\n\n"
              "| targets | method | " + " | ".join(f"{k} dots" for k in shown) + f" | dots to {CLICK_GOAL} |\n"
              "|---|---|" + "---|" * (len(shown) + 1))
        for gname, pred in groups.items():
            for method in CLICK_METHODS:
                acc = np.array([c["accuracy"] for c in curves if pred(c) and c["method"] == method])
                reach = [next((k for k, a in enumerate(row) if a >= CLICK_GOAL), args.clicks + 1) for row in acc]
                print(f"| {gname} | {method} | " + " | ".join(f"{np.nanmean(acc[:, k]):.3f}" for k in shown)
                      + f" | {np.mean(reach):.1f} |")
    tuned = f" ({max(tune_s):.0f} s with the fine-tune)" if tune_s else ""
    print(f"\nmaking a character: {max(make_s):.1f} s{tuned}; loading it: {max(load_s):.1f} s; colorizing 512 px"
          " (median): "
          + ", ".join(f"{m} {s:.2f} s" for m, s in report["colorize_seconds_median"].items()))


if __name__ == "__main__":
    main()
