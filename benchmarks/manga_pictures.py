"""Pictures of manga pages read and colorized: test images as ``tintline eval --input manga`` makes them and an anime
sprite as a screentoned page.

    python benchmarks/manga_pictures.py [MODEL] [--dataset tintline-demo/data] [-o docs/img/manga_pages.png]

Rows: the page given, the tone the reader kept (descreened), the line art it made for the regions, the output
without hints, the output with a dot of the true color in every region (``per-region``), the truth. Every output
keeps the page's own lightness (``--keep-shading``, the default for pages).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from region_true import load_sprite  # benchmarks/region_true.py (scripts run from their folder)
from region_true import protocol_hints as sprite_hints

from tintline.data.hints import scale_hints
from tintline.data.manga import colorize_page, render_manga
from tintline.evaluate.run import MANGA_SCALE, load_cases, parse_protocols, protocol_hints
from tintline.inference import load_colorizer
from tintline.monitor.images import tile

TEST_IMAGES = (1, 6, 9)  # test-split indices with a gray and a screentoned page among them


def row(colorizer, page: np.ndarray, hints: dict, color: np.ndarray, scale: int) -> list[np.ndarray]:
    h, w = color.shape[:2]

    def small(a: np.ndarray) -> np.ndarray:
        a = cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)
        return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a

    plain, p = colorize_page(colorizer, Image.fromarray(page))
    hinted, _ = colorize_page(colorizer, Image.fromarray(page), scale_hints(hints, scale))
    print(f"  read as {p.kind}" + (f", screen period {p.period:.1f} px" if p.period else ""), file=sys.stderr)
    return [small(page), small(p.tone if p.tone is not None else page), small(p.line), small(plain), small(hinted),
            color]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--dataset", default="tintline-demo/data", type=Path)
    ap.add_argument("-o", "--out", default=Path("docs/img/manga_pages.png"), type=Path)
    args = ap.parse_args()
    colorizer = load_colorizer(args.model)
    per_region = parse_protocols(["per-region"])[0]
    rows = []
    cases = load_cases(args.dataset, "test", max(TEST_IMAGES) + 1, False, 0, "manga")
    for i in TEST_IMAGES:
        case = cases[i]
        assert case.page is not None
        rows.append(row(colorizer, case.page, protocol_hints(case, per_region, 0), case.color, MANGA_SCALE))
    # an anime sprite as a screentoned page, at 2x its 512 px (a screen of 6 px), its own edge line art
    color, line = load_sprite("eileen concerned")
    big = cv2.resize(color, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    page = render_manga(big, screen=True, period=6.0, angle=45.0, noise=2.0,
                        lines=cv2.resize(line, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))
    rows.append(row(colorizer, page, sprite_hints("per-region", color, line), color, 2))
    side = 256
    rows = [[cv2.resize(a, (round(a.shape[1] * side / a.shape[0]), side), interpolation=cv2.INTER_AREA) for a in r]
            for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(tile(rows)).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
