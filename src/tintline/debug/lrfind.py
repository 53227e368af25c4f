"""``tintline debug lr-find DATASET -o DIR``: the learning-rate range test (L. Smith, "Cyclical Learning Rates for
Training Neural Networks", 2017; the fastai learning-rate finder).

A fresh generator of the recipe trains on the recipe's own batches (crops, flips, hints) while the learning rate
grows exponentially from ``start`` to ``end`` over ``steps`` steps. The batches are ``BATCHES`` fixed ones, taken in
turn: on this task the loss of one batch differs from the next by half its value (hinted or not, busy or plain
drawings), which would drown the learning rate's effect. The loss (the generator's total) is smoothed with an
exponential moving average (bias-corrected); the sweep stops early once it exceeds 4x its minimum (the learning
rate is past what the network tolerates). The suggestion is the learning rate where the smoothed loss falls
fastest against log(lr) (steepest descent) within the two decades before its minimum; ``optim.lr_d`` keeps the
recipe's ratio to ``optim.lr_g``. Writes ``DIR/lr_find.json`` and ``DIR/lr_find.html`` (the curve with the suggestion).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.dataset import EpochSampler, PairDataset
from ..errors import UserError
from ..monitor.html import esc, line_plot, write_page
from .common import build, recipe, train_entries

SMOOTH = 0.95  # EMA factor of the loss
BATCHES = 4  # fixed batches the sweep cycles through
DIVERGE = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum


@dataclass
class LrFindResult:
    lr_g: float
    lr_d: float
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped_early: bool


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    """The learning rate of the steepest descent of ``smoothed`` against log10(lr), within the two decades before
    its minimum (and never in the first 10 % of the sweep: the average is still settling)."""
    stop = int(np.argmin(smoothed)) + 1
    skip = max(1, len(lrs) // 10, int(np.searchsorted(lrs, lrs[stop - 1] / 100)))
    if stop - skip < 3:
        return float(lrs[max(0, stop - 1)] / 10)
    x = np.log10(lrs[skip:stop])
    slope = np.gradient(smoothed[skip:stop], x)
    return float(lrs[skip + int(np.argmin(slope))])


def lr_find(dataset: str | Path, out_dir: str | Path, start: float = 1e-6, end: float = 1.0, steps: int = 200,
            config: str | Path | None = None, overrides: list[str] | None = None, progress: bool = True,
            seed: int = 0) -> LrFindResult:
    if not 0 < start < end:
        raise UserError(f"the sweep needs 0 < start < end, got {start:g} .. {end:g}")
    if steps < 10:
        raise UserError(f"--steps {steps}: at least 10")
    cfg = recipe(config, overrides)
    entries, size = train_entries(dataset)
    t = cfg.train
    batch_size = min(t.batch_size, len(entries))
    if batch_size < 1:
        raise UserError(f"{dataset}: no training images")
    ds = PairDataset(entries, cfg.hints, crop=min(t.crop, size), flip=t.flip, train=True,
                     encoding=cfg.model.hint_encoding, scale=t.scale, seed=seed)
    loader = DataLoader(ds, batch_size=batch_size, sampler=EpochSampler(len(ds), batch_size, seed=seed),
                        generator=torch.Generator())
    g, objective = build(cfg, entries, seed)
    g.train()
    opt = torch.optim.Adam(g.parameters(), lr=start, betas=(cfg.optim.beta1, cfg.optim.beta2))
    factor = (end / start) ** (1 / (steps - 1))
    lrs, losses, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, False
    fixed = [b for _, b in zip(range(BATCHES), loader, strict=False)]
    bar = tqdm(total=steps, desc="lr-find", unit="step", disable=not progress, dynamic_ncols=True)
    for i in range(steps):
        lr = start * factor**i
        for group in opt.param_groups:
            group["lr"] = lr
        batch = fixed[i % len(fixed)]
        fake = objective.generate(batch)
        loss, _ = objective.g_step(batch, fake)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.item())
        bar.update(1)
        if not math.isfinite(value):
            stopped = True
            break
        avg = SMOOTH * avg + (1 - SMOOTH) * value
        s = avg / (1 - SMOOTH ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(s)
        best = min(best, s)
        bar.set_postfix_str(f"lr {lr:.2e} | loss {s:.3f}", refresh=False)
        if s > DIVERGE * best and i > steps // 10:
            stopped = True
            break
    bar.close()
    if len(lrs) < 5:
        raise UserError(f"the loss diverged within {len(lrs)} steps from lr {start:g}: start the sweep lower")
    lr_g = suggest(np.array(lrs), np.array(smoothed))
    res = LrFindResult(lr_g, lr_g * cfg.optim.lr_d / cfg.optim.lr_g, lrs, losses, smoothed, stopped)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_find.json").write_text(json.dumps(asdict(res), indent=1))
    curve = {"loss": [(math.log10(a), b) for a, b in zip(lrs, losses, strict=True)],
             "smoothed": [(math.log10(a), b) for a, b in zip(lrs, smoothed, strict=True)],
             "suggested": [(math.log10(lr_g), min(smoothed)), (math.log10(lr_g), max(smoothed))]}
    body = (f"<p>Suggested: <code>--set optim.lr_g={lr_g:.2g} --set optim.lr_d={res.lr_d:.2g}</code> (steepest "
            f"descent of the smoothed loss; the recipe has lr_g={cfg.optim.lr_g:g}).</p>"
            + line_plot(curve, "generator loss against the learning rate", xlabel="log10(learning rate)", log_y=True)
            + f"<p>{len(lrs)} steps of batch {batch_size} ({esc(str(dataset))}), lr {start:g} .. {lrs[-1]:.3g}"
            + (", stopped when the loss diverged" if stopped else "") + ".</p>")
    write_page(out / "lr_find.html", "tintline debug lr-find", body)
    return res
