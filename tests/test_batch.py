"""Batches: folders and comic archives keep names and order, take per-page sidecar hints, write an archive only
whole, and resume a killed batch without redoing finished pages."""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from tintline.baselines import BASELINES
from tintline.batch import STATE, colorize_batch, natural_key, read_cbz_page
from tintline.cli import main
from tintline.errors import UserError

RED = "#cc2200"


def page(k: int) -> np.ndarray:
    """Line art: a box whose size depends on k (so pages differ)."""
    a = np.full((96, 128), 255, np.uint8)
    cv2.rectangle(a, (10, 10), (60 + 5 * k, 80), 0, 2)
    return a


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


HINT = json.dumps({"points": [{"x": 30, "y": 40, "color": RED, "radius": 3}]})


class Counting:
    """region-fill, counting pages; raises after ``fail_after`` pages (a kill in the middle of a batch)."""

    def __init__(self, fail_after: int | None = None):
        self.inner = BASELINES.create("region-fill")
        self.calls = 0
        self.fail_after = fail_after

    def colorize_image(self, img, hints=None, soft_hints=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner.colorize_image(img, hints)


def test_natural_order():
    assert sorted(["p10.png", "p2.png", "P1.png"], key=natural_key) == ["P1.png", "p2.png", "p10.png"]


def test_a_folder_keeps_names_order_and_sidecar_hints(tmp_path):
    src = tmp_path / "chapter"
    (src / "extra").mkdir(parents=True)
    for name, k in (("p10.png", 1), ("p2.png", 2), ("extra/p1.png", 3)):
        (src / name).write_bytes(png(page(k)))
    (src / "p2.hints.json").write_text(HINT)
    (src / "notes.txt").write_text("not a page")
    out = tmp_path / "out"
    written = colorize_batch("region-fill", [str(src)], out, progress=False)
    assert [p.relative_to(out).as_posix() for p in written] == ["chapter/extra/p1.png", "chapter/p2.png",
                                                               "chapter/p10.png"]
    hinted = np.asarray(Image.open(out / "chapter/p2.png").convert("RGB"))
    plain = np.asarray(Image.open(out / "chapter/p10.png").convert("RGB"))
    assert tuple(hinted[40, 30]) == (0xCC, 0x22, 0x00) and tuple(plain[40, 30]) == (255, 255, 255)


def _cbz(path, pages: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in pages.items():
            zf.writestr(name, data)


def test_an_archive_becomes_an_archive_and_a_killed_batch_resumes(tmp_path):
    src = tmp_path / "vol1.cbz"
    names = ["001.png", "002.png", "010.png", "003.jpg"]
    _cbz(src, {n: png(page(i)) for i, n in enumerate(names)} | {"002.hints.json": HINT.encode(),
                                                                 "ComicInfo.xml": b"<ComicInfo/>"})
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        colorize_batch("region-fill", [str(src)], out, progress=False, colorizer=Counting(fail_after=2))
    assert not (out / "vol1.cbz").exists()  # never a half-written archive
    again = Counting()
    written = colorize_batch("region-fill", [str(src)], out, progress=False, colorizer=again)
    assert again.calls == 2  # only the pages the killed run had not finished
    assert written == [out / "vol1.cbz"]
    with zipfile.ZipFile(out / "vol1.cbz") as zf:
        assert zf.namelist() == ["001.png", "002.png", "003.png", "010.png"]
    assert tuple(np.asarray(read_cbz_page(out / "vol1.cbz", "002.png").convert("RGB"))[40, 30]) == (0xCC, 0x22, 0)
    assert not list(out.glob(".vol1.cbz.parts"))  # the finished pages' folder is gone
    done = Counting()
    colorize_batch("region-fill", [str(src)], out, progress=False, colorizer=done)
    assert done.calls == 0  # finished: nothing redone
    other = Counting()
    colorize_batch("region-fill", [str(src)], out, progress=False, colorizer=other, soft_hints=True)
    assert other.calls == 4  # other settings: everything again
    assert json.loads((out / STATE).read_text())["done"]


def test_the_cli_takes_folders_and_archives(tmp_path, capsys):
    src = tmp_path / "pages"
    src.mkdir()
    (src / "a.png").write_bytes(png(page(0)))
    _cbz(tmp_path / "b.zip", {"x/1.png": png(page(1))})
    out = tmp_path / "out"
    assert main(["colorize", "region-fill", str(src), str(tmp_path / "b.zip"), "-o", str(out)]) == 0
    assert (out / "pages" / "a.png").is_file() and (out / "b.cbz").is_file()
    with zipfile.ZipFile(out / "b.cbz") as zf:
        assert zf.namelist() == ["x/1.png"]


@pytest.mark.parametrize("kind", ["corrupt", "escape", "empty", "missing", "layers"])
def test_bad_batches_get_one_line_errors(tmp_path, capsys, kind):
    bad = tmp_path / "bad.cbz"
    args = ["colorize", "region-fill", str(bad), "-o", str(tmp_path / "out")]
    if kind == "corrupt":
        bad.write_bytes(b"PK\x03\x04 not really a zip")
    elif kind == "escape":
        _cbz(bad, {"../evil.png": png(page(0))})
    elif kind == "empty":
        _cbz(bad, {"readme.txt": b"no pages"})
    elif kind == "layers":
        _cbz(bad, {"1.png": png(page(0))})
        args.append("--layers")
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0].lower()
    assert not (tmp_path / "evil.png").exists()
    with pytest.raises(UserError):
        colorize_batch("region-fill", [str(tmp_path / "nope")], tmp_path / "o", progress=False)
