"""`tintline eval`: score a model on a dataset split, with and without hints, and write an HTML report.

Hints are simulated by the training simulator with a generator seeded per image, so the same model always gets
the same hints and two models are compared on identical inputs. ``white`` (the line art itself, i.e. "do
nothing") is scored beside the model so every number has a floor to be read against.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..config import HintConfig
from ..data.dataset import load_pair
from ..data.hints import render_hints, simulate_hints
from ..data.store import DatasetError, Store
from ..inference import load_colorizer
from ..monitor.html import esc, figure, table, write_page
from ..monitor.images import overlay_hints, tile
from .metrics import all_metrics

HINT_COUNTS = {"no hints": 0, "8 hints": 8}
METRIC_NAMES = ("psnr", "ssim", "delta_e00", "chroma")


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def evaluate(model: str | Path, dataset: Path, out_dir: Path, split: str = "test", limit: int = 0,
             device: str = "cpu", seed: int = 0, progress: bool = True) -> Path:
    colorizer = load_colorizer(model, device=device)
    with Store.open(dataset) as store:
        entries = store.entries(split)
    if not entries:
        raise DatasetError(f"{dataset}: split {split!r} has no accepted images; run 'tintline data build' first")
    if limit:
        entries = entries[:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    hint_cfg = HintConfig()
    per_image: list[dict] = []
    truth_rows: list[dict[str, float]] = []
    sample_rows: list[list[np.ndarray]] = []
    for i, e in enumerate(tqdm(entries, desc=f"eval {split}", unit="img", disable=not progress)):
        color, line = load_pair(e)
        rec: dict = {"sha256": e.sha256, "tags": list(e.tags), "results": {}}
        row = [line]
        for mode, count in HINT_COUNTS.items():
            hints = simulate_hints(color, line, hint_cfg, np.random.default_rng([seed, i]), count=count)
            pred = colorizer.colorize_lines(line, hints)
            rec["results"][mode] = all_metrics(pred, color)
            if count:
                row.append(overlay_hints(line, *render_hints(hints, *line.shape)))
            row.append(pred)
        rec["results"]["white (baseline)"] = all_metrics(np.repeat(line[..., None], 3, 2), color)
        truth_rows.append({"chroma": all_metrics(color, color)["chroma"]})
        per_image.append(rec)
        if len(sample_rows) < 12:
            sample_rows.append([*row, color])

    modes = [*HINT_COUNTS, "white (baseline)"]
    summary = {m: {k: _mean([r["results"][m] for r in per_image], k) for k in METRIC_NAMES} for m in modes}
    summary["truth"] = {"chroma": _mean(truth_rows, "chroma")}
    meta = colorizer.meta
    report = {
        "model": str(model),
        "model_step": meta.get("step"),
        "model_commit": meta.get("git_commit"),
        "dataset": str(dataset),
        "split": split,
        "images": len(per_image),
        "summary": summary,
        "per_image": per_image,
    }
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=1))
    Image.fromarray(tile(sample_rows)).save(out_dir / "samples.png")

    worst = sorted(range(len(per_image)), key=lambda i: -per_image[i]["results"]["no hints"]["delta_e00"])[:6]
    worst_rows = []
    for i in worst:
        color, line = load_pair(entries[i])
        worst_rows.append([line, colorizer.colorize_lines(line, None), color])
    Image.fromarray(tile(worst_rows)).save(out_dir / "worst.png")

    rows = [[m, *(summary[m][k] for k in METRIC_NAMES)] for m in modes]
    rows.append(["truth (for reference)", "", "", "", summary["truth"]["chroma"]])
    body = (
        f"<p>Model <code>{esc(model)}</code> (step {esc(meta.get('step'))}, code {esc(meta.get('git_describe'))}) on"
        f" <code>{esc(dataset)}</code>, split <b>{esc(split)}</b>, {len(per_image)} images.</p>"
        + table(["input", "PSNR ↑", "SSIM ↑", "ΔE00 ↓", "chroma"], rows)
        + "<p class='note'>Hints are dots of the true color placed by the training simulator (seeded, identical for"
          " every model). Chroma is the mean CIELAB chroma: a washed-out (gray) output has a much lower chroma than"
          " the truth. 'white' scores the line art itself, the floor any colorizer must beat.</p>"
        + "<h2>Samples</h2>" + figure("samples.png", "line art | no-hint output | hints | 8-hint output | truth")
        + "<h2>Worst without hints (by ΔE00)</h2>" + figure("worst.png", "line art | no-hint output | truth")
    )
    return write_page(out_dir / "index.html", "tintline evaluation", body)
