"""Every per-image filter of the build on generated images with a known answer, the bad inputs of issue 3, and
the build stages that come after the filters: re-deciding without decoding, schema migration, balance, stratified
stable splits, and given line art (import-pairs)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth import (
    animated,
    banner,
    cartoon,
    cmyk_jpeg,
    encode,
    entangled,
    exif_rotated_jpeg,
    nearly_gray,
    on_transparent,
    palette_transparent,
    placeholder_badge,
    png16,
    png_bytes,
    small_subject,
    text_page,
    write,
)

from tintline.config import ConfigError, DataConfig
from tintline.data.build import build, pair_key
from tintline.data.clean import FILTERS, MEASURE_VERSION, decide, measure_all
from tintline.data.imageio import composite_on_white, decode_image
from tintline.data.sources import import_pairs, import_source
from tintline.data.store import Store

SIZE = 64
BASE = {"size": SIZE, "min_side": 32, "workers": 1}


def _build(src: Path, ds: Path, **overrides) -> Store:
    store = Store.create(ds)
    import_source(store, str(src), progress=False)
    build(store, store.load_config({**BASE, **overrides}), progress=False)
    return store


def _rows(store: Store) -> dict[str, dict]:
    rows = store.db.execute("SELECT o.origin, i.* FROM origins o JOIN images i ON i.sha256 = o.sha256").fetchall()
    return {Path(r["origin"]).name: dict(r) for r in rows}


# file name -> (bytes, expected status or reason)
def _filter_corpus() -> dict[str, tuple[bytes, str]]:
    anim_frames = [cartoon(41, 96, 96), cartoon(42, 96, 96)]
    upright = cartoon(43, 160, 96)  # taller than wide
    return {
        # one per filter
        "text.png": (png_bytes(text_page()), "text"),
        "badge.png": (png_bytes(placeholder_badge()), "placeholder"),
        "small_subject.png": (png_bytes(small_subject()), "subject-too-small"),
        "banner.png": (png_bytes(banner(w=560)), "aspect"),
        "confetti.png": (png_bytes(entangled()), "entangled"),
        "nearly_gray.png": (png_bytes(nearly_gray()), "no-color"),
        "blank.png": (png_bytes(np.full((96, 96, 3), 255, np.uint8)), "blank"),
        "tiny.png": (png_bytes(cartoon(44, 20, 20)), "too-small"),
        "good.png": (png_bytes(cartoon(45, 96, 96)), "accepted"),
        # bad inputs of issue 3 that are fine images: decoded right, then accepted
        "png16.png": (png16(cartoon(46, 96, 96)), "accepted"),
        "cmyk.jpg": (cmyk_jpeg(cartoon(47, 96, 96)), "accepted"),
        "palette_transparent.png": (palette_transparent(cartoon(48, 96, 96)), "accepted"),
        "anim.gif": (animated(anim_frames, "GIF"), "accepted"),
        "anim.webp": (animated(anim_frames, "WEBP"), "near-duplicate"),  # the same first frame as anim.gif
        "frame1.png": (png_bytes(anim_frames[1]), "accepted"),
        "exif_rotated.jpg": (exif_rotated_jpeg(upright), "accepted"),
        # and ones that are not images at all
        "text_renamed.png": (b"just some words, not a picture\n" * 20, "not-an-image"),
        "svg_renamed.png": (b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"></svg>', "not-an-image"),
    }


@pytest.fixture(scope="module")
def filtered(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("filters")
    corpus = _filter_corpus()
    for name, (data, _) in corpus.items():
        write(root / "src" / name, data)
    _build(root / "src", root / "ds").close()
    return root / "ds", {name: want for name, (_, want) in corpus.items()}


def test_each_filter_rejects_its_junk_and_keeps_the_good(filtered):
    ds, expect = filtered
    with Store.open(ds) as store:
        rows = _rows(store)
    for name, want in expect.items():
        got = rows[name]["status"] if want == "accepted" else rows[name]["reason"]
        assert got == want, (name, rows[name]["status"], rows[name]["reason"], rows[name]["detail"])
        if rows[name]["status"] == "rejected":
            assert rows[name]["detail"], name  # every rejection says why


def test_every_filter_has_a_test_and_a_threshold_doc(filtered):
    _, expect = filtered
    covered = set(expect.values()) | {"classifier"}  # the learned filter: test_learned_filter_...
    assert set(FILTERS) <= covered, set(FILTERS) - covered
    described = {k: v.description for k, v in DataConfig.model_fields.items()}
    assert all(described.values()), [k for k, v in described.items() if not v and k not in ("seed", "workers")]


def test_measurements_are_stored_per_image(filtered):
    ds, _ = filtered
    with Store.open(ds) as store:
        rows = _rows(store)
    good = rows["good.png"]
    assert good["measure_v"] == MEASURE_VERSION and good["analyzed"] == 1
    for col in ("subject_w", "subject_h", "text_frac", "badge", "ink", "fragments", "alpha_frac"):
        assert good[col] is not None, col
    small = rows["small_subject.png"]
    assert small["width"] == 400 and small["subject_w"] < 40  # the box of the drawing, margins trimmed
    assert rows["text.png"]["text_frac"] > 0.8 and good["text_frac"] < 0.1
    assert rows["badge.png"]["badge"] == 1.0 and good["badge"] < 1.0
    assert rows["confetti.png"]["fragments"] > 2 * good["fragments"]


def test_bad_inputs_decode_right(filtered):
    ds, _ = filtered
    with Store.open(ds) as store:
        rows = _rows(store)
    # EXIF orientation applied: the stored pixels are 96 high x 160 wide, the picture is 160 high x 96 wide
    assert (rows["exif_rotated.jpg"]["width"], rows["exif_rotated.jpg"]["height"]) == (96, 160)
    # first frame of an animation: the GIF and the WebP are the same picture (a near-duplicate group), and not
    # the second frame
    gif, webp, frame1 = rows["anim.gif"], rows["anim.webp"], rows["frame1.png"]
    assert webp["dup_group"] == gif["dup_group"] != frame1["dup_group"]
    # transparency survives a palette image; 16-bit and CMYK keep their colors
    assert rows["palette_transparent.png"]["alpha_frac"] > 0.1
    for name, seed in (("png16.png", 46), ("cmyk.jpg", 47)):
        img = composite_on_white(decode_image((ds / "objects" / rows[name]["sha256"][:2] /
                                              f"{rows[name]['sha256']}{rows[name]['ext']}").read_bytes()))
        assert np.abs(img.astype(int) - cartoon(seed, 96, 96).astype(int)).mean() < 6, name


def test_exif_rotation_direction():
    upright = cartoon(43, 160, 96)
    got = composite_on_white(decode_image(exif_rotated_jpeg(upright)))
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright.astype(int)).mean() < 6


def test_alpha_measured_for_transparent_sources():
    rgba = on_transparent(cartoon(50, 96, 96))
    img = decode_image(encode(rgba, "PNG"))
    m = measure_all(composite_on_white(img), np.asarray(img)[..., 3], 0.12)
    assert 0.1 < m.alpha_frac < 0.9
    assert decide(m, DataConfig(min_side=32)) is None


def test_threshold_change_redecides_without_decoding(filtered, tmp_path):
    ds, _ = filtered
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ds, copy)
    with Store.open(copy) as store:
        cfg = store.load_config({"max_text_frac": 1.0, "disabled_filters": ["placeholder"]})
        summary = build(store, cfg, progress=False)
        rows = _rows(store)
    assert rows["text.png"]["status"] == "accepted"
    assert rows["badge.png"]["reason"] != "placeholder"
    # only the newly accepted images needed pair files; nothing was re-measured
    assert summary["processed"] <= 2
    with Store.open(copy) as store:
        assert build(store, store.load_config(), progress=False)["processed"] == 0


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError):
        DataConfig(line_styles={"crayon": 1.0})
    with pytest.raises(ValueError):
        DataConfig(disabled_filters=["nope"])
    assert DataConfig(disabled_filters=list(FILTERS)).disabled_filters == list(FILTERS)
    with pytest.raises(ConfigError):
        from tintline.config import build_config

        build_config(DataConfig, {"max_aspect": 0.5})


# ------------------------------------------------------------------------------------------- migration


V1_SCHEMA = """
CREATE TABLE images (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE NOT NULL, ext TEXT NOT NULL, bytes INTEGER NOT NULL,
    added_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', reason TEXT, detail TEXT,
    analyzed INTEGER NOT NULL DEFAULT 0, width INTEGER, height INTEGER, colorfulness REAL, content_frac REAL,
    dhash TEXT, dup_group INTEGER, split TEXT, pair_size INTEGER, line_params TEXT);
