"""The page types the benches load, their bytes on the wire, and what a browser requests to show them."""

from __future__ import annotations

import gzip
import http.client
import logging
from dataclasses import dataclass
from pathlib import Path

from blog.content import load_site, utcnow

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Headers a browser sends that change the answer; everything else in the request is constant here.
GZIP = {"Accept-Encoding": "gzip"}


@dataclass(frozen=True)
class PageType:
    """One kind of page the benches load: its name, its path on the app, its file name for nginx."""

    name: str
    path: str
    file: str


def page_types(content_dir: Path, query: str = "tor") -> list[PageType]:
    """Return the home page, the newest entry, its first tag, the Atom feed and a search."""
    entries = load_site(content_dir).published(utcnow())
    if not entries:
        raise ValueError(f"{content_dir} has no published entry: point the bench at a content tree with one")
    newest = entries[0]
    tag = newest.tags[0] if newest.tags else ""
    types = [PageType("home", "/", "home.html"), PageType("entry", newest.url, "entry.html")]
    if tag:
        types.append(PageType("tag", f"/tags/{tag}", "tag.html"))
    types += [PageType("feed", "/feed.atom", "feed.atom"), PageType("search", f"/search?q={query}", "search.html")]
    return types


@dataclass
class Fetched:
    """One response as it crossed the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    @property
    def wire_bytes(self) -> int:
        """Return status line + headers + body, the bytes the client read."""
        head = sum(len(k) + len(v) + 4 for k, v in self.headers) + len("HTTP/1.1 200 OK\r\n\r\n")
        return head + len(self.body)


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> Fetched:
    """GET a path from 127.0.0.1:port without decoding the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return Fetched(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


def wire_sizes(port: int, types: list[PageType]) -> dict[str, dict[str, int]]:
    """Return, per page type, the bytes on the wire without and with gzip (body and total)."""
    sizes: dict[str, dict[str, int]] = {}
    for page in types:
        plain, packed = fetch(port, page.path), fetch(port, page.path, GZIP)
        if plain.status != 200 or packed.status != 200:
            raise RuntimeError(f"{page.path} answered {plain.status}/{packed.status}; the bench needs 200s")
        if packed.header("Content-Encoding") == "gzip" and gzip.decompress(packed.body) != plain.body:
            raise RuntimeError(f"{page.path}: the gzip body does not decompress to the plain body")
        sizes[page.name] = {"plain_body": len(plain.body), "plain_wire": plain.wire_bytes,
                            "gzip_body": len(packed.body), "gzip_wire": packed.wire_bytes,
                            "gzip": int(packed.header("Content-Encoding") == "gzip")}
    return sizes


def save_static(port: int, types: list[PageType], root: Path) -> dict[str, tuple[str, list[tuple[str, str]], bytes]]:
    """Save each page (plain and .gz) under root for nginx; return the gzip responses for the bare app."""
    root.mkdir(parents=True, exist_ok=True)
    bare: dict[str, tuple[str, list[tuple[str, str]], bytes]] = {}
    for page in types:
        plain, packed = fetch(port, page.path), fetch(port, page.path, GZIP)
        (root / page.file).write_bytes(plain.body)
        (root / f"{page.file}.gz").write_bytes(packed.body)
        # gunicorn adds Date and Connection itself, as it does for the app.
        kept = [(k, v) for k, v in packed.headers if k.lower() not in ("date", "connection")]
        bare[page.path] = ("200 OK", kept, packed.body)
    return bare


def browser_requests(base_url: str, types: list[PageType]) -> dict[str, int]:
    """Return how many requests headless Chromium makes to show each HTML page type (target: 1)."""
    from playwright.sync_api import sync_playwright

    counts: dict[str, int] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for page_type in types:
                if page_type.name == "feed":
                    continue  # a feed is read by a feed reader, not rendered by the browser
                context = browser.new_context()
                page = context.new_page()
                seen: list[str] = []
                page.on("request", lambda r, seen=seen: seen.append(r.url))
                page.goto(base_url + page_type.path, wait_until="load")
                page.wait_for_timeout(300)  # late requests (favicon, fonts) would come now
                counts[page_type.name] = len(seen)
                if len(seen) != 1:
                    log.warning("%s made %d requests: %s", page_type.path, len(seen), seen)
                context.close()
        finally:
            browser.close()
    return counts
