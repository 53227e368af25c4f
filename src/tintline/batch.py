"""Batches: whole folders and comic archives (CBZ / ZIP) colorized page by page, resumable.

``tintline colorize MODEL DIR|FILE.cbz|FILE.zip ... -o OUT``:

* a **folder** ``DIR``: every image in it and its subfolders, in natural order (``page2`` before ``page10``), is
  written to ``OUT/<DIR name>/<relative path>.png``;
* an **archive** ``NAME.cbz`` / ``NAME.zip``: every image entry, in natural order of its name, is colorized into
  ``OUT/NAME.cbz`` under the same entry name (as PNG). The archive is assembled from finished pages at the end and
  renamed into place, so a half-written archive never exists;
* **hints per page** from a sidecar ``<page stem>.hints.json`` beside the page (in the folder, or in the archive
  next to the entry); ``--hints`` applies to the pages without one;
* **resume**: finished pages are recorded in ``OUT/.tintline-batch.json`` together with a key of the model and the
  settings. Running the same command again after a kill skips the finished pages (an archive's pages wait in
  ``OUT/.NAME.cbz.parts/`` until it is assembled); a different model or setting starts over.

Bounded: at most ``MAX_PAGES`` pages per archive and folder; an archive entry larger than the image byte limit is
refused before it is read (zip bombs); entry names with ``..`` or absolute paths are refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image
from tqdm import tqdm

from .data.hints import HintError, load_hints, validate_hints
from .data.imageio import BadImage, Limits, decode_image
from .errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
ARCHIVE_SUFFIXES = {".cbz", ".zip"}
HINTS_SUFFIX = ".hints.json"
MAX_PAGES = 10_000
STATE = ".tintline-batch.json"


def natural_key(name: str) -> list:
    """``page10`` after ``page2``: digit runs compare as numbers, the rest case-insensitively."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def is_batch_input(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() or p.suffix.lower() in ARCHIVE_SUFFIXES


@dataclass
class Page:
    """One page of a batch: ``name`` its output path relative to the batch's output (POSIX, ``.png``),
    ``data()`` its bytes, ``hints()`` its sidecar hints (None without one)."""

    name: str
    data: Callable[[], bytes]
    hints: Callable[[], dict | None]


def _parse_hints(raw: bytes, where: str) -> dict:
    try:
        return validate_hints(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HintError(f"{where}: not valid JSON ({e.__class__.__name__})") from e
    except HintError as e:
        raise HintError(f"{where}: {e}") from e


def folder_pages(folder: Path) -> list[Page]:
    files = sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: natural_key(p.relative_to(folder).as_posix()))
    if len(files) > MAX_PAGES:
        raise UserError(f"{folder}: {len(files)} images; a batch takes at most {MAX_PAGES} per folder")
    pages = []
    for p in files:
        side = p.with_name(p.stem + HINTS_SUFFIX)
        rel = p.relative_to(folder).with_suffix(".png").as_posix()
        pages.append(Page(rel, p.read_bytes,
                          (lambda s=side: load_hints(s)) if side.is_file() else (lambda: None)))
    return pages


def archive_pages(path: Path, limits: Limits) -> list[Page]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path}: not a readable ZIP/CBZ archive ({e.__class__.__name__})") from e
    infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    images = []
    for name, info in infos.items():
        pp = PurePosixPath(name)
        if pp.suffix.lower() not in IMAGE_SUFFIXES or name.startswith("__MACOSX/") or pp.name.startswith("._"):
            continue
        if pp.is_absolute() or ".." in pp.parts:
            raise UserError(f"{path}: entry {name!r} points outside the archive")
        if info.file_size > limits.max_bytes:
            raise UserError(f"{path}: entry {name!r} is {info.file_size} bytes uncompressed (limit {limits.max_bytes})")
        images.append(name)
    if len(images) > MAX_PAGES:
        raise UserError(f"{path}: {len(images)} images; a batch takes at most {MAX_PAGES} per archive")
    if not images:
        raise UserError(f"{path}: no images in the archive")
    images.sort(key=natural_key)

    def reader(name: str) -> Callable[[], bytes]:
        return lambda: zf.read(name)

    def sidecar(name: str) -> Callable[[], dict | None]:
        pp = PurePosixPath(name)
        side = str(pp.with_name(pp.stem + HINTS_SUFFIX))
        if side not in infos:
            return lambda: None
        if infos[side].file_size > 2 * 1024 * 1024:
            raise UserError(f"{path}: {side} is larger than 2 MB")
        return lambda: _parse_hints(zf.read(side), f"{path}:{side}")

    return [Page(str(PurePosixPath(n).with_suffix(".png")), reader(n), sidecar(n)) for n in images]


