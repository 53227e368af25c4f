"""Where raw images come from: a folder, or a built-in corpus (Debian packages).

A source yields ``(path, tags)``; :func:`import_source` copies each file into the dataset's content-addressed
store. :func:`import_pairs` imports real line-art / color pairs matched by file name; the build then uses the
given line art instead of extracting one. Nothing is decoded here (that is the build's job), so import is fast and
never fails on a bad file: a file that cannot even be read, or is over the byte limit, is recorded as rejected with
its reason.
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
        if (p / "manifest.sqlite").exists():
            # e.g. `tintline data import openclipart DATASET` with the arguments swapped: importing a dataset's own
            # manifest files as images would only add broken entries
            raise DatasetError(f"{source} is a tintline dataset, not an image folder (usage: data import DATASET SRC)")
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


def _pair_key(root: Path, path: Path) -> str:
    """Matching key: the path below the root without extension, case-folded (``a/B.png`` ~ ``a/b.jpg``)."""
    return str(path.relative_to(root).with_suffix("")).casefold()


def import_pairs(
    store: Store, lines_dir: str | Path, colors_dir: str | Path, extra_tags: list[str] | None = None, progress=True
) -> dict[str, int]:
    """Import color images from ``colors_dir`` with their line art from ``lines_dir``, matched by file name.

    Files match by their path below each folder without the extension (``lines/cats/a.png`` <-> ``colors/cats/a.jpg``);
    a file whose relative path has no partner matches by bare file name when that name is unique on both sides.
    Sub-folders of ``colors_dir`` become tags, as for a folder import. Returns counts: pairs (matched), new (color
    images new to the dataset), changed (pairs whose line art was new or different), unmatched_lines,
    unmatched_colors. Unmatched files are not imported.
    """
    lroot, croot = Path(lines_dir), Path(colors_dir)
    for p in (lroot, croot):
        if not p.is_dir():
            raise DatasetError(f"{p} is not a folder")
    limit = store.load_config().max_bytes
    lines = {_pair_key(lroot, p): p for p, _ in walk_folder(lroot)}
    colors = {_pair_key(croot, p): (p, tags) for p, tags in walk_folder(croot)}
    matched = {k: (lines[k], *colors[k]) for k in lines.keys() & colors.keys()}
    # fall back to bare names for the rest, when unambiguous
    rest_l = {k: p for k, p in lines.items() if k not in matched}
    rest_c = {k: v for k, v in colors.items() if k not in matched}
    by_name_l: dict[str, list[str]] = {}
    by_name_c: dict[str, list[str]] = {}
    for k in rest_l:
        by_name_l.setdefault(Path(k).name, []).append(k)
    for k in rest_c:
        by_name_c.setdefault(Path(k).name, []).append(k)
    for name in by_name_l.keys() & by_name_c.keys():
        if len(by_name_l[name]) == 1 and len(by_name_c[name]) == 1:
            kl, kc = by_name_l[name][0], by_name_c[name][0]
            matched[kc] = (rest_l.pop(kl), *rest_c.pop(kc))
    if not matched:
        raise DatasetError(f"no file names match between {lroot} and {croot}")
    extra = [_norm_tag(t) for t in (extra_tags or []) if _norm_tag(t)]
    stats = {"pairs": 0, "new": 0, "changed": 0, "unmatched_lines": len(rest_l), "unmatched_colors": len(rest_c)}
    for i, key in enumerate(tqdm(sorted(matched), desc="import pairs", unit="pair", disable=not progress)):
        line_path, color_path, tags = matched[key]
        stats["pairs"] += 1
        try:
            if color_path.stat().st_size > limit or line_path.stat().st_size > limit:
                raise OSError(f"larger than {limit} bytes")
            color, line = color_path.read_bytes(), line_path.read_bytes()
        except OSError as e:
            print(f"skipped {key}: {e}")
            continue
        # the line art first (a file, no row), then the color row, then the link: a kill in between leaves an
        # orphan object at most, and running the import again completes it
        line_sha = store.put_object(line, line_path.suffix.lower()[:8])
        sha, new = store.add(color, source="pairs", origin=str(color_path.resolve()), ext=color_path.suffix.lower()[:8],
                             tags=tags + extra, extra={"line_origin": str(line_path.resolve())}, commit=False)
        stats["new"] += int(new)
        stats["changed"] += int(store.set_line(sha, line_sha, line_path.suffix.lower()[:8], str(line_path.resolve()),
                                               commit=False))
        if i % 200 == 199:
            store.db.commit()
    store.db.commit()
    return stats
