"""Two of the manga issue's targets on the demo test split: a screentoned page gives the regions of its untoned gray
page, and ``--keep-shading`` keeps the page's lightness.

    python benchmarks/manga_targets.py [MODEL] [--dataset tintline-demo/data] [--limit N]

Each test image is rendered (at twice its size, its pair's own lines, continuous tones) once as a gray page and once
as a screentoned page (ruling and angle as ``tintline eval --input manga`` draws them). Reported: the share of
images whose screentoned page gives within 5 % of the gray page's number of regions (the gap-closed regions the
colorizer paints), the mean relative difference, and the mean |ΔL*| between each page's own (descreened) tone and
MODEL's output with a dot of the true color in every region; and the region accuracy of both outputs (scored as
``tintline eval --input manga`` scores them) with the share of images whose two accuracies lie within 0.05.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)
from PIL import Image

from tintline.data.hints import scale_hints
from tintline.data.manga import colorize_page, lightness, read_page, render_manga, sample_manga_params
from tintline.evaluate.region_metrics import region_metrics, scored_regions
from tintline.evaluate.run import MANGA_SCALE, load_cases, parse_protocols, protocol_hints
from tintline.inference import load_colorizer
from tintline.regions import segment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--dataset", default="tintline-demo/data", type=Path)
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args()
    colorizer = load_colorizer(args.model)
    per_region = parse_protocols(["per-region"])[0]
    within, rel, dl, kinds, accs = [], [], [], {}, []
    for case in load_cases(args.dataset, "test", args.limit, False, 0, "lines"):
        h, w = case.line.shape
        size = (w * MANGA_SCALE, h * MANGA_SCALE)
        big = cv2.resize(case.color, size, interpolation=cv2.INTER_LINEAR)
        lines = cv2.resize(case.line, size, interpolation=cv2.INTER_LINEAR)
        style = {**sample_manga_params(np.random.default_rng([0, case.index, 11])), "levels": 0}
        pages = {s: render_manga(big, **{**style, "screen": s}, lines=lines) for s in (False, True)}
        read = {s: read_page(Image.fromarray(p)) for s, p in pages.items()}
        kinds[read[True].kind] = kinds.get(read[True].kind, 0) + 1
        n_gray, n_screen = segment(read[False].line).n, segment(read[True].line).n
        within.append(abs(n_screen - n_gray) <= 0.05 * max(n_gray, 1))
        rel.append(abs(n_screen - n_gray) / max(n_gray, 1))
        hints = scale_hints(protocol_hints(case, per_region, 0), MANGA_SCALE)
        regions, acc = scored_regions(case.clean_line), {}
        for s in (False, True):
            out, page = colorize_page(colorizer, Image.fromarray(pages[s]), hints)
            if page.tone is not None:  # shading kept: the output's L* against the page's own (descreened) tone
                tone_l = lightness(np.repeat(page.tone[..., None], 3, axis=2))
                dl.append(float(np.abs(lightness(out) - tone_l).mean()))
            small = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)  # scored as `eval --input manga` does
            acc[s] = region_metrics(small, case.color, case.clean_line, regions=regions)["region_acc"]
        if regions.n:
            accs.append((acc[False], acc[True]))
        print(f"  {case.key}: regions gray {n_gray}, screentone {n_screen} (read as {read[True].kind})",
              file=sys.stderr)
    report = {"machine": cpu_model(), "command": " ".join(sys.argv), "images": len(within),
              "screen_read_as": kinds, "regions_within_5pct": float(np.mean(within)),
              "regions_mean_rel_diff": float(np.mean(rel)), "mean_abs_dL": float(np.mean(dl)),
              "max_abs_dL": float(np.max(dl))}
    if accs:
        a = np.array(accs)  # (n, 2): region accuracy of the gray page, of the screentoned page
        report.update({"region_acc_gray": float(a[:, 0].mean()), "region_acc_screentone": float(a[:, 1].mean()),
                       "region_acc_within_5pts": float(np.mean(np.abs(a[:, 1] - a[:, 0]) <= 0.05))})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
