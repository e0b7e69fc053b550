"""What makes pages fast, pinned as behaviour: renders per build, 304s, gzip once, the fast path's replays."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import template_rendered

from blog import pipeline
from blog.serving import current as state_module
from tests.conftest import ROOT, make_app, make_config

CACHED = ["/", "/log/verify-config", "/log/verify-config.md", "/tags", "/tags/tor", "/archive", "/archive/2026",
          "/pages/start-here", "/feed.atom", "/feed.rss", "/sitemap.xml", "/robots.txt", "/llms.txt"]
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def renders(app):
    """Count template renders in the app, through Flask's own signal."""
    seen: list[str] = []

    def record(sender, template, context, **extra):
        seen.append(template.name)

    template_rendered.connect(record, app)
    yield seen
    template_rendered.disconnect(record, app)


def answer(client, path: str, headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    response = client.get(path, headers=headers or {})
    return response.status_code, sorted(response.headers.items()), response.data


@pytest.mark.parametrize("path", CACHED)
@pytest.mark.parametrize("headers", [{}, GZIP], ids=["plain", "gzip"])
def test_fast_path_replays_flasks_answer_byte_for_byte(app, path: str, headers: dict[str, str]) -> None:
    client = app.test_client()
    fast = app.extensions["blog.fastpath"]
    first = answer(client, path, headers)
    before = fast.replayed
    again = answer(client, path, headers)
    assert fast.replayed == before + 1, "the second GET should not reach Flask"
    assert again == first
    assert first[0] == 200


def test_a_page_renders_once_per_build_whatever_the_requests(app, renders) -> None:
    client = app.test_client()
    for _ in range(5):
        for headers in ({}, GZIP, {"Accept-Encoding": "identity"}):
            assert client.get("/log/verify-config", headers=headers).status_code == 200
    assert renders == ["entry.html"]


def test_conditional_requests_get_304_without_rendering(app, renders) -> None:
    client = app.test_client()
    first = client.get("/tags/tor", headers=GZIP)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    renders.clear()
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f"W/{etag}, \"other\""},
                    {"If-Modified-Since": modified}, {"If-None-Match": etag, **GZIP}):
        response = client.get("/tags/tor", headers=headers)
        assert response.status_code == 304, headers
        assert response.data == b""
        assert response.headers["ETag"] == etag
    assert renders == []
    assert client.get("/tags/tor", headers={"If-None-Match": '"stale"'}).status_code == 200


def test_replayed_304_matches_flasks_304(app) -> None:
    client = app.test_client()
    etag = client.get("/").headers["ETag"]
    first = answer(client, "/", {"If-None-Match": etag})
    before = app.extensions["blog.fastpath"].replayed
    again = answer(client, "/", {"If-None-Match": etag})
    assert app.extensions["blog.fastpath"].replayed == before + 1
    assert again == first and first[0] == 304


