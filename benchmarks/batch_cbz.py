"""A chapter as a comic archive: one command colors a 20-page CBZ, keeps the page order, and resumes after a kill.

    python benchmarks/batch_cbz.py [MODEL] [--dataset tintline-demo/data] [--pages 20] [--side 1200] [-o DIR]

Builds ``DIR/chapter.cbz`` from the test split's line art (each page a 2 x 2 grid of drawings at SIDE px, named so
that natural order differs from plain string order: p1, p2, ..., p10, ...), runs ``tintline colorize MODEL
chapter.cbz -o DIR/out``, kills it with SIGTERM once some pages are done, runs the same command again, and reports:
seconds of each run, pages done before the kill (the resumed run colors only the others: its time says so), and
whether the archive out has the pages in the input's order. Prints a Markdown table; writes ``DIR/batch_cbz.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)
from PIL import Image

from tintline.data.dataset import load_pair
from tintline.data.store import Store


def make_chapter(dataset: Path, pages: int, side: int, path: Path) -> list[str]:
    with Store.open(dataset) as store:
        entries = store.entries("test")
    cell = side // 2
    names = []
    with zipfile.ZipFile(path, "w") as z:
        for p in range(pages):
            page = np.full((side, side), 255, np.uint8)
            for k in range(4):
                line = load_pair(entries[(4 * p + k) % len(entries)])[1]
                y, x = (k // 2) * cell, (k % 2) * cell
                page[y : y + cell, x : x + cell] = cv2.resize(line, (cell, cell), interpolation=cv2.INTER_CUBIC)
            name = f"p{p + 1}.png"
            tmp = path.parent / name
            Image.fromarray(page).save(tmp)
            z.write(tmp, name)
            tmp.unlink()
            names.append(name)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--dataset", default="tintline-demo/data", type=Path)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--side", type=int, default=1200)
    ap.add_argument("-o", "--out", default="batch-cbz", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cbz, out = args.out / "chapter.cbz", args.out / "out"
    names = make_chapter(args.dataset, args.pages, args.side, cbz)
    cmd = [str(Path(sys.executable).parent / "tintline"), "colorize", args.model, str(cbz), "-o", str(out)]
    state = out / ".tintline-batch.json"

    def done() -> int:
        if not state.is_file():
            return 0
        try:
            return len(json.loads(state.read_text()).get("done", []))
        except (OSError, json.JSONDecodeError):  # being replaced this instant
            return 0

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and done() < args.pages // 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    first = time.perf_counter() - t
    before = done()
    t = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    second = time.perf_counter() - t
    if run.returncode != 0:
        raise SystemExit(f"the resumed run failed: {run.stderr.strip().splitlines()[-1:]}")
    with zipfile.ZipFile(out / "chapter.cbz") as z:
        order = [i.filename for i in z.infolist()]
    report = {"machine": cpu_model(), "command": " ".join(sys.argv), "pages": args.pages, "side": args.side,
              "first_run_s": first, "pages_before_kill": before, "resumed_run_s": second,
              "in_order": order == names, "pages_out": len(order)}
    (args.out / "batch_cbz.json").write_text(json.dumps(report, indent=1))
    print(f"machine: {report['machine']}\n\n| pages | side | killed after | pages done then | resumed run |"
          f" pages out | in order |\n|---|---|---|---|---|---|---|\n| {args.pages} | {args.side} | {first:.1f} s |"
          f" {before} | {second:.1f} s | {len(order)} | {order == names} |")


if __name__ == "__main__":
    main()
