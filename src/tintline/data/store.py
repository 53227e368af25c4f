"""The dataset directory: a SQLite manifest plus content-addressed files.

Layout of ``DATASET/``::

    manifest.sqlite          one row per distinct source image (by SHA-256 of its bytes), see SCHEMA
    dataset.yaml             the DataConfig used by `tintline data build`
    objects/ab/<sha256>.<ext> the original bytes, never modified
    pairs/<size>/ab/<sha256>.color.png   training target, size x size RGB (margins trimmed, letterboxed on white)
    pairs/<size>/ab/<sha256>.line.png    extracted line art, size x size grayscale (white paper, dark lines)
    report/index.html        `tintline data report` (optional)

The manifest's schema grows by migrations (:data:`ADDED_COLUMNS`, applied with ``ALTER TABLE ... ADD COLUMN`` when
``PRAGMA table_info`` lacks them), so a dataset made by an older version opens and keeps working; rows measured by
an older measurement version are re-measured at the next build (``measure_v``), nothing else is redone.

Writes are crash-safe: files are written under a temporary name and renamed, and a manifest row is committed
only after its file exists, so a kill at any moment leaves at most an orphan file, never a row without data.
The same content imported twice is one row (with two origins), so nothing is ever duplicated.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import ConfigError, DataConfig, build_config, load_yaml
from ..errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id           INTEGER PRIMARY KEY,
    sha256       TEXT UNIQUE NOT NULL,
    ext          TEXT NOT NULL,            -- extension of the stored original ('' when not stored)
    bytes        INTEGER NOT NULL,
    added_at     REAL NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',   -- pending | accepted | rejected
    reason       TEXT,                     -- why rejected (e.g. corrupt, too-small, no-color, near-duplicate)
    detail       TEXT,                     -- human detail for the reason
    analyzed     INTEGER NOT NULL DEFAULT 0,        -- 1 once measurements below are filled
    width        INTEGER,
    height       INTEGER,
    colorfulness REAL,                     -- share of content pixels that are clearly colored
    content_frac REAL,                     -- share of the canvas that is not blank (white / transparent)
    dhash        TEXT,                     -- 64-bit difference hash, 16 hex digits
    dup_group    INTEGER,                  -- id of the near-duplicate group's representative
    split        TEXT,                     -- train | val | test (kept stable across rebuilds)
    pair_size    INTEGER,                  -- size of the pair files written, NULL when none
    line_params  TEXT                      -- JSON of the line-art extractor and its parameters
);
CREATE TABLE IF NOT EXISTS origins (
    sha256  TEXT NOT NULL,
    source  TEXT NOT NULL,                 -- folder | openclipart | renpy-demo | crawl site name
    origin  TEXT NOT NULL,                 -- path or URL it came from
    extra   TEXT,                          -- JSON: source-specific fields (post id, rating, ...)
    UNIQUE (sha256, origin)
);
CREATE TABLE IF NOT EXISTS tags (
    sha256 TEXT NOT NULL,
    tag    TEXT NOT NULL,
    UNIQUE (sha256, tag)
);
CREATE TABLE IF NOT EXISTS lines (
    sha256   TEXT NOT NULL,                -- the color image (images.sha256)
    line_sha TEXT NOT NULL,                -- the given line art, stored in objects/ like an original
    line_ext TEXT NOT NULL,
    origin   TEXT NOT NULL,                -- path it came from
    UNIQUE (sha256)
);
CREATE INDEX IF NOT EXISTS idx_images_status ON images(status);
CREATE INDEX IF NOT EXISTS idx_tags_tag ON tags(tag);
CREATE INDEX IF NOT EXISTS idx_origins_origin ON origins(origin);
"""

# Columns added after the first schema: (name, declaration). Existing manifests get them by ALTER TABLE on open.
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("subject_w", "INTEGER"),  # bounding box of the content (margins trimmed), source pixels
    ("subject_h", "INTEGER"),
    ("text_frac", "REAL"),  # share of dark ink in text-like rows
    ("badge", "REAL"),  # placeholder-badge score (1 = found)
    ("ink", "REAL"),  # ink share of the subject in the reference line art
    ("fragments", "REAL"),  # reference line-art components per 10k px of subject
    ("alpha_frac", "REAL"),  # share of (partly) transparent source pixels
    ("color_sig", "TEXT"),  # 8x8 CIELAB thumbnail of the subject (near-duplicate check beside the dHash)
    ("measure_v", "INTEGER NOT NULL DEFAULT 0"),  # measurement version the row was measured with (clean.py)
    ("pair_key", "TEXT"),  # key of the pair settings (size, styles, seed) the pair files were made with
    ("clf_score", "REAL"),  # learned filter score (tintline data classify), NULL when not scored
)

MANIFEST = "manifest.sqlite"
CONFIG = "dataset.yaml"


class DatasetError(UserError):
    """A dataset directory is missing or unusable; the message is meant for the user."""


