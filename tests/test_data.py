from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from synth import cartoon, png_bytes, write

from tintline.data.build import build
from tintline.data.clean import hamming_groups
from tintline.data.imageio import BadImage, Limits, decode_image
from tintline.data.sources import import_source
from tintline.data.store import DatasetError, Store


def _by_name(store: Store) -> dict[str, dict]:
    rows = store.db.execute(
        "SELECT o.origin, i.* FROM origins o JOIN images i ON i.sha256 = o.sha256"
    ).fetchall()
    return {Path(r["origin"]).name: dict(r) for r in rows}


def test_build_records_every_bad_file_with_its_reason(built_dataset, corpus):
    _, expect, bad = corpus
    with Store.open(built_dataset) as store:
        rows = _by_name(store)
    for name, reason in bad.items():
        assert rows[name]["status"] == "rejected", name
        assert rows[name]["reason"] == reason, (name, rows[name]["detail"])
    for name in expect["accepted"]:
        assert rows[name]["status"] == "accepted", (name, rows[name]["reason"], rows[name]["detail"])
    for name in expect["near-duplicate"]:
        assert rows[name]["reason"] == "near-duplicate"
        rep = rows["good_0_copy.jpg"]
        assert rows[name]["dup_group"] == rep["id"] and rows[name]["split"] == rep["split"]


def test_same_bytes_twice_is_one_row_with_two_origins_and_both_tags(built_dataset):
    with Store.open(built_dataset) as store:
        rows = _by_name(store)
        sha = rows["good_1.png"]["sha256"]
        assert rows["good_1_again.png"]["sha256"] == sha
        n = store.db.execute("SELECT COUNT(*) FROM images WHERE sha256=?", (sha,)).fetchone()[0]
        origins = store.db.execute("SELECT COUNT(*) FROM origins WHERE sha256=?", (sha,)).fetchone()[0]
        assert (n, origins) == (1, 2)
        assert set(store.tags_of(sha)) == {"cats", "extra"}


def test_pairs_exist_with_the_configured_size(built_dataset):
    from PIL import Image

    with Store.open(built_dataset) as store:
        entries = store.entries("train")
        assert entries
        for e in entries:
            assert Image.open(e.color_path).size == (64, 64)
            line = np.asarray(Image.open(e.line_path))
            assert line.shape == (64, 64)
            assert line.min() < 100 and np.median(line) > 200  # dark lines on white paper


