"""The booru crawler against a local fake booru (tests/booru_server.py): exact results, politeness, faults, resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from booru_server import ALL_FAULTS, KIND_OUTCOME, BooruServer  # noqa: E402

from tintline.data import crawl as crawl_mod  # noqa: E402
from tintline.data.crawl import USER_AGENT, HostRateLimiter, build_query, resolve_site, run_crawl  # noqa: E402
from tintline.data.store import DatasetError, Store  # noqa: E402

INTERVAL = 0.04
FAST = {"progress": False, "min_interval": INTERVAL, "timeout": 0.3, "page_size": 4, "backoff": 0.02, "attempts": 5}
FAST_ENV = {
    "TINTLINE_CRAWL_MIN_INTERVAL": str(INTERVAL), "TINTLINE_CRAWL_TIMEOUT": "0.3", "TINTLINE_CRAWL_PAGE_SIZE": "4",
    "TINTLINE_CRAWL_BACKOFF": "0.02", "TINTLINE_CRAWL_ATTEMPTS": "5",
}
TAGS = "1girl"


def crawl(store: Store, srv: BooruServer, api: str, **kw) -> dict[str, int]:
    return run_crawl(store, site=srv.url, api=api, tags=kw.pop("tags", TAGS), **{**FAST, **kw})


def post_states(store: Store) -> dict[int, tuple]:
    return {r["post_id"]: (r["status"], r["reason"]) for r in store.db.execute("SELECT * FROM crawl_posts")}


def manifest(root: Path) -> dict[str, set]:
    """Everything a crawl leaves in a dataset, as comparable sets (timestamps and retry counters left out)."""
    with Store.open(root) as st:
        db = st.db
        return {
            "images": {tuple(r) for r in db.execute("SELECT sha256, ext, bytes, status FROM images")},
            "origins": {tuple(r) for r in db.execute("SELECT sha256, source, origin, extra FROM origins")},
            "tags": {tuple(r) for r in db.execute("SELECT sha256, tag FROM tags")},
            "posts": {tuple(r) for r in db.execute("SELECT site, post_id, status, reason, sha256 FROM crawl_posts")},
            "objects": {str(p.relative_to(root)) for p in (root / "objects").rglob("*") if p.is_file()
                        and not p.name.endswith(".tmp")},
        }


def check_exact(store: Store, srv: BooruServer, api: str, tags: str = TAGS, exclude: str = "",
                rating: str | None = None) -> None:
    """The dataset holds exactly the posts the query lists: each once, with its tags and metadata."""
    assert post_states(store) == srv.expected(tags, exclude, rating)
    good = [p for p in srv.matching(tags, exclude, rating) if KIND_OUTCOME[p.kind][0] == "accepted"]
    shas = {hashlib.sha256(p.data).hexdigest() for p in good}
    rows = store.db.execute("SELECT sha256, ext, status FROM images").fetchall()
    assert sorted(r["sha256"] for r in rows) == sorted(shas)  # none lost, none duplicated, no failed file stored
    assert all(r["status"] == "pending" and r["ext"] == ".png" for r in rows)
    for p in good:
        sha = hashlib.sha256(p.data).hexdigest()
        assert store.object_path(sha, ".png").read_bytes() == p.data
    origins = {r["origin"]: r for r in store.db.execute("SELECT * FROM origins")}
    assert set(origins) == {srv.file_url(p, api) for p in good}
    by_url: dict[str, list] = {}
    for p in good:
        by_url.setdefault(srv.file_url(p, api), []).append(p)
    for url, posts in by_url.items():
        extra = json.loads(origins[url]["extra"])
        first = max(posts, key=lambda p: p.id)  # the listing is newest first: that post is stored first
        assert origins[url]["source"] == srv.host
        assert extra["post_id"] == first.id and extra["md5"] == first.md5 and extra["site"] == srv.host
        want_rating = first.rating if api == "danbooru" else {"g": "general", "s": "sensitive", "q": "questionable",
                                                              "e": "explicit"}[first.rating]
        assert extra["rating"] == want_rating
        assert str(first.id) in extra["post_url"]
        sha = hashlib.sha256(posts[0].data).hexdigest()
        assert set(store.tags_of(sha)) == set().union(*(p.tags for p in posts))


def check_polite(srv: BooruServer, interval: float = INTERVAL) -> None:
    """Requests to this host were spaced by the rate limit, named tintline, and waited out every Retry-After."""
    log = sorted(srv.requests(), key=lambda e: e["t"])
    assert log and all(e["ua"] == USER_AGENT for e in log)
    gaps = [b["t"] - a["t"] for a, b in zip(log, log[1:], strict=False)]
    # arrival times jitter (server and crawler share one GIL on 2 loaded cores; one request seen 27 ms late): a late
    # arrival lengthens one gap and shortens the next by as much, so pairs of consecutive gaps are what the limiter
    # guarantees. Without a limiter the gaps would be the few ms a download, decode and commit take
    assert min(gaps) >= 0.25 * interval, min(gaps)
    pairs = [a + b for a, b in zip(gaps, gaps[1:], strict=False)]
    assert not pairs or min(pairs) >= 1.25 * interval, min(pairs)
    assert (log[-1]["t"] - log[0]["t"]) >= 0.95 * interval * len(gaps)
    for a, b in zip(log, log[1:], strict=False):
        if a["status"] == 429:
            assert b["t"] - a["t"] >= 0.9 * float(srv.retry_after)


# ------------------------------------------------------------------------------------------------ units


def test_sites_queries_and_ratings():
    assert resolve_site("safebooru", None) == crawl_mod.Site("safebooru", "https://safebooru.org", "gelbooru02")
    assert resolve_site("danbooru", None).api == "danbooru"
    assert resolve_site("https://gelbooru.com/", None).name == "gelbooru"
    assert resolve_site("http://127.0.0.1:8080/booru/", "danbooru") == crawl_mod.Site(
        "127.0.0.1:8080", "http://127.0.0.1:8080/booru", "danbooru")
    for bad, api in (("http://example.org", None), ("ftp://x", "danbooru"), ("nosuchsite", None),
                     ("danbooru", "gelbooru02"), ("safebooru", "moebooru")):
        with pytest.raises(DatasetError):
            resolve_site(bad, api)
    gel, dan, gelcom = resolve_site("safebooru", None), resolve_site("danbooru", None), resolve_site("gelbooru", None)
    assert build_query(gel, "1girl solo", "monochrome -comic", "safe")[2] == "1girl solo -monochrome -comic rating:safe"
    assert build_query(dan, "1girl", "", "safe")[2] == "1girl rating:g"
    assert build_query(dan, "1girl", "", "explicit")[2] == "1girl rating:e"
    assert build_query(gelcom, "1girl", "", "safe")[2] == "1girl rating:general"
    assert build_query(gel, "1girl", "", "q")[2] == "1girl rating:questionable"
    with pytest.raises(DatasetError):
        build_query(gel, "1girl", "", "nsfw-ish")
    with pytest.raises(DatasetError):
        build_query(dan, "1girl order:score", "", None)


def test_custom_url_without_api_is_a_one_line_error(tmp_path):
    with Store.create(tmp_path / "ds") as st, pytest.raises(DatasetError, match="--api") as e:
        run_crawl(st, site="http://127.0.0.1:9", api=None, tags="1girl")
    assert "\n" not in str(e.value)  # the CLI prints a DatasetError as one line and exits 2


def test_parsers():
    base = "http://b"
    with pytest.raises(crawl_mod._Retry, match="DOCTYPE"):
        crawl_mod.parse_gelbooru(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><posts/>', base)
    with pytest.raises(crawl_mod._Fail, match="Too deep"):
        crawl_mod.parse_gelbooru(b'<response success="false" reason="Too deep! Pull it back some."/>', base)
    with pytest.raises(crawl_mod._Retry, match="malformed"):
        crawl_mod.parse_gelbooru(b'[{"id": 1, "tags": "a"', base)
    with pytest.raises(crawl_mod._Retry, match="malformed"):
        crawl_mod.parse_danbooru(b'[{"md5": "x"}]', base)  # a post without an id
    with pytest.raises(crawl_mod._Fail, match="2 tags"):
        crawl_mod.parse_danbooru(b'{"success": false, "message": "You cannot search for more than 2 tags"}', base)
    assert crawl_mod.parse_gelbooru(b"", base) == ([], None)
    assert crawl_mod.parse_gelbooru(b'{"@attributes": {"limit": 100, "offset": 0, "count": 0}}', base) == ([], 0)
    posts, count = crawl_mod.parse_gelbooru(
        b'{"@attributes": {"count": 7}, "post": {"id": 5, "directory": "ab/cd", "image": "f.JPG", "hash": "ABC",'
        b' "tags": " jack-o&#039;-lantern  solo ", "rating": "general"}}', base)
    assert count == 7 and posts[0].file_url == "http://b/images/ab/cd/f.JPG" and posts[0].ext == ".jpg"
    assert posts[0].tags == ["jack-o'-lantern", "solo"] and posts[0].md5 == "abc"
    assert crawl_mod._retry_after("3") == 3.0 and crawl_mod._retry_after(None) == 1.0
    assert 50 < crawl_mod._retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))) <= 61


def test_rate_limiter_is_per_host():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    lim = HostRateLimiter(1.0, clock=lambda: now[0], sleep=sleep)
    lim.wait("a")
    lim.wait("b")  # another host: no wait
    assert slept == []
    now[0] += 0.25
    lim.wait("a")
    assert slept == [pytest.approx(0.75)]
    lim.defer("b", 5.0)
    lim.wait("b")
    assert slept[-1] == pytest.approx(5.0)  # Retry-After counts from now


# ------------------------------------------------------------------------------------------------ crawls


@pytest.mark.parametrize("api,fmt,style", [("danbooru", None, None), ("gelbooru02", "json", "list"),
                                           ("gelbooru02", "json", "dict"), ("gelbooru02", "xml", None)])
def test_clean_crawl_is_exact(tmp_path, api, fmt, style):
    with BooruServer(gel_json=style or "list") as srv, Store.create(tmp_path / "ds") as st:
        stats = crawl(st, srv, api, gelbooru_format=fmt)
        check_exact(st, srv, api)
        check_polite(srv)
        n_good = len({p.md5 for p in srv.matching(TAGS) if KIND_OUTCOME[p.kind][0] == "accepted"})
        assert stats["accepted"] == stats["total"] == n_good
        assert stats["failed"] == 4 and stats["skipped"] == 2  # html, garbage, bad md5, 404; video, no file
        # every file was fetched once (the one whose md5 never matches: once per attempt), none for skipped posts
        files = [e["path"].rsplit("/", 1)[-1] for e in srv.requests("file")]
        bad = next(p.name for p in srv.posts if p.kind == "bad_md5")
        assert files.count(bad) == FAST["attempts"]
        assert len(files) - FAST["attempts"] == len(set(files) - {bad})
        assert not any(p.endswith(".webm") for p in files)


@pytest.mark.parametrize("api,fmt,style", [("danbooru", None, None), ("gelbooru02", "xml", None),
                                           ("gelbooru02", "json", "dict")])
def test_every_fault_at_once(tmp_path, api, fmt, style):
    with (BooruServer() as cdn, BooruServer(faults=ALL_FAULTS, gel_json=style or "list", file_base=cdn.url) as srv,
          Store.create(tmp_path / "ds") as st):
        cdn.faults = ALL_FAULTS
        stats = crawl(st, srv, api, gelbooru_format=fmt, exclude_tags="monochrome")
        check_exact(st, srv, api, exclude="monochrome")
        assert set(srv.fired) >= {"429", "500", "503", "slow", "truncate", "malformed", "empty"}, srv.fired
        assert set(cdn.fired) >= {"429", "500", "503", "slow", "truncate", "wrong_md5"}, cdn.fired
        assert stats["skipped_known"] >= 1  # the posts repeated on two pages
        assert not srv.requests("file") and not cdn.requests("api")  # files came from the CDN host only
        check_polite(srv)  # each host held its own rate limit...
        check_polite(cdn)
        both = sorted(e["t"] for e in srv.requests() + cdn.requests())
        assert min(b - a for a, b in zip(both, both[1:], strict=False)) < 0.5 * INTERVAL  # ...independently


def test_excluded_tags_are_checked_on_each_post_too(tmp_path):
    """A site that ignores the -tag part of the query: the crawler skips the posts itself, without downloading."""
    with BooruServer(ignore_exclude=True) as srv, Store.create(tmp_path / "ds") as st:
        stats = crawl(st, srv, "danbooru", exclude_tags="monochrome")
        listed = srv.matching(TAGS)
        hit = {p.id for p in listed if "monochrome" in p.tags}
        assert hit and stats["skipped"] >= len(hit)
        states = post_states(st)
        assert set(states) == {p.id for p in listed}  # the site listed them all...
        for pid in hit:  # ...but those carrying an excluded tag were skipped, for that reason
            assert states[pid] == ("skipped", "excluded-tag"), pid
        assert {k: v for k, v in states.items() if k not in hit} == srv.expected(TAGS, "monochrome")
        hit_files = {p.name for p in listed if p.id in hit}
        assert not hit_files & {e["path"].rsplit("/", 1)[-1] for e in srv.requests("file")}  # never downloaded


CREDS = {"TINTLINE_DANBOORU_LOGIN": "alice", "TINTLINE_DANBOORU_API_KEY": "s3cret-danbooru",
         "TINTLINE_GELBOORU_USER_ID": "gel-user", "TINTLINE_GELBOORU_API_KEY": "s3cret-gelbooru"}


def _sent_secrets(srv: BooruServer) -> list[dict]:
    """The requests to ``srv`` that carried any credential (by parameter name or value)."""
    return [e for e in srv.requests() if {"login", "api_key", "user_id"} & set(e["query"])
            or any(v in e["path"] + json.dumps(e["query"]) for v in CREDS.values())]


def test_api_keys_go_to_their_own_site_only(tmp_path, monkeypatch):
    """The danbooru keys reach danbooru's API (here a local server standing in for it) and nothing else: not its
    file host, not a custom URL speaking the same API, not gelbooru's keys; with half a pair, nothing is sent."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    with BooruServer(n_posts=8) as cdn, BooruServer(n_posts=8, file_base=cdn.url) as site, \
            BooruServer(n_posts=8) as custom:
        monkeypatch.setitem(crawl_mod.SITES, "danbooru", (site.url, "danbooru"))
        with Store.create(tmp_path / "a") as st:
            stats = run_crawl(st, site="danbooru", api=None, tags=TAGS, **FAST)
        assert stats["accepted"] >= 1 and cdn.requests("file")
        api = site.requests("api")
        assert api and all((e["query"].get("login"), e["query"].get("api_key")) == ("alice", "s3cret-danbooru")
                           for e in api)
        assert not any("user_id" in e["query"] for e in api)  # gelbooru's keys stay home
        assert not site.requests("file") and _sent_secrets(cdn) == []  # the file host gets none
        with Store.create(tmp_path / "b") as st:  # a custom URL speaking danbooru's API is another site
            assert crawl(st, custom, "danbooru")["accepted"] >= 1
        assert custom.requests("api") and _sent_secrets(custom) == []
        monkeypatch.delenv("TINTLINE_DANBOORU_API_KEY")  # half a pair: neither is sent
        n_before = len(site.requests())
        with Store.create(tmp_path / "c") as st:
            run_crawl(st, site="danbooru", api=None, tags=TAGS, **FAST)
        assert len(site.requests()) > n_before and _sent_secrets(site)[-1]["t"] < site.requests()[n_before]["t"]


