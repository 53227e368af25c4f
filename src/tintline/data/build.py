"""`tintline data build`: imported originals -> accepted, deduplicated, balanced, split training pairs.

Stages (each resumable, each recorded in the manifest):

1. **measure + pairs** (parallel; only rows never measured or measured by an older :data:`MEASURE_VERSION`,
   rows whose detailed measurements were skipped but are now needed, and accepted rows whose pair files were made
   with other settings): decode with bounds, measure (:func:`~tintline.data.clean.measure_all`; the detailed
   measurements only for images that pass the cheap filters), and for images that pass the per-image filters
   write the color target and the line art (a style chosen per sample, or the given line art of
   ``import-pairs``). Results are
   committed in small batches, so a kill loses at most one batch of work.
2. **decide** (cheap, every row): apply the per-image filters to the stored measurements.
3. **near-duplicates**: group by dHash and color-signature distance around the largest image (leader
   clustering, so no chain of small differences joins unrelated images); keep it, reject the others.
4. **split**: one split per group, stable once assigned; new groups are assigned within their top-level tag so
   each tag meets the 70/20/10 fractions, in the order of a hash of the representative (deterministic by content).
   Near-duplicates never straddle splits.
5. **balance** (``balance: N``): at most N accepted images per tag, kept in hash order (reason ``balance-cap``).

Stages 2-5 run in one transaction, so a kill leaves either the old decisions or the new ones.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..config import DataConfig
from .clean import (
    MEASURE_SIZE,
    MEASURE_VERSION,
    TEXT_SIDE,
    Measures,
    content_box,
    decide,
    letterbox,
    measure_all,
    near_duplicate_groups,
    needs_detail,
    scaled_subject,
)
from .imageio import BadImage, Limits, read_image_file, to_rgba
from .lineart import LINEART_VERSION, choose_style, make_lineart, normalize_input
from .store import Store

SPLITS = ("train", "val", "test")
ALPHA_MIN = 0.02  # a source with at least this share of transparent pixels has a usable alpha outline


def _seed_for(sha: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{sha}".encode()).digest()[:8], "little")


def pair_key(cfg: DataConfig) -> str:
    """Identifies everything the pair files depend on besides the source: size, styles, seed, extractor code."""
    spec = {"size": cfg.size, "styles": sorted(cfg.line_styles.items()), "seed": cfg.seed, "v": LINEART_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


@lru_cache(maxsize=4)
def _config(cfg_json: str) -> DataConfig:
    return DataConfig.model_validate_json(cfg_json)


def _given_line(path: str, shape: tuple[int, int], box, size: int, limits: Limits) -> np.ndarray:
    """A user's line art for this image, normalized like inference input, aligned to the color's crop."""
    line = normalize_input(read_image_file(path, limits))
    h, w = shape
    if line.shape != (h, w):
        interp = cv2.INTER_AREA if line.shape[0] > h else cv2.INTER_CUBIC
        line = cv2.resize(line, (w, h), interpolation=interp)
    return letterbox(line, box, size, 255)


def _save_png(arr: np.ndarray, path: str) -> None:
    """Atomic PNG write like imageio.save_png, encoded in memory and written at once (PIL's many small writes to a
    file cost about as much as the encoding itself)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(p)


