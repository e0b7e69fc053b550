"""Security and privacy promises, each a test: headers, no cookies or banners, loopback binds, key modes, egress."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import click
import httpx2
import pytest
from test_browser import visit
from tor_helpers import EchoHTTP, RecordingSocks

from blog.cli.site import _check_bind
from processes import Gunicorn
from tests.conftest import ROOT, make_config

ROUTES = ["/", "/log/verify-config", "/log/verify-config.md", "/log/verify-config/revisions", "/tags", "/tags/tor",
          "/archive", "/archive/2026", "/archive/2026/10", "/pages/about", "/feed.atom", "/feed.rss",
          "/sitemap.xml", "/robots.txt", "/llms.txt", "/llms-full.txt", "/search?q=tor", "/search?q=%22",
          "/search?page=x", "/nope", "/log/nope", "/log/..%2f..%2fetc%2fpasswd"]
HEADERS = {"content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"}


def leaks(text: str, *paths: Path) -> list[str]:
    """Return the machine details found in a response body."""
    found = [str(p) for p in (*paths, ROOT) if str(p) in text]
    host = socket.gethostname()
    if len(host) > 3 and host not in ("localhost",) and host in text:
        found.append(f"hostname {host}")
    return found + [word for word in ("Traceback", "site-packages", "/usr/lib/python") if word in text]


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_has_the_headers_no_cookie_no_banner_no_machine_details(client, config, path: str) -> None:
    response = client.get(path)
    assert response.status_code < 500, path
    assert HEADERS <= {k.lower() for k in response.headers.keys()}, (path, dict(response.headers))
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "Set-Cookie" not in response.headers and "Server" not in response.headers
    assert not leaks(response.get_data(as_text=True), config.content_dir, config.data_dir)


@pytest.mark.parametrize("bind", ["0.0.0.0:8000", "[::]:8000", ":::8000", "192.168.1.10:8000", "10.0.0.5:80",
                                  "[2001:db8::1]:8000", "example.org:8000", "[::ffff:192.168.1.1]:80"])
def test_refuses_non_loopback_binds_unless_told(tmp_path: Path, bind: str) -> None:
    cfg = make_config(tmp_path / "c", tmp_path / "d")
    with pytest.raises(click.ClickException, match="refusing to listen"):
        _check_bind(cfg, bind)
    _check_bind(make_config(tmp_path / "c", tmp_path / "d", allow_public_bind=True), bind)


@pytest.mark.parametrize("bind", ["127.0.0.1:8000", "[::1]:8000", "localhost:8000", "127.0.0.2:80",
                                  "unix:/run/blog.sock"])
def test_accepts_loopback_binds(tmp_path: Path, bind: str) -> None:
    _check_bind(make_config(tmp_path / "c", tmp_path / "d"), bind)


def test_serve_refuses_a_world_readable_onion_key(site_dir: Path, tmp_path: Path) -> None:
    from blog.tor import keys

    key = tmp_path / "data" / "onion" / "hs_ed25519_secret_key"
    keys.write_key(key, keys.generate_key())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    key.chmod(0o644)
    env = dict(os.environ, BLOG_CONTENT_DIR=str(site_dir), BLOG_DATA_DIR=str(tmp_path / "data"),
               BLOG_TOR_MODE="attach", BLOG_TOR_CONTROL=str(tmp_path / "no-tor" / "control"))
    env.pop("BLOG_CONFIG", None)
    result = subprocess.run([sys.executable, "-m", "blog.cli", "serve", "--bind", "127.0.0.1:1"], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "mode 0644" in result.stderr and f"chmod 600 {key}" in result.stderr, result.stderr[-1500:]


AUDIT = '''
import ipaddress, os, sys

def _loopback(host):
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host in ("localhost", "")

def _hook(event, args):
    if event in ("socket.connect", "socket.getaddrinfo") and os.environ.get("EGRESS_AUDIT_LOG"):
        address = args[1] if event == "socket.connect" else args
        if not isinstance(address, tuple) or address[0] is None or _loopback(str(address[0])):
            return
        with open(os.environ["EGRESS_AUDIT_LOG"], "a") as log:
            log.write(f"{os.getpid()} {event} {address[:2]!r}\\n")
        raise PermissionError(f"egress audit: {event} {address[:2]!r} would leave around tor")

sys.addaudithook(_hook)
'''


@pytest.fixture
def audited(tmp_path: Path) -> dict[str, str]:
    """Return env that installs a socket audit hook in every Python process started with it."""
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(textwrap.dedent(AUDIT))
    log = tmp_path / "egress.log"
    env = {"PYTHONPATH": f"{hook_dir}:{ROOT}", "EGRESS_AUDIT_LOG": str(log)}
    canary = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 9), 0.2)"],
                            env=dict(os.environ, **env), capture_output=True, text=True, check=False)
    assert "egress audit" in canary.stderr and log.read_text().count("192.0.2.1") == 1, "the hook is not active"
    log.unlink()
    return env


def test_nothing_outbound_goes_around_tor(site_dir: Path, tmp_path: Path, audited: dict[str, str]) -> None:
    log = Path(audited["EGRESS_AUDIT_LOG"])
    with Gunicorn(site_dir, tmp_path / "data", extra_env=audited) as server, \
            httpx2.Client(base_url=server.url, timeout=15) as http:
        for path in ROUTES:
            assert http.get(path).status_code < 500, path
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "search_blog", "arguments": {"query": "tor"}}}
        mcp = http.post("/mcp", json=call, headers={"Accept": "application/json, text/event-stream"})
        assert mcp.status_code == 200 and "verify-config" in mcp.text
        assert "set-cookie" not in mcp.headers and "server" not in mcp.headers
        assert "content-security-policy" in mcp.headers
    entry = site_dir / "log" / "2026-10-02-verify-config.md"
    entry.write_text(entry.read_text() + "\nSee [the manual](http://docs.example.invalid/ok).\n")
    with EchoHTTP() as upstream, RecordingSocks(upstream.address) as socks:
        env = dict(os.environ, **audited, BLOG_CONTENT_DIR=str(site_dir), BLOG_DATA_DIR=str(tmp_path / "data"))
        env.pop("BLOG_CONFIG", None)
        result = subprocess.run([sys.executable, "-m", "blog.cli", "links", "--socks", socks.address], env=env,
                                cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert "docs.example.invalid" in {r["host"] for r in socks.requests}, result.stderr[-1500:]
    assert not log.exists(), log.read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("security-browser")
    with Gunicorn(ROOT / "content", root / "data", workers=1) as running:
        yield running


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/tags", "/tags/tor", "/archive", "/pages/about", "/search?q=%22unclosed",
                                  "/search?q=zzzznothing", "/nope", "/llms.txt"])
def test_every_page_type_loads_nothing_external_and_runs_no_script(browser, site: Gunicorn, path: str,
                                                                   tmp_path: Path) -> None:
    requests, scripts = visit(browser, site.url + path, tmp_path / "shot.png")
    hosts = {urlsplit(u).hostname for u in requests if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requests
    assert scripts == 0
    assert json.dumps(requests).count("http") == len(requests)
