"""``tintline debug check DATASET [RUN_DIR|MODEL]``: the method's data and model checklists, one verdict each.

Each check answers PASS, WARN or FAIL with a one-line reason, and the HTML page (``-o DIR``, default ``check``)
shows the pictures a person should look at:

* **pairs**: line art and color image of the same size, in range, and *aligned* (the line art's ink correlates
  best with the color image's edges at zero shift, not at a shift of a few pixels);
* **line art**: really line art (ink covers 0.5-40 % of the image, in thin strokes: measured line width <= 6 px);
* **hints**: a simulated hint never reveals the truth outside its mark (the hint channels are zero outside the
  mask; the region encoding fills only regions that hold a mark, with the mark's color);
* **augmentation**: a grid of training samples as the network sees them (crop, zoom, flip, hints);
* **gradient check**: the objective's region losses against finite differences on a tiny problem (float64,
  :func:`torch.autograd.gradcheck`);
* **initialisation**: a fresh generator's output statistics (mean near paper white, some spread) and its dead
  units (ReLU channels that never fire on a batch);
* **discriminator**: with a GAN recipe, D does not separate real from fake at step 0 (its mean logits start
  close); n/a without one;
* **model** (given RUN_DIR or MODEL): its outputs on validation images are neither constant nor saturated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ..data.dataset import PairDataset, load_pair
from ..losses import region_class_loss, region_color_loss
from ..monitor.html import figure, table, write_page
from ..monitor.images import sample_grid
from ..monitor.inspect import ActivationProbe
from ..regions import line_width, segment
from .common import build, recipe, train_entries

SAMPLES = 32  # pairs looked at by the data checks


@dataclass
class Check:
    name: str
    verdict: str  # PASS / WARN / FAIL / n/a
    detail: str


def _shift_score(ink: np.ndarray, edges: np.ndarray, dy: int, dx: int) -> float:
    return float((np.roll(ink, (dy, dx), axis=(0, 1)) * edges).sum())


def check_pairs(pairs: list[tuple[np.ndarray, np.ndarray]]) -> Check:
    """Same sizes, and aligned: for each pair the ratio of the best overlap of the line art's ink with the color
    image's edges at a 3-px shift to the overlap unshifted. Single pairs vary (a thick outline may overlap a strong
    edge better a little off), so the verdict is on the median: above 1 the line art sits beside its drawing."""
    ratios, bad = [], []
    for color, line in pairs:
        if color.shape[:2] != line.shape:
            bad.append(f"sizes {color.shape[:2]} vs {line.shape}")
            continue
        ink = (line < 128).astype(np.float32)
        gray = cv2.cvtColor(color, cv2.COLOR_RGB2GRAY).astype(np.float32)
        edges = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        if ink.sum() == 0 or edges.sum() == 0:
            continue
        here = _shift_score(ink, edges, 0, 0)
        best_shift = max(_shift_score(ink, edges, dy, dx) for dy in (-3, 0, 3) for dx in (-3, 0, 3) if dy or dx)
        ratios.append(best_shift / max(here, 1e-9))
    if bad:
        return Check("pairs", "FAIL", f"{len(bad)} pairs differ in size ({bad[0]})")
    if not ratios:
        return Check("pairs", "WARN", "no pair has both ink and color edges to compare")
    med = float(np.median(ratios))
    detail = (f"{len(pairs)} pairs of one size; ink on the color edges: a 3-px shift overlaps {med:.2f}x as well "
              "(median)")
    if med > 1.0:
        return Check("pairs", "FAIL", detail + ": line art and color are misaligned or do not belong together")
    return Check("pairs", "PASS" if np.mean(np.array(ratios) > 1.2) <= 0.25 else "WARN", detail)


def check_lineart(pairs: list[tuple[np.ndarray, np.ndarray]]) -> Check:
    cover = np.array([(line < 128).mean() for _, line in pairs])
    widths = np.array([line_width(line) for _, line in pairs])
    odd = int(((cover < 0.005) | (cover > 0.4) | (widths > 6)).sum())
    detail = (f"ink covers {np.median(cover):.1%} (median), line width {np.median(widths):.1f} px (median); "
              f"{odd}/{len(pairs)} outside 0.5-40 % or wider than 6 px")
    return Check("line art", "PASS" if odd <= len(pairs) // 10 else "WARN", detail)


def check_hints(ds: PairDataset, n: int) -> Check:
    """Hint colors only under their marks; flooded colors only in regions (of the gap-closed segmentation the
    encoding uses) that hold a mark."""
    leaks = 0
    for i in range(n):
        x = ds[i]["input"]  # (C, H, W): line, hint rgb (3), mask, [fill rgb (3), fill mask]
        mask = x[4] > 0.5
        leaks += int((x[1:4].abs().sum(0)[~mask] > 1e-6).any())
        if x.shape[0] >= 9:
            filled = (x[8] > 0.5).numpy()
            leaks += int((x[5:8].abs().sum(0)[~torch.from_numpy(filled)] > 1e-6).any())
            line = ((x[0].numpy() + 1) * 127.5).round().astype(np.uint8)
            labels = segment(line).labels  # the regions the encoding floods (what the dataset computed)
            flooded = set(np.unique(labels[filled]).tolist())
            marked = set(np.unique(labels[mask.numpy()]).tolist())
            leaks += int(bool(flooded - marked))  # a region flooded without a mark in it
    if leaks:
        return Check("hints", "FAIL", f"{leaks} samples carry hint colors outside their marks or regions")
    return Check("hints", "PASS", f"{n} samples: hint colors only under their marks (and in their marks' regions)")


def check_gradients() -> Check:
    torch.manual_seed(0)
    labels = torch.tensor([[[1, 1, 2, 2], [1, 0, 2, 2], [3, 3, 3, 2], [3, 3, 0, 2]]])
    target = torch.rand(1, 3, 4, 4, dtype=torch.float64) * 2 - 1
    pred = (torch.rand(1, 3, 4, 4, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    logits = torch.randn(1, 5, 2, 2, dtype=torch.float64, requires_grad=True)
    palette = torch.tensor([(100.0, 0, 0), (50, 60, 40), (30, 10, -50), (70, -40, 50), (20, 0, 0)],
                           dtype=torch.float64)
    ok_color = torch.autograd.gradcheck(lambda p: region_color_loss(p, target, labels), (pred,), eps=1e-6,
                                        atol=1e-4, raise_exception=False)
    ok_class = torch.autograd.gradcheck(lambda z: region_class_loss(z, target, labels, palette), (logits,),
                                        eps=1e-6, atol=1e-4, raise_exception=False)
    if ok_color and ok_class:
        return Check("gradient check", "PASS", "region color and color-class losses match finite differences")
    which = [n for n, ok in (("region color", ok_color), ("color class", ok_class)) if not ok]
    return Check("gradient check", "FAIL", f"analytic gradients differ from finite differences: {', '.join(which)}")


def check_init(g: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[Check, float]:
    probe = ActivationProbe(g)
    g.eval()
    with torch.no_grad(), probe:
        out = g(batch["input"])
    probe.remove()
    dead = float(np.mean(list(probe.dead.values()))) if probe.dead else 0.0
    mean, std = float(out.mean()), float(out.std())
    verdict = "PASS" if dead < 0.3 and std > 1e-3 and torch.isfinite(out).all() else "WARN"
    return Check("initialisation", verdict, f"output mean {mean:+.2f}, std {std:.3f} (in [-1, 1]); "
                                            f"{dead:.0%} of ReLU channels dead on a batch"), dead


def check_discriminator(cfg, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> Check:
    if cfg.loss.gan_weight <= 0:
        return Check("discriminator", "n/a", "the recipe has no discriminator (loss.gan_weight 0)")
    from ..models import create_discriminator

    d = create_discriminator(cfg.model.discriminator.name, **cfg.model.discriminator.args).eval()
    line = batch["input"][:, :1]
    with torch.no_grad():
        real = d(torch.cat([line, batch["target"]], 1)).mean().item()
        f = d(torch.cat([line, fake], 1)).mean().item()
    gap = abs(real - f)
    return Check("discriminator", "PASS" if gap < 0.5 else "WARN",
                 f"mean logits at step 0: real {real:+.3f}, fake {f:+.3f}")


def check_model(model: str, ds: PairDataset, n: int) -> Check:
    from ..inference import load_colorizer

    c = load_colorizer(model)
    outs = []
    for i in range(min(n, len(ds))):
        line = ((ds[i]["input"][0].numpy() + 1) * 127.5).round().astype(np.uint8)
        outs.append(np.asarray(c.colorize_lines(line)).astype(np.float32))
    arr = np.stack(outs)
    spread = float(arr.std(axis=(1, 2)).mean())
    saturated = float(((arr <= 0) | (arr >= 255)).all(axis=-1).mean())
    if spread < 1.0:
        return Check("model", "FAIL", "outputs are constant images")
    verdict = "PASS" if saturated < 0.9 else "WARN"
    return Check("model", verdict, f"{len(outs)} validation images: pixel spread {spread:.1f}, {saturated:.0%} of "
                                   "pixels pure black or white")


def run_checks(dataset: str | Path, out_dir: str | Path = "check", model: str | None = None,
               config: str | Path | None = None, overrides: list[str] | None = None) -> list[Check]:
    cfg = recipe(config, overrides)
    entries, size = train_entries(dataset)
    sample = entries[:SAMPLES]
    pairs = [(*load_pair(e),) for e in sample]
    checks = [check_pairs(pairs), check_lineart(pairs)]
    enc = cfg.model.hint_encoding
    hinted = cfg.hints.model_copy(update={"p_none": 0.0})
    checks.append(check_hints(PairDataset(sample, hinted, train=False, encoding=enc, hint_count=8), len(sample)))
    t = cfg.train
    aug = PairDataset(sample, cfg.hints, crop=min(t.crop, size), flip=t.flip, train=True, encoding=enc,
                      scale=t.scale)
    items = [aug[(0, i)] for i in range(min(8, len(aug)))]
    batch = {k: torch.stack([b[k] for b in items]) for k in ("input", "target", "regions")}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample_grid(batch["input"], None, batch["target"])).save(out / "augmentations.png")
    checks.append(Check("augmentation", "PASS", "see augmentations.png: line | hints | truth per training sample"))
    checks.append(check_gradients())
    g, _ = build(cfg, entries)
    init, _ = check_init(g, batch)
    checks.append(init)
    with torch.no_grad():
        fake = g(batch["input"])
    checks.append(check_discriminator(cfg, batch, fake))
    if model:
        val = PairDataset(entries[-8:], cfg.hints, train=False, encoding=enc, hint_count=0)
        checks.append(check_model(model, val, 8))
    rows = [[c.name, c.verdict, c.detail] for c in checks]
    write_page(out / "check.html", "tintline debug check",
               table(["check", "verdict", "detail"], rows) + figure("augmentations.png", "training samples"))
    return checks