def test_gzip_is_made_once_per_build_and_kept(app) -> None:
    client = app.test_client()
    packed = client.get("/", headers=GZIP)
    cache = app.extensions["blog.cache"]
    pages = list(cache._pages.values())
    assert len(pages) == 1 and pages[0].gzipped == packed.data
    for headers in (GZIP, {}, {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT", **GZIP}):
        client.get("/", headers=headers)
    assert list(cache._pages.values()) == pages and cache._pages[next(iter(cache._pages))] is pages[0]
    assert gzip.decompress(pages[0].gzipped) == pages[0].body
    assert len(pages[0].gzipped) < len(pages[0].body) / 2


def test_a_new_build_is_served_at_once_not_a_replay(config, app, monkeypatch) -> None:
    monkeypatch.setattr(state_module, "CHECK_EVERY", 0.0)
    client = app.test_client()
    assert b"What broke" in client.get("/log/verify-config").data
    assert b"What broke" in client.get("/log/verify-config").data
    path = config.content_dir / "log" / "2026-10-02-verify-config.md"
    path.write_text(path.read_text().replace("What broke", "What went wrong"))
    time.sleep(0.01)
    pipeline.publish(config)
    assert b"What went wrong" in client.get("/log/verify-config").data


def test_a_newly_published_onion_address_reaches_replayed_pages(site_dir: Path, tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.setattr(state_module, "CHECK_EVERY", 0.0)
    cfg = make_config(site_dir, tmp_path / "data", onion_key_path=tmp_path / "onion" / "key")
    client = make_app(cfg).test_client()
    for _ in range(2):
        assert "Onion-Location" not in client.get("/log/verify-config").headers
    (tmp_path / "onion").mkdir()
    (tmp_path / "onion" / "hostname").write_text("b" * 56 + ".onion\n")
    assert client.get("/log/verify-config").headers["Onion-Location"] == f"http://{'b' * 56}.onion/log/verify-config"


def test_head_and_errors_go_through_flask(app) -> None:
    client = app.test_client()
    fast = app.extensions["blog.fastpath"]
    for _ in range(2):
        assert client.get("/log/nope").status_code == 404
        head = client.head("/log/verify-config")
        assert head.status_code == 200 and head.data == b""
    client.get("/search?q=tor")
    client.get("/search?q=tor")
    assert fast.replayed == 0


@pytest.mark.parametrize("path", ["/", "/log/verify-config", "/tags/tor", "/archive", "/search?q=tor"])
def test_a_page_is_one_request(client, path: str) -> None:
    html = client.get(path).data.decode()
    # Anything a browser would fetch to show the page: scripts, styles, images, fonts, frames, icons.
    fetched = re.findall(r'<(?:script|img|iframe|source|video|audio|embed|object)\b[^>]*(?:src|data)="([^"]+)"', html)
    for tag in re.findall(r"<link\b[^>]*>", html):
        rel = re.search(r'rel="([^"]+)"', tag)
        href = re.search(r'href="([^"]+)"', tag)
        if rel and href and set(rel.group(1).split()) & {"stylesheet", "icon", "preload", "prefetch", "manifest"}:
            fetched.append(href.group(1))
    assert [u for u in fetched if not u.startswith("data:")] == [], path


def test_search_pages_are_compressed_when_accepted(client) -> None:
    plain = client.get("/search?q=tor")
    packed = client.get("/search?q=tor", headers=GZIP)
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"] and "no-store" in packed.headers["Cache-Control"]
    assert gzip.decompress(packed.data) == plain.data
    assert len(packed.data) < len(plain.data) / 2


def test_recorded_answers_stay_bounded(app) -> None:
    client = app.test_client()
    fast = app.extensions["blog.fastpath"]
    fast.limit = 3
    expected = {path: client.get(path).data for path in CACHED}
    for path in CACHED:
        assert client.get(path).data == expected[path]
    assert len(fast._answers) <= 3


WORKER_START = r'''
import json, sys
from pathlib import Path
from blog.web import create_app
from tests.conftest import make_config

app = create_app(make_config(Path(sys.argv[1]), Path(sys.argv[2])))
heavy = lambda: sorted(m for m in ("whoosh", "numpy", "blog.index.search") if m in sys.modules)
client = app.test_client()
at_create, page = heavy(), client.get("/").status_code
after_page = heavy()
found = client.get("/search?q=tor")
print(json.dumps({"at_create": at_create, "after_page": after_page, "page": page, "search": found.status_code,
                  "after_search": heavy()}))
'''


def test_a_worker_loads_the_search_side_at_its_first_search_not_at_its_start(config) -> None:
    """Whoosh's query modules and numpy are 0.2 s of a worker's start that its pages never need (web/context.py)."""
    pipeline.publish(config)  # as gunicorn's master does before any worker starts
    done = subprocess.run([sys.executable, "-c", WORKER_START, str(config.content_dir), str(config.data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BLOG_CONFIG": "/dev/null"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["at_create"] == [] and report["after_page"] == [], report
    assert report["page"] == report["search"] == 200
    assert report["after_search"] == ["blog.index.search", "numpy", "whoosh"], report
