"""`tintline data report`: one HTML page that shows what the build kept, what it dropped and why.

Sections: counts and the thresholds in force; images per tag before and after cleaning; rejections per reason
with example thumbnails; the largest near-duplicate groups side by side; sample pairs of each line-art style;
histograms of every measurement the filters use (with the threshold drawn in), of image sizes and of the hues of
the accepted pairs. Thumbnails are small PNG files next to the page (``thumbs/``); nothing is re-measured.
"""

from __future__ import annotations

import colorsys
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..config import DataConfig
from ..monitor.charts import bar_chart, color_bars, histogram
from ..monitor.html import esc, table, write_page
from .clean import FILTERS, Measures
from .imageio import BadImage, Limits, composite_on_white, read_image_file
from .store import Store

THUMB = 104
EXAMPLES_PER_REASON = 9
DUP_GROUPS = 10
STYLE_SAMPLES = 8

EXTRA_CSS = """<style>
.grid { display: flex; flex-wrap: wrap; gap: 8px; margin: 0.4em 0 1em; }
.cell { width: 112px; font-size: 10px; color: #444; overflow-wrap: anywhere; }
.cell img, .cell .none { width: 104px; height: 104px; object-fit: contain; border: 1px solid #ccc; background: #fff; }
.cell .none { display: flex; align-items: center; justify-content: center; text-align: center; color: #a33; }
.pair { display: inline-flex; gap: 2px; margin: 0 10px 10px 0; }
.pair img { width: 128px; height: 128px; border: 1px solid #ccc; }
.group { display: flex; gap: 6px; align-items: flex-start; margin-bottom: 10px; padding-bottom: 6px;
         border-bottom: 1px dashed #ddd; }
.kept img { border: 2px solid #2ca02c; }
.charts { display: flex; flex-wrap: wrap; gap: 10px 24px; }
</style>"""

# what each per-image filter measures and which thresholds it uses (for the summary table)
FILTER_DOC = {
    "too-small": ("shorter side of the canvas", ("min_side",)),
    "blank": ("share of the canvas that is not paper", ("min_content",)),
    "aspect": ("long / short side of the subject (margins trimmed)", ("max_aspect",)),
    "subject-too-small": ("subject box share of the canvas; its longer side", ("min_subject_frac", "min_subject_side")),
    "placeholder": ("a red square with a white X (Inkscape's missing-image badge); dHash of known placeholders",
                    ("placeholder_bits",)),
    "no-color": ("share of clearly colored content pixels", ("min_colorfulness", "color_chroma")),
    "text": ("share of the drawing in rows of dark letter- or word-sized shapes", ("max_text_frac",)),
    "entangled": ("ink share and pieces per 10k px of a reference line-art extraction", ("max_ink", "max_fragments")),
    "classifier": ("score of the learned filter (tintline data classify)", ("min_clf_score",)),
}


def _origin_name(origin: str | None) -> str:
    return Path(origin).name if origin else ""