@dataclass(frozen=True)
class Entry:
    """One accepted image of a split, as the training and evaluation code sees it."""

    id: int
    sha256: str
    split: str
    color_path: Path
    line_path: Path
    tags: tuple[str, ...]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """A dataset directory. Open with :meth:`create` (import) or :meth:`open` (everything else)."""

    def __init__(self, root: Path):
        self.root = root
        self.db = sqlite3.connect(root / MANIFEST, timeout=60)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns of :data:`ADDED_COLUMNS` that this manifest lacks (under a write lock, re-checked, so two
        processes opening an old dataset at once do not both add them)."""

        def missing() -> list[tuple[str, str]]:
            have = {r["name"] for r in self.db.execute("PRAGMA table_info(images)")}
            return [(c, d) for c, d in ADDED_COLUMNS if c not in have]

        if not missing():
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for col, decl in missing():
                self.db.execute(f"ALTER TABLE images ADD COLUMN {col} {decl}")
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    # ---------------------------------------------------------------- opening

    @classmethod
    def create(cls, root: str | Path) -> Store:
        p = Path(root)
        if p.exists() and not p.is_dir():
            raise DatasetError(f"{p} exists and is not a directory")
        if p.is_dir() and any(p.iterdir()) and not (p / MANIFEST).exists():
            raise DatasetError(f"{p} is a non-empty directory that is not a tintline dataset")
        p.mkdir(parents=True, exist_ok=True)
        if not (p / CONFIG).exists():
            (p / CONFIG).write_text(yaml.safe_dump(DataConfig().model_dump(mode="json"), sort_keys=False))
        return cls(p)

    @classmethod
    def open(cls, root: str | Path) -> Store:
        p = Path(root)
        if not (p / MANIFEST).is_file():
            raise DatasetError(f"{p} is not a tintline dataset (no {MANIFEST}); run 'tintline data import' first")
        return cls(p)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.db:
            yield self.db

    # ---------------------------------------------------------------- config

    def load_config(self, overrides: dict | None = None) -> DataConfig:
        path = self.root / CONFIG
        base = load_yaml(path) if path.exists() else {}
        return build_config(DataConfig, base, overrides or {}, where=str(path))

    def save_config(self, cfg: DataConfig) -> None:
        tmp = self.root / (CONFIG + ".tmp")
        tmp.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        tmp.replace(self.root / CONFIG)

    # ---------------------------------------------------------------- files

    def object_path(self, sha: str, ext: str) -> Path:
        return self.root / "objects" / sha[:2] / f"{sha}{ext}"

    def pair_paths(self, sha: str, size: int) -> tuple[Path, Path]:
        d = self.root / "pairs" / str(size) / sha[:2]
        return d / f"{sha}.color.png", d / f"{sha}.line.png"

    # ---------------------------------------------------------------- writing

    def add(
        self,
        data: bytes | None,
        *,
        source: str,
        origin: str,
        ext: str,
        tags: Iterable[str] = (),
        extra: dict | None = None,
        sha: str | None = None,
        nbytes: int | None = None,
        rejected: tuple[str, str] | None = None,
        commit: bool = True,
    ) -> tuple[str, bool]:
        """Store one source file; returns (sha256, is_new).

        ``data`` None with ``rejected`` set records a file that cannot be stored (e.g. over the byte limit) so the
        manifest still says why it is missing.
        """
        if sha is None:
            if data is None:
                raise ValueError("either data or sha is needed")
            sha = sha256_bytes(data)
        ext = ext.lower() if data is not None else ""
        if data is not None:
            path = self.object_path(sha, ext)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
        cur = self.db.execute(
            "INSERT OR IGNORE INTO images (sha256, ext, bytes, added_at, status, reason, detail, analyzed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sha,
                ext,
                nbytes if nbytes is not None else len(data or b""),
                time.time(),
                "rejected" if rejected else "pending",
                rejected[0] if rejected else None,
                rejected[1] if rejected else None,
                1 if rejected else 0,
            ),
        )
        is_new = cur.rowcount == 1
        self.db.execute(
            "INSERT OR IGNORE INTO origins (sha256, source, origin, extra) VALUES (?, ?, ?, ?)",
            (sha, source, origin, json.dumps(extra) if extra else None),
        )
        self.db.executemany(
            "INSERT OR IGNORE INTO tags (sha256, tag) VALUES (?, ?)", [(sha, t) for t in dict.fromkeys(tags) if t]
        )
        if commit:
            self.db.commit()
        return sha, is_new

    def put_object(self, data: bytes, ext: str) -> str:
        """Store bytes content-addressed (atomic write), without a manifest row; returns their SHA-256."""
        sha = sha256_bytes(data)
        path = self.object_path(sha, ext.lower())
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def set_line(self, sha: str, line_sha: str, line_ext: str, origin: str, commit: bool = True) -> bool:
        """Record ``line_sha`` as the given line art of image ``sha``; returns True when this changed anything
        (the image's pairs are then re-made by the next build)."""
        row = self.db.execute("SELECT line_sha FROM lines WHERE sha256=?", (sha,)).fetchone()
        if row is not None and row["line_sha"] == line_sha:
            return False
        self.db.execute(
            "INSERT INTO lines (sha256, line_sha, line_ext, origin) VALUES (?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE"
            " SET line_sha=excluded.line_sha, line_ext=excluded.line_ext, origin=excluded.origin",
            (sha, line_sha, line_ext.lower(), origin),
        )
        # pairs are re-made, and an earlier "given line art unusable" verdict is forgotten
        self.db.execute("UPDATE images SET pair_key=NULL, line_params=NULL WHERE sha256=?", (sha,))
        if commit:
            self.db.commit()
        return True

    def has_origin(self, origin: str) -> bool:
        return self.db.execute("SELECT 1 FROM origins WHERE origin = ? LIMIT 1", (origin,)).fetchone() is not None

    # ---------------------------------------------------------------- reading

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) AS n FROM images GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    def reason_counts(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT reason, COUNT(*) AS n FROM images WHERE status='rejected' GROUP BY reason ORDER BY n DESC"
        ).fetchall()
        return {r["reason"]: r["n"] for r in rows}

    def split_counts(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT split, COUNT(*) AS n FROM images WHERE status='accepted' GROUP BY split"
        ).fetchall()
        return {r["split"]: r["n"] for r in rows}

    def tags_of(self, sha: str) -> tuple[str, ...]:
        rows = self.db.execute("SELECT tag FROM tags WHERE sha256 = ? ORDER BY tag", (sha,)).fetchall()
        return tuple(r["tag"] for r in rows)

    def first_tags(self) -> dict[str, str]:
        """sha256 -> its top-level tag: the first tag recorded for it (a folder source's top folder)."""
        rows = self.db.execute(
            "SELECT sha256, tag FROM tags WHERE rowid IN (SELECT MIN(rowid) FROM tags GROUP BY sha256)"
        ).fetchall()
        return {r["sha256"]: r["tag"] for r in rows}

    def all_tags(self) -> dict[str, list[str]]:
        """sha256 -> its tags in the order they were recorded (top-level first)."""
        out: dict[str, list[str]] = {}
        for r in self.db.execute("SELECT sha256, tag FROM tags ORDER BY rowid"):
            out.setdefault(r["sha256"], []).append(r["tag"])
        return out

    def tag_table(self) -> list[dict]:
        """Per tag: images in total (before cleaning), accepted (after), rejected, and accepted per split;
        most frequent first. Images without tags are counted under ``(none)``."""
        rows = self.db.execute(
            "SELECT COALESCE(t.tag, '(none)') AS tag, COUNT(*) AS total,"
            " SUM(i.status='accepted') AS accepted, SUM(i.status='rejected') AS rejected,"
            " SUM(i.status='accepted' AND i.split='train') AS train, SUM(i.status='accepted' AND i.split='val') AS val,"
            " SUM(i.status='accepted' AND i.split='test') AS test"
            " FROM images i LEFT JOIN tags t ON t.sha256 = i.sha256 GROUP BY 1 ORDER BY total DESC, tag"
        ).fetchall()
        return [{k: v if k == "tag" else (v or 0) for k, v in dict(r).items()} for r in rows]

    def entries(self, split: str, size: int | None = None) -> list[Entry]:
        """Accepted images of ``split`` whose pair files exist, in a stable order (by id)."""
        if split not in ("train", "val", "test"):
            raise DatasetError(f"unknown split {split!r}; use train, val or test")
        rows = self.db.execute(
            "SELECT id, sha256, split, pair_size FROM images WHERE status='accepted' AND split=? ORDER BY id",
            (split,),
        ).fetchall()
        out = []
        for r in rows:
            s = size or r["pair_size"]
            if s is None:
                continue
            color, line = self.pair_paths(r["sha256"], s)
            out.append(Entry(r["id"], r["sha256"], r["split"], color, line, self.tags_of(r["sha256"])))
        return out

    def fingerprint(self) -> str:
        """Short hash of the accepted entries and their splits: identifies the data a model was trained on."""
        h = hashlib.sha256()
        for r in self.db.execute(
            "SELECT sha256, split, pair_size FROM images WHERE status='accepted' ORDER BY sha256"
        ):
            h.update(f"{r['sha256']}:{r['split']}:{r['pair_size']}\n".encode())
        return h.hexdigest()[:16]


def open_for_training(root: str | Path) -> tuple[Store, DataConfig]:
    store = Store.open(root)
    try:
        cfg = store.load_config()
    except ConfigError:
        store.close()
        raise
    if not store.split_counts().get("train"):
        store.close()
        raise DatasetError(f"{root} has no accepted training images; run 'tintline data build {root}' first")
    return store, cfg
