"""The real app over the private Tor network: `blog serve` publishing its onion, read by web and MCP clients."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from stem.control import EventType
from stem.response.events import HSDescEvent

from blog.tor import egress
from blog.tor.errors import EgressError
from processes import free_port, rss_kib
from tests.tor_helpers import EchoHTTP
from tests.tornet import TorNet

pytest_plugins = ["tests.tornet.fixtures"]
pytestmark = [pytest.mark.tornet, pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://log.example.org"
ANNOUNCED = re.compile(r"onion service: http://([a-z2-7]{56})\.onion/")
ABSOLUTE = re.compile(r"""https?://[^\s"'<>()\\]+""")
# Names, not links: the Atom namespace and the feed library's generator URI.
IDENTIFIERS = ("http://www.w3.org/2005/Atom", "https://lkiesow.github.io/python-feedgen")
FIGURES: dict[str, float] = {}
ARTIFACTS = Path(__file__).parent / "artifacts"


class Uploads:
    """Count HS_DESC UPLOADED events for one address on the service tor, on our own controller."""

    def __init__(self, tornet: TorNet) -> None:
        self._controller = tornet.service_controller()
        self._address = ""
        self._count = 0
        self._changed = threading.Condition()
        self._controller.add_event_listener(self._on_event, EventType.HS_DESC)

    def _on_event(self, event: HSDescEvent) -> None:
        with self._changed:
            if event.action == "UPLOADED" and self._address and event.address == self._address:
                self._count += 1
                self._changed.notify_all()

    def follow(self, address: str) -> int:
        """Count uploads of `address` from now on; return the count so far."""
        with self._changed:
            self._address = address
            return self._count

    def wait_beyond(self, count: int, timeout: float) -> None:
        """Wait until more than `count` uploads were seen."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._count > count, timeout):
                raise AssertionError(f"no new descriptor upload for {self._address}.onion in {timeout:.0f} s")

    def close(self) -> None:
        self._controller.close()


class BlogServe:
    """`blog serve` as an operator starts it: gunicorn plus the app's own onion, attached to the service tor."""

    def __init__(self, root: Path, tornet: TorNet) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "blog-serve.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
        self.env.update(BLOG_CONFIG="/dev/null", BLOG_TOR_MODE="attach", BLOG_BASE_URL=BASE,
                        BLOG_TOR_CONTROL=f"127.0.0.1:{tornet.service_control_port}",
                        BLOG_CONTENT_DIR=str(root / "content"), BLOG_DATA_DIR=str(root / "data"))
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self, timeout: float = 90.0) -> str:
        """Start `blog serve`, wait for its onion address and a 200 on loopback; return the address."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "blog.cli", "serve", "--bind", f"127.0.0.1:{self.port}"],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"blog serve exited with {self.process.returncode}:\n{self.log()}")
            found = ANNOUNCED.findall(self.log())
            if found and self._answers():
                self.address = found[-1]
                return self.address
            time.sleep(0.2)
        raise AssertionError(f"blog serve published no onion or did not answer in {timeout:.0f} s:\n{self.log()}")

    def _answers(self) -> bool:
        try:
            return httpx2.get(self.url + "/", timeout=2, trust_env=False).status_code == 200
        except httpx2.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def descendants(self) -> list[int]:
        """Return the PIDs of gunicorn and its workers under `blog serve`."""
        assert self.process is not None
        found, queue = [], [self.process.pid]
        while queue:
            out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(queue.pop())], capture_output=True,
                                 text=True, check=False).stdout
            children = [int(p) for p in out.split()]
            found += children
            queue += children
        return found

    def stop(self) -> list[int]:
        """SIGTERM `blog serve` (it forwards to gunicorn); return any descendant PID still alive after."""
        if self.process is None or self.process.poll() is not None:
            return []
        children = self.descendants()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # our own session: only what this test started
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.1)
        orphans = [pid for pid in children if _alive(pid)]
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return orphans


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes: it has exited and waits for its parent (or init) to reap it.
    with contextlib.suppress(FileNotFoundError):
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:3]
    return False


@pytest.fixture(scope="module")
def served(tornet: TorNet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlogServe, Uploads]]:
    """Run `blog serve` on a copy of the starter log, attached to the network's service tor."""
    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(ROOT / "content", root / "content")
    uploads = Uploads(tornet)
    app = BlogServe(root, tornet)
    started = time.monotonic()
    try:
        address = app.start()
        uploads.follow(address)
        tornet.wait_for_descriptor(address, timeout=120)
        FIGURES["app_start_to_descriptor_s"] = time.monotonic() - started
        yield app, uploads
    finally:
        orphans = app.stop()
        uploads.close()
        assert not orphans, f"processes left behind by blog serve: {orphans}\n{app.log()}"


