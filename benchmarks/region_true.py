"""Region-true colorization on drawings the demo dataset does not hold, and on a large page.

    python benchmarks/region_true.py MODEL [LABEL=MODEL ...] [-o DIR] [--page 4096] [--detail fixed native]

1. **Sprites**: the Ren'Py demo characters (Eileen concerned / vhappy were dropped by the demo build as
   near-duplicates, so no split holds them; Eileen happy is in the validation split, Lucy in the training split).
   Line art from the project's color-edge extractor at 512 px. Each model and the baselines ``region-fill`` and
   ``white`` colorize them under three hint protocols: ``per-region`` (a dot at the most interior point of every
   closed region of >= 48 px at 256 px, in the region's true median color), ``largest:4`` and ``none``. Region
   accuracy (share of closed regions whose output median is within ΔE00 10 of the truth's) and ΔE00 over non-line,
   non-background pixels, as in the region-true issue.
2. **Page**: a PAGE x PAGE page of 4 x 4 clip-art drawings from the test split, line art extracted at full
   resolution, with a dot in every region, in a random quarter of them, and none: seconds and peak memory of one
   ``colorize_lines`` call (in a child process: its peak resident size while colorizing, the model already loaded),
   the share of region-interior pixels (2+ px from the ink) more than 10 CIELAB units from their region's median
   output color, and region accuracy / ΔE00 over the regions a drawing of the page would score at 256 px (>= 48 px
   there, so >= 48 * (cell / 256)^2 px on the page).

``--detail``: run the network models at a fixed working size (256 px, the default), at native detail (lines as
thick as in training, overlapping tiles), or both (labels get `` (native)``).

Writes ``DIR/region_true.json`` and pictures (``sprites_*.png``, ``page_*.png``); prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)
from PIL import Image

from tintline.data.hints import region_dots, render_hints
from tintline.data.lineart import REFERENCE_XDOG, make_lineart
from tintline.data.sources import RENPY_IMAGES
from tintline.evaluate.region_metrics import region_metrics, scored_regions
from tintline.inference import load_colorizer
from tintline.monitor.images import overlay_hints, tile
from tintline.regions import label_regions

SPRITES = ("eileen happy", "eileen concerned", "eileen vhappy", "lucy happy", "lucy mad")
PROTOCOLS = ("per-region", "largest:4", "none")


# Ren'Py's "The Question" (Debian renpy-thequestion, `make bench-data`): Sylvie, a character no dataset here holds
THE_QUESTION_IMAGES = Path("/usr/share/games/renpy/the_question/game/images")


def sprite_path(name: str) -> Path:
    """A sprite by its Ren'Py name ("eileen happy", "sylvie green normal"): the demo's, else The Question's."""
    for folder in (Path(RENPY_IMAGES), THE_QUESTION_IMAGES):
        if (folder / f"{name}.png").is_file():
            return folder / f"{name}.png"
    raise FileNotFoundError(f"sprite {name!r} not found (make corpus; Sylvie: make bench-data)")


