"""`tintline data export`: accepted pairs as WebDataset tar shards, and a reader that streams them back.

Layout of ``OUT_DIR/``::

    train-000000.tar ...     shards of at most ``shard_size`` samples each, per split
    index.json               {"shards": [{"path", "split", "count"}], "fingerprint", "size"}

Each sample is three tar members sharing a key (the image's SHA-256): ``<key>.color.png`` (RGB),
``<key>.line.png`` (grayscale line art) and ``<key>.json`` (sha256, split, tags, line_params, size, dup_group).
Samples are ordered by key (a content hash, so tags are mixed across shards); members are written with fixed
metadata (mtime 0, root owner), so the same dataset exports to byte-identical shards. Each shard is written under
a temporary name and renamed, and ``index.json`` last, so an interrupted export never leaves a half shard under
a real name. Any WebDataset reader can consume the shards; :func:`iter_shards` needs only the standard library.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from .store import DatasetError, Store

SPLITS = ("train", "val", "test")


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def export_shards(store: Store, out_dir: Path, splits: Iterable[str] | None = None,
                  shard_size: int = 1000) -> list[dict]:
    """Write the accepted pairs of ``splits`` (default all) as tar shards; returns the index's shard list."""
    if shard_size < 1:
        raise DatasetError("shard size must be at least 1")
    splits = list(splits or SPLITS)
    for s in splits:
        if s not in SPLITS:
            raise DatasetError(f"unknown split {s!r}; use train, val or test")
    out_dir.mkdir(parents=True, exist_ok=True)
    tags = store.all_tags()
    shards: list[dict] = []
    for split in splits:
        rows = store.db.execute(
            "SELECT sha256, split, pair_size, line_params, dup_group, width, height FROM images"
            " WHERE status='accepted' AND split=? AND pair_size IS NOT NULL ORDER BY sha256",
            (split,),
        ).fetchall()
        for start in range(0, len(rows), shard_size):
            chunk = rows[start : start + shard_size]
            path = out_dir / f"{split}-{start // shard_size:06d}.tar"
            tmp = path.with_name(path.name + ".tmp")
            count = 0
            with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
                for r in chunk:
                    color, line = store.pair_paths(r["sha256"], r["pair_size"])
                    if not (color.exists() and line.exists()):
                        continue  # accepted but its pair files are gone: run `tintline data build` again
                    meta = {
                        "sha256": r["sha256"], "split": split, "tags": tags.get(r["sha256"], []),
                        "line_params": json.loads(r["line_params"]) if r["line_params"] else None,
                        "size": r["pair_size"], "source_size": [r["width"], r["height"]],
                        "dup_group": r["dup_group"],
                    }
                    key = r["sha256"]
                    _member(tar, f"{key}.color.png", color.read_bytes())
                    _member(tar, f"{key}.line.png", line.read_bytes())
                    _member(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
                    count += 1
            tmp.replace(path)
            shards.append({"path": path.name, "split": split, "count": count})
    # shards of an earlier, larger export of these splits would otherwise be read as current
    keep = {s["path"] for s in shards}
    for split in splits:
        for old in out_dir.glob(f"{split}-*.tar"):
            if old.name not in keep:
                old.unlink()
    index = {"shards": shards, "fingerprint": store.fingerprint(), "format": "webdataset"}
    tmp = out_dir / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    tmp.replace(out_dir / "index.json")
    return shards


def _decode(name: str, data: bytes):
    if name.endswith(".json"):
        return json.loads(data)
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L" if name.endswith(".line.png") else "RGB"))


def _split_name(name: str) -> tuple[str, str]:
    """``dir/abc.color.png`` -> (``dir/abc``, ``color.png``): the key is everything before the first dot of the
    file name, as in WebDataset."""
    head, _, base = name.rpartition("/")
    key, _, suffix = base.partition(".")
    return (f"{head}/{key}" if head else key), suffix


def iter_shards(shards: Iterable[str | Path | IO[bytes]]) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Stream samples from tar shards: yields (color (H, W, 3) uint8, line (H, W) uint8, meta dict).

    ``shards`` are paths or readable binary streams (an HTTP or object-storage response body works: the tar is read
    strictly sequentially, never seeked). A sample missing its color, line or JSON member is skipped.
    """
    for shard in shards:
        kw = {"name": str(shard)} if isinstance(shard, str | Path) else {"fileobj": shard}
        with tarfile.open(mode="r|", **kw) as tar:
            key, sample = None, {}
            for info in tar:
                if not info.isfile():
                    continue
                k, suffix = _split_name(info.name)
                if k != key:
                    if key is not None and len(sample) == 3:
                        yield sample["color.png"], sample["line.png"], sample["json"]
                    key, sample = k, {}
                f = tar.extractfile(info)
                if f is not None and suffix in ("color.png", "line.png", "json"):
                    sample[suffix] = _decode(info.name, f.read())
            if key is not None and len(sample) == 3:
                yield sample["color.png"], sample["line.png"], sample["json"]


def read_index(out_dir: str | Path, split: str | None = None) -> list[Path]:
    """Shard paths listed in ``OUT_DIR/index.json`` (of one split when given), for :func:`iter_shards`."""
    root = Path(out_dir)
    index = json.loads((root / "index.json").read_text())
    return [root / s["path"] for s in index["shards"] if split is None or s["split"] == split]