class _Thumbs:
    """Writes small PNGs into ``dir`` once per (sha, kind); returns their path relative to the page."""

    def __init__(self, store: Store, out_dir: Path, cfg: DataConfig):
        self.store = store
        self.dir = out_dir / "thumbs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.limits = Limits(cfg.max_bytes, cfg.max_pixels)

    def _save(self, arr: np.ndarray, name: str, side: int) -> str:
        h, w = arr.shape[:2]
        s = side / max(h, w)
        if s < 1:
            arr = cv2.resize(arr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        path = self.dir / name
        tmp = path.with_name(path.name + ".tmp")
        Image.fromarray(arr).save(tmp, format="PNG")
        tmp.replace(path)
        return f"thumbs/{name}"

    def original(self, row) -> str | None:
        """The source image (decoded again, bounded), or None when it cannot be decoded."""
        name = f"{row['sha256'][:20]}.o.png"
        if (self.dir / name).exists():
            return f"thumbs/{name}"
        if not row["ext"]:
            return None
        try:
            rgb = composite_on_white(read_image_file(self.store.object_path(row["sha256"], row["ext"]), self.limits))
        except (BadImage, OSError):
            return None
        return self._save(rgb, name, THUMB)

    def pair(self, row) -> tuple[str, str] | None:
        """(color, line) thumbnails of an image's pair files, or None when it has none."""
        if not row["pair_size"]:
            return None
        color, line = self.store.pair_paths(row["sha256"], row["pair_size"])
        if not (color.exists() and line.exists()):
            return None
        out = []
        for kind, p in (("c", color), ("l", line)):
            name = f"{row['sha256'][:20]}.{kind}.png"
            if not (self.dir / name).exists():
                with Image.open(p) as im:
                    self._save(np.asarray(im.convert("RGB" if kind == "c" else "L")), name, 128)
            out.append(f"thumbs/{name}")
        return out[0], out[1]


def _cell(src: str | None, caption: str, title: str = "", cls: str = "") -> str:
    img = f'<img src="{esc(src)}" alt="">' if src else f'<div class="none">{esc(title or "no preview")}</div>'
    return f'<div class="cell {cls}" title="{esc(title)}">{img}<br>{esc(caption)}</div>'


def _rows(store: Store) -> list:
    return store.db.execute(
        "SELECT i.*, (SELECT origin FROM origins o WHERE o.sha256 = i.sha256 ORDER BY rowid LIMIT 1) AS origin"
        " FROM images i ORDER BY i.sha256"
    ).fetchall()


def _style_of(row) -> str | None:
    if not row["line_params"]:
        return None
    lp = json.loads(row["line_params"])
    return lp.get("style") or lp.get("extractor")


def _summary(store: Store, cfg: DataConfig, reasons: dict[str, int]) -> str:
    c, s = store.counts(), store.split_counts()
    total = sum(c.values())
    head = (f"<p>{total} images: <b>{c.get('accepted', 0)} accepted</b>, {c.get('rejected', 0)} rejected"
            f"{', ' + str(c['pending']) + ' pending (not built yet)' if c.get('pending') else ''}."
            f" Splits of the accepted: train {s.get('train', 0)}, val {s.get('val', 0)}, test {s.get('test', 0)}.</p>")
    rows = []
    for name in FILTERS:
        what, keys = FILTER_DOC.get(name, ("", ()))
        th = ", ".join(f"{k} = {getattr(cfg, k)}" for k in keys)
        off = " (disabled)" if name in cfg.disabled_filters else ""
        rows.append((name + off, what, th, reasons.get(name, 0)))
    rows.append(("near-duplicate", "128-bit dHash and 8x8 CIELAB thumbnail of the subject, against the group's"
                 " largest image (kept)", f"near_dup_bits = {cfg.near_dup_bits}, near_dup_diff = {cfg.near_dup_diff}",
                 reasons.get("near-duplicate", 0)))
    rows.append(("balance-cap", "accepted images per tag", f"balance = {cfg.balance or 'off'}",
                 reasons.get("balance-cap", 0)))
    known = set(FILTERS) | {"near-duplicate", "balance-cap"}
    for reason, n in reasons.items():  # decode failures and other per-file reasons
        if reason not in known:
            rows.append((reason, "the file itself (checked before decoding or while decoding)",
                         f"max_bytes = {cfg.max_bytes}, max_pixels = {cfg.max_pixels}" if reason.startswith("too-")
                         else "", n))
    return head + "<p class='note'>Per-image filters, in the order they are tried (the first that fails is the" \
        " recorded reason):</p>" + table(["filter", "measures", "threshold", "rejected"], rows)


def _tags(store: Store) -> str:
    tt = store.tag_table()
    if not tt:
        return "<p class='note'>no images</p>"
    top = tt[:30]
    chart = bar_chart([(r["tag"], r["total"], r["accepted"]) for r in top], "images per tag (top 30)",
                      width=720, labels=("before cleaning", "accepted"))
    rows = [(r["tag"], r["total"], r["accepted"], r["rejected"], r["train"], r["val"], r["test"]) for r in tt]
    full = table(["tag", "before", "accepted", "rejected", "train", "val", "test"], rows)
    return chart + f"<details><summary>table of all {len(tt)} tags</summary>{full}</details>"


def _rejections(rows: list, thumbs: _Thumbs, reasons: dict[str, int]) -> str:
    parts = [bar_chart(list(reasons.items()), "rejections per reason", width=640)]
    by_reason: dict[str, list] = {}
    for r in rows:
        if r["status"] == "rejected":
            by_reason.setdefault(r["reason"], []).append(r)
    for reason, n in reasons.items():
        ex = by_reason.get(reason, [])[:EXAMPLES_PER_REASON]
        cells = "".join(_cell(thumbs.original(r), _origin_name(r["origin"]), r["detail"] or "") for r in ex)
        details = "; ".join(esc(r["detail"] or "") for r in ex[:3])
        parts.append(f"<h3>{esc(reason)} ({n})</h3><p class='note'>e.g. {details}</p><div class='grid'>{cells}</div>")
    return "".join(parts)


def _dups(rows: list, thumbs: _Thumbs) -> str:
    by_id = {r["id"]: r for r in rows}
    groups: dict[int, list] = {}
    for r in rows:
        if r["dup_group"] is not None:
            groups.setdefault(r["dup_group"], []).append(r)
    multi = sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]["sha256"]))
    if not multi:
        return "<p class='note'>no near-duplicate groups</p>"
    sizes = Counter(len(g) for g in multi)
    parts = [f"<p>{len(multi)} groups with more than one image"
             f" ({', '.join(f'{n} of {k}' for k, n in sorted(sizes.items()))}); the largest {DUP_GROUPS}, kept"
             " image first (green):</p>"]
    for g in multi[:DUP_GROUPS]:
        rep = by_id.get(g[0]["dup_group"])
        members = [rep] + [m for m in g if rep is None or m["id"] != rep["id"]] if rep else g
        cells = "".join(
            _cell(thumbs.original(m), f"{m['width']}x{m['height']} {_origin_name(m['origin'])}",
                  m["detail"] or "", "kept" if rep is not None and m["id"] == rep["id"] else "")
            for m in members[:8]
        )
        more = f"<div class='cell'>+{len(members) - 8} more</div>" if len(members) > 8 else ""
        parts.append(f"<div class='group'>{cells}{more}</div>")
    return "".join(parts)