def _flatten(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 4) uint8 -> (rgb (H, W, 3) uint8 on white, alpha (H, W) uint8 or None when fully opaque).

    The same numbers as imageio.composite_on_white, with OpenCV's vectorized saturating arithmetic (several times
    faster on the large pages of clip-art corpora)."""
    rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
    alpha = cv2.extractChannel(rgba, 3)
    if cv2.minMaxLoc(alpha)[0] == 255:
        return rgb, None
    a3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2RGB)
    return cv2.add(cv2.multiply(rgb, a3, scale=1 / 255), cv2.bitwise_not(a3)), alpha


def _work(task: tuple) -> dict:
    """Worker: decode, measure, and write pair files if the image passes the per-image filters."""
    sha, src, given, color_path, line_path, cfg_json, key = task
    cfg = _config(cfg_json)
    limits = Limits(cfg.max_bytes, cfg.max_pixels)
    try:
        img = read_image_file(src, limits)
        rgba = np.asarray(to_rgba(img))  # (H, W, 4)
        rgb, alpha = _flatten(rgba)  # (H, W, 3), (H, W) or None
    except BadImage as e:
        return {"sha": sha, "bad": (e.reason, e.detail)}
    except OSError as e:
        return {"sha": sha, "bad": ("unreadable", str(e)[:120])}
    box = content_box(rgb)
    sub = scaled_subject(rgb, box, TEXT_SIDE) if box is not None else None  # the subject, long side <= 512
    # the pair's color: from the scaled subject when it is big enough, else from the full-resolution crop
    small = sub is not None and cfg.size <= TEXT_SIDE
    color = letterbox(sub, None, cfg.size, 255) if small else None
    m = measure_all(rgb, alpha, cfg.color_chroma, box, sub, canvas=color if cfg.size == MEASURE_SIZE else None,
                    cfg=cfg)
    out: dict = {"sha": sha, "m": asdict(m)}
    if decide(m, cfg) is not None:
        return out
    if color is None:
        color = letterbox(rgb, box, cfg.size, 255)
    if given:
        line_sha, line_src = given
        try:
            line = _given_line(line_src, rgb.shape[:2], box, cfg.size, limits)
        except (BadImage, OSError) as e:
            return {**out, "bad": ("bad-line-art", f"given line art: {str(e)[:100]}")}
        params: dict = {"style": "given", "line_sha": line_sha}
    else:
        rng = np.random.default_rng(_seed_for(sha, cfg.seed))
        has_alpha = alpha is not None and m.alpha_frac >= ALPHA_MIN
        style, p = choose_style(rng, cfg.line_styles, has_alpha)
        a = None
        if style == "alpha" and alpha is not None:
            a = letterbox(scaled_subject(alpha, box, TEXT_SIDE), None, cfg.size, 0) if small else \
                letterbox(alpha, box, cfg.size, 0)
        line = make_lineart(color, a, style, p)
        params = {"style": style, **p}
    _save_png(color, color_path)
    _save_png(line, line_path)
    out.update(line_params=params, pair_size=cfg.size, pair_key=key)
    return out


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _tasks(store: Store, cfg: DataConfig) -> list[tuple]:
    key = pair_key(cfg)
    rows = store.db.execute(
        "SELECT i.sha256, i.ext, l.line_sha, l.line_ext FROM images i LEFT JOIN lines l ON l.sha256 = i.sha256"
        " WHERE i.ext != '' AND (i.analyzed = 0 OR (i.dhash IS NOT NULL AND i.measure_v < ?) OR"
        " (i.status = 'pending' AND i.dhash IS NOT NULL) OR"
        " (i.status = 'accepted' AND (i.pair_key IS NULL OR i.pair_key != ?))) ORDER BY i.id",
        (MEASURE_VERSION, key),
    ).fetchall()
    cfg_json = cfg.model_dump_json()
    tasks = []
    for r in rows:
        color, line = store.pair_paths(r["sha256"], cfg.size)
        given = (r["line_sha"], str(store.object_path(r["line_sha"], r["line_ext"]))) if r["line_sha"] else None
        src = str(store.object_path(r["sha256"], r["ext"]))
        tasks.append((r["sha256"], src, given, str(color), str(line), cfg_json, key))
    return tasks


def _run(tasks: list[tuple], workers: int) -> Iterator[dict]:
    if workers <= 1 or len(tasks) < 16:
        for t in tasks:
            yield _work(t)
        return
    with get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        yield from pool.imap_unordered(_work, tasks, chunksize=4)


# written by the worker; clf_score belongs to `tintline data classify` and survives re-measuring
_MEASURE_COLS = [c for c in Measures.columns() if c not in ("width", "height", "clf_score")]


def _store_result(store: Store, res: dict) -> None:
    if "bad" in res and "m" not in res:
        reason, detail = res["bad"]
        store.db.execute(
            "UPDATE images SET analyzed=1, status='rejected', reason=?, detail=?, pair_size=NULL, pair_key=NULL,"
            " measure_v=? WHERE sha256=?",
            (reason, detail, MEASURE_VERSION, res["sha"]),
        )
        return
    m = res["m"]
    cols = ["width", "height", *_MEASURE_COLS]
    sets = ", ".join(f"{c}=?" for c in cols)
    store.db.execute(
        f"UPDATE images SET analyzed=1, measure_v=?, {sets}, pair_size=COALESCE(?, pair_size),"
        " pair_key=COALESCE(?, pair_key), line_params=COALESCE(?, line_params) WHERE sha256=?",
        (
            MEASURE_VERSION, *(m[c] for c in cols), res.get("pair_size"), res.get("pair_key"),
            json.dumps(res["line_params"]) if "line_params" in res else None, res["sha"],
        ),
    )
    if "bad" in res:  # measured, but its given line art is unusable: a per-image reason like any other
        store.db.execute("UPDATE images SET line_params=? WHERE sha256=?", (json.dumps({"error": res["bad"]}),
                                                                             res["sha"]))


def _decide_all(store: Store, cfg: DataConfig) -> None:
    """Re-apply per-image filters to stored measurements (decode failures stay rejected)."""
    cols = ", ".join(Measures.columns())
    rows = store.db.execute(
        f"SELECT i.sha256, i.line_params, l.line_sha, {cols} FROM images i LEFT JOIN lines l ON l.sha256 = i.sha256"
        " WHERE i.analyzed=1 AND i.dhash IS NOT NULL"
    ).fetchall()
    updates = []
    for r in rows:
        m = Measures.from_row(r)
        if needs_detail(m, cfg):  # a threshold change lets it past the cheap filters: measure it in full
            updates.append(("pending", None, None, r["sha256"]))
            continue
        verdict = decide(m, cfg)
        if verdict is None and r["line_sha"] and r["line_params"] and '"error"' in r["line_params"]:
            err = json.loads(r["line_params"])["error"]
            verdict = (err[0], err[1])
        if verdict is None:
            updates.append(("accepted", None, None, r["sha256"]))
        else:
            updates.append(("rejected", verdict[0], verdict[1], r["sha256"]))
    store.db.executemany("UPDATE images SET status=?, reason=?, detail=? WHERE sha256=?", updates)


def _assign_split(counts: dict[str, int], fractions: tuple[float, float, float]) -> str:
    """The split furthest below its target share in this stratum (ties: train, val, test)."""
    n = sum(counts.values()) + 1
    deficits = [fractions[i] * n - counts[s] for i, s in enumerate(SPLITS)]
    return SPLITS[int(np.argmax(deficits))]


def _dedup_split_balance(store: Store, cfg: DataConfig) -> None:
    rows = store.db.execute(
        "SELECT id, sha256, dhash, color_sig, width, height, split FROM images WHERE status='accepted' ORDER BY id"
    ).fetchall()
    # representatives: the largest image first, ties by the earliest id
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["width"] * rows[i]["height"], rows[i]["id"]))
    reps = near_duplicate_groups([r["dhash"] for r in rows], [r["color_sig"] for r in rows], order,
                                 cfg.near_dup_bits, cfg.near_dup_diff)
    members_of: dict[int, list] = {}
    for r, rep_i in zip(rows, reps, strict=True):
        members_of.setdefault(rep_i, []).append(r)
    first_tag = store.first_tags()
    groups = []  # (rep, members, stratum, split or None)
    for rep_i, members in members_of.items():
        rep = rows[rep_i]
        known = [r["split"] for r in members if r["split"]]
        split = max(sorted(set(known)), key=known.count) if known else None  # stable: a group keeps its split
        groups.append([rep, members, first_tag.get(rep["sha256"], ""), split])
    # stratified assignment of new groups: per top-level tag, in hash order, to the split furthest below target
    counts: dict[str, dict[str, int]] = {}
    for g in groups:
        if g[3]:
            counts.setdefault(g[2], dict.fromkeys(SPLITS, 0))[g[3]] += 1
    new = sorted((g for g in groups if not g[3]), key=lambda g: _seed_for(g[0]["sha256"], cfg.seed))
    for g in new:
        c = counts.setdefault(g[2], dict.fromkeys(SPLITS, 0))
        g[3] = _assign_split(c, cfg.split)
        c[g[3]] += 1
    capped = _balance([g[0] for g in groups], store.all_tags(), cfg) if cfg.balance else {}
    updates = []
    for rep, members, _, split in groups:
        for r in members:
            if r["id"] != rep["id"]:
                updates.append(("rejected", "near-duplicate", f"of {rep['sha256'][:12]}", rep["id"], split, r["id"]))
            elif r["id"] in capped:
                updates.append(("rejected", "balance-cap", capped[r["id"]], rep["id"], split, r["id"]))
            else:
                updates.append(("accepted", None, None, rep["id"], split, r["id"]))
    store.db.executemany(
        "UPDATE images SET status=?, reason=?, detail=?, dup_group=?, split=? WHERE id=?", updates
    )


def _balance(reps: list, tags: dict[str, list[str]], cfg: DataConfig) -> dict[int, str]:
    """At most ``cfg.balance`` representatives per tag, taken in hash order; returns id -> detail for the rest."""
    count: dict[str, int] = {}
    capped = {}
    for rep in sorted(reps, key=lambda r: _seed_for(r["sha256"], cfg.seed)):
        ts = tags.get(rep["sha256"], [])
        full = [t for t in ts if count.get(t, 0) >= cfg.balance]
        if full:
            capped[rep["id"]] = f"tag {full[0]} already has {cfg.balance} images"
            continue
        for t in ts:
            count[t] = count.get(t, 0) + 1
    return capped


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
            _dedup_split_balance(store, cfg)
        if not _tasks(store, cfg):
            break
    store.save_config(cfg)
    return {
        "processed": done,
        "counts": store.counts(),
        "reasons": store.reason_counts(),
        "splits": store.split_counts(),
    }