def test_rating_and_limit_and_rerun_fetches_nothing(tmp_path):
    with BooruServer() as srv, Store.create(tmp_path / "ds") as st:
        stats = crawl(st, srv, "danbooru", rating="general", limit=3)
        assert stats["total"] == 3 and stats["accepted"] == 3
        states = post_states(st)
        accepted = {k for k, v in states.items() if v[0] == "accepted"}
        expected = srv.expected(TAGS, rating="g")
        assert len(accepted) == 3 and accepted <= {k for k, v in expected.items() if v[0] == "accepted"}
        n = len(srv.requests())
        assert crawl(st, srv, "danbooru", rating="general", limit=3)["requests"] == 0  # limit already met
        assert len(srv.requests()) == n
        stats = crawl(st, srv, "danbooru", rating="g", limit=100)  # same query, spelled differently
        assert stats["total"] == len({k for k, v in expected.items() if v[0] == "accepted"})
        check_exact(st, srv, "danbooru", rating="g")
        files = [e["path"] for e in srv.requests("file") if e["status"] == 200]
        assert len(files) == len(set(files))  # nothing downloaded twice
        n = len(srv.requests())
        assert crawl(st, srv, "danbooru", rating="g")["accepted"] == 0
        assert [e["kind"] for e in srv.requests()[n:]] == ["api"]  # finished: one look at the newest page


