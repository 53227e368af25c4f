"""The optional learned filter: a small classifier whose score is stored per image and thresholded by the build.

``tintline data classify DATASET`` trains a logistic regression on cheap features that the build already stores
for every image, so scoring the whole dataset decodes nothing:

* the per-image measurements (colorfulness, content and subject shares, aspect, text share, badge, ink,
  fragments, transparency), and
* the 8x8 CIELAB thumbnail of the subject (``color_sig``, 192 numbers): layout and colors at a glance.

Labels come either from the user, one folder per label (``--labels DIR`` with ``DIR/<positive>/`` and any other
sub-folders as negatives, e.g. ``single_character/`` vs ``group/``; those images are measured like the build
does), or from the manifest's own decisions (accepted vs rejected by a per-image filter), which teaches the
classifier what the filters keep. The model is saved as ``DATASET/classifier.json`` and every measured image gets
``clf_score`` in [0, 1] (the probability of the positive label). The build's ``classifier`` filter rejects images
scoring below ``min_clf_score`` (0 = off), so changing that threshold needs no new scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..config import DataConfig
from .clean import MEASURE_VERSION, Measures, measure_all
from .imageio import BadImage, Limits, read_image_file, to_rgba
from .sources import _norm_tag, walk_folder
from .store import DatasetError, Store

MODEL_FILE = "classifier.json"
FEATURE_VERSION = 1
# filters whose rejections say "not the kind of image we want" (manifest labels); the others (too-small,
# near-duplicate, balance-cap, decode failures) say nothing about what the image shows
CONTENT_REASONS = ("blank", "aspect", "subject-too-small", "placeholder", "no-color", "text", "entangled")


def features(m: Measures) -> np.ndarray:
    """(201,) float32 feature vector of one image's stored measurements: 9 scalars + the 8x8x3 thumbnail."""
    scalars = [
        m.colorfulness, math.log10(max(m.content_frac, 1e-4)), math.log10(max(m.subject_frac, 1e-4)),
        math.log(max(m.aspect, 1.0)), m.text_frac or 0.0, m.badge or 0.0, m.ink or 0.0, (m.fragments or 0.0) / 100.0,
        m.alpha_frac,
    ]
    thumb = np.zeros(192, np.float32)
    if m.color_sig:
        thumb = np.frombuffer(bytes.fromhex(m.color_sig), np.uint8).astype(np.float32) / 255.0
    return np.concatenate([np.asarray(scalars, np.float32), thumb])


def _fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 500, lr: float = 0.5) -> tuple:
    """Logistic regression by full-batch gradient descent on standardized features, classes weighted equally.
    Returns (weights, bias, mean, std)."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    pos = max(1, int(y.sum()))
    neg = max(1, len(y) - pos)
    sw = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg))  # (n,) balance the classes
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        g = sw * (p - y) / len(y)
        w -= lr * (z.T @ g + l2 * w)
        b -= lr * g.sum()
    return w, b, mean, std


def _predict(model: dict, x: np.ndarray) -> np.ndarray:
    z = (x - np.asarray(model["mean"])) / np.asarray(model["std"])
    return 1.0 / (1.0 + np.exp(-(z @ np.asarray(model["w"]) + model["b"])))


def _labels_from_folders(labels_dir: Path, positive: str, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Measure the images of ``labels_dir/<label>/`` (bounded decode); label 1 for ``positive``, 0 otherwise."""
    from .build import _flatten  # same flattening as the build

    if not (labels_dir / positive).is_dir():
        raise DatasetError(f"{labels_dir} has no folder {positive!r} for the positive label")
    xs, ys = [], []
    limits = Limits(cfg.max_bytes, cfg.max_pixels)
    for path, tags in walk_folder(labels_dir):
        if not tags:
            continue
        try:
            img = read_image_file(path, limits)
        except (BadImage, OSError):
            continue
        rgb, alpha = _flatten(np.asarray(to_rgba(img)))
        xs.append(features(measure_all(rgb, alpha, cfg.color_chroma)))
        ys.append(1.0 if tags[0] == _norm_tag(positive) else 0.0)
    if not xs or len(set(ys)) < 2:
        raise DatasetError(f"{labels_dir}: need images in {positive!r} and in at least one other folder")
    return np.stack(xs), np.asarray(ys)


def _rows(store: Store) -> list:
    cols = ", ".join(Measures.columns())
    return store.db.execute(
        f"SELECT id, status, reason, {cols} FROM images WHERE dhash IS NOT NULL AND measure_v >= ? ORDER BY id",
        (MEASURE_VERSION,),
    ).fetchall()


def train_and_score(store: Store, labels_dir: Path | None = None, positive: str = "keep") -> dict:
    """Train (from ``labels_dir`` or from the manifest), save the model, score every measured image.

    Returns a summary: examples, positives, training accuracy, images scored."""
    cfg = store.load_config()
    rows = _rows(store)
    if not rows:
        raise DatasetError("nothing measured yet; run 'tintline data build' first")
    feats = np.stack([features(Measures.from_row(r)) for r in rows])
    if labels_dir is not None:
        x, y = _labels_from_folders(Path(labels_dir), positive, cfg)
        source = f"folders {labels_dir} (positive: {positive})"
    else:
        keep = [i for i, r in enumerate(rows) if r["status"] == "accepted" or r["reason"] in CONTENT_REASONS]
        x = feats[keep]
        y = np.asarray([1.0 if rows[i]["status"] == "accepted" else 0.0 for i in keep])
        if len(set(y.tolist())) < 2:
            raise DatasetError("the manifest has no accepted or no filter-rejected images to learn from")
        source = "manifest decisions (accepted vs rejected by a content filter)"
    w, b, mean, std = _fit(x, y)
    model = {"version": FEATURE_VERSION, "source": source, "w": w.tolist(), "b": float(b), "mean": mean.tolist(),
             "std": std.tolist()}
    acc = float(((_predict(model, x) >= 0.5) == (y > 0)).mean())
    model["train_accuracy"] = acc
    tmp = store.root / (MODEL_FILE + ".tmp")
    tmp.write_text(json.dumps(model))
    tmp.replace(store.root / MODEL_FILE)
    scores = _predict(model, feats)
    with store.transaction():
        store.db.executemany("UPDATE images SET clf_score=? WHERE id=?",
                             [(float(s), r["id"]) for s, r in zip(scores, rows, strict=True)])
    return {"examples": len(y), "positives": int(y.sum()), "train_accuracy": acc, "scored": len(rows),
            "source": source}
