"""Training throughput of tintline's default recipe against the pix2pix reference, in one process.

    python benchmarks/train_speed.py DATASET [--seconds 60] [--size 256]
    python benchmarks/train_speed.py DATASET --quality-minutes 8   # also: equal wall-clock training, then eval

Each recipe runs the real training step (``Trainer.train_step``: G forward, D step, G step, EMA) on batches of
``size``-pixel crops from DATASET for the same wall-clock time, after a warm-up; the ratio of images/s is what
to read (absolute numbers vary up to ~1.6x between processes on this machine). With ``--quality-minutes`` both are
then trained for that long each (``tintline train`` code path) and scored on the validation split.
Results are printed and written to docs/benchmarks.md (section "Training").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[1]


def throughput(recipe: str, dataset: Path, seconds: float, size: int) -> dict:
    from tintline.config import load_train_config
    from tintline.train.trainer import Trainer

    cfg = load_train_config(ROOT / "configs" / recipe, [f"train.crop={size}", "train.scale=[1.0, 1.0]",
                                                        "train.inspect_every=0"])
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, dataset, Path(tmp) / "run")
        batches = iter(tr.loader)
        tr.train_step(next(batches))  # warm-up: allocator, first-call overheads
        n, steps, start = 0, 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(tr.loader)
                batch = next(batches)
            tr.train_step(batch)
            n += batch["input"].shape[0]
            steps += 1
        dt = time.perf_counter() - start
        g_params = sum(p.numel() for p in tr.G.parameters())
        tr.writer.close()
        tr.store.close()
    return {"recipe": recipe, "images_per_s": n / dt, "steps": steps, "batch": cfg.train.batch_size,
            "g_params_m": g_params / 1e6}


def quality(recipe: str, dataset: Path, minutes: float, out: Path) -> dict:
    from tintline.config import load_train_config
    from tintline.evaluate.run import evaluate
    from tintline.train.trainer import train

    run = out / recipe.replace(".yaml", "")
    cfg = load_train_config(ROOT / "configs" / recipe, [f"train.minutes={minutes}"])
    res = train(cfg, dataset, run)
    evaluate(run, dataset, out / f"eval_{recipe.replace('.yaml', '')}", split="val", progress=False)
    summary = json.loads((out / f"eval_{recipe.replace('.yaml', '')}" / "metrics.json").read_text())
    s = summary["models"][str(run)]["summary"]
    return {"recipe": recipe, "steps": res["step"], "minutes": minutes,
            **{f"{k}@{c}": s[c][k] for c in ("0", "8") for k in ("psnr", "delta_e00", "region_acc")}}


def write_section(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"## Training\n\n{text.strip()}\n"
    if "## Training\n" in doc:
        doc = re.sub(r"## Training\n.*?(?=\n## |\Z)", section, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + section
    path.write_text(doc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--seconds", type=float, default=60.0, help="timed training per recipe")
    ap.add_argument("--size", type=int, default=256, help="crop side in pixels (pix2pix needs a multiple of 256)")
    ap.add_argument("--quality-minutes", type=float, default=0.0, help="also train each recipe this long and eval")
    ap.add_argument("--no-write", action="store_true", help="print only; do not update docs/benchmarks.md")
    a = ap.parse_args()
    torch.manual_seed(0)
    machine = f"{os.cpu_count()} CPU cores ({cpu_model()}), torch {torch.__version__},"
    machine += f" {torch.get_num_threads()} threads"
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    rows = []
    for recipe in ("pix2pix.yaml", "default.yaml"):
        r = throughput(recipe, a.dataset, a.seconds, a.size)
        print(json.dumps(r), flush=True)
        rows.append(r)
    ref = rows[0]["images_per_s"]
    lines = [f"Machine: {machine}. Command: `{cmd}`. Date: {time.strftime('%Y-%m-%d')}.", "",
             f"Training step (G forward, D step, G step) on {a.size}x{a.size} crops, {a.seconds:.0f} s per recipe,"
             " same process:", "",
             "| recipe | generator params | batch | images/s | ratio to pix2pix |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['g_params_m']:.1f} M | {r['batch']} | {r['images_per_s']:.2f} |"
                     f" {r['images_per_s'] / ref:.1f}x |")
    if a.quality_minutes:
        with tempfile.TemporaryDirectory() as tmp:
            q = [quality(recipe, a.dataset, a.quality_minutes, Path(tmp)) for recipe in ("pix2pix.yaml",
                                                                                          "default.yaml")]
        for r in q:
            print(json.dumps(r), flush=True)
        lines += ["", f"Equal wall-clock training ({a.quality_minutes:g} min each), scored on the validation split:",
                  "", "| recipe | steps | PSNR @0 | ΔE00 @0 | region acc @0 | PSNR @8 | ΔE00 @8 | region acc @8 |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in q:
            lines.append(f"| {r['recipe']} | {r['steps']} | " + " | ".join(
                f"{r[f'{k}@{c}']:.3f}" for c in ("0", "8") for k in ("psnr", "delta_e00", "region_acc")) + " |")
    text = "\n".join(lines)
    print(text)
    if not a.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
