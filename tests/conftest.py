"""Shared fixtures: real content trees on disk, real builds, the Flask app and its test client."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from blog.config import Config, load_config

if TYPE_CHECKING:
    from processes import Gunicorn

ROOT = Path(__file__).resolve().parent.parent
# The semantic ranker embeds every new site's blocks (seconds of CPU each): the suite builds many sites,
# so it is off unless a test turns it on (tests/test_semantic.py does, for its own sites and servers).
os.environ.setdefault("BLOG_SEMANTIC", "0")
DATA = ROOT / "tests" / "data"

pytest_plugins = ["tests.tornet.fixtures"]


def require_binary(name: str, package: str) -> str:
    """Return the path of a binary; fail under CI=true when it is missing, skip otherwise."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: apt-get install {package} (make test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def connection_holders(server: Gunicorn) -> dict[int, int]:
    """Map the client port of each accepted connection to the pid of the worker holding it (from ss).

    A connection still in the accept queue has no process yet and is left out.
    """
    ss = require_binary("ss", "iproute2")
    out = subprocess.run([ss, "-Htnp", "state", "established", f"( sport = :{server.port} )"],
                         capture_output=True, text=True, check=True).stdout
    held = {}
    for line in out.splitlines():
        holder = re.search(r"pid=(\d+)", line)
        if holder:  # columns: Recv-Q Send-Q local peer process
            held[int(line.split()[3].rsplit(":", 1)[1])] = int(holder.group(1))
    return held


def make_config(content_dir: Path, data_dir: Path, **changes: object) -> Config:
    """Return a config for a content tree and a data directory, ignoring the machine's BLOG_* variables."""
    changes.setdefault("semantic", False)
    return load_config(path=Path("/nonexistent"), env={}, content_dir=content_dir, data_dir=data_dir,
                       tor_mode="off", **changes)


# Chromium's own background traffic is refused by this machine's closed network: switch it off.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (Debian's), driven by Playwright."""
    chromium = require_binary("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """Return a private copy of the small test site."""
    target = tmp_path / "content"
    shutil.copytree(DATA / "site", target)
    return target


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory):
    """Return a build (with its index on disk) of a copy of the bundled starter log, one per test module."""
    from bench import quality

    tmp = tmp_path_factory.mktemp("starter")
    shutil.copytree(ROOT / "content", tmp / "content")
    return quality.build_content(tmp / "content", tmp / "data")


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    """Return a private copy of the bundled starter log."""
    target = tmp_path / "starter"
    shutil.copytree(ROOT / "content", target)
    return target


@pytest.fixture
def config(site_dir: Path, tmp_path: Path) -> Config:
    return make_config(site_dir, tmp_path / "data")


def make_app(config: Config):
    """Build as gunicorn's master does before its workers start, then create one worker's app."""
    from blog.builder import prepare
    from blog.web import create_app

    prepare(config)
    return create_app(config)


@pytest.fixture
def app(config: Config):
    return make_app(config)


@pytest.fixture
def client(app):
    return app.test_client()


# Tests that share an expensive session fixture, or a machine-wide resource, run on one xdist worker:
# one private Tor network per group instead of one per worker, and one chroot at a time.
# Onionbalance shares a worker with the deployment test so that its slow 20 s-voting network does not
# compete for the two cores with the chroot's package installs (a master descriptor once took over 200 s).
# The demo log's vectors take a minute to embed on these cores: the tests of tests/test_search_page.py that
# read them share one module fixture, built once when they share a worker (it was built on both).
_GROUPS = {"tornet": "tornet", "tornet_onionbalance": "ansible", "served_site": "search_page"}


# tryfirst: xdist's worker reads the xdist_group marks in its own pytest_collection_modifyitems, and
# a plain conftest hook runs after it, so the marks would arrive too late and be ignored.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        group = next((g for f, g in _GROUPS.items() if f in fixtures), None)
        if group is None and item.path.name == "test_ansible.py":
            group = "ansible"
        # (tests/test_semantic_outage.py marks only its two timed tests: the others serve and ask, untimed)
        if group is None and item.path.name in ("test_load.py", "test_faults.py", "test_hostile.py",
                                                "test_connections.py"):
            group = "load"
        if group is None and item.path.name == "test_mcp_http.py" and "site" in fixtures:
            group = f"mcp_http_{item.callspec.params['site']}"  # one served site per worker class, not per worker
        if group is None and item.path.name == "test_browser.py":
            group = "browser"
        if group is None and item.path.name == "test_operator.py":
            group = "operator"  # one wheel and one venv for the module, not one per worker
        if group is None and item.path.name == "test_fresh_root.py":
            group = "fresh"  # one apt and pip layer over the cached fresh root at a time
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