CREATE TABLE origins (sha256 TEXT NOT NULL, source TEXT NOT NULL, origin TEXT NOT NULL, extra TEXT,
    UNIQUE (sha256, origin));
CREATE TABLE tags (sha256 TEXT NOT NULL, tag TEXT NOT NULL, UNIQUE (sha256, tag));
"""


def test_old_manifest_is_migrated_and_only_decodable_rows_remeasured(tmp_path):
    src = tmp_path / "src"
    for i in range(6):
        write(src / f"img_{i}.png", png_bytes(cartoon(100 + i, 96, 96)))
    write(src / "zero.png", b"")
    ds = tmp_path / "ds"
    ds.mkdir()
    db = sqlite3.connect(ds / "manifest.sqlite")
    db.executescript(V1_SCHEMA)
    db.close()
    with Store.open(ds) as store:  # migrates: the new columns exist
        cols = {r["name"] for r in store.db.execute("PRAGMA table_info(images)")}
        assert {"subject_w", "text_frac", "measure_v", "pair_key", "clf_score"} <= cols
        import_source(store, str(src), progress=False)
        # pretend a v1 build ran: analyzed with the old measurements, splits assigned
        store.db.execute("UPDATE images SET analyzed=1, measure_v=0, dhash='0000', status='accepted', split='val'"
                         " WHERE bytes > 0")
        store.db.execute("UPDATE images SET analyzed=1, status='rejected', reason='empty' WHERE bytes = 0")
        store.db.commit()
        summary = build(store, store.load_config(BASE), progress=False)
        rows = _rows(store)
    assert summary["processed"] == 6  # re-measured the decodable rows, not the empty file
    assert rows["zero.png"]["reason"] == "empty" and rows["zero.png"]["measure_v"] == 0
    assert all(rows[f"img_{i}.png"]["measure_v"] == MEASURE_VERSION for i in range(6))
    assert {rows[f"img_{i}.png"]["split"] for i in range(6)} == {"val"}  # assigned splits are kept
    with Store.open(ds) as store:  # opening again changes nothing
        assert build(store, store.load_config(), progress=False)["processed"] == 0


# ------------------------------------------------------------------------------------------ balance, split


def _tagged_corpus(root: Path, counts: dict[str, int], start: int = 0) -> None:
    k = start
    for tag, n in counts.items():
        for _ in range(n):
            write(root / tag / f"{tag}_{k}.png", png_bytes(cartoon(2000 + k, 96, 96)))
            k += 1


def test_balance_caps_tags_deterministically(tmp_path):
    _tagged_corpus(tmp_path / "src", {"cats": 30, "dogs": 8})
    store = _build(tmp_path / "src", tmp_path / "ds", balance=10, near_dup_bits=0)
    tt = {r["tag"]: r for r in store.tag_table()}
    assert tt["cats"]["accepted"] == 10 and tt["dogs"]["accepted"] == 8
    capped = store.db.execute("SELECT sha256 FROM images WHERE reason='balance-cap' ORDER BY sha256").fetchall()
    assert len(capped) == 20
    store.close()
    store = _build(tmp_path / "src", tmp_path / "ds2", balance=10, near_dup_bits=0)
    again = store.db.execute("SELECT sha256 FROM images WHERE reason='balance-cap' ORDER BY sha256").fetchall()
    assert [tuple(r) for r in again] == [tuple(r) for r in capped]
    # the cap is saved in dataset.yaml; lifting it accepts everything again without decoding
    assert store.load_config().balance == 10
    summary = build(store, store.load_config({"balance": 0}), progress=False)
    # their pair files were made when they were first measured: nothing to decode
    assert summary["counts"] == {"accepted": 38} and summary["processed"] == 0
    store.close()


def test_split_is_stratified_by_top_tag_and_stable(tmp_path):
    _tagged_corpus(tmp_path / "src", {"big": 40, "small": 10})
    store = _build(tmp_path / "src", tmp_path / "ds", near_dup_bits=0)
    for r in store.tag_table():
        if r["tag"] in ("big", "small"):
            assert (r["train"], r["val"], r["test"]) == {"big": (28, 8, 4), "small": (7, 2, 1)}[r["tag"]], r
    before = {r["sha256"]: r["split"] for r in store.db.execute("SELECT sha256, split FROM images")}
    store.close()
    # more images later: earlier assignments never move
    _tagged_corpus(tmp_path / "more", {"new": 12}, start=50)
    with Store.open(tmp_path / "ds") as store:
        import_source(store, str(tmp_path / "more"), progress=False)
        build(store, store.load_config(), progress=False)
        after = {r["sha256"]: r["split"] for r in store.db.execute("SELECT sha256, split FROM images")}
        new = {r["tag"]: r for r in store.tag_table()}["new"]
    assert all(after[s] == v for s, v in before.items())
    assert (new["train"], new["val"], new["test"]) in ((8, 3, 1), (9, 2, 1), (8, 2, 2))


def test_tags_cli_json(tmp_path, capsys):
    from tintline.cli import main

    _tagged_corpus(tmp_path / "src", {"cats": 3, "dogs": 2})
    _build(tmp_path / "src", tmp_path / "ds").close()
    assert main(["data", "tags", str(tmp_path / "ds"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_tag = {r["tag"]: r for r in rows}
    assert by_tag["cats"]["total"] == 3 and by_tag["dogs"]["accepted"] == 2
    assert main(["data", "tags", str(tmp_path / "ds")]) == 0
    assert "cats" in capsys.readouterr().out


# -------------------------------------------------------------------------------------------- given pairs


def test_import_pairs_uses_the_given_line_art(tmp_path):
    lines, colors = tmp_path / "lines", tmp_path / "colors"
    for i in range(3):
        c = cartoon(70 + i, 96, 128)
        write(colors / "chars" / f"p{i}.png", png_bytes(c))
        # the "real" line art: a checkerboard, nothing any extractor would produce from c
        line = np.full((96, 128), 255, np.uint8)
        for k in range(3):
            line[k::8, :] = 0
        write(lines / "chars" / f"p{i}.jpg" if i == 0 else lines / f"p{i}.png", encode(line, "PNG"))
    write(colors / "lonely.png", png_bytes(cartoon(79, 96, 96)))
    ds = tmp_path / "ds"
    with Store.create(ds) as store:
        stats = import_pairs(store, lines, colors, progress=False)
        assert stats == {"pairs": 3, "new": 3, "changed": 3, "unmatched_lines": 0, "unmatched_colors": 1}
        assert import_pairs(store, lines, colors, progress=False)["changed"] == 0  # idempotent
        build(store, store.load_config(BASE), progress=False)
        rows = _rows(store)
        for i in range(3):
            r = rows[f"p{i}.png"]
            assert r["status"] == "accepted", r
            assert json.loads(r["line_params"])["style"] == "given"
            line = np.asarray(Image.open(store.pair_paths(r["sha256"], SIZE)[1]))
            rowmeans = line.mean(axis=1)
            assert (rowmeans < 128).sum() >= 4  # the stripes of the given line art, not an extraction
            assert store.tags_of(r["sha256"]) == ("chars",)


def test_import_pairs_with_a_broken_line_file(tmp_path):
    lines, colors = tmp_path / "lines", tmp_path / "colors"
    write(colors / "a.png", png_bytes(cartoon(80, 96, 96)))
    write(lines / "a.png", b"not an image")
    with Store.create(tmp_path / "ds") as store:
        import_pairs(store, lines, colors, progress=False)
        build(store, store.load_config(BASE), progress=False)
        row = _rows(store)["a.png"]
        assert (row["status"], row["reason"]) == ("rejected", "bad-line-art")
        # fixing the line art and importing again makes the pair
        write(lines / "a.png", png_bytes(np.full((96, 96, 3), 255, np.uint8)))
        assert import_pairs(store, lines, colors, progress=False)["changed"] == 1
        build(store, store.load_config(), progress=False)
        assert _rows(store)["a.png"]["status"] == "accepted"


def test_pair_key_follows_styles_and_size():
    a = DataConfig()
    assert pair_key(a) == pair_key(DataConfig())
    assert pair_key(a) != pair_key(DataConfig(size=128))
    assert pair_key(a) != pair_key(DataConfig(line_styles={"xdog": 1.0, "adaptive": 0.0}))


# ------------------------------------------------------------------------------------------------ kill -9


def _pool_workers(pid: int) -> set[int]:
    """Process ids of the multiprocessing workers (spawned) whose parent is ``pid``."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == pid and b"spawn_main" in (d / "cmdline").read_bytes():
                    found.add(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the pool's processes through /proc")
def test_kill_during_parallel_build_with_pairs_balance_and_styles(tmp_path):
    """kill -9 in the middle of a build run by the process pool (as users run it: one worker per core) that uses
    given line art, balance and every style, then the same command: the manifest and the pair files equal an
    uninterrupted one-process build's, every image once, no worker left running, no temporary files left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    lines, colors = tmp_path / "lines", tmp_path / "colors"
    total = 150  # the build commits every 64 images: a kill after the first commit still leaves 22+ to do
    for i in range(total):
        tag = ("cats", "dogs", "birds")[i % 3]
        rgb = cartoon(3000 + i, 160, 160)
        write(colors / tag / f"c{i}.png", png_bytes(on_transparent(rgb) if i % 2 else rgb))
        if i % 5 == 0:
            write(lines / tag / f"c{i}.png", png_bytes(np.full((160, 160), 255, np.uint8)))
    dsets = [tmp_path / "ref", tmp_path / "victim"]
    for ds, workers in zip(dsets, (1, 2), strict=True):
        with Store.create(ds) as store:
            import_source(store, str(colors), progress=False)
            import_pairs(store, lines, colors, progress=False)
            store.save_config(store.load_config({"size": 96, "min_side": 32, "workers": workers, "balance": 20}))
    with Store.open(dsets[0]) as store:
        build(store, store.load_config(), progress=False)
    cmd = [sys.executable, "-m", "tintline.cli", "data", "build", str(dsets[1])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, analyzed, workers = time.time() + 60, 0, set()
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        workers |= _pool_workers(proc.pid)
        with Store.open(dsets[1]) as store:
            analyzed = store.db.execute("SELECT COUNT(*) FROM images WHERE analyzed=1").fetchone()[0]
        if analyzed > 0:  # the first commit landed: kill now, mid-build
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(workers) >= 2, "the build did not run its process pool"
    assert 0 < analyzed < total, f"the kill should land mid-build (analyzed {analyzed})"
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "pool workers outlived the killed build"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    q = ("SELECT sha256, status, reason, split, dup_group IS NOT NULL, dhash, pair_size, pair_key, line_params"
         " FROM images ORDER BY sha256")
    with Store.open(dsets[0]) as a, Store.open(dsets[1]) as b:
        assert [tuple(r) for r in a.db.execute(q)] == [tuple(r) for r in b.db.execute(q)]
        assert b.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == total
        styles = {json.loads(r[0])["style"] for r in b.db.execute("SELECT line_params FROM images"
                                                                  " WHERE status='accepted'")}
        assert {"given", "xdog", "alpha"} <= styles
        assert b.counts()["accepted"] == 60 and b.reason_counts()["balance-cap"] >= 70  # 20 per tag kept
        for split in ("train", "val", "test"):  # the pool's pair files are the one process's, byte for byte
            for ea, eb in zip(a.entries(split), b.entries(split), strict=True):
                assert ea.color_path.read_bytes() == eb.color_path.read_bytes()
                assert ea.line_path.read_bytes() == eb.line_path.read_bytes()
    assert not list(dsets[1].rglob("*.tmp"))


# ------------------------------------------------------------------------------------------ learned filter


def test_learned_filter_from_manifest_and_from_folders(filtered, tmp_path):
    import shutil

    from tintline.cli import main
    from tintline.data.classifier import MODEL_FILE, train_and_score

    ds = tmp_path / "copy"
    shutil.copytree(filtered[0], ds)
    with Store.open(ds) as store:
        r = train_and_score(store)  # from the manifest's own decisions
        assert r["scored"] == store.db.execute("SELECT COUNT(*) FROM images WHERE dhash IS NOT NULL").fetchone()[0]
        assert r["train_accuracy"] >= 0.8 and (ds / MODEL_FILE).is_file()
        rows = _rows(store)
        assert rows["good.png"]["clf_score"] > rows["nearly_gray.png"]["clf_score"]
        # thresholding the stored score re-decides without decoding anything
        summary = build(store, store.load_config({"min_clf_score": 0.999}), progress=False)
        assert summary["processed"] == 0 and summary["reasons"].get("classifier", 0) >= 1
    labels = tmp_path / "labels"
    for i in range(6):
        write(labels / "keep" / f"k{i}.png", png_bytes(cartoon(200 + i, 96, 96)))
        write(labels / "drop" / f"d{i}.png", png_bytes(text_page(color=(0, 0, 120 + 10 * i))))
    assert main(["data", "classify", str(ds), "--labels", str(labels), "--positive", "keep"]) == 0
    with Store.open(ds) as store:
        rows = _rows(store)
    assert rows["good.png"]["clf_score"] > 0.5 > rows["text.png"]["clf_score"]


def test_detail_measured_only_when_needed(filtered, tmp_path):
    """Images a cheap filter rejects skip the detailed measurements; relaxing that filter measures just them."""
    import shutil

    ds = tmp_path / "copy"
    shutil.copytree(filtered[0], ds)
    with Store.open(ds) as store:
        rows = _rows(store)
        assert rows["nearly_gray.png"]["ink"] is None and rows["good.png"]["ink"] is not None
        summary = build(store, store.load_config({"min_colorfulness": 0.0}), progress=False)
        rows = _rows(store)
    assert summary["processed"] == 1  # only the gray drawing was decoded again
    assert rows["nearly_gray.png"]["status"] == "accepted" and rows["nearly_gray.png"]["ink"] is not None
    assert "pending" not in summary["counts"]
