"""WebDataset export: shards on disk, the streaming reader, byte-identical re-export."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from tintline.data.dataset import load_pair
from tintline.data.export import export_shards, iter_shards, read_index
from tintline.data.store import DatasetError, Store


def test_round_trip(built_dataset, tmp_path):
    out = tmp_path / "shards"
    with Store.open(built_dataset) as store:
        shards = export_shards(store, out, shard_size=5)
        entries = {e.sha256: e for s in ("train", "val", "test") for e in store.entries(s)}
    assert sum(s["count"] for s in shards) == len(entries)
    assert all(s["count"] <= 5 for s in shards) and len(shards) >= 3
    seen = set()
    for color, line, meta in iter_shards(read_index(out)):
        e = entries[meta["sha256"]]
        c, ln = load_pair(e)
        assert np.array_equal(color, c) and np.array_equal(line, ln)
        assert color.shape == (64, 64, 3) and line.shape == (64, 64)
        assert meta["split"] == e.split and meta["tags"] and meta["line_params"]["style"]
        seen.add(meta["sha256"])
    assert seen == set(entries)  # every pair exactly once
    # WebDataset layout: <key>.color.png, <key>.line.png, <key>.json, grouped by key
    with tarfile.open(out / shards[0]["path"]) as tar:
        names = tar.getnames()
    assert len(names) == 3 * shards[0]["count"]
    key = names[0].split(".")[0]
    assert names[:3] == [f"{key}.color.png", f"{key}.line.png", f"{key}.json"]


def test_split_filter_streaming_and_determinism(built_dataset, tmp_path):
    with Store.open(built_dataset) as store:
        n_val = len(store.entries("val"))
        a = export_shards(store, tmp_path / "a", splits=["val"], shard_size=1000)
        b = export_shards(store, tmp_path / "b", splits=["val"], shard_size=1000)
        with pytest.raises(DatasetError):
            export_shards(store, tmp_path / "c", splits=["nope"])
    assert [s["split"] for s in a] == ["val"] and a[0]["count"] == n_val
    assert (tmp_path / "a" / a[0]["path"]).read_bytes() == (tmp_path / "b" / b[0]["path"]).read_bytes()
    # a stream (e.g. an HTTP response body) works as well as a path: the tar is read without seeking
    with open(tmp_path / "a" / a[0]["path"], "rb") as f:
        metas = [m for _, _, m in iter_shards([f])]
    assert len(metas) == n_val and {m["split"] for m in metas} == {"val"}
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert index["format"] == "webdataset" and index["shards"] == a


def test_reexport_removes_stale_shards(built_dataset, tmp_path):
    out = tmp_path / "s"
    with Store.open(built_dataset) as store:
        many = export_shards(store, out, splits=["train"], shard_size=2)
        few = export_shards(store, out, splits=["train"], shard_size=1000)
    assert len(many) > 1 and len(few) == 1
    assert sorted(p.name for p in out.glob("train-*.tar")) == [few[0]["path"]]
    assert not list(out.glob("*.tmp"))


def test_cli_export(built_dataset, tmp_path, capsys):
    from tintline.cli import main

    args = ["data", "export", str(built_dataset), str(tmp_path / "x"), "--split", "train", "--shard-size", "3"]
    assert main(args) == 0
    assert "shards" in capsys.readouterr().out
    assert read_index(tmp_path / "x", "train")
