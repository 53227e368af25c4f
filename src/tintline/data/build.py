"""`tintline data build`: imported originals -> accepted, deduplicated, split training pairs.

Stages (each resumable, each recorded in the manifest):

1. **measure + pairs** (parallel, only rows never analyzed, or accepted rows without pairs at this size): decode
   with bounds, measure, and for images that pass the per-image filters write the color target and the XDoG line
   art. Results are committed in small batches, so a kill loses at most one batch of work.
2. **decide** (cheap, every row): apply the per-image filters to the stored measurements.
3. **near-duplicates**: group by dHash distance; keep the largest image of each group, reject the others.
4. **split**: one split per group (stable once assigned), by a hash of the group's representative, so
   near-duplicates never straddle train and test.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from ..config import DataConfig
from .clean import Measures, decide, hamming_groups, measure, prepare_color
from .imageio import BadImage, Limits, composite_on_white, read_image_file, save_png
from .lineart import extract_lineart, sample_xdog_params
from .store import Store

SPLITS = ("train", "val", "test")


def _seed_for(sha: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{sha}".encode()).digest()[:8], "little")


def _work(task: tuple) -> dict:
    """Worker: decode, measure, and write pair files if the image passes the per-image filters."""
    sha, src, color_path, line_path, cfg_json = task
    cfg = DataConfig.model_validate_json(cfg_json)
    try:
        img = read_image_file(src, Limits(cfg.max_bytes, cfg.max_pixels))
        rgb = composite_on_white(img)
    except BadImage as e:
        return {"sha": sha, "bad": (e.reason, e.detail)}
    except OSError as e:
        return {"sha": sha, "bad": ("unreadable", str(e)[:120])}
    m = measure(rgb, cfg.color_chroma)
    out: dict = {"sha": sha, "m": asdict(m)}
    if decide(m, cfg) is None:
        rng = np.random.default_rng(_seed_for(sha, cfg.seed))
        params = sample_xdog_params(rng)
        color = prepare_color(rgb, cfg.size)
        save_png(color, color_path)
        save_png(extract_lineart(color, params), line_path)
        out["line_params"] = {"extractor": "xdog", **params}
        out["pair_size"] = cfg.size
    return out


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def _tasks(store: Store, cfg: DataConfig) -> list[tuple]:
    rows = store.db.execute(
        "SELECT sha256, ext FROM images WHERE ext != '' AND (analyzed = 0 OR"
        " (status = 'accepted' AND (pair_size IS NULL OR pair_size != ?))) ORDER BY id",
        (cfg.size,),
    ).fetchall()
    cfg_json = cfg.model_dump_json()
    tasks = []
    for r in rows:
        color, line = store.pair_paths(r["sha256"], cfg.size)
        tasks.append((r["sha256"], str(store.object_path(r["sha256"], r["ext"])), str(color), str(line), cfg_json))
    return tasks


def _run(tasks: list[tuple], workers: int) -> Iterator[dict]:
    if workers <= 1 or len(tasks) < 16:
        for t in tasks:
            yield _work(t)
        return
    with get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        yield from pool.imap_unordered(_work, tasks, chunksize=8)


def _store_result(store: Store, res: dict) -> None:
    if "bad" in res:
        reason, detail = res["bad"]
        store.db.execute(
            "UPDATE images SET analyzed=1, status='rejected', reason=?, detail=?, pair_size=NULL WHERE sha256=?",
            (reason, detail, res["sha"]),
        )
        return
    m = res["m"]
    store.db.execute(
        "UPDATE images SET analyzed=1, width=?, height=?, colorfulness=?, content_frac=?, dhash=?,"
        " pair_size=COALESCE(?, pair_size), line_params=COALESCE(?, line_params) WHERE sha256=?",
        (
            m["width"], m["height"], m["colorfulness"], m["content_frac"], m["dhash"],
            res.get("pair_size"), json.dumps(res["line_params"]) if "line_params" in res else None, res["sha"],
        ),
    )


def _decide_all(store: Store, cfg: DataConfig) -> None:
    """Re-apply per-image filters to stored measurements (decode failures stay rejected)."""
    rows = store.db.execute(
        "SELECT sha256, width, height, colorfulness, content_frac, dhash FROM images"
        " WHERE analyzed=1 AND dhash IS NOT NULL"
    ).fetchall()
    updates = []
    for r in rows:
        m = Measures(r["width"], r["height"], r["colorfulness"], r["content_frac"], r["dhash"])
        verdict = decide(m, cfg)
        if verdict is None:
            updates.append(("accepted", None, None, r["sha256"]))
        else:
            updates.append(("rejected", verdict[0], verdict[1], r["sha256"]))
    store.db.executemany("UPDATE images SET status=?, reason=?, detail=? WHERE sha256=?", updates)


def _dedup_and_split(store: Store, cfg: DataConfig) -> None:
    rows = store.db.execute(
        "SELECT id, sha256, dhash, width, height, split FROM images WHERE status='accepted' ORDER BY id"
    ).fetchall()
    roots = hamming_groups([r["dhash"] for r in rows], cfg.near_dup_bits)
    groups: dict[int, list] = {}
    for r, root in zip(rows, roots, strict=True):
        groups.setdefault(root, []).append(r)
    cum = np.cumsum(cfg.split)
    updates = []
    for members in groups.values():
        # representative: the largest image, ties by earliest id
        rep = max(members, key=lambda r: (r["width"] * r["height"], -r["id"]))
        known = [r["split"] for r in members if r["split"]]
        if known:
            split = max(set(known), key=known.count)  # stable: the group keeps the split it already had
        else:
            u = _seed_for(rep["sha256"], cfg.seed) / 2**64
            split = SPLITS[int(np.searchsorted(cum, u, side="right"))] if u < cum[-1] else SPLITS[-1]
        for r in members:
            if r["id"] == rep["id"]:
                updates.append(("accepted", None, None, rep["id"], split, r["id"]))
            else:
                updates.append(("rejected", "near-duplicate", f"of {rep['sha256'][:12]}", rep["id"], split, r["id"]))
    store.db.executemany(
        "UPDATE images SET status=?, reason=?, detail=?, dup_group=?, split=? WHERE id=?", updates
    )


def _process(store: Store, cfg: DataConfig, tasks: list[tuple], progress: bool) -> int:
    workers = cfg.workers or os.cpu_count() or 1
    done = 0
    bar = tqdm(total=len(tasks), desc="build: decode + line art", unit="img", disable=not progress)
    for res in _run(tasks, workers):
        _store_result(store, res)
        done += 1
        bar.update(1)
        if done % 64 == 0:
            store.db.commit()
    bar.close()
    store.db.commit()
    return done


def build(store: Store, cfg: DataConfig, progress: bool = True) -> dict:
    """Run all stages; returns a summary with counts per status, reason and split."""
    done = 0
    # Two rounds at most: the second makes pairs for images that only now pass (e.g. a threshold was relaxed).
    for _ in range(2):
        tasks = _tasks(store, cfg)
        if tasks:
            done += _process(store, cfg, tasks, progress)
        with store.transaction():
            _decide_all(store, cfg)
            _dedup_and_split(store, cfg)
        if not _tasks(store, cfg):
            break
    store.save_config(cfg)
    return {
        "processed": done,
        "counts": store.counts(),
        "reasons": store.reason_counts(),
        "splits": store.split_counts(),
    }
