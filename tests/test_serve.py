"""HTTP API tests against a real uvicorn server on 127.0.0.1 (ephemeral port), with the region-fill baseline as the
model so results have known answers: a hint inside a closed outline fills exactly that region."""

from __future__ import annotations

import inspect
import io
import json
import threading
import time

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from synth import bomb_png

from tintline.regions.ora import read_ora
from tintline.serve import app as app_mod
from tintline.serve.app import create_app, run_server
from tintline.serve.background import running_server
from tintline.serve.hintimage import HintImageError, hint_image_to_hints

MAX_BYTES = 256 * 1024
MAX_PIXELS = 2_000_000
H, W = 120, 200  # non-square on purpose: swapped axes show up
BOX = (20, 30, 100, 170)  # top, left, bottom, right of the outline (2 px thick)
BLUE = (0x33, 0x66, 0xCC)


def line_art(h: int = H, w: int = W, box: tuple[int, int, int, int] = BOX) -> np.ndarray:
    """White paper with a closed black rectangle outline: (H, W) uint8."""
    a = np.full((h, w), 255, np.uint8)
    t, left, b, r = box
    a[t : t + 2, left : r + 1] = 0
    a[b - 1 : b + 1, left : r + 1] = 0
    a[t : b + 1, left : left + 2] = 0
    a[t : b + 1, r - 1 : r + 1] = 0
    return a


