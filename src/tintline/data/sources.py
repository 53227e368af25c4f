"""Where raw images come from: a folder, or a built-in corpus (Debian packages).

A source yields ``(path, tags)``; :func:`import_source` copies each file into the dataset's content-addressed
store. Nothing is decoded here (that is the build's job), so import is fast and never fails on a bad file: a file
that cannot even be read, or is over the byte limit, is recorded as rejected with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .store import DatasetError, Store, sha256_bytes

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
RENPY_IMAGES = Path("/usr/share/games/renpy/demo/game/images")
# The renpy demo's character sprites are named "<character> <expression>.png"; everything else in that folder
# (backgrounds, buttons, launcher screenshots) is not a character and is left out.
RENPY_CHARACTERS = ("eileen", "lucy")


@dataclass(frozen=True)
class BuiltinCorpus:
    name: str
    root: Path
    package: str
    walk: Callable[[Path], Iterator[tuple[Path, list[str]]]]


def _norm_tag(s: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", s.strip().lower()).strip("_")


def walk_folder(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """Every file under ``root`` (sorted, so imports are reproducible); sub-folder names become tags.

    Files with unknown extensions are yielded too: whether they are images is decided by content at build time.
    """
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            rel = p.relative_to(root).parts[:-1]
            yield p, [_norm_tag(t) for t in rel if _norm_tag(t)]


def walk_renpy(root: Path) -> Iterator[tuple[Path, list[str]]]:
    for p in sorted(root.iterdir()):
        first = p.stem.split(" ")[0].lower()
        if p.is_file() and first in RENPY_CHARACTERS and p.suffix.lower() in IMAGE_EXTS:
            yield p, ["character", first]


BUILTIN = {
    "openclipart": BuiltinCorpus("openclipart", OPENCLIPART_ROOT, "openclipart-png", walk_folder),
    "renpy-demo": BuiltinCorpus("renpy-demo", RENPY_IMAGES, "renpy-demo", walk_renpy),
}


def resolve_source(source: str) -> tuple[str, Path, Callable[[Path], Iterator[tuple[Path, list[str]]]]]:
    """SOURCE -> (source name, root, walker). A built-in name wins over a folder of the same name only if the
    folder does not exist, so ``./openclipart`` can still be imported as a folder by its path."""
    p = Path(source)
    if p.is_dir():
        return "folder", p, walk_folder
    if source in BUILTIN:
        b = BUILTIN[source]
        if not b.root.is_dir():
            raise DatasetError(
                f"built-in corpus {source!r} is not installed ({b.root} missing); run: apt-get install {b.package}"
            )
        return b.name, b.root, b.walk
    if p.exists():
        raise DatasetError(f"{source} is not a folder")
    raise DatasetError(f"no such folder or built-in corpus: {source!r} (built-ins: {', '.join(BUILTIN)})")


def import_source(
    store: Store, source: str, extra_tags: list[str] | None = None, max_bytes: int | None = None, progress=True
) -> dict[str, int]:
    """Copy every file of ``source`` into ``store``. Returns counts: seen, new, known."""
    name, root, walk = resolve_source(source)
    limit = max_bytes or store.load_config().max_bytes
    extra = [_norm_tag(t) for t in (extra_tags or []) if _norm_tag(t)]
    files = list(walk(root))
    if not files:
        raise DatasetError(f"{source}: no files found")
    stats = {"seen": 0, "new": 0, "known": 0}
    batch = 0
    for path, tags in tqdm(files, desc=f"import {name}", unit="file", disable=not progress):
        stats["seen"] += 1
        origin = str(path.resolve())
        ext = path.suffix.lower()[:8]
        try:
            size = path.stat().st_size
            if size > limit:
                # Too big to store: record it by a hash of its name so the manifest still explains it.
                sha = "oversize-" + sha256_bytes(origin.encode())[:55]
                _, new = store.add(
                    None, source=name, origin=origin, ext=ext, tags=tags + extra, sha=sha, nbytes=size,
                    rejected=("too-large-file", f"{size} bytes > limit {limit}"), commit=False,
                )
            else:
                _, new = store.add(path.read_bytes(), source=name, origin=origin, ext=ext, tags=tags + extra,
                                   commit=False)
        except OSError as e:
            sha = "unreadable-" + sha256_bytes(origin.encode())[:53]
            _, new = store.add(
                None, source=name, origin=origin, ext=ext, tags=tags + extra, sha=sha, nbytes=0,
                rejected=("unreadable", f"{e.__class__.__name__}: {e.strerror or e}"), commit=False,
            )
        stats["new" if new else "known"] += 1
        batch += 1
        if batch >= 200:  # commit in batches: fast, and a kill loses at most one batch of (re-importable) rows
            store.db.commit()
            batch = 0
    store.db.commit()
    return stats
