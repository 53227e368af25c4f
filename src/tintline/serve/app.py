"""The HTTP API and the web page: ``POST /api/colorize``, ``GET /api/models``, ``GET /healthz``, ``GET /``.

``GET /api/models`` marks character models (``tintline character``) with ``"character": {"name", "references"}``;
``GET /api/models/{name}/references/{i}`` answers reference ``i`` of such a model as a PNG (at most
``REFERENCE_SIDE`` pixels a side), for the page's Character panel.

``/api/colorize`` answers a PNG, or with ``layers=true`` an OpenRaster file (:mod:`tintline.regions.ora`: flat
colors, shading and lines as layers); ``soft_hints=true`` asks for the network's own output instead of region-true
colors; ``detail=auto|fixed|native`` sets how large the network sees the input (see
:meth:`tintline.inference.Colorizer.work_scale`; default ``auto``, no effect on models without it). Line art a
model cannot work on (e.g. :class:`tintline.regions.RegionError`: too many regions, noise
rather than line art) is a 422 with a one-line message, never a 500.

Safety by construction: only the models named at start-up can be selected (by name, never by path); uploads are
read through a bounded streaming parser (413 as soon as a part passes its limit); images are decoded by
:func:`tintline.data.imageio.decode_image` (content sniffed, bombs refused before decoding); all CPU work runs in
one worker thread behind a bounded queue (503 + Retry-After when full) with a per-request time limit (504); every
error is a JSON ``{"error": "..."}``; no CORS unless origins are given; the page is served with a strict CSP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..baselines import BASELINES
from ..data.hints import HintError, validate_hints
from ..data.imageio import BadImage, Limits, decode_image, encode_png
from ..data.manga import colorize_page, page_kind, read_page
from ..errors import UserError
from ..inference import DETAILS, colorize_to_layers, configure, default_model, load_colorizer
from ..regions import RegionError
from ..regions.ora import ora_bytes
from .hintimage import HintImageError, check_hint_cost, hint_image_to_hints, merge_hints
from .multipart import FieldSpec, FormError, read_form
from .worker import QueueFull, WorkQueue

log = logging.getLogger("tintline.serve")

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
HINTS_MAX_BYTES = 2 * 1024 * 1024  # the hints JSON field
FLAG_MAX_BYTES = 16  # the true/false fields (soft_hints, layers)
_TRUE, _FALSE = {"true", "1", "on", "yes"}, {"false", "0", "off", "no", ""}  # "on": an HTML checkbox's value
FALLBACK_BASELINES = ("region-fill", "white")
REFERENCE_SIDE = 256  # the Character panel's reference previews

# decode_image reasons -> HTTP status
_BAD_IMAGE_STATUS = {"too-large-file": 413, "too-many-pixels": 413, "not-an-image": 415, "unsupported-format": 415}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class ModelEntry:
    name: str
    description: str
    colorizer: Any  # has .colorize_image(PIL.Image, hints | None) -> (H, W, 3) uint8
    default: bool = False


def _describe(obj: Any) -> str:
    meta = getattr(obj, "meta", None) or {}
    if meta.get("description"):
        return str(meta["description"])
    gen = meta.get("generator") or {}
    bits = [f"{gen['name']} generator" if gen.get("name") else "trained model"]
    if meta.get("step") is not None:
        bits.append(f"{meta['step']} steps")
    if meta.get("image_size"):
        bits.append(f"trained at {meta['image_size']} px")
    return ", ".join(bits)


def _name_for(spec: Any, index: int) -> str:
    if isinstance(spec, (str, Path)):
        p = Path(spec)
        if not p.exists() and str(spec) in BASELINES.names():
            return str(spec)
        if p.is_dir():
            return p.resolve().name or f"model{index}"
        return p.stem
    return str(getattr(spec, "name", "") or f"model{index}")


def resolve_models(models: Sequence[Any] | Mapping[str, Any] | None, device: str = "cpu"
                   ) -> tuple[list[ModelEntry], list[str]]:
    """Model specs (paths, run dirs, baseline names, or ready colorizer objects; a mapping gives explicit names)
    -> loaded entries, the first the default, plus notes for the operator. No specs: the shipped model, or the
    baselines when none is shipped."""
    notes: list[str] = []
    if isinstance(models, Mapping):
        named = list(models.items())
    else:
        specs = list(models or [])
        if not specs:
            shipped = default_model()
            if shipped is not None:
                specs = [shipped, *FALLBACK_BASELINES]  # the learned default first, the baselines to compare
                notes.append(f"no model given: serving the shipped model {shipped} and the baselines "
                             + " and ".join(FALLBACK_BASELINES))
            else:
                specs = list(FALLBACK_BASELINES)
                notes.append("no trained model given (and none is shipped): offering the baselines "
                             + " and ".join(FALLBACK_BASELINES))
        named = [(_name_for(s, i), s) for i, s in enumerate(specs)]
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for name, spec in named:
        obj = load_colorizer(spec, device=device) if isinstance(spec, (str, Path)) else spec
        if not callable(getattr(obj, "colorize_image", None)):
            raise TypeError(f"model {name!r}: {type(obj).__name__} has no colorize_image method")
        unique, k = name, 2
        while unique in seen:
            unique, k = f"{name}-{k}", k + 1
        seen.add(unique)
        entries.append(ModelEntry(unique, _describe(obj), obj, default=not entries))
    return entries, notes


class _SecurityHeaders:
    """Pure ASGI middleware: security headers on every response (no BaseHTTPMiddleware body buffering)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
                headers.append((b"content-security-policy", CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, message: str, reason: str | None = None, headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if reason:
        body["reason"] = reason
    return JSONResponse(body, status_code=status, headers=headers)


def _one_line(e: BaseException) -> str:
    """An exception's message as one line (its first), for a JSON error."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else e.__class__.__name__


class _JobError(Exception):
    def __init__(self, status: int, message: str, reason: str | None = None):
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


_ERROR_SCHEMA = {"application/json": {"schema": {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "string"}, "reason": {"type": "string"}}}}}

_COLORIZE_OPENAPI = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary",
                      "description": "line art: PNG, JPEG, WebP, GIF, BMP or TIFF (sniffed from content)"},
            "hints": {"type": "string", "description": 'hints JSON: {"points": [{"x", "y", "color": "#rrggbb", '
                      '"radius"}], "strokes": [{"points": [[x, y], ...], "color", "width"}]}, input-image pixels'},
            "hint_image": {"type": "string", "format": "binary",
                           "description": "transparent PNG of the image's size; pixels with alpha >= 128 are hints"},
            "model": {"type": "string", "description": "a name from GET /api/models (default: the default model)"},
            "soft_hints": {"type": "boolean", "default": False,
                           "description": "true: the network's own output (hints are suggestions, colors may cross "
                                          "lines); false: region-true colors, hinted regions exactly their hint's "
                                          "color. No effect on the baselines"},
            "detail": {"type": "string", "enum": list(DETAILS), "default": "auto",
                       "description": "fixed: the network sees the input at its training size (fast); native: at "
                                      "the size where its lines are as thick as in training, in tiles (large pages "
                                      "keep their detail); auto: native above 1024 px. No effect on the baselines "
                                      "and the reference matching"},
            "propagate": {"type": "boolean", "default": True,
                          "description": "true: an unhinted region may take the exact color of a hint given "
                                         "elsewhere on the drawing where the model finds that likelier right than "
                                         "its own choice; false: hints color only their own regions. Not given: the "
                                         "model's own setting (on). No effect on the baselines"},
            "layers": {"type": "boolean", "default": False,
                       "description": "true: answer an OpenRaster file (image/openraster) with the layers lines "
                                      "and shading (multiply) over flat, instead of a PNG"},
        }}}}},
}


def create_app(models: Sequence[Any] | Mapping[str, Any] | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS, queue_size: int = 8, timeout_s: float = 30.0,
               cors_origins: Sequence[str] | None = None, device: str = "cpu") -> FastAPI:
    """Build the app. ``models``: paths, run directories, baseline names or ready colorizer objects (a mapping
    names them); only these can be selected by a request. Limits: ``max_bytes`` per uploaded image, ``max_pixels``
    per decoded image, ``queue_size`` requests waiting behind the running one, ``timeout_s`` per request."""
    if max_bytes < 1 or max_pixels < 1 or timeout_s <= 0 or queue_size < 0:
        raise UserError(f"serve: --max-bytes ({max_bytes}), --max-pixels ({max_pixels}) and --timeout ({timeout_s}) "
                        f"must be positive and --queue-size ({queue_size}) at least 0")
    entries, notes = resolve_models(models, device)
    by_name = {e.name: e for e in entries}
    default_name = entries[0].name
    limits = Limits(max_bytes=max_bytes, max_pixels=max_pixels)
    fields = {"image": FieldSpec(max_bytes, True), "hint_image": FieldSpec(max_bytes, True),
              "hints": FieldSpec(HINTS_MAX_BYTES, False), "model": FieldSpec(256, False),
              "soft_hints": FieldSpec(FLAG_MAX_BYTES, False), "layers": FieldSpec(FLAG_MAX_BYTES, False),
              "detail": FieldSpec(FLAG_MAX_BYTES, False), "propagate": FieldSpec(FLAG_MAX_BYTES, False)}
    max_total = 2 * max_bytes + HINTS_MAX_BYTES + 64 * 1024  # all fields at their limits + multipart framing
    queue = WorkQueue(queue_size)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        queue.shutdown()

    # no /docs or /redoc: FastAPI's pages load Swagger/ReDoc from a CDN, and nothing here may come from the internet
    app = FastAPI(title="tintline", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Colorize line art, with optional color hints. Errors are JSON `{\"error\": ...}`.")
    app.state.models, app.state.notes, app.state.queue = entries, notes, queue
    app.state.limits = {"max_bytes": max_bytes, "max_pixels": max_pixels, "queue_size": queue_size,
                        "timeout_s": timeout_s, "max_body_bytes": max_total}

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, f"invalid request: {exc.errors()[:3]}")

    @app.exception_handler(Exception)
    async def _internal_error(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return _error(500, "internal server error")

    @app.get("/healthz", summary="liveness and queue depth")
    def healthz() -> dict:
        return {"status": "ok", "models": len(entries),
                "queue": {"running": queue.running, "waiting": queue.waiting, "capacity": queue_size}}

    def _character(e: ModelEntry) -> dict | None:
        refs = getattr(e.colorizer, "reference_images", None)
        if not refs:
            return None
        return {"name": str(getattr(e.colorizer, "name", e.name)), "references": len(refs)}

    @app.get("/api/models", summary="the models this server offers")
    def list_models() -> dict:
        models = []
        for e in entries:
            m: dict[str, Any] = {"name": e.name, "description": e.description, "default": e.default}
            char = _character(e)
            if char is not None:
                m["character"] = char
            models.append(m)
        return {"default": default_name, "models": models,
                "limits": {"max_bytes": max_bytes, "max_pixels": max_pixels}}

    previews: dict[tuple[str, int], bytes] = {}

    @app.get("/api/models/{name}/references/{index}", summary="a character model's reference, as a PNG")
    def reference(name: str, index: int) -> Response:
        entry = next((e for e in entries if e.name == name), None)
        if entry is None:
            return _error(404, f"unknown model {name!r}")
        refs = getattr(entry.colorizer, "reference_images", None) or []
        if not 0 <= index < len(refs):
            return _error(404, f"model {name!r} has no reference {index}"
                          + ("" if refs else " (it is not a character model)"))
        if (name, index) not in previews:
            import cv2

            color = refs[index][0]
            s = min(1.0, REFERENCE_SIDE / max(color.shape[:2]))
            if s < 1:
                color = cv2.resize(color, (max(1, round(color.shape[1] * s)), max(1, round(color.shape[0] * s))),
                                   interpolation=cv2.INTER_AREA)
            previews[(name, index)] = encode_png(color)
        return Response(previews[(name, index)], media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    def colorize_job(entry: ModelEntry, image: bytes, hints: dict | None, hint_image: bytes | None,
                     soft_hints: bool = False, layers: bool = False, detail: str | None = None,
                     propagate: bool | None = None) -> tuple[bytes, str]:
        """Runs in the worker thread: decode, colorize, encode (a PNG, or with ``layers`` an OpenRaster file);
        -> (the file, the kind of input read: lines, pencil, gray, screentone or color). ``detail`` and
        ``propagate`` are set on the colorizer for this request only (one worker thread: no other request sees
        them); None: the colorizer's own (``auto`` and on for every model the server loads)."""
        kept = {k: getattr(entry.colorizer, k) for k in ("detail", "propagate") if hasattr(entry.colorizer, k)}
        configure(entry.colorizer, detail=detail, propagate=propagate)
        try:
            return _colorize_job(entry, image, hints, hint_image, soft_hints, layers)
        finally:
            for k, v in kept.items():
                setattr(entry.colorizer, k, v)

    def _colorize_job(entry: ModelEntry, image: bytes, hints: dict | None, hint_image: bytes | None,
                      soft_hints: bool, layers: bool) -> tuple[bytes, str]:
        try:
            img = decode_image(image, limits)
        except BadImage as e:
            raise _JobError(_BAD_IMAGE_STATUS.get(e.reason, 400), f"image: {e.detail}", e.reason) from e
        try:
            if hint_image is not None:
                himg = decode_image(hint_image, limits)
                hints = merge_hints(hints, hint_image_to_hints(himg, img.size))
            if hints is not None:
                check_hint_cost(hints, *img.size)
        except BadImage as e:
            raise _JobError(_BAD_IMAGE_STATUS.get(e.reason, 400), f"hint_image: {e.detail}", e.reason) from e
        except HintImageError as e:
            raise _JobError(400, str(e), "bad-hints") from e
        # soft_hints is passed on only when asked for: a plain colorizer object may not take the argument
        kw = {"soft_hints": True} if soft_hints else {}
        try:
            if layers:
                page = read_page(img)
                lay = colorize_to_layers(entry.colorizer, img, hints, page=page, **kw)
                rgb, kind = lay.compose(), page.kind
            elif callable(getattr(entry.colorizer, "colorize_lines", None)):
                rgb, page = colorize_page(entry.colorizer, img, hints, **kw)
                kind = page.kind
            else:  # an object with colorize_image alone
                rgb, kind = np.asarray(entry.colorizer.colorize_image(img, hints, **kw)), page_kind(img)
        except RegionError as e:  # valid image, but not line art the regions can be found in
            raise _JobError(422, _one_line(e), "too-many-regions") from e
        except UserError as e:  # anything else a user can fix about this input
            raise _JobError(400, _one_line(e), "bad-input") from e
        w, h = img.size
        if rgb.shape != (h, w, 3) or rgb.dtype != np.uint8:
            raise RuntimeError(f"model {entry.name} returned {rgb.shape} {rgb.dtype}, expected ({h}, {w}, 3) uint8")
        return (ora_bytes(lay, title=entry.name) if layers else encode_png(rgb)), kind

    @app.post("/api/colorize", summary="colorize line art (multipart form) -> PNG or OpenRaster",
              openapi_extra=_COLORIZE_OPENAPI, response_class=Response,
              responses={200: {"content": {"image/png": {}, "image/openraster": {}},
                               "description": "the colorized image, input size (OpenRaster layers with layers=true)"},
                         400: {"content": _ERROR_SCHEMA, "description": "bad image, hints, model or form"},
                         408: {"content": _ERROR_SCHEMA, "description": "upload not received in time"},
                         413: {"content": _ERROR_SCHEMA, "description": "upload or image too large"},
                         415: {"content": _ERROR_SCHEMA, "description": "not an image, or not a multipart body"},
                         422: {"content": _ERROR_SCHEMA,
                               "description": "line art the model cannot work on (too many regions: noise?)"},
                         503: {"content": _ERROR_SCHEMA, "description": "queue full; see Retry-After"},
                         504: {"content": _ERROR_SCHEMA, "description": "time limit exceeded"}})
    async def colorize(request: Request) -> Response:
        deadline = time.monotonic() + timeout_s
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_total:
            return _error(413, f"request body is larger than the limit of {max_total} bytes", "too-large-file")
        try:
            parts = await asyncio.wait_for(
                read_form(request.headers.get("content-type", ""), request.stream(), fields, max_total),
                timeout=timeout_s)
        except FormError as e:
            return _error(e.status, e.message, "too-large-file" if e.status == 413 else "bad-form")
        except (TimeoutError, asyncio.TimeoutError):
            return _error(408, f"the upload was not received within {timeout_s:g} s", "timeout")
        if "image" not in parts or not parts["image"].data:
            return _error(400, "the form needs a non-empty 'image' file", "bad-form")
        name = parts["model"].data.decode("utf-8", "replace").strip() if "model" in parts else ""
        entry = by_name.get(name or default_name)
        if entry is None:
            return _error(400, f"unknown model {name[:60]!r}; available: {', '.join(by_name)}", "unknown-model")
        hints = None
        if "hints" in parts and parts["hints"].data.strip():
            try:
                hints = validate_hints(json.loads(parts["hints"].data))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                return _error(400, f"hints: not valid JSON ({str(e)[:100]})", "bad-hints")
            except HintError as e:
                msg = str(e) if str(e).startswith("hints") else f"hints: {e}"
                return _error(400, msg, "bad-hints")
        flags = {}
        for key in ("soft_hints", "layers"):
            raw = parts[key].data.decode("utf-8", "replace").strip().lower() if key in parts else ""
            if raw not in _TRUE | _FALSE:
                return _error(400, f"{key} must be true or false, not {raw[:20]!r}", "bad-form")
            flags[key] = raw in _TRUE
        detail = parts["detail"].data.decode("utf-8", "replace").strip().lower() if "detail" in parts else ""
        if detail and detail not in DETAILS:
            return _error(400, f"detail must be one of {', '.join(DETAILS)}, not {detail[:20]!r}", "bad-form")
        raw = parts["propagate"].data.decode("utf-8", "replace").strip().lower() if "propagate" in parts else ""
        if raw not in _TRUE | _FALSE:
            return _error(400, f"propagate must be true or false, not {raw[:20]!r}", "bad-form")
        propagate = (raw in _TRUE) if raw else None
        hint_image = parts["hint_image"].data if "hint_image" in parts and parts["hint_image"].data else None
        image = bytes(parts["image"].data)
        hint_bytes = bytes(hint_image) if hint_image is not None else None
        del parts
        try:
            out, kind = await queue.run(lambda: colorize_job(entry, image, hints, hint_bytes, **flags,
                                                             detail=detail or None, propagate=propagate),
                                        deadline - time.monotonic())
        except QueueFull as e:
            return _error(503, str(e), "busy", headers={"Retry-After": str(e.retry_after_s)})
        except TimeoutError:
            return _error(504, f"not done within the time limit of {timeout_s:g} s", "timeout")
        except _JobError as e:
            return _error(e.status, e.message, e.reason)
        if flags["layers"]:  # a file for an editor: offered as a download, not shown
            return Response(out, media_type="image/openraster",
                            headers={"Content-Disposition": 'attachment; filename="colorized.ora"',
                                     "Cache-Control": "no-store", "X-Tintline-Model": entry.name,
                                     "X-Tintline-Input": kind})
        return Response(out, media_type="image/png",
                        headers={"Content-Disposition": 'inline; filename="colorized.png"',
                                 "Cache-Control": "no-store", "X-Tintline-Model": entry.name,
                                 "X-Tintline-Input": kind})

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["*"], max_age=600,
                           expose_headers=["Retry-After", "X-Tintline-Model", "X-Tintline-Input"])
    app.add_middleware(_SecurityHeaders)
    return app


def run_server(models: Sequence[Any] | None = None, host: str = "127.0.0.1", port: int = 8000,
               max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS, queue_size: int = 8,
               timeout_s: float = 30.0, cors_origins: Sequence[str] | None = None, device: str = "cpu") -> None:
    """Load the models, print what is served, and run uvicorn until interrupted."""
    import uvicorn

    app = create_app(models, max_bytes=max_bytes, max_pixels=max_pixels, queue_size=queue_size,
                     timeout_s=timeout_s, cors_origins=cors_origins, device=device)
    for note in app.state.notes:
        print(note)
    for e in app.state.models:
        print(f"model {e.name}{' (default)' if e.default else ''}: {e.description}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach this address can use the server "
              "(there is no authentication)")
    shown = f"[{host}]" if ":" in host else host
    print(f"tintline serve: http://{shown}:{port}/  (limits: {max_bytes} bytes, {max_pixels} pixels, "
          f"queue {queue_size}, {timeout_s:g} s per request; Ctrl+C to stop)")
    # uvicorn refuses connections beyond limit_concurrency with 503 before any body is read
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, timeout_keep_alive=5,
                limit_concurrency=max(32, 4 * (queue_size + 1)))
