"""A real headless Chromium reads the pages: no script runs, no request leaves 127.0.0.1, images are painted."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from processes import Gunicorn, Server, free_port
from tests.conftest import ROOT
from tests.layout import LONG_HASH, ONION, PHONE_WIDTHS, SVG_ALT, WIDE_SLUG, add_wide_entry, phone, sideways
from tests.pictures import add_picture_entry, assert_both_pictures_shown
from tests.tor_helpers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The demo log, an entry as wide as entries get and an entry with pictures, served with an onion address
    (the footer shows it): one site for every test here, since each site's build and start cost seconds."""
    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(ROOT / "content", root / "content")
    add_wide_entry(root / "content")
    add_picture_entry(root / "content")
    with Gunicorn(root / "content", root / "data", workers=1, extra_env={"BLOG_ONION_ADDRESS": ONION}) as running:
        yield running


def visit(browser, url: str, shot: Path) -> tuple[list[str], int]:
    """Load a page as a reader would; return every URL requested and how many scripts were parsed."""
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    cdp = context.new_cdp_session(page)
    scripts: list[dict] = []
    cdp.on("Debugger.scriptParsed", lambda event: scripts.append(event))
    cdp.send("Debugger.enable")
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    # Scripts Playwright runs for itself live in its own isolated worlds; the page's main world has none.
    page_scripts = [s for s in scripts if s.get("executionContextAuxData", {}).get("isDefault")]
    context.close()
    return requests, len(page_scripts)


def first_entry_path(server: Gunicorn) -> str:
    """Return the newest entry of the shipped log (the test site's own entries carry pictures)."""
    import re

    import httpx2

    home = httpx2.get(server.url + "/", timeout=10).text
    shipped = {path.stem.split("-", 3)[3] for path in (ROOT / "content" / "log").glob("*.md")}
    return next(path for path in re.findall(r'<a class="title" href="(/log/[^"]+)"', home)
                if path.removeprefix("/log/") in shipped)


@pytest.mark.parametrize("kind", ["home", "entry", "search"])
def test_page_loads_with_one_request_no_script_and_nothing_external(browser, server: Gunicorn, kind: str) -> None:
    path = {"home": "/", "entry": first_entry_path(server), "search": "/search?q=tor"}[kind]
    requests, scripts = visit(browser, server.url + path, ARTIFACTS / f"{kind}.png")
    hosts = {urlsplit(u).hostname for u in requests if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requests
    assert requests == [server.url + path], f"a page must need exactly one request: {requests}"
    assert scripts == 0
    assert (ARTIFACTS / f"{kind}.png").stat().st_size > 10_000


def test_an_entry_shows_its_photo_and_plot_with_javascript_off(browser, server: Gunicorn) -> None:
    """Each image is one more request, and Chromium paints it: the screenshot holds both images' colours."""
    assert_both_pictures_shown(browser, server.url + "/log/rack-pictures", ARTIFACTS / "pictures.png")


@pytest.fixture(scope="module")
def problems_preview(tmp_path_factory):
    """`blog preview` of a site with a broken file: every page is the problems page."""
    folder = tmp_path_factory.mktemp("problems")
    shutil.copytree(ROOT / "content", folder / "content")
    (folder / "blog.toml").write_text('title = "Phone test"\ncontent_dir = "content"\ndata_dir = "var"\n'
                                      'tor_mode = "off"\nsemantic = false\n')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    with Server([sys.executable, "-m", "blog.cli", "--site", str(folder), "preview", "--bind", f"127.0.0.1:{port}"],
                folder / "preview.log", port=port, env=env) as running:
        broken = folder / "content" / "log" / f"2026-12-01-{'a-rather-long-name-' * 4}broken.md"
        broken.write_text(f'---\ntitle: "Broken"\ndate: 2026-12-01T09:00:00Z\ntags: [x]\nsummary: "s"\n'
                          f'colour: {LONG_HASH}\n---\n\nText.\n')
        wait_for(lambda: "problem" in running.log(since_start=True), what="the problems page", timeout=30)
        yield running


PAGE_KINDS = {
    "home": "/", "entry": f"/log/{WIDE_SLUG}", "standing page": "/pages/start-here", "tags": "/tags",
    "tag": "/tags/layout", "archive": "/archive", "archive month": "/archive/2026/11",
    "search": "/search?q=key+file+hash+printed+whole", "search, nothing found": f"/search?q=x{LONG_HASH}",
    "revisions": "/log/gunicorn-control-socket-and-keep-alive/revisions",
    "revision": "/log/gunicorn-control-socket-and-keep-alive/revisions/1", "404": "/no/such/page",
}


@pytest.mark.parametrize("width", PHONE_WIDTHS)
def test_no_page_scrolls_sideways_at_a_phones_width(browser, server: Gunicorn, problems_preview: Server,
                                                    width: int) -> None:
    """Every kind of page fits 320, 360 and 390 px with JavaScript off; code blocks and tables scroll alone."""
    urls = {kind: server.url + path for kind, path in PAGE_KINDS.items()}
    urls["preview's problems page"] = problems_preview.url + "/"
    wide = {}
    with phone(browser, width) as page:
        for kind, url in urls.items():
            scroll, client, what = sideways(page, url)
            assert client == width, (kind, client)
            if scroll > client:
                wide[kind] = (scroll, what)
    assert not wide, f"at {width} px these pages scroll sideways (scrollWidth, what is wide): {wide}"


def test_an_svg_figure_says_what_it_shows_where_svg_is_not_shown(browser, server: Gunicorn) -> None:
    """Tor Browser's Safest mode shows no SVG and runs no script: the figure's caption still tells the reader."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 800})
    blocked: list[str] = []
    context.route("**/*.svg", lambda route: (blocked.append(route.request.url), route.abort()))
    try:
        page = context.new_page()
        page.goto(f"{server.url}/log/{WIDE_SLUG}", wait_until="load")
        caption = page.locator("figure figcaption")
        assert blocked and caption.is_visible() and caption.inner_text() == SVG_ALT
        assert SVG_ALT in page.inner_text("article")  # as text a reader sees, not only an attribute
    finally:
        context.close()