def test_new_posts_are_picked_up_on_rerun(tmp_path):
    with BooruServer() as srv, Store.create(tmp_path / "ds") as st:
        crawl(st, srv, "gelbooru02", attempts=2)
        before = len(srv.requests())
        new = srv.add_posts(3)
        stats = crawl(st, srv, "gelbooru02", attempts=2)
        assert stats["accepted"] == 3 and stats["pages"] == 2  # newest page, then a page of known posts: stop
        bad = next(p.name for p in srv.posts if p.kind == "bad_md5")
        got = [e["path"].rsplit("/", 1)[-1] if e["kind"] == "file" else "api" for e in srv.requests()[before:]]
        # the md5 failure is transient for all we know: retried first (2 attempts); then 2 pages, 3 new files
        assert got == [bad, bad, "api", *[p.name for p in sorted(new, key=lambda p: -p.id)], "api"]
        check_exact(st, srv, "gelbooru02")


def test_transient_failure_is_retried_next_run(tmp_path):
    with BooruServer() as srv, Store.create(tmp_path / "ds") as st:
        victim = srv.matching(TAGS)[0]
        srv.broken_files.add(victim.name)
        crawl(st, srv, "danbooru", attempts=2)
        assert post_states(st)[victim.id] == ("failed", "http-503")
        srv.broken_files.clear()
        stats = crawl(st, srv, "danbooru", attempts=2)
        assert stats["accepted"] == 1
        check_exact(st, srv, "danbooru")


