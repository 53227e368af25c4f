"""`tintline data crawl`: images and their tags from booru sites (Danbooru and Gelbooru 0.2 / Safebooru APIs).

One crawl is one *query*: a site plus include tags, exclude tags and a rating. It walks the site's post listing
newest first, page by page, and stores every post's original file in the dataset (through :meth:`Store.add`, so the
file is content-addressed and its tags, rating, post id and URLs land in the manifest).

Politeness
    One request-rate limit per host (default one request per second) shared by API calls and downloads; a 429 is
    honoured with its Retry-After; 5xx answers, timeouts and broken connections are retried with exponential
    backoff and jitter, a bounded number of times; every request names tintline in its User-Agent.

Safety
    API calls never follow a redirect to another host (API keys travel in the query string); API answers and files
    are read as streams and abandoned above a size cap; XML with a DOCTYPE or ENTITY declaration is refused; a
    download must have an image content type, match the API's md5 and decode with :func:`decode_image` before it
    is stored. A truncated or mismatched file is retried, then recorded as failed, never stored.

Resumability
    The crawl state lives in the manifest (tables ``crawl_queries``, ``crawl_posts``, ``crawl_hits``, see SCHEMA).
    Each post is committed in one transaction together with its image row, and the page cursor only moves once
    every post of the page is committed, so after a kill at any moment the same command continues where it
    stopped, re-downloads nothing it already has and ends with every post exactly once. ``limit`` counts the
    distinct images accepted for the query, including those from earlier runs.

Paging
    Danbooru: id cursors (``page=b<id>``: posts with a smaller id), which are stable while new posts arrive and have
    no depth limit. Gelbooru 0.2: ``pid`` page numbers (the API has nothing else); the cursor is kept as a post
    offset, so a rerun with another page size still continues at the right place. Posts seen twice (offsets shift
    when posts are added) are skipped by post id.

Environment variables (read when the matching argument is None; meant for tests, not for real sites):
``TINTLINE_CRAWL_MIN_INTERVAL`` seconds between requests to one host, ``TINTLINE_CRAWL_TIMEOUT`` seconds per
request, ``TINTLINE_CRAWL_PAGE_SIZE`` posts per API page, ``TINTLINE_CRAWL_BACKOFF`` first backoff in seconds,
``TINTLINE_CRAWL_ATTEMPTS`` attempts per request, ``TINTLINE_CRAWL_FORMAT`` json or xml (Gelbooru 0.2 only).
Credentials: ``TINTLINE_DANBOORU_LOGIN`` + ``TINTLINE_DANBOORU_API_KEY`` (sent to danbooru.donmai.us only) and
``TINTLINE_GELBOORU_USER_ID`` + ``TINTLINE_GELBOORU_API_KEY`` (sent to gelbooru.com only).
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import io
import json
import os
import random
import re
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image
from tqdm import tqdm

from .. import __version__
from .imageio import BadImage, Limits, decode_image
from .store import DatasetError, Store

USER_AGENT = f"tintline/{__version__} (+https://github.com/tintline/tintline)"

# name -> (base URL, API kind)
SITES = {
    "safebooru": ("https://safebooru.org", "gelbooru02"),
    "gelbooru": ("https://gelbooru.com", "gelbooru02"),
    "danbooru": ("https://danbooru.donmai.us", "danbooru"),
}
APIS = ("danbooru", "gelbooru02")
# Credentials are only ever sent to the site they belong to: name -> (param, env var) pairs.
CREDENTIALS = {
    "danbooru": (("login", "TINTLINE_DANBOORU_LOGIN"), ("api_key", "TINTLINE_DANBOORU_API_KEY")),
    "gelbooru": (("user_id", "TINTLINE_GELBOORU_USER_ID"), ("api_key", "TINTLINE_GELBOORU_API_KEY")),
}

# --rating value -> canonical word. Danbooru searches by letter (rating:g/s/q/e); "safe" means general there (the
# old "safe" was split into general and sensitive in 2022). Gelbooru 0.2 sites search by word (rating:safe on
# Safebooru); gelbooru.com renamed safe to general, so "safe" is sent as rating:general there.
RATING_WORDS = {
    "safe": "safe", "g": "general", "general": "general", "s": "sensitive", "sensitive": "sensitive",
    "q": "questionable", "questionable": "questionable", "e": "explicit", "explicit": "explicit",
}
DANBOORU_RATING = {"safe": "g", "general": "g", "sensitive": "s", "questionable": "q", "explicit": "e"}

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
FORMAT_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
OK_FILE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")

API_MAX_BYTES = 8 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_RUN_TRIES = 3  # a post that failed for a transient reason is retried in at most this many runs
MAX_RETRY_AFTER = 300.0  # a site asking to wait longer than this ends the crawl (it is saved; rerun later)
MAX_BACKOFF = 60.0
PAGE_SIZE = {"danbooru": 100, "gelbooru02": 100}  # both APIs allow at least 100 posts per page

SCHEMA = """
CREATE TABLE IF NOT EXISTS crawl_queries (
    id         INTEGER PRIMARY KEY,
    site       TEXT NOT NULL,              -- site name (safebooru, danbooru, ... or host:port of a custom URL)
    api        TEXT NOT NULL,              -- danbooru | gelbooru02
    base_url   TEXT NOT NULL,
    query      TEXT NOT NULL,              -- canonical JSON of include/exclude tags and rating
    cursor     TEXT,                       -- where the walk continues: 'b<id>' (danbooru) or a post offset
    exhausted  INTEGER NOT NULL DEFAULT 0, -- 1 once the walk reached the end of the listing
    refreshing INTEGER NOT NULL DEFAULT 0, -- 1 while a finished query is re-walked from the top for new posts
    pages      INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (base_url, api, query)
);
CREATE TABLE IF NOT EXISTS crawl_posts (
    site       TEXT NOT NULL,
    post_id    INTEGER NOT NULL,
    status     TEXT NOT NULL,              -- accepted | failed | skipped
    reason     TEXT,                       -- why failed or skipped (md5-mismatch, http-404, not-an-image-file, ...)
    detail     TEXT,
    retryable  INTEGER NOT NULL DEFAULT 0, -- 1 when the failure may go away (network, md5): retried next run
    tries      INTEGER NOT NULL DEFAULT 0, -- runs that tried to download it
    md5        TEXT,
    sha256     TEXT,                       -- the stored image (accepted only)
    file_url   TEXT,
    meta       TEXT,                       -- JSON of the post as parsed, to retry without asking the API again
    updated_at REAL NOT NULL,
    PRIMARY KEY (site, post_id)
);
CREATE TABLE IF NOT EXISTS crawl_hits (
    query_id INTEGER NOT NULL,
    site     TEXT NOT NULL,
    post_id  INTEGER NOT NULL,
    UNIQUE (query_id, site, post_id)
);
"""


# ------------------------------------------------------------------------------------------------ errors


class _Retry(Exception):
    """A transient failure: try again after a backoff (or after ``wait`` seconds, from a Retry-After)."""

    def __init__(self, reason: str, detail: str = "", wait: float | None = None, host: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.wait, self.host = reason, detail, wait, host


class _Fail(Exception):
    """A permanent failure for this resource: retrying will not help."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class _GaveUp(Exception):
    def __init__(self, last: _Retry, attempts: int):
        super().__init__(f"gave up after {attempts} attempts ({last})")
        self.last, self.attempts = last, attempts


