"""`tintline demo`: the whole pipeline on the built-in corpus, ending in one HTML report.

Every step is the same library call a user's command makes, and every step resumes: run it again after an
interrupt and finished work is skipped (import and build are incremental, training resumes from its checkpoint
with the rest of its budget, a finished training is kept).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .config import TrainConfig
from .data.build import build
from .data.dataset import load_pair
from .data.hints import hints_to_json, simulate_hints
from .data.imageio import composite_on_white, read_image_file
from .data.lineart import extract_lineart, sample_xdog_params
from .data.sources import BUILTIN, RENPY_IMAGES, import_source
from .data.store import Store
from .evaluate.run import evaluate
from .inference import colorize_files
from .monitor.html import esc, figure, line_plot, table, write_page
from .monitor.images import tile
from .monitor.runlog import read_metrics
from .train.trainer import train

EVAL_IMAGES = 100  # enough for stable means; the full split with `tintline eval` takes ~3x longer


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _training_state(run_dir: Path) -> tuple[bool, float]:
    """(finished, training seconds so far) from the run's metrics.jsonl."""
    recs = read_metrics(run_dir)
    return any(r.get("final") for r in recs), max((float(r.get("elapsed", 0)) for r in recs), default=0.0)


def _curves(run_dir: Path) -> str:
    recs = read_metrics(run_dir)

    def series(key: str) -> list[tuple[float, float]]:
        return [(r["step"], r[key]) for r in recs if key in r]

    gan = series("loss/d")  # only recipes with a discriminator (the default has none)
    return (
        line_plot({"L1 (train)": series("loss/l1")}, "reconstruction loss (L1, train batches)", log_y=True)
        + (line_plot({"region (train)": series("loss/region")}, "region-pooled color loss (CIELAB)")
           if series("loss/region") else "")
        + (line_plot({"D": gan, "G adversarial": series("loss/g_gan")}, "GAN losses") if gan else "")
        + line_plot({"with 8 hints": series("val/psnr_hints"), "no hints": series("val/psnr_nohints")},
                    "validation PSNR (dB)")
    )


def _demo_inputs(store: Store, out: Path) -> tuple[list[Path], Path]:
    """Line art files for `colorize`: the renpy character sprites' extracted lines and a few test images,
    plus a hints file with dots of the true colors of the first test image."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    rng = np.random.default_rng(0)
    if RENPY_IMAGES.is_dir():
        for p in sorted(RENPY_IMAGES.glob("eileen *.png"))[:2]:
            rgb = composite_on_white(read_image_file(p))
            dst = out / f"{p.stem.replace(' ', '_')}_lines.png"
            Image.fromarray(extract_lineart(rgb, sample_xdog_params(rng))).save(dst)
            files.append(dst)
    test = store.entries("test")[:4]
    hints_path = out / "hints.json"
    for i, e in enumerate(test):
        color, line = load_pair(e)
        dst = out / f"test_{i}_lines.png"
        Image.fromarray(line).save(dst)
        files.append(dst)
        if i == 0:
            hints = simulate_hints(color, line, TrainConfig().hints, np.random.default_rng(1), count=12)
            hints_path.write_text(json.dumps(hints_to_json(hints), indent=1))
    return files, hints_path


def run_demo(workdir: Path, minutes: float = 8.0) -> Path:
    data_dir, run_dir, eval_dir = workdir / "data", workdir / "run", workdir / "eval"
    workdir.mkdir(parents=True, exist_ok=True)

    _log("1/5 import the built-in corpus (openclipart clip art + renpy character sprites)")
    with Store.create(data_dir) as store:
        for name in BUILTIN:
            stats = import_source(store, name)
            _log(f"    {name}: {stats['new']} new, {stats['known']} already stored")

        _log("2/5 build: validate, filter, deduplicate, split, extract line art")
        summary = build(store, store.load_config())
        _log(f"    {summary['counts']}, splits {summary['splits']}")

    finished, elapsed = _training_state(run_dir)
    if finished:
        _log("3/5 train: already finished, keeping it (delete the run folder to train again)")
    else:
        remaining = max(0.1, minutes - elapsed / 60.0)
        resume = (run_dir / "checkpoints" / "latest").exists()
        _log(f"3/5 train the baseline colorizer for {remaining:.1f} min {'(resuming)' if resume else ''}")
        cfg = TrainConfig()
        cfg.train.minutes = remaining
        train(cfg, data_dir, run_dir, resume=resume)

    _log(f"4/5 evaluate on the test split (first {EVAL_IMAGES} images, beside the white and region-fill baselines)")
    # simulated hints (0 and 8) and a dot in every closed region: the region-true protocol, at the demo's time budget
    eval_report = evaluate(run_dir, data_dir, eval_dir, split="test", limit=EVAL_IMAGES,
                           baselines=("white", "region-fill"), protocols=("simulated", "per-region"))
    metrics = json.loads((eval_dir / "metrics.json").read_text())

    _log("5/5 colorize sample line art with `colorize` (with and without a hints file)")
    with Store.open(data_dir) as store:
        inputs, hints_path = _demo_inputs(store, workdir / "lineart")
        counts, reasons, splits = store.counts(), store.reason_counts(), store.split_counts()
    plain = colorize_files(run_dir, [str(p) for p in inputs], workdir / "colorized")
    hinted = colorize_files(run_dir, [str(inputs[-4 if len(inputs) >= 4 else 0])], workdir / "colorized_hints",
                            hints_path=str(hints_path))
    rows = [[np.asarray(Image.open(i).convert("RGB")), np.asarray(Image.open(o).convert("RGB"))]
            for i, o in zip(inputs, plain, strict=True)]
    Image.fromarray(tile(rows)).save(workdir / "colorized.png")

    models = metrics["models"]
    key = str(run_dir)
    body = (
        "<p>The whole tintline pipeline on the built-in corpus, made by <code>tintline demo</code>.</p>"
        "<h2>1. Data</h2>"
        + table(["status", "images"], sorted(counts.items()))
        + table(["rejection reason", "images"], list(reasons.items()))
        + table(["split", "accepted images"], [[k, splits.get(k, 0)] for k in ("train", "val", "test")])
        + "<h2>2. Training</h2>" + _curves(run_dir)
        + f"<h2>3. Evaluation on the test split (first {metrics['images']} images)</h2>"
        + table(["model", "hints", "PSNR ↑", "SSIM ↑", "ΔE00 ↓", "chroma", "region acc ↑", "hint adherence ↑"],
                [[("tintline (this run)" if name == key else name), c,
                  *(models[name]["summary"][c][k] for k in ("psnr", "ssim", "delta_e00", "chroma", "region_acc")),
                  models[name]["summary"][c]["hint_adherence"] if c != "0" else "–"]
                 for name in models for c in ("0", "8", "per-region")])
        + f"<p>Full report: <a href='{esc(eval_report.relative_to(workdir))}'>{esc(eval_report)}</a></p>"
        + figure("eval/samples.png", "test images: line art | hints | tintline without / with hints | white |"
                 " region-fill without / with hints | truth")
        + "<h2>4. colorize</h2>"
        + figure("colorized.png", "tintline colorize on line art files (sprites of the renpy demo and test images)")
        + figure(str(hinted[0].relative_to(workdir)), f"with the hints file {hints_path.name}")
    )
    return write_page(workdir / "report.html", "tintline demo", body).resolve()