def test_file_size_cap(tmp_path):
    with BooruServer() as srv, Store.create(tmp_path / "ds") as st:
        cfg = st.load_config()
        st.save_config(cfg.model_copy(update={"max_bytes": 200}))
        crawl(st, srv, "gelbooru02", gelbooru_format="xml")  # no file_size in the API: the stream is cut
        states = post_states(st)
        assert {v for k, v in states.items() if v[0] != "skipped"} == {("failed", "too-large-file"),
                                                                      ("failed", "http-404"),
                                                                      ("failed", "bad-content-type")}
        assert st.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0


def test_api_redirect_to_another_host_is_refused(tmp_path):
    with BooruServer() as target, BooruServer(redirect_api_to=None) as srv, Store.create(tmp_path / "ds") as st:
        srv.redirect_api_to = target.url.replace("127.0.0.1", "localhost")
        with pytest.raises(DatasetError, match="another host"):
            crawl(st, srv, "danbooru")
        assert target.requests() == [] and len(srv.requests()) == 1


def test_xml_with_doctype_is_refused(tmp_path):
    with BooruServer(doctype=True) as srv, Store.create(tmp_path / "ds") as st:
        with pytest.raises(DatasetError, match="DOCTYPE"):
            crawl(st, srv, "gelbooru02", gelbooru_format="xml", attempts=2)
        assert st.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0


