"""A fake booru for the crawler tests: Danbooru and Gelbooru 0.2 (JSON and XML) APIs plus image files, on 127.0.0.1.

The posts are generated (small colorful PNGs from numpy + Pillow) and include the awkward kinds real sites have:
a video, a post without a file, a file served as HTML, a file that is not an image (but matches its md5), a file
whose md5 never matches, a missing file (404) and two posts with the same file. :meth:`BooruServer.expected` says
what a correct crawl records for each post.

Transient faults (``faults=``) hit a deterministic subset of resources (an API page or a file), on their first
requests only, so a crawler that retries correctly always ends with the same result:

``429`` (with Retry-After), ``500``, ``503``, ``slow`` (answer later than the client's timeout), ``truncate`` (half
the body, with or without a Content-Length), ``malformed`` (broken JSON/XML), ``empty`` (an empty page),
``wrong_md5`` (another image's bytes); see :meth:`BooruServer._fault` for which. ``dup`` makes every page after
the first repeat the previous page's last post.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

API_FAULTS = ("429", "500", "503", "slow", "truncate", "malformed", "empty")
FILE_FAULTS = ("429", "500", "503", "slow", "truncate", "wrong_md5")
ALL_FAULTS = tuple(dict.fromkeys(API_FAULTS + FILE_FAULTS + ("dup",)))

GEL_RATING = {"g": "general", "s": "sensitive", "q": "questionable", "e": "explicit"}
QUERY_RATING = {"g": "g", "general": "g", "safe": "g", "s": "s", "sensitive": "s", "q": "q", "questionable": "q",
                "e": "e", "explicit": "e"}

# Expected crawl outcome of each special kind of post: (status, reason).
KIND_OUTCOME = {
    "ok": ("accepted", None),
    "same_file": ("accepted", None),
    "video": ("skipped", "not-an-image-file"),
    "no_file": ("skipped", "no-file-url"),
    "html": ("failed", "bad-content-type"),
    "garbage": ("failed", "not-an-image"),
    "bad_md5": ("failed", "md5-mismatch"),
    "missing": ("failed", "http-404"),
}
CHARACTERS = ("hakurei_reimu", "kirisame_marisa", "hatsune_miku")
SPECIAL = {1: "video", 5: "html", 8: "garbage", 10: "bad_md5", 14: "missing", 17: "no_file", 21: "same_file"}


def make_png(seed: int, w: int = 40, h: int = 28) -> bytes:
    """A small colorful PNG, different for every seed (non-square, to catch swapped axes)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    c = rng.uniform(0, 255, size=(3,))
    img = np.stack([(x * 255 / w + c[0]) % 256, (y * 255 / h + c[1]) % 256, (x + y + c[2]) % 256], -1)
    for _ in range(3):
        x0, y0 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        img[y0:y0 + 8, x0:x0 + 8] = rng.uniform(0, 255, size=(3,))
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class FakePost:
    id: int
    tags: list[str]
    rating: str  # g s q e
    kind: str
    data: bytes
    ext: str
    md5: str  # what the API reports

    @property
    def name(self) -> str:
        return f"{self.md5}{self.ext}"