# ------------------------------------------------------------------------------------------------ posts


@dataclass
class Post:
    id: int
    md5: str | None
    file_url: str | None
    ext: str
    tags: list[str]
    rating: str | None
    post_url: str
    width: int | None = None
    height: int | None = None
    file_size: int | None = None
    extra: dict = field(default_factory=dict)  # site-specific extras for the manifest (tag categories, ...)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, s: str) -> Post:
        return cls(**json.loads(s))


def _int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _ext_of(name: str | None) -> str:
    if not name:
        return ""
    path = urlsplit(name).path if "/" in name else name
    m = re.search(r"(\.[A-Za-z0-9]{1,5})$", path)
    return m.group(1).lower() if m else ""


def _post_id(p: dict) -> int:
    pid = _int(p.get("id")) if isinstance(p, dict) else None
    if pid is None or pid < 0:
        raise _Retry("malformed", f"post without a valid id: {str(p)[:80]}")
    return pid


def parse_danbooru(body: bytes, base: str) -> tuple[list[Post], int | None]:
    """``/posts.json`` -> posts (the API gives no total count)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _Retry("malformed", f"invalid JSON ({e.__class__.__name__})") from e
    if isinstance(data, dict):
        if data.get("success") is False:
            raise _Fail("api-error", str(data.get("message") or data.get("error") or data)[:200])
        raise _Retry("malformed", "expected a list of posts")
    if not isinstance(data, list):
        raise _Retry("malformed", "expected a list of posts")
    posts = []
    for p in data:
        pid = _post_id(p)
        url = p.get("file_url")
        url = urljoin(base + "/", url) if isinstance(url, str) and url else None
        ext = "." + str(p["file_ext"]).lower() if p.get("file_ext") else _ext_of(url)
        extra = {}
        for key, name in (("tag_string_character", "characters"), ("tag_string_copyright", "copyrights"),
                          ("tag_string_artist", "artists")):
            if isinstance(p.get(key), str) and p[key].strip():
                extra[name] = p[key].split()
        posts.append(Post(
            id=pid, md5=(str(p["md5"]).lower() if p.get("md5") else None), file_url=url, ext=ext,
            tags=str(p.get("tag_string") or "").split(), rating=p.get("rating"), post_url=f"{base}/posts/{pid}",
            width=_int(p.get("image_width")), height=_int(p.get("image_height")),
            file_size=_int(p.get("file_size")), extra=extra,
        ))
    return posts, None


def _reject_dtd(body: bytes) -> None:
    head = body.lower()
    if b"<!doctype" in head or b"<!entity" in head:
        raise _Retry("malformed", "XML with a DOCTYPE or ENTITY declaration refused")


def parse_gelbooru(body: bytes, base: str) -> tuple[list[Post], int | None]:
    """``index.php?page=dapi&s=post&q=index`` in either form (XML, or JSON with ``json=1``) -> (posts, total count).

    JSON comes as a list of posts (Safebooru), as ``{"@attributes": {...}, "post": [...]}`` (gelbooru.com), or as an
    empty body when nothing matches (Safebooru). The form is detected from the content, not from what was asked.
    """
    text = body.strip()
    if not text:
        return [], None
    count: int | None = None
    raw: list[dict] = []
    if text.startswith(b"<"):
        _reject_dtd(text)
        try:
            root = ET.fromstring(text)
        except ET.ParseError as e:
            raise _Retry("malformed", f"invalid XML ({e})") from e
        if root.tag == "response":  # <response success="false" reason="..."/>
            raise _Fail("api-error", (root.get("reason") or root.text or "request refused")[:200])
        if root.tag != "posts":
            raise _Retry("malformed", f"unexpected XML root <{root.tag}>")
        count = _int(root.get("count"))
        raw = [dict(el.attrib) for el in root if el.tag == "post"]
    else:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise _Retry("malformed", f"invalid JSON ({e.__class__.__name__})") from e
        if isinstance(data, dict):
            if data.get("success") is False:
                raise _Fail("api-error", str(data.get("message") or data.get("reason") or data)[:200])
            attrs = data.get("@attributes")
            if isinstance(attrs, dict):
                count = _int(attrs.get("count"))
            p = data.get("post", [])
            raw = [p] if isinstance(p, dict) else p
        else:
            raw = data
        if not isinstance(raw, list):
            raise _Retry("malformed", "expected a list of posts")
    posts = []
    for p in raw:
        pid = _post_id(p)
        image, directory = p.get("image"), p.get("directory")
        url = p.get("file_url") or (f"{base}/images/{directory}/{image}" if image and directory else None)
        url = urljoin(base + "/", url) if url else None
        md5 = p.get("hash") or p.get("md5")
        tags = html.unescape(str(p.get("tags") or "")).split()
        posts.append(Post(
            id=pid, md5=str(md5).lower() if md5 else None, file_url=url, ext=_ext_of(image) or _ext_of(url),
            tags=tags, rating=p.get("rating"), post_url=f"{base}/index.php?page=post&s=view&id={pid}",
            width=_int(p.get("width")), height=_int(p.get("height")),
        ))
    return posts, count


# ------------------------------------------------------------------------------------------------ politeness


class HostRateLimiter:
    """At most one request per ``min_interval`` seconds per host (``host:port``), for every kind of request."""

    def __init__(self, min_interval: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.min_interval = min_interval
        self.clock, self.sleep = clock, sleep
        self._next: dict[str, float] = {}

    def wait(self, host: str) -> None:
        t = self._next.get(host)
        now = self.clock()
        if t is not None and t > now:
            self.sleep(t - now)
            now = self.clock()
        self._next[host] = now + self.min_interval

    def defer(self, host: str, seconds: float) -> None:
        """No request to ``host`` for ``seconds`` (a Retry-After)."""
        self._next[host] = max(self._next.get(host, 0.0), self.clock() + seconds)


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds (either delta-seconds or an HTTP date); 1 s when missing or unreadable."""
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return 1.0


