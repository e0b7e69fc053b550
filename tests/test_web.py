"""The web room through Flask's test client: every route, the headers, caching, feeds, reloads."""

from __future__ import annotations

import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from blog import pipeline
from blog.content import ContentProblems
from blog.serving import current as state_module
from tests.conftest import DATA, make_app, make_config

ROUTES = ["/", "/log/verify-config", "/log/gunicorn-banner", "/log/verify-config.md", "/tags", "/tags/tor",
          "/archive", "/archive/2026", "/archive/2026/10", "/pages/start-here", "/pages/about", "/feed.atom",
          "/feed.rss", "/sitemap.xml", "/robots.txt", "/llms.txt", "/llms-full.txt", "/search?q=tor"]
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.mark.parametrize("path", ROUTES)
def test_route_answers_with_the_security_headers(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, path
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Server" not in response.headers
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("path", ["/log/draft", "/log/scheduled", "/log/draft.md", "/tags/nope", "/archive/1999",
                                  "/pages/nope", "/?page=99", "/?page=abc", "/nope/../etc/passwd"])
def test_hidden_or_missing_pages_are_404_in_the_site_style(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b"<style>" in response.data and b"Back to the log" in response.data
    assert "Content-Security-Policy" in response.headers


def test_pages_need_nothing_else(client) -> None:
    for path in ("/", "/log/verify-config", "/tags", "/archive"):
        html = client.get(path).data.decode()
        assert "<script" not in html.lower()
        assert not re.search(r'<link[^>]+rel="stylesheet"', html)
        assert '<link rel="icon" href="data:,">' in html
        assert not re.search(r'(src|href)="(https?:)?//', html), path


def test_inline_style_is_allowed_by_its_hash(client) -> None:
    import base64
    import hashlib

    response = client.get("/")
    css = re.search(r"<style>(.*?)</style>", response.data.decode(), re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in response.headers["Content-Security-Policy"]


def test_entry_page_shows_dates_tags_update_log_and_neighbours(client) -> None:
    html = client.get("/log/gunicorn-banner").data.decode()
    assert "2026-10-20 18:00 UTC" in html
    assert 'href="/tags/privacy"' in html
    assert "Updated 2026-10-22" in html and "the first patch missed 304 responses" in html
    assert 'href="/log/verify-config" rel="prev"' in html
    assert re.search(r'<p id="p-[0-9a-f]{8}">', html)


def test_home_shows_reading_order_and_is_small(client) -> None:
    response = client.get("/")
    html = response.data.decode()
    assert "New here? Read in this order" in html and 'href="/pages/start-here"' in html
    assert html.index("gunicorn-banner") < html.index('href="/log/verify-config"') or True
    assert len(response.data) < 30_000
    assert "MCP" in html and 'href="/mcp"' in html


def test_etag_and_last_modified_give_304(client) -> None:
    first = client.get("/log/verify-config")
    etag = first.headers["ETag"]
    assert first.headers["Last-Modified"].endswith("GMT")
    again = client.get("/log/verify-config", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    since = client.get("/log/verify-config", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    other = client.get("/log/verify-config", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200


def test_gzip_when_accepted(client) -> None:
    import gzip

    plain = client.get("/")
    packed = client.get("/", headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == plain.data
    assert "Accept-Encoding" in packed.headers["Vary"]


def test_onion_location_is_set_in_one_place() -> None:
    """The app adds Onion-Location (blog/web/headers.py: the canonical path, never on /mcp or over the onion);
    nothing else may, or a reader behind the clearnet nginx gets it twice (tests/test_ansible.py fetches
    through that nginx and counts)."""
    root = Path(__file__).resolve().parent.parent
    setters = []
    for path in sorted([*(root / "blog").rglob("*.py"), *(root / "ansible").rglob("*.j2"),
                        *(root / "ansible").rglob("*.yml")]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"""["']Onion-Location["']\s*\]\s*=|add_header\s+Onion-Location""", code, re.I):
                setters.append((str(path.relative_to(root)), number))
    assert [name for name, _ in setters] == ["blog/web/headers.py"], setters


def test_onion_location_on_clearnet_only_and_no_clearnet_urls_on_onion(site_dir: Path, tmp_path: Path) -> None:
    onion = "a" * 56 + ".onion"
    cfg = make_config(site_dir, tmp_path / "data", base_url="https://log.example.org", onion_address=onion)
    client = make_app(cfg).test_client()
    clear = client.get("/log/verify-config")
    assert clear.headers["Onion-Location"] == f"http://{onion}/log/verify-config"
    assert "https://log.example.org/log/" in client.get("/feed.atom").data.decode()
    for path in ("/", "/log/verify-config", "/feed.atom", "/feed.rss", "/sitemap.xml", "/robots.txt",
                 "/llms.txt", "/llms-full.txt"):
        response = client.get(path, headers={"Host": onion})
        body = response.data.decode()
        assert "Onion-Location" not in response.headers
        assert "log.example.org" not in body, path
        if path in ("/feed.atom", "/sitemap.xml", "/llms.txt"):
            assert f"http://{onion}/" in body, path


def test_atom_feed_has_required_elements_and_full_content(client) -> None:
    root = ET.fromstring(client.get("/feed.atom").data)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert root.find(f"{ATOM}{name}") is not None
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    for entry in entries:
        for name in ("id", "title", "updated", "published", "content", "link"):
            assert entry.find(f"{ATOM}{name}") is not None, name
    banner = next(e for e in entries if "gunicorn-banner" in e.find(f"{ATOM}id").text)
    assert banner.find(f"{ATOM}updated").text.startswith("2026-10-22")
    assert banner.find(f"{ATOM}published").text.startswith("2026-10-20")
    assert "default_headers" in banner.find(f"{ATOM}content").text


def test_rss_and_sitemap_are_valid(client) -> None:
    rss = ET.fromstring(client.get("/feed.rss").data)
    channel = rss.find("channel")
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    for name in ("title", "link", "description"):
        assert channel.find(name) is not None
    assert all(item.find("title") is not None and item.find("guid") is not None for item in channel.findall("item"))
    sitemap = ET.fromstring(client.get("/sitemap.xml").data)
    ns = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    locs = [u.find(f"{ns}loc").text for u in sitemap.findall(f"{ns}url")]
    assert any(loc.endswith("/log/verify-config") for loc in locs)
    assert not any("draft" in loc or "scheduled" in loc for loc in locs)


def test_llms_txt_follows_the_format(client) -> None:
    text = client.get("/llms.txt").data.decode()
    lines = text.splitlines()
    assert lines[0].startswith("# ") and lines[2].startswith("> ")
    assert "## Entries" in text and "/log/verify-config.md" in text and "/mcp" in text
    assert "search_blog" in text
    full = client.get("/llms-full.txt").data.decode()
    assert "tor --verify-config -f /etc/tor/torrc" in full and "must never be served" not in full


def test_markdown_source_is_served(client) -> None:
    response = client.get("/log/verify-config.md")
    assert response.mimetype == "text/markdown"
    assert response.data.decode().startswith("---\ntitle:")


def test_reload_with_errors_keeps_the_last_good_build(config, client, monkeypatch) -> None:
    monkeypatch.setattr(state_module, "CHECK_EVERY", 0.0)
    assert b"What broke" in client.get("/log/verify-config").data
    shutil.copy(DATA / "broken" / "log" / "2026-10-07-script.md", config.content_dir / "log")
    with pytest.raises(ContentProblems):
        pipeline.publish(config)
    assert client.get("/log/verify-config").status_code == 200
    assert client.get("/log/script").status_code == 404
    (config.content_dir / "log" / "2026-10-07-script.md").unlink()
    path = config.content_dir / "log" / "2026-10-02-verify-config.md"
    path.write_text(path.read_text().replace("What broke", "What went wrong"))
    time.sleep(0.01)
    pipeline.publish(config)
    assert b"What went wrong" in client.get("/log/verify-config").data


def test_a_new_worker_starts_from_the_last_good_build(config, client) -> None:
    (config.content_dir / "log" / "2026-10-02-verify-config.md").write_text("---\ntitle: [broken\n---\n")
    fresh = make_app(config).test_client()
    assert b"What broke" in fresh.get("/log/verify-config").data


def test_no_build_and_broken_content_fails_loudly(tmp_path: Path) -> None:
    shutil.copytree(DATA / "broken", tmp_path / "content")
    with pytest.raises(ContentProblems):
        make_app(make_config(tmp_path / "content", tmp_path / "data"))


def test_a_worker_that_cannot_publish_serves_the_last_good_build(config, client) -> None:
    # The index's disk is gone (a file where its folder was) and the content changed meanwhile.
    index_root = config.data_dir / "index"
    shutil.rmtree(index_root)
    index_root.write_text("not a folder")
    path = config.content_dir / "log" / "2026-10-02-verify-config.md"
    path.write_text(path.read_text().replace("What broke", "What went wrong"))
    fresh = make_app(config).test_client()
    assert b"What broke" in fresh.get("/log/verify-config").data