def onion_url(app: BlogServe, path: str = "/") -> str:
    return f"http://{app.address}.onion{path}"


def fetch(tornet: TorNet, app: BlogServe, path: str) -> httpx2.Response:
    """GET a path of the onion through the client tor, failing with the app's log attached."""
    try:
        response = tornet.fetch_via_socks(onion_url(app, path), timeout=120, attempt_timeout=20)
    except Exception as exc:
        raise AssertionError(f"{exc}\n--- blog serve log ---\n{app.log()[-4000:]}") from exc
    assert response.status_code == 200, f"{path}: {response.status_code}\n{response.text[:500]}"
    return response


def test_pages_over_the_onion_leak_no_clearnet_url(tornet: TorNet, served: tuple[BlogServe, Uploads]) -> None:
    app, _ = served
    started = time.monotonic()
    home = fetch(tornet, app, "/")
    FIGURES["first_app_fetch_s"] = time.monotonic() - started
    FIGURES["first_app_fetch_since_cold_start_s"] = tornet.since_start()
    FIGURES["app_rss_mib"] = sum(rss_kib(pid) for pid in [app.process.pid, *app.descendants()]) / 1024
    entry_path = "/log/tor-verify-config"
    assert entry_path in home.text
    responses = {"/": home}
    for path in (entry_path, "/search?q=tor+verify-config", "/feed.atom"):
        responses[path] = fetch(tornet, app, path)
    assert "<feed" in responses["/feed.atom"].text
    assert "verify-config" in responses["/search?q=tor+verify-config"].text
    # URLs the author wrote (links, quoted tool output) are the only absolute ones that may leave the onion.
    written = {u for md in (app.root / "content").rglob("*.md") for u in ABSOLUTE.findall(md.read_text())}
    onion = onion_url(app, "")
    for path, response in responses.items():
        assert "log.example.org" not in response.text, f"{path} leaks base_url over the onion"
        # Search snippets may cut an author's URL where a highlight starts: a prefix of one is theirs too.
        leaked = {u for u in ABSOLUTE.findall(html.unescape(response.text))
                  if not u.startswith((onion, *IDENTIFIERS)) and not any(w.startswith(u) for w in written)}
        assert not leaked, f"{path} has absolute non-onion URLs: {sorted(leaked)[:5]}"
        assert "onion-location" not in response.headers, f"{path}: Onion-Location on an onion response"
        assert "default-src" in response.headers.get("content-security-policy", ""), f"{path}: no CSP"
    assert onion + entry_path in responses["/feed.atom"].text  # feed links are absolute, on the onion
    clearnet = httpx2.get(app.url + "/", trust_env=False, headers={"Host": "log.example.org"})
    assert clearnet.headers["onion-location"] == onion + "/"  # the header exists; onion readers just never get it


async def _search_over_onion(url: str, socks: str) -> Any:
    async with egress.async_client(socks) as http, \
            Client(streamable_http_client(url, http_client=http), cache=None) as client:
        return await client.call_tool("search_blog", {"query": "verify-config", "limit": 3})