def png(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def inside(out: np.ndarray, box: tuple[int, int, int, int] = BOX) -> np.ndarray:
    t, left, b, r = box
    return out[t + 2 : b - 1, left + 2 : r - 1]


def outside_mask(h: int = H, w: int = W, box: tuple[int, int, int, int] = BOX) -> np.ndarray:
    t, left, b, r = box
    m = np.ones((h, w), bool)
    m[t : b + 1, left : r + 1] = False
    return m


def assert_json_error(r: httpx.Response, status: int, reason: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    if reason:
        assert body.get("reason") == reason, body


class BodyMeter:
    """ASGI wrapper that records, per request, the body bytes the app took in before it answered (and its status):
    what the server really read, whatever the client managed to send."""

    def __init__(self, app):
        self.app = app
        self.log: list[dict] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rec = {"path": scope["path"], "read": 0, "read_at_answer": None, "status": None}
        self.log.append(rec)

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                rec["read"] += len(message.get("body", b""))
            return message

        async def noting_send(message):
            if message["type"] == "http.response.start":
                rec["status"], rec["read_at_answer"] = message["status"], rec["read"]
            await send(message)

        await self.app(scope, counting_receive, noting_send)

    def last(self, path: str = "/api/colorize") -> dict:
        return next(r for r in reversed(self.log) if r["path"] == path)


@pytest.fixture(scope="module")
def meter():
    app = create_app(["region-fill", "white"], max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, queue_size=4,
                     timeout_s=20)
    return BodyMeter(app)


@pytest.fixture(scope="module")
def base_url(meter):
    with running_server(meter) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def colorize(client: httpx.Client, image: bytes, **data) -> httpx.Response:
    files = {"image": ("art.png", image, "image/png")}
    if "hint_image" in data:
        files["hint_image"] = ("hints.png", data.pop("hint_image"), "image/png")
    return client.post("/api/colorize", files=files, data=data)


# ------------------------------------------------------------------------------------------ known answers


def test_point_hint_fills_the_closed_region_and_nothing_else(client):
    hints = {"points": [{"x": 100, "y": 60, "color": "#3366cc", "radius": 4}]}
    r = colorize(client, png(line_art()), hints=json.dumps(hints))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-tintline-model"] == "region-fill"
    out = decode(r.content)
    assert out.shape == (H, W, 3)  # input size, non-square
    assert (inside(out) == BLUE).all()
    assert (out[outside_mask()] == 255).all()


def test_the_answer_says_what_kind_of_input_was_read(client):
    """X-Tintline-Input: line art reads as lines; the same drawing with a gray fill as a gray page, whose
    lightness the answer keeps (the white baseline then gives the page back)."""
    r = colorize(client, png(line_art()))
    assert r.status_code == 200 and r.headers["x-tintline-input"] == "lines"
    page = line_art()
    t, left, b, right = BOX
    page[t + 6 : b - 5, left + 6 : right - 5] = 150  # a flat mid-gray fill inside the outline
    r = colorize(client, png(page), model="white")
    assert r.status_code == 200 and r.headers["x-tintline-input"] == "gray"
    out = decode(r.content)
    assert abs(int(out[(t + b) // 2, (left + right) // 2, 0]) - 150) <= 2


def test_stroke_hint_and_no_hints(client):
    hints = {"strokes": [{"points": [[60, 50], [140, 70]], "color": "#ff8800", "width": 3}]}
    out = decode(colorize(client, png(line_art()), hints=json.dumps(hints)).content)
    assert (inside(out) == (255, 136, 0)).all()
    out = decode(colorize(client, png(line_art())).content)  # no hints: paper stays white, lines stay black
    assert (out[line_art() == 255] == 255).all() and (out[line_art() == 0] == 0).all()


def test_other_model_by_name(client):
    hints = {"points": [{"x": 100, "y": 60, "color": "#3366cc", "radius": 4}]}
    r = colorize(client, png(line_art()), hints=json.dumps(hints), model="white")
    assert r.status_code == 200 and r.headers["x-tintline-model"] == "white"
    assert (inside(decode(r.content)) == 255).all()


def test_hint_image_marks_become_hints(client):
    marks = np.zeros((H, W, 4), np.uint8)
    marks[55:62, 90:110] = (0x33, 0x66, 0xCC, 255)
    marks[5:8, 5:8] = (255, 0, 0, 60)  # faint (alpha < 128) outside: ignored
    r = colorize(client, png(line_art()), hint_image=png(marks))
    assert r.status_code == 200, r.text
    out = decode(r.content)
    assert (inside(out) == BLUE).all() and (out[outside_mask()] == 255).all()


def test_hint_image_of_another_size_is_refused(client):
    r = colorize(client, png(line_art()), hint_image=png(np.zeros((10, 10, 4), np.uint8)))
    assert_json_error(r, 400, "bad-hints")


def test_layers_true_answers_an_openraster_file(client):
    hints = json.dumps({"points": [{"x": 100, "y": 60, "color": "#3366cc", "radius": 4}]})
    r = colorize(client, png(line_art()), hints=hints, layers="true")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/openraster"
    assert r.headers["content-disposition"] == 'attachment; filename="colorized.ora"'
    lay = read_ora(io.BytesIO(r.content))
    # a baseline has no layers: the image is the flat layer, and recomposes to the PNG answer exactly
    assert np.array_equal(lay.compose(), decode(colorize(client, png(line_art()), hints=hints).content))
    assert (inside(lay.flat) == BLUE).all() and (lay.shading == 255).all() and (lay.lines == 255).all()
    # flags take true/false (and 1/0, on/off); anything else is a bad form
    assert colorize(client, png(line_art()), layers="false").headers["content-type"] == "image/png"
    assert_json_error(colorize(client, png(line_art()), layers="maybe"), 400, "bad-form")
    assert_json_error(colorize(client, png(line_art()), soft_hints="x" * 40), 413)  # over the field's limit


def test_too_many_regions_is_a_422_not_a_500(client):
    # rows of lines 3 or 4 px apart crossed by columns 10 or 14 px apart on a 1401 px square: ~46,000 closed
    # cells, more than regions.MAX_REGIONS (20000). Long thin cells on purpose: a grid of small compact cells is a
    # lattice, which reads as a dark screentone (tintline.data.manga) and is descreened into a gray tone
    rng = np.random.default_rng(0)
    rows = np.cumsum(rng.choice([3, 4], size=600))
    cols = np.cumsum(rng.choice([10, 14], size=300))
    grid = np.full((1401, 1401), 255, np.uint8)
    grid[rows[rows < 1400]] = 0
    grid[:, cols[cols < 1400]] = 0
    for extra in ({}, {"layers": "true"}):
        r = colorize(client, png(grid), **extra)
        assert_json_error(r, 422, "too-many-regions")
        assert "regions" in r.json()["error"] and "\n" not in r.json()["error"]


def test_hint_image_runs_render_back_exactly():
    from tintline.data.hints import render_hints

    rng = np.random.default_rng(0)
    a = np.zeros((37, 53, 4), np.uint8)
    a[..., 3] = (rng.random((37, 53)) > 0.5) * 255
    a[..., :3] = rng.integers(0, 3, (37, 53, 3)) * 100
    colors, mask = render_hints(hint_image_to_hints(Image.fromarray(a), (53, 37)), 37, 53)
    assert (mask == (a[..., 3] >= 128)).all()
    assert (colors[mask] == a[..., :3][mask]).all()


def test_hints_that_would_take_too_long_to_draw_are_refused(client):
    """Valid JSON, but 10,000 dots of radius 1000 would hold the worker for many seconds: refused at once."""
    hints = {"points": [{"x": 100, "y": 60, "color": "#3366cc", "radius": 1000}] * 10_000}
    t0 = time.monotonic()
    assert_json_error(colorize(client, png(line_art()), hints=json.dumps(hints)), 400, "bad-hints")
    assert time.monotonic() - t0 < 3
    with pytest.raises(HintImageError):
        marks = np.zeros((H, W, 4), np.uint8)
        marks[::2, ::2] = (255, 0, 0, 255)
        hint_image_to_hints(Image.fromarray(marks), (W, H), max_runs=100)


def test_jpeg_input_is_sniffed_not_named(client):
    buf = io.BytesIO()
    Image.fromarray(line_art()).save(buf, format="JPEG", quality=95)
    r = client.post("/api/colorize", files={"image": ("drawing.txt", buf.getvalue(), "text/plain")})
    assert r.status_code == 200 and decode(r.content).shape == (H, W, 3)


# ------------------------------------------------------------------------------------------ the rest of the API


def test_models_health_openapi_and_page(client):
    m = client.get("/api/models").json()
    assert m["default"] == "region-fill"
    assert [x["name"] for x in m["models"]] == ["region-fill", "white"]
    assert [x["default"] for x in m["models"]] == [True, False]
    assert all(x["description"] for x in m["models"])
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["queue"]["capacity"] == 4
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/colorize"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"image", "hints", "hint_image", "model", "soft_hints", "layers"} <= set(body["properties"])
    assert "image/png" in schema["paths"]["/api/colorize"]["post"]["responses"]["200"]["content"]
    page = client.get("/")
    assert page.status_code == 200 and "tintline" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from elsewhere
    assert_json_error(client.get("/no/such/page"), 404)
    assert client.get("/docs").status_code == 404  # FastAPI's docs page would load from a CDN


def test_no_cors_by_default_and_cors_when_configured(client):
    r = client.get("/api/models", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in r.headers
    app = create_app(["white"], cors_origins=["http://ok.test"])
    with running_server(app) as url, httpx.Client(base_url=url) as c:
        assert c.get("/api/models", headers={"Origin": "http://ok.test"}).headers[
            "access-control-allow-origin"] == "http://ok.test"
        assert "access-control-allow-origin" not in c.get("/api/models", headers={"Origin": "http://evil.test"}).headers


def test_a_safetensors_checkpoint_is_served_under_its_name(tmp_path):
    from tintline.checkpoint import CheckpointError, save_generator
    from tintline.models import create_generator

    args = {"base": 8, "depth": 5, "max_width": 32}
    ckpt = tmp_path / "tiny.safetensors"
    save_generator(create_generator("unet", **args), ckpt, {"generator": {"name": "unet", "args": args},
                                                             "step": 7, "image_size": 64})
    app = create_app([ckpt, "region-fill"])
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        models = c.get("/api/models").json()
        assert models["default"] == "tiny"
        assert "unet" in models["models"][0]["description"] and str(tmp_path) not in json.dumps(models)
        hints = json.dumps({"points": [{"x": 99, "y": 60, "color": "#ff0000"}]})
        r = colorize(c, png(line_art()), hints=hints)
        assert r.status_code == 200 and r.headers["x-tintline-model"] == "tiny"
        assert decode(r.content).shape == (H, W, 3)
        soft = colorize(c, png(line_art()), hints=hints, soft_hints="true")
        assert soft.status_code == 200 and not np.array_equal(decode(soft.content), decode(r.content))
        assert np.array_equal(decode(colorize(c, png(line_art()), hints=hints, soft_hints="false").content),
                              decode(r.content))
        ora = colorize(c, png(line_art()), hints=hints, layers="true")
        assert ora.status_code == 200 and ora.headers["content-type"] == "image/openraster"
        lay = read_ora(io.BytesIO(ora.content))  # region-true layers, recomposing to the PNG answer exactly
        assert np.array_equal(lay.compose(), decode(r.content)) and (lay.lines < 128).any()
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04K\x01.")  # a pickle, not safetensors: refused at start-up
    with pytest.raises(CheckpointError):
        create_app([pickle])


class DetailSpy:
    """A colorizer that has ``detail`` and ``propagate`` options and records what they were when it colorized."""

    name = "spy"
    meta = {"description": "test model that records its options"}

    def __init__(self):
        self.detail, self.propagate, self.seen = "fixed", True, []

    def colorize_image(self, img, hints=None):
        self.seen.append((self.detail, self.propagate))
        return np.full((img.size[1], img.size[0], 3), 200, np.uint8)


def test_detail_and_propagate_are_set_for_one_request_only():
    spy = DetailSpy()
    app = create_app({"spy": spy, "white": "white"})
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        for detail in ("native", "fixed", "auto"):
            assert colorize(c, png(line_art()), detail=detail).status_code == 200
        assert colorize(c, png(line_art())).status_code == 200  # not given: the model's own (auto when loaded)
        assert colorize(c, png(line_art()), propagate="false").status_code == 200
        assert colorize(c, png(line_art()), propagate="true", detail="native").status_code == 200
        assert [d for d, _ in spy.seen] == ["native", "fixed", "auto", "fixed", "fixed", "native"]
        assert [p for _, p in spy.seen] == [True, True, True, True, False, True]
        assert (spy.detail, spy.propagate) == ("fixed", True)  # the model's own settings are back after each request
        assert_json_error(colorize(c, png(line_art()), detail="huge"), 400, "bad-form")
        assert_json_error(colorize(c, png(line_art()), propagate="maybe"), 400, "bad-form")
        assert colorize(c, png(line_art()), model="white", detail="native", propagate="false").status_code == 200
        api = c.get("/openapi.json").text
        assert "detail" in api and "propagate" in api


def test_without_models_the_baselines_are_offered(monkeypatch):
    monkeypatch.setattr(app_mod, "default_model", lambda: None)
    entries, notes = app_mod.resolve_models([])
    assert [e.name for e in entries] == ["region-fill", "white"]
    assert any("no trained model" in n for n in notes)


def test_run_server_takes_the_cli_options():
    params = inspect.signature(run_server).parameters
    for name in ("host", "port", "max_bytes", "max_pixels", "queue_size", "timeout_s", "cors_origins", "device"):
        assert name in params
    assert params["host"].default == "127.0.0.1"


# ------------------------------------------------------------------------------------------ bad input


BAD_IMAGES = {
    "random bytes": (bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8)), 415, "not-an-image"),
    "text named .png": (b"hello, I am not a picture\n" * 20, 415, "not-an-image"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', 415, "not-an-image"),
    "bomb 12000x12000 1-bit": (bomb_png(), 413, "too-many-pixels"),
    "truncated png": (png(line_art())[:150], 400, "corrupt"),
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_images_get_a_4xx_json_error(client, name):
    data, status, reason = BAD_IMAGES[name]
    assert_json_error(colorize(client, data), status, reason)


def test_oversize_upload_is_refused_with_413(client):
    big = png(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))  # ~480 KB > 256 KB
    assert len(big) > MAX_BYTES
    assert_json_error(colorize(client, big), 413, "too-large-file")


def test_oversize_chunked_upload_is_refused_while_reading(client, meter):
    """No Content-Length: the body streams in chunks and is refused once the image part passes its limit, having
    read no more than the limit plus a chunk or two (not the 12.5 MiB sent)."""
    boundary = "xyzzy"
    sent = {"bytes": 0}

    def body():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
                "Content-Type: image/png\r\n\r\n").encode()
        yield head
        for _ in range(200):  # up to 200 x 64 KiB = 12.5 MiB, far past the limit
            if len(meter.log) > n_before and meter.log[-1]["status"] is not None:
                break  # answered: stop sending
            sent["bytes"] += 65536
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    n_before = len(meter.log)
    try:
        r = client.post("/api/colorize", content=body(),
                        headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert_json_error(r, 413, "too-large-file")
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server answered and closed while we were still sending
    assert len(meter.log) > n_before
    rec = meter.last()
    assert rec["status"] == 413, rec
    # stopped at the limit: the transport may hand over several chunks at once on a busy machine (8 were seen),
    # so allow up to 1 MiB past the limit -- still a twelfth of what the client was ready to send
    slack = 16 * 65536 + 1024
    assert MAX_BYTES < rec["read_at_answer"] <= MAX_BYTES + slack, rec
    assert rec["read"] <= MAX_BYTES + slack  # and nothing after answering


def test_declared_oversize_body_is_refused_before_reading(client, meter):
    r = client.post("/api/colorize", content=b"x" * 10, headers={
        "content-type": "multipart/form-data; boundary=b", "content-length": str(10)})
    assert r.status_code == 400  # small and malformed: read, then refused
    assert meter.last()["read"] == 10
    # a well-formed start (read, it would fail only at the image's limit) declaring a length past the body limit
    big = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
           + b"\0" * (2 * MAX_BYTES + app_mod.HINTS_MAX_BYTES + 100_000))
    try:
        r = client.post("/api/colorize", content=big, headers={"content-type": "multipart/form-data; boundary=b"})
        assert_json_error(r, 413, "too-large-file")
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass
    rec = meter.last()
    assert (rec["status"], rec["read_at_answer"]) == (413, 0), rec  # refused from its Content-Length alone


def _raw_exchange(url: str, head: bytes, body: bytes, wait_s: float) -> tuple[int, dict, bytes]:
    """Send ``head`` and ``body`` on a plain socket (the body may be shorter than it declares), then read the
    answer until the server closes or ``wait_s`` passes: (status, headers, body)."""
    import socket

    host, port = url.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(head + body)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data:
                    top, rest = data.split(b"\r\n\r\n", 1)
                    m = [line.split(b":", 1) for line in top.split(b"\r\n")[1:]]
                    headers = {k.strip().lower().decode(): v.strip().decode() for k, v in m}
                    if len(rest) >= int(headers.get("content-length", 1 << 30)):
                        break
        except TimeoutError:
            pass
    assert data, "no answer"
    top, rest = data.split(b"\r\n\r\n", 1)
    status = int(top.split(b" ", 2)[1])
    m = [line.split(b":", 1) for line in top.split(b"\r\n")[1:]]
    return status, {k.strip().lower().decode(): v.strip().decode() for k, v in m}, rest


def _upload_head(length: int, boundary: str = "b") -> bytes:
    return (f"POST /api/colorize HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary={boundary}"
            f"\r\nContent-Length: {length}\r\n\r\n").encode()


def test_an_upload_that_stalls_gets_408_after_the_timeout():
    app = create_app(["white"], timeout_s=0.5)
    part = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
            + png(line_art())[:100])
    with running_server(app) as url:
        t0 = time.monotonic()
        status, headers, body = _raw_exchange(url, _upload_head(100_000), part, wait_s=10)
        elapsed = time.monotonic() - t0
    assert status == 408, (status, body[:200])
    assert json.loads(body)["reason"] == "timeout"
    assert 0.4 < elapsed < 5, elapsed


def test_connections_past_the_limit_get_503_from_uvicorn(monkeypatch):
    """`tintline serve` (run_server) caps the connections uvicorn accepts; past the cap a request gets uvicorn's
    plain-text 503 at once (before any body is read), and once the others finish it is served again."""
    import socket

    import uvicorn

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    run_server(["white"], queue_size=0, timeout_s=20)
    limit = seen["limit_concurrency"]
    assert limit == 32  # max(32, 4 x (queue-size + 1))
    with running_server(seen["app"], limit_concurrency=limit) as url:
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        stalled = []
        try:
            for _ in range(limit - 1):  # uploads that never finish hold their connections
                s = socket.create_connection((host, int(port)), timeout=10)
                s.sendall(_upload_head(100_000) + b"--b\r\n")
                stalled.append(s)
            time.sleep(0.3)
            status, headers, body = _raw_exchange(url, _upload_head(10), b"x" * 10, wait_s=10)
            assert status == 503 and headers["content-type"].startswith("text/plain"), (status, body)
        finally:
            for s in stalled:
                s.close()
        time.sleep(0.3)
        with httpx.Client(base_url=url, timeout=20) as c:
            assert c.post("/api/colorize", files={"image": ("a.png", png(line_art()))}).status_code == 200


# The page hardening docs/serve.md promises, on every response (pages, assets, answers and errors).
CSP_DIRECTIVES = {"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob: data:",
                  "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"}


def test_security_headers_on_every_response(client):
    big = png(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))
    responses = {
        "page": client.get("/"),
        "asset": client.get("/static/app.js"),
        "models": client.get("/api/models"),
        "openapi": client.get("/openapi.json"),
        "png": colorize(client, png(line_art())),
        "404": client.get("/no/such/page"),
        "405": client.get("/api/colorize"),
        "413": colorize(client, big),
        "415": colorize(client, b"hello, I am not a picture\n" * 20),
    }
    for what, r in responses.items():
        assert r.status_code < 500, what
        h = r.headers
        assert {d.strip() for d in h["content-security-policy"].split(";")} == CSP_DIRECTIVES, what
        assert (h["x-content-type-options"], h["referrer-policy"], h["x-frame-options"]) == (
            "nosniff", "no-referrer", "DENY"), what
        assert "server" not in h, what


@pytest.mark.parametrize("hints, reason", [
    ("{not json", "bad-hints"),
    ('{"points": [{"x": "left", "y": 1, "color": "#ff0000"}]}', "bad-hints"),
    ('{"points": [{"x": 1, "y": 1, "color": "red"}]}', "bad-hints"),
    ('{"strokes": [{"points": [], "color": "#ff0000"}]}', "bad-hints"),
    ('{"dots": []}', "bad-hints"),
    ("[1, 2, 3]", "bad-hints"),
    ("[" * 100000, "bad-hints"),
])
def test_malformed_hints_get_400(client, hints, reason):
    assert_json_error(colorize(client, png(line_art()), hints=hints), 400, reason)


@pytest.mark.parametrize("model", ["nope", "/etc/passwd", "../region-fill", "region-fill/"])
def test_only_models_named_at_startup_can_be_selected(client, model):
    assert_json_error(colorize(client, png(line_art()), model=model), 400, "unknown-model")


def test_bad_forms(client):
    assert_json_error(client.post("/api/colorize", json={"image": "x"}), 415)
    assert_json_error(client.post("/api/colorize", data={"model": "white"}), 415)  # urlencoded
    assert_json_error(client.post("/api/colorize", files={"model": (None, "white")}), 400, "bad-form")  # no image
    assert_json_error(client.post("/api/colorize", files={"picture": ("a.png", png(line_art()))}), 400, "bad-form")
    assert_json_error(colorize(client, b""), 400, "bad-form")
    truncated = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + png(line_art()))
    r = client.post("/api/colorize", content=truncated, headers={"content-type": "multipart/form-data; boundary=b"})
    assert_json_error(r, 400, "bad-form")
    assert_json_error(client.get("/api/colorize"), 405)


# ------------------------------------------------------------------------------------------ queue and time limit


class BlockingModel:
    """A colorizer that waits until released: makes the queue's state deterministic."""

    name = "blocking"
    meta = {"description": "test model that waits"}

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def colorize_image(self, img, hints=None):
        self.started.set()
        self.release.wait(timeout=30)
        return np.full((img.size[1], img.size[0], 3), 200, np.uint8)


def test_full_queue_answers_503_with_retry_after_and_recovers():
    model = BlockingModel()
    app = create_app({"blocking": model}, queue_size=1, timeout_s=30)
    image = png(line_art())
    results: list[int] = []

    def post(c: httpx.Client) -> None:
        results.append(c.post("/api/colorize", files={"image": ("a.png", image)}).status_code)

    with running_server(app) as url, httpx.Client(base_url=url, timeout=40) as c:
        first = threading.Thread(target=post, args=(c,))
        first.start()
        assert model.started.wait(10)  # running
        second = threading.Thread(target=post, args=(c,))
        second.start()
        for _ in range(500):  # until the second one waits in the queue
            if c.get("/healthz").json()["queue"]["waiting"] == 1:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the second request never queued")
        r = c.post("/api/colorize", files={"image": ("a.png", image)})
        assert_json_error(r, 503, "busy")
        assert int(r.headers["retry-after"]) >= 1
        model.release.set()
        first.join(20)
        second.join(20)
        assert results == [200, 200]
        assert c.post("/api/colorize", files={"image": ("a.png", image)}).status_code == 200


def test_time_limit_answers_504():
    model = BlockingModel()
    app = create_app({"blocking": model}, queue_size=2, timeout_s=0.5)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=20) as c:
        t0 = time.monotonic()
        r = c.post("/api/colorize", files={"image": ("a.png", png(line_art()))})
        assert_json_error(r, 504, "timeout")
        assert time.monotonic() - t0 < 5
        model.release.set()


