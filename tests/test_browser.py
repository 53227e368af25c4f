"""The web page in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium, no browser download)
against a real uvicorn server with the region-fill baseline. Upload line art, draw hints with the mouse, colorize,
and check the hinted regions took the hints' colors in the full-size result.

A screenshot goes to docs/img/serve.png when TINTLINE_SCREENSHOT=1 (so tests never dirty the repo), else to tmp.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tintline.serve.app import create_app
from tintline.serve.background import running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-gpu"]
DOCS_SHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "serve.png"

# the drawing: laid out on a 1600x1000 grid, drawn K times larger: a 4K-class input (3840x2400) that the page must
# preview scaled down, map preview clicks back to image pixels, and get a full-size result for
K = 2.4
IMG_W, IMG_H = round(1600 * K), round(1000 * K)
HOUSE = (300, 500, 800, 900)  # left, top, right, bottom of the house body
ROOF = [(260, 500), (550, 230), (840, 500)]
DOOR = (500, 680, 600, 900)
WINDOW = (350, 580, 450, 680)
SUN = ((1300, 220), 110)
CROWN = ((1250, 620), 150)
TRUNK = (1225, 760, 1275, 900)


def k(*v: float) -> tuple[int, ...]:
    return tuple(round(x * K) for x in v)


def draw_line_art() -> np.ndarray:
    """A house, a sun and a tree: closed outlines on white paper, (H, W) uint8."""
    a = np.full((IMG_H, IMG_W), 255, np.uint8)
    t = round(6 * K)
    for left, top, right, bottom in (HOUSE, DOOR, WINDOW, TRUNK):
        cv2.rectangle(a, k(left, top), k(right, bottom), 0, t)
    cv2.polylines(a, [np.array([k(*p) for p in ROOF], np.int32)], True, 0, t)
    for center, radius in (SUN, CROWN):
        cv2.circle(a, k(*center), round(radius * K), 0, t)
    cv2.line(a, k(0, 900), k(1600, 900), 0, t)  # the ground
    return a


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        msg = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)  # in CI the Makefile installs it: missing is an error, not a skip
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def server_url():
    with running_server(create_app(["region-fill", "white"], timeout_s=30)) as url:
        yield url


READ_PIXELS = """([points]) => {
  const img = document.getElementById('result-img');
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const px = points.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
  return {w: img.naturalWidth, h: img.naturalHeight, px};
}"""


def test_upload_draw_colorize_in_chromium(browser, server_url, tmp_path):
    art = tmp_path / "house.png"
    Image.fromarray(draw_line_art()).save(art)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.goto(server_url + "/")
    page.wait_for_function("() => document.getElementById('model').options.length === 2")
    assert page.locator("#model").input_value() == "region-fill"

    page.set_input_files("#file", str(art))
    page.wait_for_selector("body[data-state=loaded]")
    page.wait_for_function("() => document.getElementById('hint-canvas').width > 1")
    box = page.locator("#hint-canvas").bounding_box()
    assert box["width"] < IMG_W  # previewed scaled down

    def at(x: float, y: float) -> tuple[float, float]:  # drawing grid -> screen pixels
        return box["x"] + x * K / IMG_W * box["width"], box["y"] + y * K / IMG_H * box["height"]

    def stroke(points: list[tuple[int, int]]) -> None:
        page.mouse.move(*at(*points[0]))
        page.mouse.down()
        for p in points[1:]:
            page.mouse.move(*at(*p), steps=5)
        page.mouse.up()

    def dot(x: int, y: int) -> None:
        page.mouse.click(*at(x, y))

    # keyboard shortcuts pick the tools and swatch colors (1 red, 2 orange, 3 yellow, 4 green, 5 blue, 8 brown)
    page.keyboard.press("s")
    page.keyboard.press("2")
    stroke([(340, 760), (420, 820), (460, 760)])  # house body, below the window, left of the door
    page.keyboard.press("1")
    stroke([(420, 440), (680, 440)])  # roof
    page.keyboard.press("4")
    stroke([(1180, 580), (1250, 640), (1320, 580)])  # tree crown
    page.keyboard.press("d")
    page.keyboard.press("3")
    dot(1300, 220)  # sun
    page.keyboard.press("8")
    dot(1250, 840)  # trunk
    page.keyboard.press("5")
    dot(400, 630)  # window
    page.wait_for_function("() => document.getElementById('input-info').textContent.includes('6 hints')")

    # saved hints are in image pixels whatever the preview scale
    with page.expect_download() as dl:
        page.keyboard.press("h")
    saved = json.loads(Path(dl.value.path()).read_text())
    assert len(saved["strokes"]) == 3 and len(saved["points"]) == 3
    sun = next(p for p in saved["points"] if p["color"] == "#f7d84a")
    tol = 2 * IMG_W / box["width"]  # two screen pixels
    assert abs(sun["x"] - 1300 * K) <= tol and abs(sun["y"] - 220 * K) <= tol, sun

    # clear, then load the saved file back: the same hints
    page.keyboard.press("x")
    page.wait_for_function("() => document.getElementById('input-info').textContent.includes(' 0 hints')")
    page.set_input_files("#hints-file", dl.value.path())
    page.wait_for_function("() => document.getElementById('input-info').textContent.includes('6 hints')")

    # the eraser removes the hint under it; undo brings it back
    page.keyboard.press("e")
    dot(400, 630)
    page.wait_for_function("() => document.getElementById('input-info').textContent.includes('5 hints')")
    page.keyboard.press("Control+z")
    page.wait_for_function("() => document.getElementById('input-info').textContent.includes('6 hints')")

    page.click("#colorize-btn")
    page.wait_for_selector("body[data-state=done]", timeout=30_000)
    assert page.locator("#result-img").is_visible()
    assert page.locator("#download").get_attribute("download") == "house-colorized.png"

    probes = {"house": (700, 600), "roof": (550, 400), "sun": (1300, 180), "crown": (1250, 540),
              "trunk": (1250, 800), "window": (380, 610), "sky": (100, 100), "door": (550, 800)}
    got = page.evaluate(READ_PIXELS, [[k(*p) for p in probes.values()]])
    assert (got["w"], got["h"]) == (IMG_W, IMG_H)  # full size, not the preview's
    px = dict(zip(probes, got["px"], strict=True))
    assert px["house"] == [0xF5, 0x9F, 0x2C]  # the orange stroke's color fills the whole house body
    assert px["roof"] == [0xE8, 0x43, 0x3A]
    assert px["sun"] == [0xF7, 0xD8, 0x4A]
    assert px["crown"] == [0x5C, 0xB8, 0x5C]
    assert px["trunk"] == [0x8A, 0x5A, 0x3C]
    assert px["window"] == [0x3A, 0x8E, 0xE8]
    assert px["sky"] == [255, 255, 255] and px["door"] == [255, 255, 255]  # no hint: paper stays white

    slide = "v => { const s = document.getElementById('cmp-slider'); s.value = v; s.dispatchEvent(new Event('input')) }"
    page.evaluate(slide, 60)  # the before/after slider moves the clip
    assert "40%" in page.locator("#cmp-after").evaluate("e => e.style.clipPath")
    page.evaluate(slide, 55)

    shot = DOCS_SHOT if os.environ.get("TINTLINE_SCREENSHOT") == "1" else tmp_path / "serve.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.keyboard.press("s")
    page.mouse.move(*at(1000, 300))  # brush ring visible, somewhere harmless
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not problems, problems  # no script errors, no CSP violations
    page.close()


DELIVER_FILE = """async ([w, h, how]) => {
  const c = document.createElement('canvas');
  c.width = w; c.height = h;
  const ctx = c.getContext('2d');
  ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = '#000'; ctx.lineWidth = 3; ctx.strokeRect(20, 20, w - 40, h - 40);
  const blob = await new Promise((resolve) => c.toBlob(resolve, 'image/png'));
  const dt = new DataTransfer();
  dt.items.add(new File([blob], 'art.png', {type: 'image/png'}));
  const ev = how === 'drop'
    ? new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})
    : new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true});
  document.dispatchEvent(ev);
}"""


def test_drop_and_paste_load_line_art(browser, server_url):
    page = browser.new_page()
    page.goto(server_url + "/")
    page.evaluate(DELIVER_FILE, [300, 200, "drop"])
    page.wait_for_function("() => document.getElementById('input-info').textContent.startsWith('300×200')")
    page.evaluate(DELIVER_FILE, [200, 120, "paste"])
    page.wait_for_function("() => document.getElementById('input-info').textContent.startsWith('200×120')")
    page.keyboard.press("c")  # colorize without hints
    page.wait_for_selector("body[data-state=done]")
    assert page.locator("#result-info").inner_text().startswith("200×120")
    page.close()


# the text fields of every form the page posts (Chromium does not show Playwright a multipart body with a file)
RECORD_FORMS = """() => {
  const real = window.fetch;
  window.sentForms = [];
  window.fetch = (url, opts) => {
    if (opts && opts.body instanceof FormData) {
      window.sentForms.push(Object.fromEntries([...opts.body.entries()].filter(([, v]) => typeof v === 'string')));
    }
    return real(url, opts);
  };
}"""


def test_soft_hints_detail_propagate_and_download_layers(browser, server_url):
    from tintline.regions.ora import read_ora

    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(server_url + "/")
    assert page.locator("#layers-btn").is_disabled()  # nothing to colorize yet
    page.evaluate(DELIVER_FILE, [200, 120, "paste"])
    page.wait_for_function("() => document.getElementById('input-info').textContent.startsWith('200×120')")
    page.check("#soft-hints")
    page.select_option("#detail", "native")
    assert page.locator("#propagate").is_checked()  # on by default, as in the CLI
    page.uncheck("#propagate")
    page.evaluate(RECORD_FORMS)
    with page.expect_download() as dl:
        page.click("#layers-btn")
    form = page.evaluate("() => window.sentForms[0]")
    assert form == {"model": "region-fill", "soft_hints": "true", "detail": "native", "propagate": "false",
                    "layers": "true"}, form
    assert dl.value.suggested_filename == "art-colorized.ora"
    assert read_ora(dl.value.path()).flat.shape == (120, 200, 3)
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Saved')")
    assert not page.locator("#layers-btn").is_disabled()
    assert not problems, problems
    page.close()


def test_bad_file_and_server_error_are_shown(browser, server_url, tmp_path):
    page = browser.new_page()
    page.goto(server_url + "/")
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    page.set_input_files("#file", str(bad))
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')")
    assert "not an image" in page.locator("#status").inner_text()
    assert page.locator("#colorize-btn").is_disabled()
    page.close()