def _styles(rows: list, thumbs: _Thumbs) -> str:
    acc = [r for r in rows if r["status"] == "accepted"]
    by_style: dict[str, list] = {}
    for r in acc:
        st = _style_of(r)
        if st:
            by_style.setdefault(st, []).append(r)
    if not by_style:
        return "<p class='note'>no pairs yet</p>"
    parts = [bar_chart([(k, len(v)) for k, v in sorted(by_style.items())], "accepted pairs per line-art style")]
    for st, rs in sorted(by_style.items()):
        pairs = []
        for r in rs[:STYLE_SAMPLES]:
            tp = thumbs.pair(r)
            if tp:
                lp = json.loads(r["line_params"])
                title = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in lp.items())
                pairs.append(f"<span class='pair' title='{esc(title)}'><img src='{tp[0]}' alt=''>"
                             f"<img src='{tp[1]}' alt=''></span>")
        parts.append(f"<h3>{esc(st)} ({len(rs)})</h3><div>{''.join(pairs)}</div>")
    return "".join(parts)


def _hues(rows: list, store: Store, limit: int = 400) -> str:
    """Hue histogram of clearly colored pixels over (a sample of) the accepted color pairs."""
    acc = [r for r in rows if r["status"] == "accepted" and r["pair_size"]][:limit]
    hist = np.zeros(36)
    for r in acc:
        p = store.pair_paths(r["sha256"], r["pair_size"])[0]
        if not p.exists():
            continue
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB").resize((64, 64)))
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # H in 0..179
        sel = (hsv[..., 1] > 60) & (hsv[..., 2] > 40)
        hist += np.bincount((hsv[..., 0][sel].astype(np.int32) * 36) // 180, minlength=36)[:36]
    fills = []
    for i in range(36):
        r, g, b = colorsys.hsv_to_rgb((i + 0.5) / 36, 0.8, 0.9)
        fills.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return color_bars(list(hist / max(hist.sum(), 1)), fills, f"hues of colored pixels ({len(acc)} accepted pairs)",
                      "hue, red -> yellow -> green -> cyan -> blue -> magenta")


def _histograms(rows: list, cfg: DataConfig) -> str:
    measured = [r for r in rows if r["dhash"] is not None and r["measure_v"]]
    if not measured:
        return "<p class='note'>nothing measured yet</p>"

    def split3(reason: str, value) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"accepted": [], f"rejected: {reason}": [], "rejected: other": []}
        for r in measured:
            v = value(r)
            if v is None:
                continue
            key = "accepted" if r["status"] == "accepted" else (
                f"rejected: {reason}" if r["reason"] == reason else "rejected: other")
            out[key].append(float(v))
        return out

    def ms(r) -> Measures:
        return Measures.from_row(r)

    colors = ["#2ca02c", "#d62728", "#bbbbbb"]
    charts = [
        histogram(split3("too-small", lambda r: min(r["width"], r["height"])), "shorter side (px)", log_x=True,
                  marker=cfg.min_side, colors=colors, xlabel="pixels, log scale"),
        histogram(split3("aspect", lambda r: ms(r).aspect), "subject aspect ratio", log_x=True,
                  marker=cfg.max_aspect, colors=colors, xlabel="long / short side, log scale"),
        histogram(split3("subject-too-small", lambda r: ms(r).subject_frac if r["subject_w"] else None),
                  "subject box share of the canvas", log_x=True, marker=cfg.min_subject_frac, colors=colors,
                  xlabel="log scale"),
        histogram(split3("blank", lambda r: r["content_frac"]), "content share of the canvas", log_x=True,
                  marker=cfg.min_content, colors=colors, xlabel="log scale"),
        histogram(split3("no-color", lambda r: r["colorfulness"]), "colorfulness (share of colored pixels)",
                  lo=0, hi=1, marker=cfg.min_colorfulness, colors=colors),
        histogram(split3("text", lambda r: r["text_frac"]), "text share of the ink", lo=0, hi=1,
                  marker=cfg.max_text_frac, colors=colors),
        histogram(split3("entangled", lambda r: r["ink"]), "ink share of the subject (reference line art)", lo=0,
                  hi=0.6, marker=cfg.max_ink, colors=colors),
        histogram(split3("entangled", lambda r: r["fragments"]), "line-art pieces per 10k px", lo=0,
                  hi=max(3 * cfg.max_fragments, 1), marker=cfg.max_fragments, colors=colors),
        histogram({"all": [r["width"] * r["height"] / 1e6 for r in measured]}, "image size (megapixels)",
                  log_x=True, xlabel="log scale"),
    ]
    return "<div class='charts'>" + "".join(charts) + "</div>"