# ------------------------------------------------------------------------------------------ fuzzing

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)
coord = st.one_of(st.integers(-10**8, 10**8), st.floats(-1e8, 1e8, allow_nan=False), st.sampled_from([0, 50, 199]))
color = st.one_of(st.from_regex(r"#[0-9a-fA-F]{6}", fullmatch=True), st.text(max_size=8))
point = st.fixed_dictionaries({"x": coord, "y": coord, "color": color},
                              optional={"radius": st.one_of(coord, st.just(1000), st.just(0.5))})
stroke = st.fixed_dictionaries({"points": st.lists(st.lists(coord, min_size=1, max_size=3), max_size=6),
                                "color": color}, optional={"width": st.one_of(coord, st.just(1000))})
hints_objects = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"points": st.lists(point, max_size=5),
                                        "strokes": st.lists(stroke, max_size=5)}),
)


@FUZZ
@given(data=st.binary(max_size=4096), filename=st.text(max_size=30), model=st.sampled_from(["", "white", "x", "é"]))
def test_fuzz_random_image_bytes_never_5xx(client, data, filename, model):
    r = client.post("/api/colorize", files={"image": (filename or "f", data)}, data={"model": model} if model else {})
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert "error" in r.json()


SMALL_ART = png(line_art())


@FUZZ
@given(hints=hints_objects)
def test_fuzz_random_hints_never_5xx(client, hints):
    r = colorize(client, SMALL_ART, hints=json.dumps(hints))
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        assert decode(r.content).shape == (H, W, 3)
    else:
        assert_json_error(r, 400, "bad-hints")


@FUZZ
@given(prefix=st.sampled_from([SMALL_ART[:8], b"GIF89a", b"\xff\xd8\xff", b"RIFF\0\0\0\0WEBP", b"BM", b"II*\0"]),
       tail=st.binary(max_size=600))
def test_fuzz_image_headers_never_5xx(client, prefix, tail):
    r = colorize(client, prefix + tail)
    assert r.status_code < 500, r.text


def test_no_model_named_serves_the_shipped_model_first_then_the_baselines():
    from tintline.inference import default_model

    assert default_model() is not None, "the package ships a default model"
    app = create_app()
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        m = c.get("/api/models").json()
        names = [x["name"] for x in m["models"]]
        assert names[1:] == ["region-fill", "white"] and m["default"] == names[0]
        line = np.full((64, 96), 255, np.uint8)
        line[10:50, 20] = line[10:50, 70] = line[10, 20:71] = line[49, 20:71] = 0
        buf = io.BytesIO()
        Image.fromarray(line).save(buf, format="PNG")
        r = c.post("/api/colorize", files={"image": ("x.png", buf.getvalue(), "image/png")})
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (96, 64)