def _settings_key(model: str | Path, **settings: object) -> str:
    """A key of what decides the outputs: the model (its file's path, size and modification time, or its name)
    and the settings. A finished page counts only for the same key."""
    from .checkpoint import resolve_model_path

    try:
        p = resolve_model_path(model)
        st = p.stat()
        ident = f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    except Exception:  # a baseline or prefixed name: the name itself
        ident = str(model)
    return hashlib.sha256(json.dumps([ident, settings], sort_keys=True, default=str).encode()).hexdigest()[:16]


class BatchState:
    """``OUT/.tintline-batch.json``: {"key": settings key, "done": [output names]}, rewritten atomically."""

    def __init__(self, out_dir: Path, key: str):
        self.path = out_dir / STATE
        self.key = key
        self.done: set[str] = set()
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                data = {}
            if data.get("key") == key:
                self.done = set(data.get("done", []))

    def mark(self, name: str) -> None:
        self.done.add(name)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"key": self.key, "done": sorted(self.done)}))
        os.replace(tmp, self.path)


def _save_png(img: Image.Image, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, dst)


def colorize_batch(model: str | Path, inputs: Sequence[str], out_dir: Path, hints: dict | None = None,
                   device: str = "cpu", soft_hints: bool = False, gap: int | None = None,
                   progress: bool = True, colorizer: object | None = None,
                   settings_extra: dict | None = None, confidence: float | None = None,
                   keep_shading: bool | None = None, detail: str | None = None,
                   propagate: bool | None = None) -> list[Path]:
    """Colorize folders and archives (see the module docstring); returns the written files (PNG pages of folders,
    one .cbz per archive), in input order. ``hints``: validated hints for pages without a sidecar."""
    from .inference import configure, load_colorizer

    limits = Limits()
    jobs: list[tuple[Path, list[Page]]] = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            jobs.append((p, folder_pages(p)))
        elif p.is_file() and p.suffix.lower() in ARCHIVE_SUFFIXES:
            jobs.append((p, archive_pages(p, limits)))
        else:
            raise UserError(f"input not found: {name}")
    colorizer = configure(colorizer or load_colorizer(model, device=device), gap=gap, confidence=confidence,
                          keep_shading=keep_shading, detail=detail, propagate=propagate)
    extra = dict(settings_extra or {})
    # only when set: a resumed batch from before these options keeps its settings key
    for name, value in (("keep_shading", keep_shading), ("detail", detail), ("propagate", propagate)):
        if value is not None and hasattr(colorizer, name):
            extra[name] = value
    out_dir.mkdir(parents=True, exist_ok=True)
    state = BatchState(out_dir, _settings_key(model, soft=soft_hints, gap=gap, hints=hints, confidence=confidence,
                                              **extra))
    total = sum(len(pages) for _, pages in jobs)
    bar = tqdm(total=total, unit="page", desc="colorize", disable=not progress, dynamic_ncols=True)
    written: list[Path] = []
    for src, pages in jobs:
        archive = src.suffix.lower() in ARCHIVE_SUFFIXES and src.is_file()
        if archive:
            dst = out_dir / f"{src.stem}.cbz"
            work = out_dir / f".{src.stem}.cbz.parts"
            prefix = f"{src.stem}.cbz/"
        else:
            dst = work = out_dir / src.name
            prefix = f"{src.name}/"
        if archive and f"{prefix}*" in state.done and dst.is_file():  # assembled in an earlier run
            bar.update(len(pages))
            written.append(dst)
            continue
        for page in pages:
            key = prefix + page.name
            target = work / page.name
            if key in state.done and target.is_file():
                bar.update(1)
            else:
                try:
                    img = decode_image(page.data(), limits)
                except BadImage as e:
                    raise BadImage(e.reason, f"{src}: {page.name}: {e.detail}") from e
                page_hints = page.hints()
                out = colorizer.colorize_image(img, page_hints if page_hints is not None else hints,  # type: ignore[attr-defined]
                                               soft_hints=soft_hints)
                _save_png(Image.fromarray(out), target)
                state.mark(key)
                bar.update(1)
            if not archive:
                written.append(target)
        if archive:
            tmp = dst.with_name(f".{dst.name}.tmp")
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
                for page in pages:
                    zf.write(work / page.name, page.name)
            os.replace(tmp, dst)
            state.mark(f"{prefix}*")
            shutil.rmtree(work, ignore_errors=True)
            written.append(dst)
    bar.close()
    return written


def read_cbz_page(path: Path, name: str) -> Image.Image:
    """One page of a .cbz as a PIL image (for tests and tools)."""
    with zipfile.ZipFile(path) as zf:
        return Image.open(io.BytesIO(zf.read(name))).copy()