def write_report(store: Store, out: Path | None = None) -> Path:
    """Write the page (default ``DATASET/report/index.html``) and its thumbnails; returns the page's path."""
    out = Path(out) if out else store.root / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = store.load_config()
    rows = _rows(store)
    reasons = store.reason_counts()
    thumbs = _Thumbs(store, out.parent, cfg)
    body = EXTRA_CSS + (
        f"<p class='note'>Dataset {esc(store.root.resolve())}; data fingerprint {store.fingerprint()}.</p>"
        "<h2>Summary</h2>" + _summary(store, cfg, reasons)
        + "<h2>Tags before and after cleaning</h2>" + _tags(store)
        + "<h2>Rejections</h2>" + _rejections(rows, thumbs, reasons)
        + "<h2>Near-duplicate groups</h2>" + _dups(rows, thumbs)
        + "<h2>Line-art styles</h2>" + _styles(rows, thumbs)
        + "<h2>Measurements</h2><p class='note'>Green: accepted; red: rejected by the filter that uses this"
        " measurement; gray: rejected for another reason. The dashed line is the threshold.</p>"
        + _histograms(rows, cfg) + _hues(rows, store)
    )
    tmp = out.with_name(out.name + ".tmp")
    write_page(tmp, "tintline dataset report", body)
    tmp.replace(out)
    return out