def load_sprite(name: str, side: int = 512, margin: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """-> color (H, W, 3) uint8 on white, line art (H, W) uint8: the character cropped, scaled to ``side`` and
    framed by ``margin`` pixels of paper. Line art in the ``edges`` style (color borders): on these softly shaded
    sprites XDoG finds hardly a closed region (Eileen: 1), color edges find the areas a colorist would fill."""
    rgba = np.asarray(Image.open(sprite_path(name)).convert("RGBA"))
    ys, xs = np.nonzero(rgba[..., 3] > 0)
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    s = (side - 2 * margin) / max(rgba.shape[:2])
    rgba = cv2.resize(rgba, (round(rgba.shape[1] * s), round(rgba.shape[0] * s)), interpolation=cv2.INTER_AREA)
    rgba = np.pad(rgba, ((margin, margin), (margin, margin), (0, 0)))  # transparent frame
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    color = np.clip(rgba[..., :3] * a + 255.0 * (1 - a) + 0.5, 0, 255).astype(np.uint8)
    line = make_lineart(color, None, "edges", {"sigma": 1.0, "threshold": 60.0, "width": 2})
    return color, line


def min_area(shape: tuple[int, ...]) -> int:
    return max(16, round(48 * (max(shape[:2]) / 256) ** 2))


def protocol_hints(protocol: str, color: np.ndarray, line: np.ndarray) -> dict:
    if protocol == "none":
        return {"points": [], "strokes": []}
    labels, n = label_regions(line)
    largest = int(protocol.split(":")[1]) if protocol.startswith("largest:") else None
    return region_dots(color, labels, n, min_area(line.shape), largest=largest)


def _delta_e00(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean CIEDE2000 between two (N, 3) uint8 RGB pixel lists."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    return float(deltaE_ciede2000(rgb2lab(truth.reshape(-1, 1, 3)), rgb2lab(pred.reshape(-1, 1, 3))).mean())


def score(pred: np.ndarray, color: np.ndarray, line: np.ndarray, regions) -> dict:
    m = region_metrics(pred, color, line, min_area=min_area(line.shape), regions=regions)
    sel = (line >= 160) & (regions.labels > 0)  # non-line, non-background pixels
    return {"region_acc": m["region_acc"], "delta_e00": _delta_e00(pred[sel], color[sel]), "bleeding": m["bleeding"],
            "regions": m["regions"]}


def sprites(models: dict[str, tuple[str, str]], out: Path) -> dict:
    result: dict = {}
    rows = []
    for name in SPRITES:
        color, line = load_sprite(name)
        regions = scored_regions(line, min_area(line.shape))
        for protocol in PROTOCOLS:
            hints = protocol_hints(protocol, color, line)
            row = [line, overlay_hints(line, *render_hints(hints, *line.shape))]
            for label, (spec, detail) in models.items():
                pred = _colorizer(spec, detail).colorize_lines(line, hints)
                result.setdefault(label, {}).setdefault(protocol, {})[name] = score(pred, color, line, regions)
                row.append(pred)
            if name in ("eileen concerned", "lucy mad"):
                rows.append([*row, color])
        print(f"  {name}: {regions.n} scored regions", file=sys.stderr)
    Image.fromarray(tile(rows)).save(out / "sprites.png")
    for label in result:
        for protocol in PROTOCOLS:
            per = result[label][protocol]
            result[label][protocol]["mean"] = {k: float(np.mean([per[s][k] for s in SPRITES]))
                                              for k in ("region_acc", "delta_e00", "bleeding")}
    return result


def make_page(dataset: Path, side: int, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A side x side page of n x n clip-art drawings of the test split, line art extracted at full size."""
    from tintline.data.imageio import Limits, composite_on_white, read_image_file
    from tintline.data.store import Store

    with Store.open(dataset) as store:
        originals = [store.object_path(e.sha256, r["ext"]) for e in store.entries("test")
                     for r in store.db.execute("SELECT ext FROM images WHERE sha256 = ?", (e.sha256,))]
    cell = side // n
    color = np.full((side, side, 3), 255, np.uint8)
    k = 0
    for path in originals:
        if k == n * n:
            break
        rgb = composite_on_white(read_image_file(path, Limits()))
        if min(rgb.shape[:2]) < 200:
            continue
        s = cell / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
                         interpolation=cv2.INTER_CUBIC)
        y, x = (k // n) * cell, (k % n) * cell
        color[y : y + rgb.shape[0], x : x + rgb.shape[1]] = rgb
        k += 1
    params = dict(REFERENCE_XDOG, sigma=REFERENCE_XDOG["sigma"] * side / 1024)  # lines as thick as drawn
    return color, make_lineart(color, None, "xdog", params)


def _peak_mb() -> float:
    """Peak resident memory of this process since the last :func:`_reset_peak` (VmHWM), in MB."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current resident size


def _colorizer(spec: str, detail: str):
    colorizer = load_colorizer(spec)
    if hasattr(colorizer, "detail"):
        colorizer.detail = detail
    return colorizer


def _page_child(spec: str, detail: str, line: np.ndarray, hints: dict, q: mp.Queue) -> None:
    colorizer = _colorizer(spec, detail)
    _reset_peak()
    t = time.perf_counter()
    pred = colorizer.colorize_lines(line, hints)
    q.put((time.perf_counter() - t, _peak_mb(), pred))


def off_region(pred: np.ndarray, line: np.ndarray) -> float:
    """Share of region-interior pixels (2+ px from the ink) more than 10 CIELAB units from their region's median."""
    labels, n = label_regions(line)
    interior = cv2.distanceTransform((labels > 0).astype(np.uint8), cv2.DIST_L2, 5) >= 2
    lab = cv2.cvtColor(pred.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lbl, px = labels[interior], lab[interior]
    order = np.argsort(lbl, kind="stable")
    lbl, px = lbl[order], px[order]
    bounds = np.searchsorted(lbl, np.arange(n + 2))
    med = np.zeros((n + 1, 3), np.float32)
    for k in range(1, n + 1):
        if bounds[k + 1] > bounds[k]:
            med[k] = np.median(px[bounds[k] : bounds[k + 1]], axis=0)
    return float((np.linalg.norm(px - med[lbl], axis=1) > 10).mean())


PAGE_CELLS = 4  # drawings per page side


def page_hints(protocol: str, color: np.ndarray, line: np.ndarray, area: int) -> dict:
    """The page's hints: a dot in every region of >= ``area`` px, in a random quarter of them (seeded), or none."""
    if protocol == "none":
        return {"points": [], "strokes": []}
    labels, n = label_regions(line)
    dots = region_dots(color, labels, n, area)
    if protocol == "quarter":
        keep = np.random.default_rng(0).random(len(dots["points"])) < 0.25
        dots = {"points": [p for p, k in zip(dots["points"], keep, strict=True) if k], "strokes": []}
    return dots


def page(models: dict[str, tuple[str, str]], dataset: Path, side: int, out: Path) -> dict:
    color, line = make_page(dataset, side, PAGE_CELLS)
    Image.fromarray(line).save(out / "page_lines.png")
    area = max(16, round(48 * (side / PAGE_CELLS / 256) ** 2))  # what one drawing would score at 256 px
    regions = scored_regions(line, area)
    result: dict = {}
    ctx = mp.get_context("spawn")
    for protocol in ("per-region", "quarter", "none"):
        hints = page_hints(protocol, color, line, area)
        for label, (spec, detail) in models.items():
            q = ctx.Queue()
            p = ctx.Process(target=_page_child, args=(spec, detail, line, hints, q))
            p.start()
            seconds, peak_mb, pred = q.get()
            p.join()
            m = region_metrics(pred, color, line, min_area=area, regions=regions)
            sel = (line >= 160) & (regions.labels > 0)
            result.setdefault(label, {})[protocol] = {
                "seconds": seconds, "peak_mb": peak_mb, "off_region": off_region(pred, line),
                "region_acc": m["region_acc"], "delta_e00": _delta_e00(pred[sel], color[sel]),
                "regions": m["regions"]}
            if protocol == "per-region":
                crop = pred[side // 4 : side // 4 + 1024, side // 4 : side // 4 + 1024]
                Image.fromarray(crop).save(out / f"page_{label}.png")
            print(f"  page {label} {protocol}: {result[label][protocol]}", file=sys.stderr)
    Image.fromarray(color[side // 4 : side // 4 + 1024, side // 4 : side // 4 + 1024]).save(out / "page_truth.png")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="MODEL or LABEL=MODEL; region-fill and white are always added")
    ap.add_argument("-o", "--out", default="region-true", type=Path)
    ap.add_argument("--dataset", default="tintline-demo/data", type=Path, help="for the page: its test split")
    ap.add_argument("--page", type=int, default=4096, help="page side in pixels (0: skip the page)")
    ap.add_argument("--detail", nargs="+", choices=["fixed", "native"], default=["fixed"])
    args = ap.parse_args()
    models: dict[str, tuple[str, str]] = {}
    for spec in args.models:
        label, _, path = spec.partition("=") if "=" in spec and not Path(spec).exists() else (spec, "", spec)
        for detail in args.detail:
            models[label + (f" ({detail})" if len(args.detail) > 1 else "")] = (path, detail)
    models.update({"region-fill": ("region-fill", "fixed"), "white": ("white", "fixed")})
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": cpu_model(), "command": " ".join(sys.argv), "sprites": sprites(models, args.out)}
    if args.page:
        report["page"] = page(models, args.dataset, args.page, args.out)
    (args.out / "region_true.json").write_text(json.dumps(report, indent=1))
    print(f"machine: {report['machine']}\n")
    print("| model | hints | region accuracy | ΔE00 | bleeding |\n|---|---|---|---|---|")
    for label in models:
        for protocol in PROTOCOLS:
            m = report["sprites"][label][protocol]["mean"]
            print(f"| {label} | {protocol} | {m['region_acc']:.3f} | {m['delta_e00']:.2f} | {m['bleeding']:.2f} |")
    if args.page:
        print(f"\npage {args.page}x{args.page}:\n\n| model | hints | seconds | peak MB | off-region pixels |"
              " region accuracy | ΔE00 |\n|---|---|---|---|---|---|---|")
        for label in models:
            for protocol, m in report["page"][label].items():
                print(f"| {label} | {protocol} | {m['seconds']:.1f} | {m['peak_mb']:.0f} |"
                      f" {100 * m['off_region']:.1f} % | {m['region_acc']:.3f} | {m['delta_e00']:.2f} |")


if __name__ == "__main__":
    main()
