"""A real headless Chromium reads the pages: no script runs, no request leaves 127.0.0.1, images are painted."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from processes import Gunicorn
from tests.conftest import DATA, ROOT
from tests.pictures import add_picture_entry, assert_both_pictures_shown

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    with Gunicorn(ROOT / "content", root / "data", workers=1) as running:
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
    import re

    import httpx2

    home = httpx2.get(server.url + "/", timeout=10).text
    return re.search(r'<a class="title" href="(/log/[^"]+)"', home).group(1)


@pytest.mark.parametrize("kind", ["home", "entry", "search"])
def test_page_loads_with_one_request_no_script_and_nothing_external(browser, server: Gunicorn, kind: str) -> None:
    path = {"home": "/", "entry": first_entry_path(server), "search": "/search?q=tor"}[kind]
    requests, scripts = visit(browser, server.url + path, ARTIFACTS / f"{kind}.png")
    hosts = {urlsplit(u).hostname for u in requests if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requests
    assert requests == [server.url + path], f"a page must need exactly one request: {requests}"
    assert scripts == 0
    assert (ARTIFACTS / f"{kind}.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def pictures_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    shutil.copytree(DATA / "site", root / "content")
    add_picture_entry(root / "content")
    with Gunicorn(root / "content", root / "data", workers=1) as running:
        yield running


def test_an_entry_shows_its_photo_and_plot_with_javascript_off(browser, pictures_server: Gunicorn) -> None:
    """Each image is one more request, and Chromium paints it: the screenshot holds both images' colours."""
    assert_both_pictures_shown(browser, pictures_server.url + "/log/rack-pictures", ARTIFACTS / "pictures.png")