def test_split_roughly_70_20_10_and_near_duplicates_share_split(tmp_path):
    # 60 groups of 3 near-identical images each (same drawing, different sizes)
    src = tmp_path / "src"
    for g in range(60):
        base = cartoon(1000 + g, 96, 96)
        for k, s in enumerate((96, 120, 150)):
            import cv2

            write(src / f"g{g}_{k}.png", png_bytes(cv2.resize(base, (s, s), interpolation=cv2.INTER_AREA)))
    with Store.create(tmp_path / "ds") as store:
        import_source(store, str(src), progress=False)
        cfg = store.load_config({"size": 32, "min_side": 32, "workers": 1})
        build(store, cfg, progress=False)
        rows = store.db.execute("SELECT dup_group, split, status FROM images").fetchall()
    groups: dict[int, set] = {}
    for r in rows:
        groups.setdefault(r["dup_group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in groups.values()), "a near-duplicate group straddles splits"
    accepted = [r for r in rows if r["status"] == "accepted"]
    assert len(accepted) == 60  # one representative per group
    counts = {s: sum(r["split"] == s for r in accepted) for s in ("train", "val", "test")}
    assert 30 <= counts["train"] <= 54 and counts["val"] >= 4 and counts["test"] >= 1, counts


def test_rebuild_and_reimport_redo_nothing(built_dataset, corpus, tmp_path):
    root, _, _ = corpus
    with Store.open(built_dataset) as store:
        before = [tuple(r) for r in store.db.execute("SELECT * FROM images ORDER BY id")]
        stats = import_source(store, str(root), progress=False)
        assert stats["new"] == 0 and stats["known"] == stats["seen"]
        summary = build(store, store.load_config(), progress=False)
        after = [tuple(r) for r in store.db.execute("SELECT * FROM images ORDER BY id")]
    assert summary["processed"] == 0
    assert before == after


def test_decode_image_limits():
    with pytest.raises(BadImage) as e:
        decode_image(png_bytes(cartoon(1)), Limits(max_bytes=100))
    assert e.value.reason == "too-large-file"
    with pytest.raises(BadImage) as e:
        decode_image(png_bytes(cartoon(1, 100, 100)), Limits(max_pixels=9999))
    assert e.value.reason == "too-many-pixels"
    img = decode_image(png_bytes(cartoon(1, 50, 70)))
    assert img.size == (70, 50) and img.mode == "RGBA"


def test_hamming_groups_transitive():
    a = "0" * 32
    b = "1" + "0" * 31  # 1 bit from a
    c = "3" + "0" * 31  # 1 bit from b, 2 from a
    d = "f" * 32
    assert hamming_groups([a, b, c, d], 1) == [0, 0, 0, 3]
    assert hamming_groups([a, b, c, d], 0) == [0, 1, 2, 3]


def test_open_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not a tintline dataset"):
        Store.open(tmp_path / "nope")
    (tmp_path / "notempty").mkdir()
    (tmp_path / "notempty" / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a tintline dataset"):
        Store.create(tmp_path / "notempty")


def test_kill_during_build_then_rerun_finishes_consistently(tmp_path):
    src = tmp_path / "src"
    for i in range(120):
        write(src / f"img_{i}.png", png_bytes(cartoon(5000 + i, 200, 200)))
    reference = tmp_path / "ref"
    victim = tmp_path / "victim"
    for ds in (reference, victim):
        with Store.create(ds) as store:
            import_source(store, str(src), progress=False)
            store.save_config(store.load_config({"size": 128, "min_side": 32, "workers": 1}))
    with Store.open(reference) as store:
        build(store, store.load_config(), progress=False)

    cmd = [sys.executable, "-m", "tintline.cli", "data", "build", str(victim)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    analyzed = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        with Store.open(victim) as store:
            analyzed = store.db.execute("SELECT COUNT(*) FROM images WHERE analyzed=1").fetchone()[0]
        if analyzed >= 64:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < analyzed < 120, f"the kill should land mid-build (analyzed {analyzed})"

    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    q = "SELECT sha256, status, reason, split, dup_group IS NOT NULL, dhash, pair_size FROM images ORDER BY sha256"
    with Store.open(reference) as a, Store.open(victim) as b:
        assert [tuple(r) for r in a.db.execute(q)] == [tuple(r) for r in b.db.execute(q)]
        assert b.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 120
        for e in b.entries("train"):
            assert e.color_path.exists() and e.line_path.exists()
    assert not list(victim.rglob("*.tmp"))


def test_import_with_swapped_arguments_fails_cleanly_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """`data import openclipart DATASET` (arguments swapped) once created a dataset called ./openclipart, which the
    next, correct, command then imported as an image folder instead of the built-in corpus."""
    from tintline.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["data", "import", "openclipart", "no/such/dir"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "openclipart").exists()  # the bad SOURCE was caught before DATASET was created
    Store.create(tmp_path / "ds").close()
    with pytest.raises(DatasetError, match="is a tintline dataset"):
        import_source(Store.create(tmp_path / "other"), str(tmp_path / "ds"))


def test_epoch_sampler_is_deterministic_sharded_and_resumable():
    from itertools import islice

    from tintline.data.dataset import EpochSampler

    s = EpochSampler(10, batch_size=2, seed=3)
    keys = list(islice(iter(s), 20))  # two epochs of 5 batches
    assert keys == list(islice(iter(EpochSampler(10, 2, seed=3)), 20))
    assert sorted(i for e, i in keys[:10]) == list(range(10)) and {e for e, _ in keys[10:]} == {1}
    assert [i for _, i in keys[:10]] != [i for _, i in keys[10:]]  # a new order every epoch
    # resuming at batch 3 continues exactly where the uninterrupted order is
    assert list(islice(iter(EpochSampler(10, 2, seed=3, start_batch=3)), 14)) == keys[6:20]
    # two ranks: disjoint halves of each epoch, whole batches only (10 // 2 = 5 per rank -> 2 batches of 2)
    r0, r1 = (list(islice(iter(EpochSampler(10, 2, seed=3, rank=r, world=2)), 4)) for r in (0, 1))
    assert not {i for _, i in r0} & {i for _, i in r1}
    with pytest.raises(ValueError, match="too few"):
        EpochSampler(3, batch_size=2, world=2)
