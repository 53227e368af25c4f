"""``tintline debug overfit DATASET RUN_DIR``: can the recipe memorize a handful of images?

The method's first debugging step: before training long, a network must be able to overfit a tiny set. The
first ``images`` training pairs, whole (no crop, flip or zoom) and without hints, form one fixed batch; the recipe's
generator and objective (without a discriminator) train on it for up to ``steps`` steps, stopping once the L1
reconstruction error (on RGB in [-1, 1]) on the paper pixels is below ``target``. Ink pixels do not count: with
the multiply blend the line art is drawn over the output as it is, so where an extracted line is darker than the
color image no network can match it. When it does not get there the result names the
likely cause: a loss that turned NaN or rose (learning rate too high), parameters that never get a gradient (a
frozen or disconnected layer), a loss that barely moved (learning rate too low, or a data bug: line art and color
images that do not belong together), or one still falling (more steps).

Writes ``RUN_DIR/overfit.json`` (the curve and the verdict) and ``RUN_DIR/overfit.html`` (the curve, and the
inputs, outputs and targets at the end).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from ..data.dataset import PairDataset
from ..errors import UserError
from ..monitor.html import figure, line_plot, write_page
from ..monitor.images import sample_grid
from .common import build, recipe, train_entries

TARGET = 0.05  # L1 on [-1, 1] over paper pixels: 2.5 % of the range


@dataclass
class OverfitResult:
    ok: bool
    diagnosis: str
    steps: int
    start: float
    end: float
    best: float
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    no_grad: list[str] = field(default_factory=list)


def _diagnose(curve: list[float], target: float, lr: float, no_grad: list[str]) -> tuple[bool, str]:
    start = sum(curve[:5]) / len(curve[:5])
    end = sum(curve[-5:]) / len(curve[-5:])
    if not all(math.isfinite(v) for v in curve):
        return False, f"the loss became NaN/inf: the learning rate is too high (optim.lr_g={lr:g}; try {lr / 10:g})"
    if min(curve) <= target:
        return True, f"memorized: L1 {start:.3f} -> {min(curve):.4f} (target {target})"
    if no_grad:
        return False, (f"{len(no_grad)} parameter tensors never got a gradient ({', '.join(no_grad[:3])}...): a "
                       "frozen or disconnected layer")
    if end > start * 1.05:
        return False, f"the loss rose ({start:.3f} -> {end:.3f}): the learning rate is too high (optim.lr_g={lr:g})"
    if end > start * 0.8:
        return False, (f"the loss barely moved ({start:.3f} -> {end:.3f}): the learning rate is too low "
                       f"(optim.lr_g={lr:g}) or the pairs do not belong together (check the data report)")
    return False, (f"still falling ({start:.3f} -> {end:.3f}, target {target}): give it more --steps, or a higher "
                   f"learning rate or a bigger network")


def overfit(dataset: str | Path, run_dir: str | Path, images: int = 8, steps: int = 500, target: float = TARGET,
            config: str | Path | None = None, overrides: list[str] | None = None, progress: bool = True,
            seed: int = 0) -> OverfitResult:
    cfg = recipe(config, overrides)
    entries, size = train_entries(dataset)
    if images < 1:
        raise UserError(f"--images {images}: at least 1")
    if len(entries) < images:
        raise UserError(f"{dataset}: {len(entries)} training images, fewer than --images {images}")
    hints = cfg.hints.model_copy(update={"p_none": 1.0})
    ds = PairDataset(entries[:images], hints, train=False, hint_count=0, encoding=cfg.model.hint_encoding)
    items = [ds[i] for i in range(len(ds))]
    batch = {k: torch.stack([b[k] for b in items]) for k in ("input", "target", "regions")}
    paper = batch["regions"] > 0  # (B, H, W): not ink
    g, objective = build(cfg, entries, seed)
    multiple = getattr(g, "multiple", 1)
    if batch["input"].shape[-1] % multiple or batch["input"].shape[-2] % multiple:
        raise UserError(f"image size {size} is not a multiple of the generator's {multiple}")
    g.train()
    opt = torch.optim.Adam(g.parameters(), lr=cfg.optim.lr_g, betas=(cfg.optim.beta1, cfg.optim.beta2))
    curve: list[float] = []
    seen_grad: set[str] = set()
    t0 = time.monotonic()
    bar = tqdm(total=steps, desc="overfit", unit="step", disable=not progress, dynamic_ncols=True)
    for _ in range(steps):
        fake = objective.generate(batch)
        loss, _ = objective.g_step(batch, fake)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        seen_grad.update(n for n, p in g.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0))
        opt.step()
        with torch.no_grad():  # (B, 3, H, W) error, averaged over the paper pixels only
            err = (fake - batch["target"]).abs().mean(1)[paper]
        curve.append(float(err.mean()) if err.numel() else float("nan"))
        bar.update(1)
        bar.set_postfix_str(f"l1 {curve[-1]:.4f}", refresh=False)
        if not math.isfinite(curve[-1]) or curve[-1] <= target:
            break
    bar.close()
    no_grad = [n for n, p in g.named_parameters() if p.requires_grad and n not in seen_grad]
    ok, why = _diagnose(curve, target, cfg.optim.lr_g, no_grad)
    finite = [v for v in curve if math.isfinite(v)] or [float("nan")]
    res = OverfitResult(ok, why, len(curve), curve[0], curve[-1], min(finite), round(time.monotonic() - t0, 1),
                        [(i + 1, v) for i, v in enumerate(curve)], no_grad)
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overfit.json").write_text(json.dumps(asdict(res), indent=1))
    g.eval()
    with torch.no_grad():
        pred = g(batch["input"])
    Image.fromarray(sample_grid(batch["input"], pred, batch["target"])).save(out / "overfit_samples.png")
    body = (f"<p><b>{'PASS' if ok else 'FAIL'}</b>: {why}</p><p>{len(curve)} steps in {res.seconds} s on {images} "
            f"images of {size} px, no augmentation, no hints.</p>"
            + line_plot({"L1 (train batch)": res.curve}, "reconstruction loss", log_y=True)
            + figure("overfit_samples.png", "inputs, outputs and targets at the end"))
    write_page(out / "overfit.html", "tintline debug overfit", body)
    return res
