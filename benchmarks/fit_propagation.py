"""Fit the hint-propagation rule (tintline.regions.propagate) on a dataset's training split.

For every training drawing and each hint protocol (dots in the 2, 4 and 8 largest regions, 8 simulated marks, a dot
in every region), the shipped model colors the drawing; every unhinted closed region (not the background, at least
16 paper pixels, voted by the class head) gives one sample per hint color (label: its true mean color is within
CIEDE2000 10 of that hint) and one sample for the head's own choice (label: that choice is within 10). Two logistic
regressions are fitted (L-BFGS, a small L2 penalty) and printed as the module's constants, with ``UNSURE``: the 10th
percentile of the head's mean confidence per drawing and protocol (below it the rule keeps its floor ``MIN_P``); the
rule's region accuracy on those regions of the validation split is printed against the head alone.

    python benchmarks/fit_propagation.py MODEL DATASET [--train 500] [--val 150]

Machine and time: AMD EPYC, 2 cores: about 3 minutes for the defaults with v0.4 (124 s to fit, 35 s to check).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from skimage.color import deltaE_ciede2000
from tqdm import tqdm

from tintline.evaluate.run import Protocol, load_cases, protocol_hints
from tintline.inference import Colorizer
from tintline.regions import propagate as propagation
from tintline.regions.palette import RADIUS, region_colors
from tintline.regions.segment import segment

PROTOCOLS = (Protocol("largest", 2), Protocol("largest", 4), Protocol("largest", 8), Protocol("simulated", 8),
             Protocol("per-region"))
MIN_PAPER = 16


def samples(model: Colorizer, dataset: Path, split: str, limit: int) -> dict[str, np.ndarray]:
    """-> hint features (N, F), hint labels (N,), the sample's region key (N,), own confidence (R, 1), own
    labels (R,), the protocol of each region (R,), the head's mean confidence over its drawing (R,) and per drawing
    and protocol (D,)."""
    cases = load_cases(dataset, split, limit, False, 0)
    feats, labels, keys, own, own_ok, proto, sure, drawing_sure = [], [], [], [], [], [], [], []
    key = 0
    for case in tqdm(cases, desc=f"{split} drawings", unit="drawing"):
        seg = segment(case.line, gap=model.gap)
        truth, paper = region_colors(case.color, seg)
        for pi, p in enumerate(PROTOCOLS):
            hints = protocol_hints(case, p, 0)
            hc = propagation.hint_colors(hints, seg)
            if hc is None:
                continue
            c = model.head_choice(case.line, hints, seg)
            f = propagation.candidate_features(hc, c.probs, c.conf, c.colors, c.own, c.palette, seg)
            mean_conf = propagation.drawing_confidence(c.conf, c.take)
            drawing_sure.append(mean_conf)
            hinted = np.zeros(seg.n + 1, bool)
            hinted[hc.region] = True
            use = c.take & ~hinted & ~seg.border & (paper >= MIN_PAPER)
            use[0] = False
            rows = np.flatnonzero(use)
            if not len(rows):
                continue
            t = truth[rows].astype(np.float64)  # (r, 3)
            ok_h = deltaE_ciede2000(np.broadcast_to(t[:, None], (len(rows), len(hc.lab), 3)),
                                    np.broadcast_to(hc.lab[None], (len(rows), len(hc.lab), 3))) <= RADIUS
            choice = c.colors[rows].astype(np.float64)
            white = np.linalg.norm(choice - propagation.WHITE_LAB, axis=1) <= model.white
            choice[white] = propagation.WHITE_LAB
            allowed = hc.allowed()[rows].reshape(-1)  # candidates from another figure never compete
            feats.append(f[rows].reshape(-1, f.shape[-1])[allowed])
            labels.append(ok_h.reshape(-1)[allowed])
            keys.append(np.repeat(np.arange(key, key + len(rows)), len(hc.lab))[allowed])
            key += len(rows)
            own.append(c.conf[rows, None])
            own_ok.append(deltaE_ciede2000(choice, t) <= RADIUS)
            proto.append(np.full(len(rows), pi))
            sure.append(np.full(len(rows), mean_conf))
    return {"feats": np.concatenate(feats), "labels": np.concatenate(labels).astype(np.float64),
            "keys": np.concatenate(keys), "own": np.concatenate(own),
            "own_ok": np.concatenate(own_ok).astype(np.float64), "proto": np.concatenate(proto),
            "sure": np.concatenate(sure), "drawing_sure": np.array(drawing_sure)}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[np.ndarray, float]:
    """(N, F) features, (N,) 0/1 labels -> (weights (F,), bias) of a logistic regression on standardized
    features, given back in the features' own units."""
    xt = torch.tensor(x, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-9)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = ((xt - mu) / sd) @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (w / sd).numpy(), float(b - (mu / sd) @ w)


def rule_accuracy(s: dict[str, np.ndarray], hw: np.ndarray, hb: float, ow: np.ndarray, ob: float,
                  unsure: float) -> dict[str, tuple]:
    """Per protocol (the floor on drawings whose mean confidence is below ``unsure``): (regions, head alone, the
    rule, share of regions that took a hint color)."""
    p = 1 / (1 + np.exp(-(s["feats"] @ hw + hb)))
    n = len(s["own_ok"])
    best = np.full(n, -1.0)
    np.maximum.at(best, s["keys"], p)
    # the label of the best candidate of each region (the first one on ties)
    is_best = p >= best[s["keys"]]
    first = np.full(n, -1)
    idx = np.flatnonzero(is_best)
    first[s["keys"][idx[::-1]]] = idx[::-1]
    hit = s["labels"][first]
    floor = np.where(s["sure"] < unsure, propagation.MIN_P, 0.0)
    take = best > np.maximum(1 / (1 + np.exp(-(s["own"] @ ow + ob))), floor)
    right = np.where(take, hit, s["own_ok"])
    out = {}
    for pi, proto in enumerate(PROTOCOLS):
        sel = s["proto"] == pi
        out[proto.label] = (int(sel.sum()), round(float(s["own_ok"][sel].mean()), 3),
                            round(float(right[sel].mean()), 3), round(float(take[sel].mean()), 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--train", type=int, default=500, help="training drawings (0: all)")
    ap.add_argument("--val", type=int, default=150, help="validation drawings to check the rule on (0: all)")
    args = ap.parse_args()
    t0 = time.time()
    model = Colorizer(args.model)
    model.propagate = False  # the head's own choice is what the rule competes with
    tr = samples(model, args.dataset, "train", args.train)
    hw, hb = fit_logistic(tr["feats"], tr["labels"])
    ow, ob = fit_logistic(tr["own"], tr["own_ok"])
    print(f"# {args.model} on {args.dataset} train ({args.train or 'all'} drawings, {len(tr['own_ok'])} regions, "
          f"{len(tr['labels'])} candidates); {platform.processor() or platform.machine()}, "
          f"{time.time() - t0:.0f} s")
    print("HINT_COEF = np.array([" + ", ".join(f"{v:.4g}" for v in hw) + "])")
    print(f"HINT_BIAS = {hb:.4g}")
    print(f"OWN_COEF = {float(ow[0]):.4g}")
    print(f"OWN_BIAS = {ob:.4g}")
    unsure = float(np.percentile(tr["drawing_sure"], 10))
    print(f"UNSURE = {unsure:.2f}")
    va = samples(model, args.dataset, "val", args.val)
    print("validation, unhinted regions: protocol: (regions, head alone, with the rule, share taking a hint)")
    for k, v in rule_accuracy(va, hw, hb, ow, ob, unsure).items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