def test_kill9_then_resume_matches_an_uninterrupted_crawl(tmp_path):
    with BooruServer(faults=ALL_FAULTS) as srv:
        with Store.create(tmp_path / "ref") as st:
            crawl(st, srv, "danbooru")
        srv.reset_faults()
        ds = tmp_path / "killed"
        env = {**os.environ, **FAST_ENV}
        cmd = [sys.executable, "-m", "tintline.cli", "data", "crawl", str(ds), "--site", srv.url, "--api", "danbooru",
               "--tags", TAGS]
        kills = 0
        for target in (3, 9, 16, 24):  # requests into the run: mid page, mid download, mid commit, ...
            n0 = len(srv.requests())
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while proc.poll() is None and len(srv.requests()) - n0 < target:
                time.sleep(0.002)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        assert kills >= 3
        with Store.open(ds) as st:
            had = {r["origin"] for r in st.db.execute("SELECT origin FROM origins")}
            settled = {r["file_url"] for r in st.db.execute("SELECT file_url FROM crawl_posts WHERE retryable = 0")}
        assert had and had <= settled
        n0 = len(srv.requests())
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith("crawl finished:")
        again = {srv.url + e["path"] for e in srv.requests()[n0:] if e["kind"] == "file"}
        assert not again & settled  # the last run fetched nothing it already had or knew to be broken
        assert manifest(ds) == manifest(tmp_path / "ref")
        with Store.open(ds) as st:
            check_exact(st, srv, "danbooru")


