"""Tor egress: through the SOCKS port with remote DNS and per-host isolation, never direct."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import httpx2
import pytest
from tor_helpers import EchoHTTP, RecordingSocks

from blog.tor import egress
from blog.tor.errors import EgressError
from processes import free_port

BLOG = Path(__file__).resolve().parent.parent / "blog"
EGRESS = BLOG / "tor" / "egress.py"
BANNED_MODULES = {"urllib.request", "http.client", "requests", "aiohttp", "httpx", "urllib3", "pycurl"}
BANNED_CALLS = {
    "socket.create_connection",
    "create_mcp_http_client",
    *(f"httpx2.{name}" for name in ("Client", "AsyncClient", "HTTPTransport", "AsyncHTTPTransport",
                                    "get", "post", "put", "patch", "delete", "head", "options",
                                    "request", "stream")),
}


def direct_uses(source: str, filename: str) -> list[str]:
    """Return `file:line what` for every direct outbound construct in source."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call):
            names = [ast.unparse(node.func)]
        for name in names:
            if name in BANNED_CALLS or name in BANNED_MODULES or name.split(".")[0] in BANNED_MODULES:
                found.append(f"{filename}:{node.lineno} {name}")
    return found


def test_no_module_outside_egress_opens_outbound_connections() -> None:
    offenders = []
    for path in sorted(BLOG.rglob("*.py")):
        if path != EGRESS:
            offenders += direct_uses(path.read_text(), str(path.relative_to(BLOG.parent)))
    assert offenders == [], "outbound HTTP must go through blog.tor.egress:\n" + "\n".join(offenders)


@pytest.mark.parametrize("line", [
    "import requests", "from urllib.request import urlopen", "import http.client",
    "import socket\nsocket.create_connection(('example.org', 80))",
    "import httpx2\nhttpx2.AsyncClient()", "from httpx2 import Client", "import httpx2\nhttpx2.get('x')",
])
def test_the_scan_catches_direct_outbound_code(line: str) -> None:
    assert direct_uses(line, "planted.py")


def test_unreachable_socks_port_raises_and_sends_nothing_directly() -> None:
    with EchoHTTP() as site:
        url = f"http://127.0.0.1:{site.address[1]}/page"
        with egress.client(f"127.0.0.1:{free_port()}") as client, pytest.raises(EgressError) as caught:
            client.get(url)
        assert "never falls back to a direct connection" in str(caught.value)
        assert site.hits == []


def test_async_unreachable_socks_port_raises() -> None:
    async def fetch() -> None:
        async with egress.async_client(f"127.0.0.1:{free_port()}") as client:
            await client.get("http://blog.example.invalid/")

    with pytest.raises(EgressError, match="is tor running"):
        asyncio.run(fetch())


def test_requests_go_through_socks_with_the_hostname_unresolved(monkeypatch) -> None:
    # Environment proxies must not change the path (trust_env=False).
    monkeypatch.setenv("ALL_PROXY", f"socks5://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "*")
    with EchoHTTP() as site, RecordingSocks(site.address) as socks:
        with egress.client(socks.address) as client:
            first = client.get("http://blog.example.invalid/one")
            second = client.get("http://other.example.invalid/two")
            third = client.get("http://blog.example.invalid/three")
        assert first.text == "blog.example.invalid /one"
        assert second.status_code == third.status_code == 200
        assert [(r["atyp"], r["host"], r["port"]) for r in socks.requests[:2]] == [
            (3, "blog.example.invalid", 80), (3, "other.example.invalid", 80)]
        # One SOCKS identity per destination host: tor isolates their circuits.
        assert {r["host"]: r["username"] for r in socks.requests} == {
            "blog.example.invalid": "blog.example.invalid", "other.example.invalid": "other.example.invalid"}


def test_async_client_goes_through_socks() -> None:
    async def fetch(address: str) -> httpx2.Response:
        async with egress.async_client(address) as client:
            return await client.get("http://async.example.invalid/a")

    with EchoHTTP() as site, RecordingSocks(site.address) as socks:
        response = asyncio.run(fetch(socks.address))
    assert response.text == "async.example.invalid /a"
    assert socks.requests[0]["host"] == "async.example.invalid"


def test_clients_refuse_to_have_their_route_replaced() -> None:
    with pytest.raises(EgressError, match="proxy"):
        egress.client("127.0.0.1:9050", proxy="http://127.0.0.1:3128")
    with pytest.raises(EgressError, match="HOST:PORT"):
        egress.client("9050")


def test_tor_timeouts_are_the_default() -> None:
    with egress.client("127.0.0.1:9050") as client:
        assert client.timeout.connect == 30.0 and client.timeout.read == 60.0


def run_cli(args: list[str], tmp_path: Path, **obj: object):
    import click
    from click.testing import CliRunner

    from blog.cli.linkcheck import register

    group = click.Group()
    register(group)
    settings = tmp_path / "blog.toml"
    settings.write_text("")
    return CliRunner().invoke(group, args, obj={"data_dir": tmp_path / "data", **obj},
                              env={"BLOG_CONFIG": str(settings)})


def test_blog_links_reports_dead_links_with_file_and_line(tmp_path: Path) -> None:
    content = tmp_path / "content" / "log"
    content.mkdir(parents=True)
    (content / "entry.md").write_text(
        "---\ntitle: t\n---\nSee [the docs](http://docs.example.invalid/ok).\n\n"
        "```console\n$ curl http://ignored.example.invalid/dead\n```\n"
        "A dead one: <http://docs.example.invalid/dead/page>, and `http://code.example.invalid/dead`.\n"
    )
    with EchoHTTP() as site, RecordingSocks(site.address) as socks:
        result = run_cli(["links", "--socks", socks.address], tmp_path, content_dir=tmp_path / "content")
    assert result.exit_code == 1, result.output
    entry = content / "entry.md"
    # Dead links on stdout, one per occurrence; fenced code and inline code are not citations.
    assert result.stdout.splitlines() == [f"{entry}:9: http://docs.example.invalid/dead/page (404)"]
    assert {r["host"] for r in socks.requests} == {"docs.example.invalid"}


def test_blog_links_fails_closed_when_tor_is_down(tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "a.md").write_text("[x](http://docs.example.invalid/)\n")
    result = run_cli(["links", "--socks", f"127.0.0.1:{free_port()}"], tmp_path, content_dir=content)
    assert result.exit_code == 1
    assert "is tor running" in result.output