def _with_retries(call: Any, attempts: int = 4) -> Any:
    """Run an onion call a few times: a fresh circuit can fail once on a busy machine."""
    for attempt in range(attempts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # httpcore2's socket on a failed handshake
            try:
                return call()
            except Exception:
                if attempt == attempts - 1:
                    raise
            gc.collect()
        time.sleep(2)
    raise AssertionError("unreachable")


def _check_citations(tornet: TorNet, app: BlogServe, result: Any) -> None:
    assert not result.is_error, result.content
    results = result.structured_content["results"]
    assert results and results[0]["slug"] == "tor-verify-config"
    text = json.dumps(result.structured_content) + "".join(getattr(c, "text", "") for c in result.content)
    assert "log.example.org" not in text and "127.0.0.1" not in text
    for cited in results:
        page, _, anchor = cited["url"].partition("#")
        assert page.startswith(onion_url(app, "/")) and anchor, cited["url"]
        body = fetch(tornet, app, page.removeprefix(onion_url(app, ""))).text
        assert f'id="{anchor}"' in body, f"anchor {anchor} missing on {page}"


def test_mcp_sdk_searches_over_the_onion(tornet: TorNet, served: tuple[BlogServe, Uploads]) -> None:
    app, _ = served
    fetch(tornet, app, "/")  # the descriptor is in the client's cache before the async client asks
    started = time.monotonic()
    result = _with_retries(lambda: asyncio.run(
        _search_over_onion(onion_url(app, "/mcp"), f"127.0.0.1:{tornet.socks_port}")))
    FIGURES["mcp_call_over_onion_s"] = time.monotonic() - started
    _check_citations(tornet, app, result)


def test_mcp_connect_bridges_stdio_to_the_onion(tornet: TorNet, served: tuple[BlogServe, Uploads]) -> None:
    app, _ = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    env.update(BLOG_CONFIG="/dev/null", BLOG_DATA_DIR=str(app.root / "bridge"))
    params = StdioServerParameters(
        command=sys.executable, cwd=str(ROOT), env=env,
        args=["-m", "blog.cli", "mcp-connect", onion_url(app, "/mcp"), "--tor-socks",
              f"127.0.0.1:{tornet.socks_port}"])

    async def go() -> Any:
        async with Client(params) as client:
            return await client.call_tool("search_blog", {"query": "verify-config", "limit": 3})

    _check_citations(tornet, app, _with_retries(lambda: asyncio.run(go())))


def test_app_restart_keeps_the_onion_address(tornet: TorNet, served: tuple[BlogServe, Uploads]) -> None:
    app, uploads = served
    address = app.address
    before = uploads.follow(address)
    assert app.stop() == [], app.log()
    started = time.monotonic()
    assert app.start() == address, "the onion address changed across a restart"
    uploads.wait_beyond(before, timeout=120)
    FIGURES["restart_to_descriptor_s"] = time.monotonic() - started
    tornet.newnym()  # the client may hold the old descriptor with the old introduction points
    assert "tor --verify-config" in fetch(tornet, app, "/log/tor-verify-config").text
    FIGURES["restart_to_fetch_s"] = time.monotonic() - started


def _links(content: Path, tornet: TorNet) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    env.update(BLOG_CONFIG="/dev/null", BLOG_DATA_DIR=str(content.parent / "data"))
    return subprocess.run([sys.executable, "-m", "blog.cli", "--content", str(content), "links",
                           "--socks", f"127.0.0.1:{tornet.socks_port}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180)


def test_egress_goes_through_the_exit_and_fails_closed(tornet: TorNet, tmp_path: Path) -> None:
    with EchoHTTP() as server:
        host, port = server.address
        content = tmp_path / "content"
        (content / "log").mkdir(parents=True)
        (content / "log" / "links.md").write_text(
            f"A [live page](http://{host}:{port}/alive) and a [dead one](http://{host}:{port}/dead).\n")
        assert tornet.exit_reaches(f"http://{host}:{port}/warm-up", timeout=60)
        done = _links(content, tornet)
        assert done.returncode == 1, done.stderr
        assert f"links.md:1: http://{host}:{port}/dead (404)" in done.stdout
        assert "1 dead of 2 links" in done.stderr
        assert {"HEAD /alive", "HEAD /dead"} <= set(server.hits)
        seen = len(server.hits)
        tornet.stop_client()
        try:
            refused = _links(content, tornet)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                with pytest.raises(EgressError, match="never falls back"), \
                        egress.client(f"127.0.0.1:{tornet.socks_port}") as client:
                    client.get(f"http://{host}:{port}/direct")
                gc.collect()
        finally:
            tornet.start_client()
        assert refused.returncode == 1 and "never falls back" in refused.stderr, refused.stderr
        assert len(server.hits) == seen, f"a request went around tor: {server.hits[seen:]}"


def test_report_figures(tornet: TorNet, capsys: pytest.CaptureFixture[str]) -> None:
    FIGURES["network_bootstrap_s"] = tornet.timings["bootstrap_s"]
    FIGURES["peak_rss_tors_mib"] = round(tornet.peak_rss_mib, 1)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "e2e-tor-figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
    with capsys.disabled():
        print("\ne2e tor figures:", ", ".join(f"{k}={v:.1f}" for k, v in FIGURES.items()))