def make_posts(n: int, seed: int = 0, first_id: int = 1000) -> list[FakePost]:
    posts: list[FakePost] = []
    hair = ["red_hair", "blue_hair", "black_hair", "blonde_hair"]
    chars = ["hakurei_reimu", "kirisame_marisa", "hatsune_miku", "original"]
    for i in range(n):
        pid = first_id + 7 * i + i % 3
        tags = ["1girl", "solo"] if i % 4 != 3 else ["2girls"]
        tags += [hair[i % 4], chars[(i // 2) % 4], f"artist_{i % 3}"]
        if i % 2:
            tags.append("smile")
        if i % 6 == 4:
            tags.append("monochrome")
        if i == 2:
            tags.append("jack-o'-lantern")  # Gelbooru escapes this as &#039; in JSON
        rating = "gsqg"[i % 4] if i % 9 != 8 else "e"
        kind = SPECIAL.get(i, "ok") if n > 20 else "ok"
        data, ext = make_png(seed * 100_000 + pid), ".png"
        md5 = hashlib.md5(data).hexdigest()
        if kind == "video":
            data, ext = b"\x1a\x45\xdf\xa3 not really a webm", ".webm"
            md5 = hashlib.md5(data).hexdigest()
        elif kind == "garbage":
            data = b"this is not an image at all" * 10
            md5 = hashlib.md5(data).hexdigest()
        elif kind == "bad_md5":
            md5 = hashlib.md5(b"something else").hexdigest()
        elif kind == "same_file":
            prev = posts[-1]
            data, ext, md5 = prev.data, prev.ext, prev.md5
        posts.append(FakePost(pid, sorted(set(tags)), rating, kind, data, ext, md5))
    return posts


@dataclass
class BooruServer:
    """Start with ``with BooruServer(...) as srv:``; ``srv.url`` is the base URL."""

    n_posts: int = 24
    faults: tuple[str, ...] = ()
    gel_json: str = "list"  # list (Safebooru) or dict (gelbooru.com: {"@attributes": ..., "post": [...]})
    file_base: str | None = None  # where Danbooru/Gelbooru file URLs point (another server: a CDN); default self
    slow_s: float = 0.6
    retry_after: str = "0.15"
    fault_period: int = 3  # a fault hits one resource in this many
    doctype: bool = False  # answer XML with a DOCTYPE (entity expansion attack)
    ignore_exclude: bool = False  # list posts carrying -excluded tags anyway (the crawler must skip them itself)
    redirect_api_to: str | None = None  # answer API calls with a 302 to this base URL
    broken_files: set[str] = field(default_factory=set)  # file names answered with 503, always
    seed: int = 0
    posts: list[FakePost] = field(default_factory=list)

    def __post_init__(self):
        if not self.posts:
            self.posts = make_posts(self.n_posts, self.seed)
        self.log: list[dict] = []  # one entry per request: t (monotonic, at arrival), path, query, ua, status, ...
        self.fired: dict[str, int] = {}
        self._hits: dict[str, int] = {}  # resource -> requests so far
        self._order: dict[str, int] = {}  # resource -> its rank among resources, by first request
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> BooruServer:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                # the client may have given up (timeout) before the answer: fine
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    srv._handle(self)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    # ------------------------------------------------------------------ what a correct crawl records

    def matching(self, tags: str = "", exclude: str = "", rating: str | None = None) -> list[FakePost]:
        inc, exc = set(tags.split()), set(exclude.split())
        r = QUERY_RATING[rating] if rating else None
        return sorted(
            (p for p in self.posts if inc <= set(p.tags) and not exc & set(p.tags) and (r is None or p.rating == r)),
            key=lambda p: -p.id,
        )

    def expected(self, tags: str = "", exclude: str = "", rating: str | None = None) -> dict[int, tuple]:
        """post id -> (status, reason) for every post the query lists."""
        return {p.id: KIND_OUTCOME[p.kind] for p in self.matching(tags, exclude, rating)}

    def file_url(self, p: FakePost, api: str) -> str:
        base = self.file_base or self.url
        d = f"{p.md5[:2]}/{p.md5[2:4]}"
        return f"{base}/data/original/{d}/{p.name}" if api == "danbooru" else f"{base}/images/{d}/{p.name}"

    def add_posts(self, n: int) -> list[FakePost]:
        """Publish ``n`` new posts (higher ids, so they come first in listings)."""
        new = make_posts(n, seed=self.seed + 1, first_id=max(p.id for p in self.posts) + 100)
        with self._lock:
            self.posts = self.posts + new
        return new

    # ------------------------------------------------------------------ requests

    def requests(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self.log if kind is None or e["kind"] == kind]

    def reset_faults(self) -> None:
        """Let every resource suffer its faults again (as if never requested)."""
        with self._lock:
            self._hits.clear()
            self._order.clear()

    def _fault(self, key: str, kinds: tuple[str, ...]) -> str | None:
        """The fault for this request of resource ``key``: its n-th request gets the n-th of its faults.

        The k-th distinct resource suffers fault j of ``kinds`` when (k + j) % fault_period == 0, so with at least
        ``fault_period`` resources every enabled fault fires, and each resource gets only a few.
        """
        with self._lock:
            k = self._order.setdefault(key, len(self._order))
            seq = [f for j, f in enumerate(kinds) if f in self.faults and (k + j) % self.fault_period == 0]
            n = self._hits.get(key, 0)
            self._hits[key] = n + 1
            if n < len(seq):
                self.fired[seq[n]] = self.fired.get(seq[n], 0) + 1
                return seq[n]
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        kind = "api" if parts.path in ("/posts.json", "/index.php") else "file"
        entry = {"t": time.monotonic(), "path": parts.path, "query": q, "ua": h.headers.get("User-Agent"),
                 "kind": kind, "status": None, "fault": None}
        with self._lock:
            self.log.append(entry)
        if kind == "api":
            self._api(h, parts.path, q, entry)
        else:
            self._file(h, parts.path, entry)

    def _send(self, h, status: int, body: bytes, ctype: str, entry: dict, headers: dict | None = None,
              length: bool = True) -> None:
        entry["status"] = status
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if length:
            h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _common_fault(self, h, fault: str | None, entry: dict, body: bytes, ctype: str) -> bool:
        """Apply a fault shared by API and files; True when the request is answered."""
        entry["fault"] = fault
        if fault == "429":
            self._send(h, 429, b"slow down", "text/plain", entry, {"Retry-After": self.retry_after})
        elif fault in ("500", "503"):
            self._send(h, int(fault), b"oops", "text/plain", entry)
        elif fault == "slow":
            time.sleep(self.slow_s)
            self._send(h, 200, body, ctype, entry)
        elif fault == "truncate":
            entry["status"] = 200
            h.send_response(200)
            h.send_header("Content-Type", ctype)
            with_length = zlib.crc32(body) % 2 == 0
            if with_length:
                h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
        else:
            return False
        return True

    def _api(self, h, path: str, q: dict, entry: dict) -> None:
        if self.redirect_api_to:
            self._send(h, 302, b"", "text/plain", entry, {"Location": self.redirect_api_to + h.path})
            return
        words = q.get("tags", "").split()
        inc = " ".join(w for w in words if not w.startswith("-") and not w.startswith("rating:"))
        exc = "" if self.ignore_exclude else " ".join(w[1:] for w in words if w.startswith("-"))
        rating = next((w.split(":", 1)[1] for w in words if w.startswith("rating:")), None)
        if rating is not None and rating not in QUERY_RATING:
            self._send(h, 422, b'{"success": false, "message": "bad rating"}', "application/json", entry)
            return
        listed = self.matching(inc, exc, rating)
        limit = int(q.get("limit") or (20 if path == "/posts.json" else 100))
        if path == "/posts.json":
            page = q.get("page", "1")
            if page.startswith("b"):
                start = next((i for i, p in enumerate(listed) if p.id < int(page[1:])), len(listed))
            else:
                start = (int(page) - 1) * limit
            api = "danbooru"
        else:
            start = int(q.get("pid", "0")) * limit
            api = "gelbooru02"
        chunk = listed[start: start + limit]
        if "dup" in self.faults and start > 0 and chunk:
            chunk = [listed[start - 1]] + chunk  # the same post on two pages
        key = f"{path}?{sorted(q.items())}"
        fault = self._fault(key, API_FAULTS)
        if fault == "empty":
            chunk = []
        if api == "danbooru":
            body, ctype = json.dumps([self._danbooru_post(p) for p in chunk]).encode(), "application/json"
        elif q.get("json") == "1":
            body, ctype = self._gel_json(chunk, len(listed), start), "application/json"
        else:
            body, ctype = self._gel_xml(chunk, len(listed), start), "text/xml"
        if fault == "malformed":
            body = body[: max(1, len(body) // 2)] + b"<<}{ not what you expected"
        if fault in ("empty", "malformed"):
            entry["fault"] = fault
            self._send(h, 200, body, ctype, entry)
        elif not self._common_fault(h, fault, entry, body, ctype):
            self._send(h, 200, body, ctype, entry)

    def _danbooru_post(self, p: FakePost) -> dict:
        d = {
            "id": p.id, "rating": p.rating, "image_width": 40, "image_height": 28, "file_size": len(p.data),
            "file_ext": p.ext.lstrip("."), "tag_string": " ".join(p.tags),
            "tag_string_general": " ".join(t for t in p.tags if t not in CHARACTERS and not t.startswith("artist_")),
            "tag_string_character": " ".join(t for t in p.tags if t in CHARACTERS),
            "tag_string_copyright": "", "tag_string_artist": " ".join(t for t in p.tags if t.startswith("artist_")),
        }
        if p.kind != "no_file":
            d["md5"] = p.md5
            d["file_url"] = self.file_url(p, "danbooru")
        return d

    def _gel_fields(self, p: FakePost) -> dict:
        d = {"id": str(p.id), "rating": GEL_RATING[p.rating], "width": "40", "height": "28",
             "tags": " " + " ".join(p.tags) + " ", "hash": p.md5}
        if p.kind != "no_file":
            d["directory"] = f"{p.md5[:2]}/{p.md5[2:4]}"
            d["image"] = p.name
            if p.id % 2 or self.file_base:  # some posts give file_url, the others leave it to the client
                d["file_url"] = self.file_url(p, "gelbooru02")
        return d

    def _gel_json(self, chunk: list[FakePost], count: int, offset: int) -> bytes:
        posts = []
        for p in chunk:
            d = self._gel_fields(p)
            d["tags"] = html.escape(d["tags"])  # as gelbooru does: &#x27; for '
            posts.append(d)
        if self.gel_json == "dict":
            out: dict = {"@attributes": {"limit": len(chunk), "offset": offset, "count": count}}
            if posts:
                out["post"] = posts
            return json.dumps(out).encode()
        return json.dumps(posts).encode() if posts else b""  # Safebooru answers nothing at all when empty

    def _gel_xml(self, chunk: list[FakePost], count: int, offset: int) -> bytes:
        head = '<?xml version="1.0" encoding="UTF-8"?>'
        if self.doctype:
            head += '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        rows = []
        for p in chunk:
            d = self._gel_fields(p)
            if "hash" in d:
                d["md5"] = d.pop("hash")  # Safebooru's XML calls it md5
            rows.append("<post " + " ".join(f"{k}={quoteattr(v)}" for k, v in d.items()) + "/>")
        return f'{head}<posts count="{count}" offset="{offset}">{"".join(rows)}</posts>'.encode()

    def _file(self, h, path: str, entry: dict) -> None:
        name = path.rsplit("/", 1)[-1]
        p = next((p for p in self.posts if p.name == name and p.kind != "no_file"), None)
        if p is None or p.kind == "missing":
            self._send(h, 404, b"not found", "text/html", entry)
            return
        if p.kind == "html":
            self._send(h, 200, b"<html><body>please log in</body></html>", "text/html; charset=utf-8", entry)
            return
        if name in self.broken_files:
            self._send(h, 503, b"down for maintenance", "text/plain", entry)
            return
        ctype = "video/webm" if p.ext == ".webm" else "image/png"
        fault = self._fault(path, FILE_FAULTS)
        if fault == "wrong_md5":
            entry["fault"] = fault
            self._send(h, 200, make_png(p.id + 7), ctype, entry)
        elif not self._common_fault(h, fault, entry, p.data, ctype):
            self._send(h, 200, p.data, ctype, entry)