# ------------------------------------------------------------------------------------------------ URL lists


def test_fetch_a_url_list_politely_and_resumably(tmp_path, capsys):
    from tintline.data.crawl import URL_SITE, run_fetch

    fast = {k: v for k, v in FAST.items() if k != "page_size"}
    # every fault but another file's bytes, which a URL list (no md5) cannot tell from the real file
    faults = tuple(f for f in ALL_FAULTS if f != "wrong_md5")
    with BooruServer(faults=faults) as srv, Store.create(tmp_path / "ds") as st:
        posts = [p for p in srv.posts if p.kind in ("ok", "html", "garbage", "missing")]
        urls = [srv.file_url(p, "danbooru") for p in posts]
        lines = ["# a comment", "", *urls, urls[0], "ftp://example.org/x.png", "javascript:alert(1)",
                 "just words"]
        listing = tmp_path / "urls.txt"
        listing.write_text("\n".join(lines) + "\n")
        stats = run_fetch(st, str(listing), tags=["fetched"], **fast)
        good = {p.md5 for p in posts if p.kind == "ok"}
        assert stats["accepted"] == stats["total"] == len(good)
        assert stats["failed"] == len(posts) - sum(p.kind == "ok" for p in posts)
        assert stats["bad_lines"] == 4  # a duplicate, ftp, javascript, words
        err = capsys.readouterr().err
        assert "not an http(s) URL" in err and "duplicate" in err
        rows = st.db.execute("SELECT status, reason FROM crawl_posts WHERE site=?", (URL_SITE,)).fetchall()
        assert sorted(r["status"] for r in rows) == sorted("accepted" if p.kind == "ok" else "failed" for p in posts)
        tagged = st.db.execute("SELECT COUNT(DISTINCT sha256) FROM tags WHERE tag='fetched'").fetchone()[0]
        assert tagged == len(good)
        check_polite(srv)
        files_before = len(srv.requests("file"))
        again = run_fetch(st, str(listing), tags=["fetched"], **fast)  # resumed: nothing stored twice
        assert again["accepted"] == 0 and again["total"] == len(good)
        assert len(srv.requests("file")) - files_before <= again["failed"] * FAST["attempts"]
    with Store.create(tmp_path / "ds2") as st, pytest.raises(DatasetError, match="not found"):
        run_fetch(st, str(tmp_path / "nope.txt"), **fast)
