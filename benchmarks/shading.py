"""Calibrate the painting step on the validation split: shading opacity, white threshold, class confidence.

    python benchmarks/shading.py MODEL DATASET [--split val] [--limit 100] [--opacity 0 0.5 1] [--white 0 8 16]
        [--confidence 0 0.5 2] [--input lines|manga] [--tone-sigma 0 5 10 20]

For each shading opacity (0 = flat colors only) and white threshold (an unhinted region voted within this CIELAB
distance of white is painted white; default: the shipped one) and class confidence (an unhinted region takes the
color-class head's choice when its chance of being right is at least this; above 1: never) and, with ``--input
manga`` (the split's images as gray / screentoned pages, as ``tintline eval --input manga`` gives them), tone sigma
(how closely the color choice follows a region's lightness on the page; 0: not at all), the same model colorizes the
split under the region-dot protocols and no hints; prints ΔE00 (per pixel), region accuracy and bleeding. The
shipped defaults (``tintline.inference.DEFAULT_SHADING``, ``DEFAULT_WHITE``, ``DEFAULT_CONFIDENCE``,
``DEFAULT_TONE_SIGMA``) are chosen from this table, on validation images, never on the test split. """

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

from tintline.evaluate.run import HintBook, colorize_case_page, load_cases, parse_protocols, score
from tintline.inference import DEFAULT_CONFIDENCE, DEFAULT_TONE_FLOOR, DEFAULT_TONE_SIGMA, DEFAULT_WHITE, Colorizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--opacity", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--white", type=float, nargs="+", default=[DEFAULT_WHITE])
    ap.add_argument("--confidence", type=float, nargs="+", default=[DEFAULT_CONFIDENCE])
    ap.add_argument("--input", choices=["lines", "manga"], default="lines")
    ap.add_argument("--tone-sigma", type=float, nargs="+", default=[DEFAULT_TONE_SIGMA])
    ap.add_argument("--tone-floor", type=float, default=DEFAULT_TONE_FLOOR)
    args = ap.parse_args()
    cases = load_cases(args.dataset, args.split, args.limit, False, 0, args.input)
    protocols = parse_protocols(["per-region", "largest:4", "none"])
    book = HintBook(0)
    print(f"machine: {cpu_model()}\ncommand: {' '.join(sys.argv)}\n{len(cases)} {args.split} images\n")
    print(f"input: {args.input}, tone floor: {args.tone_floor}\n")
    print("| shading opacity | white | confidence | tone sigma | hints | ΔE00 ↓ | region accuracy ↑ | bleeding ↓ |\n"
          "|---|---|---|---|---|---|---|---|")
    sigmas = args.tone_sigma if args.input == "manga" else [DEFAULT_TONE_SIGMA]  # line art has no tone
    grid = [(o, w, c, t) for o in args.opacity for w in args.white for c in args.confidence for t in sigmas]
    for opacity, white, conf, sigma in grid:
        c = Colorizer(args.model, shading=opacity, white=white, confidence=conf)
        c.tone_sigma, c.tone_floor = sigma, args.tone_floor
        if args.input == "manga":
            def predict(case, h, c=c):
                return colorize_case_page(c, case, h)[0]
        else:
            def predict(case, h, c=c):
                return c.colorize_lines(case.line, h)
        recs = score(predict, cases, protocols, 0,
                     f"shading {opacity} white {white} confidence {conf} tone {sigma}", True, hints=book)
        for p in protocols:
            vals = {k: np.nanmean([r["results"][p.key][k] for r in recs]) for k in
                    ("delta_e00", "region_acc", "bleeding")}
            print(f"| {opacity:g} | {white:g} | {conf:g} | {sigma:g} | {p.label} | {vals['delta_e00']:.2f} |"
                  f" {vals['region_acc']:.3f} | {vals['bleeding']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