def _env(name: str, kind: type, value):
    if value is not None:
        return value
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return kind(raw)
    except ValueError as e:
        raise DatasetError(f"{name}={raw!r} is not a valid {kind.__name__}") from e


def _safe_url(url: str) -> str:
    """A URL for messages: without its query string, which may hold an API key."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}{p.path}"


# ------------------------------------------------------------------------------------------------ the crawler


@dataclass(frozen=True)
class Site:
    name: str
    base: str
    api: str


def resolve_site(site: str, api: str | None) -> Site:
    """``--site`` and ``--api`` -> a Site. Known names need no --api; a URL does (unless it is a known site's)."""
    if api is not None and api not in APIS:
        raise DatasetError(f"unknown --api {api!r}; use {' or '.join(APIS)}")
    if site in SITES:
        base, kind = SITES[site]
        if api is not None and api != kind:
            raise DatasetError(f"--site {site} speaks the {kind} API, not {api}")
        return Site(site, base, kind)
    parts = urlsplit(site)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DatasetError(f"unknown site {site!r}: use {', '.join(SITES)} or a base URL such as https://host")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    for name, (known, kind) in SITES.items():
        if base == known and api in (None, kind):
            return Site(name, known, kind)
    if api is None:
        raise DatasetError(f"--site {site} is a custom URL: say which API it speaks with --api danbooru|gelbooru02")
    return Site(parts.netloc, base, api)


def build_query(site: Site, tags: str, exclude_tags: str, rating: str | None) -> tuple[list[str], list[str], str]:
    """-> (include tags, exclude tags, the site's search string)."""
    include = list(dict.fromkeys(tags.split()))
    exclude = list(dict.fromkeys(t.lstrip("-") for t in exclude_tags.split() if t.lstrip("-")))
    for t in include:
        if t.lower().startswith(("order:", "sort:")):
            raise DatasetError(f"tag {t!r} changes the listing order, which paging relies on; leave it out")
    words = include + ["-" + t for t in exclude]
    if rating:
        word = RATING_WORDS.get(rating.strip().lower())
        if word is None:
            raise DatasetError(f"unknown rating {rating!r}; use safe, general, sensitive, questionable or explicit")
        if site.api == "danbooru":
            words.append(f"rating:{DANBOORU_RATING[word]}")
        else:
            words.append(f"rating:{'general' if site.name == 'gelbooru' and word == 'safe' else word}")
    return include, exclude, " ".join(words)


class Crawler:
    def __init__(self, store: Store, site: Site, *, client: httpx.Client, min_interval: float, timeout: float,
                 attempts: int, backoff: float, page_size: int, fmt: str):
        self.store, self.db, self.site = store, store.db, site
        self.client = client
        self.limiter = HostRateLimiter(min_interval)
        self.timeout, self.attempts, self.backoff, self.page_size, self.fmt = timeout, attempts, backoff, page_size, fmt
        cfg = store.load_config()
        self.limits = Limits(max_bytes=cfg.max_bytes, max_pixels=cfg.max_pixels)
        self.rng = random.Random()
        self.auth = {}
        for param, env in CREDENTIALS.get(site.name, ()):
            if os.environ.get(env):
                self.auth[param] = os.environ[env]
        if len(self.auth) != len(CREDENTIALS.get(site.name, ())):
            self.auth = {}  # both or nothing
        self.stats = {"accepted": 0, "skipped_known": 0, "skipped": 0, "failed": 0, "pages": 0, "requests": 0}
        self.done_this_run: set[int] = set()

    # -------------------------------------------------------------- HTTP

    def _sleep_backoff(self, attempt: int) -> None:
        time.sleep(min(MAX_BACKOFF, self.backoff * 2**attempt) * self.rng.uniform(0.5, 1.5))

    def _fetch_once(self, url: str, params: dict | None, cap: int, api: bool) -> tuple[httpx.Headers, bytes]:
        """One GET (following allowed redirects): the body, or _Retry / _Fail."""
        start_host = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _Fail("bad-url", _safe_url(url)[:200])
            host = parts.netloc
            self.limiter.wait(host)
            self.stats["requests"] += 1
            try:
                with self.client.stream("GET", url, params=params, headers={"User-Agent": USER_AGENT},
                                        timeout=self.timeout, follow_redirects=False) as r:
                    code = r.status_code
                    if code in (301, 302, 303, 307, 308):
                        loc = r.headers.get("location")
                        if not loc:
                            raise _Fail("bad-redirect", "redirect without a Location")
                        nxt = urljoin(str(r.url), loc)
                        if api and urlsplit(nxt).netloc != start_host:
                            raise _Fail("redirect-refused", f"API redirect to another host ({_safe_url(nxt)})")
                        url, params = nxt, None
                        continue
                    if code == 429:
                        raise _Retry("http-429", "too many requests", wait=_retry_after(r.headers.get("retry-after")),
                                     host=host)
                    if code >= 500:
                        raise _Retry(f"http-{code}")
                    if code != 200:
                        detail = ""
                        if api:  # the site's own message says what is wrong with the query
                            head = b""
                            for chunk in r.iter_bytes():
                                head += chunk
                                if len(head) >= 300:
                                    break
                            detail = head[:300].decode("utf-8", "replace").strip()
                        raise _Fail(f"http-{code}", detail)
                    ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
                    if not api and ctype and not ctype.startswith(OK_FILE_TYPES):
                        raise _Fail("bad-content-type", ctype[:80])
                    declared = _int(r.headers.get("content-length"))
                    if declared is not None and declared > cap:
                        raise _Fail("too-large-file", f"{declared} bytes > limit {cap}")
                    buf = bytearray()
                    t0 = time.monotonic()
                    for chunk in r.iter_bytes():
                        buf += chunk
                        if len(buf) > cap:
                            raise _Fail("too-large-file", f"more than {cap} bytes")
                        if time.monotonic() - t0 > self.timeout * 20:
                            raise _Retry("timeout", "transfer too slow")
                    if declared is not None and not r.headers.get("content-encoding") and len(buf) < declared:
                        raise _Retry("truncated", f"{len(buf)} of {declared} bytes")
                    return r.headers, bytes(buf)
            except httpx.TimeoutException as e:
                raise _Retry("timeout", e.__class__.__name__) from e
            except httpx.RemoteProtocolError as e:
                raise _Retry("truncated", str(e)[:120]) from e
            except httpx.HTTPError as e:
                raise _Retry("connection", f"{e.__class__.__name__}: {str(e)[:120]}") from e
            except httpx.InvalidURL as e:
                raise _Fail("bad-url", str(e)[:120]) from e
        raise _Fail("too-many-redirects", _safe_url(url)[:200])

    def _retrying(self, attempt_fn):
        last: _Retry | None = None
        for attempt in range(self.attempts):
            try:
                return attempt_fn()
            except _Retry as e:
                last = e
                if attempt + 1 >= self.attempts:
                    break
                if e.wait is not None:
                    if e.wait > MAX_RETRY_AFTER:
                        raise DatasetError(
                            f"{self.site.name} asks to wait {e.wait:.0f} s (HTTP 429); progress is saved, "
                            "run the same command again later"
                        ) from e
                    self.limiter.defer(e.host, e.wait)
                else:
                    self._sleep_backoff(attempt)
        assert last is not None
        raise _GaveUp(last, self.attempts)

    # -------------------------------------------------------------- API

    def api_page(self, query: str, cursor: str | None) -> tuple[list[Post], int | None]:
        base = self.site.base
        if self.site.api == "danbooru":
            url = base + "/posts.json"
            params = {"tags": query, "limit": str(self.page_size)}
            if cursor:
                params["page"] = cursor
            parse = parse_danbooru
        else:
            url = base + "/index.php"
            params = {"page": "dapi", "s": "post", "q": "index", "tags": query, "limit": str(self.page_size),
                      "pid": str(int(cursor or 0) // self.page_size)}
            if self.fmt == "json":
                params["json"] = "1"
            parse = parse_gelbooru
        params.update(self.auth)

        def attempt():
            _, body = self._fetch_once(url, params, API_MAX_BYTES, api=True)
            return parse(body, base)

        try:
            result = self._retrying(attempt)
        except _Fail as e:
            raise DatasetError(f"{self.site.name}: API request {_safe_url(url)} failed: {e}") from e
        except _GaveUp as e:
            raise DatasetError(
                f"{self.site.name}: API request {_safe_url(url)} {e}; progress is saved, run the same command again"
            ) from e
        self.stats["pages"] += 1
        return result

    # -------------------------------------------------------------- posts

    def _screen(self, post: Post, exclude: set[str]) -> tuple[str, str] | None:
        """A reason to skip the post without downloading it, or None."""
        if not post.file_url:
            return "no-file-url", "the API gives no file for this post (deleted or restricted)"
        if post.ext not in IMAGE_EXTS:
            return "not-an-image-file", f"file type {post.ext or 'unknown'}"
        hit = sorted(exclude.intersection(post.tags))
        if hit:
            return "excluded-tag", " ".join(hit)
        if post.file_size and post.file_size > self.limits.max_bytes:
            return "too-large-file", f"{post.file_size} bytes > limit {self.limits.max_bytes}"
        if post.width and post.height and post.width * post.height > self.limits.max_pixels:
            return "too-many-pixels", f"{post.width}x{post.height} > limit {self.limits.max_pixels}"
        return None

    def _download(self, post: Post) -> tuple[bytes, str]:
        """The verified file and its extension (from its content), or _Fail / _GaveUp."""
        assert post.file_url

        def attempt():
            _, data = self._fetch_once(post.file_url, None, self.limits.max_bytes, api=False)
            if post.md5 and hashlib.md5(data).hexdigest() != post.md5:
                raise _Retry("md5-mismatch", f"got {hashlib.md5(data).hexdigest()}, API says {post.md5}")
            try:
                decode_image(data, self.limits)  # BadImage: permanent...
            except BadImage as e:
                if post.md5 or e.reason not in ("corrupt", "not-an-image"):
                    raise
                # ...except without an md5 (a URL list): a body cut short by the network looks the same
                raise _Retry(e.reason, e.detail) from e
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fmt = Image.open(io.BytesIO(data)).format
            return data, FORMAT_EXT.get(fmt or "", post.ext)

        return self._retrying(attempt)

    def _record(self, post: Post, qid: int, status: str, reason: str | None = None, detail: str | None = None,
                sha: str | None = None, retryable: bool = False, tried: bool = False) -> None:
        self.db.execute(
            "INSERT INTO crawl_posts (site, post_id, status, reason, detail, retryable, tries, md5, sha256, file_url,"
            " meta, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (site, post_id) DO UPDATE SET status=excluded.status, reason=excluded.reason,"
            " detail=excluded.detail, retryable=excluded.retryable, tries=crawl_posts.tries + excluded.tries,"
            " sha256=excluded.sha256, meta=excluded.meta, updated_at=excluded.updated_at",
            (self.site.name, post.id, status, reason, detail, int(retryable), int(tried), post.md5, sha,
             post.file_url, post.to_json(), time.time()),
        )
        self.db.execute("INSERT OR IGNORE INTO crawl_hits (query_id, site, post_id) VALUES (?, ?, ?)",
                        (qid, self.site.name, post.id))

    def _manifest_extra(self, post: Post) -> dict:
        extra = {"site": self.site.name, "post_id": post.id, "rating": post.rating, "md5": post.md5,
                 "post_url": post.post_url, "width": post.width, "height": post.height}
        extra.update(post.extra)
        return extra

    def process(self, post: Post, qid: int, exclude: set[str]) -> str:
        """Handle one post exactly once; returns the stats key it counts under. Commits before returning."""
        if post.id in self.done_this_run:
            return "skipped_known"
        self.done_this_run.add(post.id)
        row = self.db.execute("SELECT status, retryable, tries FROM crawl_posts WHERE site=? AND post_id=?",
                              (self.site.name, post.id)).fetchone()
        if row is not None and not (row["status"] == "failed" and row["retryable"] and row["tries"] < MAX_RUN_TRIES):
            with self.db:
                self.db.execute("INSERT OR IGNORE INTO crawl_hits (query_id, site, post_id) VALUES (?, ?, ?)",
                                (qid, self.site.name, post.id))
            return "skipped_known"
        skip = self._screen(post, exclude)
        if skip is not None:
            with self.db:
                self._record(post, qid, "skipped", *skip)
            return "skipped"
        assert post.file_url
        known = self.db.execute("SELECT sha256 FROM origins WHERE origin = ? LIMIT 1", (post.file_url,)).fetchone()
        if known is not None:  # the same file is already stored (e.g. another post with the same md5)
            with self.db:
                self.store.add(None, source=self.site.name, origin=post.file_url, ext=post.ext, tags=post.tags,
                               extra=self._manifest_extra(post), sha=known["sha256"], commit=False)
                self._record(post, qid, "accepted", sha=known["sha256"])
            return "skipped_known"
        try:
            data, ext = self._download(post)
        except _Fail as e:
            with self.db:
                self._record(post, qid, "failed", e.reason, e.detail, tried=True)
            return "failed"
        except BadImage as e:
            with self.db:
                self._record(post, qid, "failed", e.reason, e.detail, tried=True)
            return "failed"
        except _GaveUp as e:
            with self.db:
                self._record(post, qid, "failed", e.last.reason, f"{e.last.detail} ({e.attempts} attempts)",
                             retryable=True, tried=True)
            return "failed"
        with self.db:  # image row, origin, tags and crawl state in one transaction
            sha, _ = self.store.add(data, source=self.site.name, origin=post.file_url, ext=ext, tags=post.tags,
                                    extra=self._manifest_extra(post), commit=False)
            self._record(post, qid, "accepted", sha=sha, tried=True)
        return "accepted"


# ------------------------------------------------------------------------------------------------ entry point


def _accepted_images(db, qid: int) -> set[str]:
    rows = db.execute(
        "SELECT DISTINCT p.sha256 FROM crawl_hits h JOIN crawl_posts p"
        " ON p.site = h.site AND p.post_id = h.post_id WHERE h.query_id = ? AND p.status = 'accepted'",
        (qid,),
    )
    return {r[0] for r in rows}


def run_crawl(
    store: Store,
    *,
    site: str,
    api: str | None,
    tags: str,
    exclude_tags: str = "",
    rating: str | None = None,
    limit: int = 100,
    progress: bool = True,
    client_factory: Callable[[], httpx.Client] | None = None,
    min_interval: float | None = None,
    timeout: float | None = None,
    page_size: int | None = None,
    backoff: float | None = None,
    attempts: int | None = None,
    gelbooru_format: str | None = None,
) -> dict[str, int]:
    """Crawl one query into ``store`` until ``limit`` images are accepted for it or the listing ends.

    Returns counts for this run: accepted (new images stored), skipped_known (posts already handled, by this or
    an earlier run), skipped (no file, video, excluded tag, too large), failed (download failed; see crawl_posts),
    pages, requests, plus total (images accepted for this query over all runs).
    """
    s = resolve_site(site, api)
    include, exclude, query = build_query(s, tags, exclude_tags, rating)
    if limit < 1:
        raise DatasetError("--limit must be at least 1")
    min_interval = _env("TINTLINE_CRAWL_MIN_INTERVAL", float, min_interval)
    timeout = _env("TINTLINE_CRAWL_TIMEOUT", float, timeout)
    page_size = _env("TINTLINE_CRAWL_PAGE_SIZE", int, page_size)
    backoff = _env("TINTLINE_CRAWL_BACKOFF", float, backoff)
    attempts = _env("TINTLINE_CRAWL_ATTEMPTS", int, attempts)
    fmt = _env("TINTLINE_CRAWL_FORMAT", str, gelbooru_format) or "json"
    if fmt not in ("json", "xml"):
        raise DatasetError(f"unknown Gelbooru API format {fmt!r}; use json or xml")
    min_interval = 1.0 if min_interval is None else max(0.0, min_interval)
    timeout = 30.0 if timeout is None else timeout
    page_size = PAGE_SIZE[s.api] if page_size is None else page_size
    backoff = 2.0 if backoff is None else backoff
    attempts = 5 if attempts is None else attempts
    if timeout <= 0 or not 1 <= page_size <= 200 or attempts < 1 or backoff < 0:
        raise DatasetError("crawl timeout must be > 0, page size 1..200, attempts >= 1, backoff >= 0")

    db = store.db
    db.executescript(SCHEMA)
    canon = json.dumps({"tags": sorted(include), "exclude": sorted(exclude), "rating": query.split()[-1]
                        if rating else None}, sort_keys=True)
    now = time.time()
    with db:
        db.execute(
            "INSERT OR IGNORE INTO crawl_queries (site, api, base_url, query, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)", (s.name, s.api, s.base, canon, now, now),
        )
    q = db.execute("SELECT * FROM crawl_queries WHERE base_url=? AND api=? AND query=?",
                   (s.base, s.api, canon)).fetchone()
    qid = q["id"]

    client = client_factory() if client_factory else httpx.Client(
        headers={"User-Agent": USER_AGENT}, follow_redirects=False, timeout=timeout
    )
    crawler = Crawler(store, s, client=client, min_interval=min_interval, timeout=timeout, attempts=attempts,
                      backoff=backoff, page_size=page_size, fmt=fmt)
    excluded = set(exclude)
    accepted = _accepted_images(db, qid)  # distinct images accepted for this query, over all runs
    total = len(accepted)
    bar = tqdm(total=limit, initial=min(total, limit), desc=f"crawl {s.name}", unit="img", disable=not progress)
    try:
        # 1. posts of this query that failed for a transient reason in an earlier run: retry them first
        if total < limit:
            rows = db.execute(
                "SELECT p.meta FROM crawl_hits h JOIN crawl_posts p ON p.site = h.site AND p.post_id = h.post_id"
                " WHERE h.query_id = ? AND p.status = 'failed' AND p.retryable = 1 AND p.tries < ?"
                " ORDER BY p.post_id DESC", (qid, MAX_RUN_TRIES),
            ).fetchall()
            for r in rows:
                if total >= limit:
                    break
                post = Post.from_json(r["meta"])
                total = _count(crawler, crawler.process(post, qid, excluded), post, accepted, bar)
        # 2. the listing, from the saved cursor
        cursor, exhausted, refreshing = q["cursor"], q["exhausted"], q["refreshing"]
        if exhausted and total < limit:  # finished before: look for posts added since, from the top
            cursor, exhausted, refreshing = None, 0, 1
            with db:
                db.execute("UPDATE crawl_queries SET cursor=NULL, exhausted=0, refreshing=1 WHERE id=?", (qid,))
        empty_strikes = 0
        while not exhausted and total < limit:
            posts, count = crawler.api_page(query, cursor)
            offset = int(cursor or 0) if s.api == "gelbooru02" else None
            if not posts:
                # An empty page ends the listing only when seen twice in a row (or past the known count): a
                # hiccup of the site must not end a crawl early.
                if (count is not None and offset is not None and offset >= count) or empty_strikes >= 1:
                    exhausted = 1
                else:
                    empty_strikes += 1
                    crawler._sleep_backoff(0)
                    continue
            else:
                empty_strikes = 0
                new = 0
                for post in posts:
                    known_before = db.execute("SELECT 1 FROM crawl_posts WHERE site=? AND post_id=?",
                                              (s.name, post.id)).fetchone() is not None
                    fresh = post.id not in crawler.done_this_run
                    total = _count(crawler, crawler.process(post, qid, excluded), post, accepted, bar)
                    new += fresh and not known_before
                    if total >= limit:
                        break
                if total >= limit:
                    break  # the cursor stays before this page: a rerun with a larger limit re-reads it
                if s.api == "danbooru":
                    low = min(p.id for p in posts)
                    if cursor and low >= int(cursor[1:]):
                        exhausted = 1  # the site ignored the cursor: stop rather than loop
                    cursor = f"b{low}"
                else:
                    cursor = str((int(cursor or 0) // crawler.page_size + 1) * crawler.page_size)
                if refreshing and new == 0:
                    exhausted = 1  # reached posts crawled before: nothing newer is left
            if exhausted:
                refreshing = 0
            with db:
                db.execute("UPDATE crawl_queries SET cursor=?, exhausted=?, refreshing=?, pages=pages+1,"
                           " updated_at=? WHERE id=?", (cursor, exhausted, refreshing, time.time(), qid))
    finally:
        bar.close()
        client.close()
    return {**crawler.stats, "total": total}


def _count(crawler: Crawler, outcome: str, post: Post, accepted: set[str], bar) -> int:
    """Tally one post's outcome; returns the number of distinct images accepted for the query."""
    crawler.stats[outcome] += 1
    row = crawler.db.execute("SELECT status, sha256 FROM crawl_posts WHERE site=? AND post_id=?",
                             (crawler.site.name, post.id)).fetchone()
    if row is not None and row["status"] == "accepted" and row["sha256"] not in accepted:
        accepted.add(row["sha256"])
        bar.update(1)
    bar.set_postfix(failed=crawler.stats["failed"], skipped=crawler.stats["skipped"])
    return len(accepted)


# ------------------------------------------------------------------------------------------------ URL lists

URL_SITE = "urls"
MAX_URLS = 100_000


def parse_url_list(text: str) -> tuple[list[str], list[tuple[int, str, str]]]:
    """A URL list (one URL per line; blank lines and ``#`` comments ignored) -> (the http(s) URLs in order, each
    once; the skipped lines as (line number, line, reason))."""
    urls: list[str] = []
    seen: set[str] = set()
    skipped: list[tuple[int, str, str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = urlsplit(line)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            skipped.append((n, line[:80], "not an http(s) URL"))
            continue
        if any(c.isspace() for c in line):
            skipped.append((n, line[:80], "spaces inside the URL"))
            continue
        if line in seen:
            skipped.append((n, line[:80], "duplicate"))
            continue
        seen.add(line)
        urls.append(line)
    if len(urls) > MAX_URLS:
        raise DatasetError(f"{len(urls)} URLs: a list takes at most {MAX_URLS} (split it)")
    return urls, skipped


def url_post(url: str, tags: list[str]) -> Post:
    """A URL as a crawl post: its id a stable hash of the URL, no md5 (the file is checked by decoding)."""
    post_id = int(hashlib.sha256(url.encode()).hexdigest()[:15], 16)  # < 2**60: an SQLite integer
    ext = _ext_of(urlsplit(url).path) or ".png"  # unknown: the content decides (decoded before it is stored)
    return Post(id=post_id, md5=None, file_url=url, ext=ext, tags=list(tags), rating=None, post_url=url)


def run_fetch(store: Store, urls_file: str, tags: list[str] | None = None, progress: bool = True,
              client_factory: Callable[[], httpx.Client] | None = None, min_interval: float | None = None,
              timeout: float | None = None, backoff: float | None = None,
              attempts: int | None = None) -> dict[str, int]:
    """``tintline data fetch DATASET URLS.txt``: download every image of a URL list into ``store`` with the
    crawler's politeness (per-host rate limit, Retry-After, retries with backoff, size limits) and its resumable
    state (table ``crawl_posts`` under the site name ``urls``; the list itself is a query in ``crawl_queries``): a
    rerun after a kill fetches only what is missing and retries transient failures. Returns the crawl counts plus
    ``bad_lines`` (lines that are not http(s) URLs or repeat one; each printed with its reason)."""
    from pathlib import Path

    path = Path(urls_file)
    if not path.is_file():
        raise DatasetError(f"URL list not found: {urls_file}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{urls_file}: not a UTF-8 text file") from e
    urls, bad = parse_url_list(text)
    for n, line, why in bad:
        print(f"{urls_file}:{n}: skipped ({why}): {line}", file=sys.stderr)
    min_interval = _env("TINTLINE_CRAWL_MIN_INTERVAL", float, min_interval)
    timeout = _env("TINTLINE_CRAWL_TIMEOUT", float, timeout)
    backoff = _env("TINTLINE_CRAWL_BACKOFF", float, backoff)
    attempts = _env("TINTLINE_CRAWL_ATTEMPTS", int, attempts)
    min_interval = 1.0 if min_interval is None else max(0.0, min_interval)
    timeout = 30.0 if timeout is None else timeout
    backoff = 2.0 if backoff is None else backoff
    attempts = 5 if attempts is None else attempts
    tags = list(dict.fromkeys(tags or []))
    db = store.db
    db.executescript(SCHEMA)
    site = Site(URL_SITE, "", URL_SITE)
    canon = json.dumps({"list": str(path.resolve()), "tags": sorted(tags)}, sort_keys=True)
    now = time.time()
    with db:
        db.execute("INSERT OR IGNORE INTO crawl_queries (site, api, base_url, query, created_at, updated_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)", (URL_SITE, URL_SITE, "", canon, now, now))
    qid = db.execute("SELECT id FROM crawl_queries WHERE base_url='' AND api=? AND query=?",
                     (URL_SITE, canon)).fetchone()["id"]
    client = client_factory() if client_factory else httpx.Client(
        headers={"User-Agent": USER_AGENT}, follow_redirects=False, timeout=timeout)
    crawler = Crawler(store, site, client=client, min_interval=min_interval, timeout=timeout, attempts=attempts,
                      backoff=backoff, page_size=1, fmt="json")
    accepted = _accepted_images(db, qid)
    bar = tqdm(total=len(urls), desc="fetch", unit="url", disable=not progress)
    try:
        for url in urls:
            post = url_post(url, tags)
            _count(crawler, crawler.process(post, qid, set()), post, accepted, bar)
            bar.update(0)
    finally:
        bar.close()
        client.close()
    return {**crawler.stats, "bad_lines": len(bad), "total": len(accepted)}
