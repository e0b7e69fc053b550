"""The protocol's small print against the production gunicorn, on raw sockets: what a hostile client can send.

Each case was found in the second attack round (issue 27): a header built from a decoded path, a preview
that answered any Host, case in host names, a request without Host, a WebSocket upgrade, HEAD on /mcp.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from processes import ROOT, Gunicorn

pytestmark = pytest.mark.slow

ONION = "pqvmwfyjugiqx5f7cxqv3twlpgfw2z4zrw7udy7bidfivxlwoqu4pbyd.onion"  # a well-formed v3 address


@pytest.fixture(scope="module")
def onion_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    """The production gunicorn with an onion address known, as on every site served over Tor."""
    root = tmp_path_factory.mktemp("protocol")
    shutil.copytree(ROOT / "content", root / "content")
    with Gunicorn(root / "content", root / "data", workers=1, extra_env={"BLOG_ONION_ADDRESS": ONION}) as server:
        yield server


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw request; return status, headers (lower-case) and body (read to its Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if request.startswith(b"HEAD ") else int(headers.get("content-length", "0"))
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    return int(lines[0].split()[1]), headers, body


def get(port: int, target: str, host: str = "127.0.0.1", extra: str = "") -> tuple[int, dict[str, str], bytes]:
    return exchange(port, f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())


@pytest.mark.parametrize("target", ["/x%0aX", "/x%0d%0aSet-Cookie:%20a=1", "/x%00y", "/x%C0%AE",
                                    "/log/x%0a?q=%0d%0a", "/search?q=a%0d%0aSet-Cookie:%20b=2"])
def test_onion_location_is_built_from_the_raw_path(onion_site: Gunicorn, target: str) -> None:
    before = len(onion_site.log())
    status, headers, _body = get(onion_site.port, target)
    assert status < 500, (target, status)
    assert "set-cookie" not in headers
    location = headers["onion-location"]
    assert location.startswith(f"http://{ONION}/x") or location.startswith(f"http://{ONION}/")
    assert location.isascii() and all(32 < ord(c) < 127 for c in location), location
    new = onion_site.log()[before:]
    assert "ERROR" not in new and "Traceback" not in new, new[-2000:]


def test_onion_location_keeps_an_ordinary_path(onion_site: Gunicorn) -> None:
    status, headers, _body = get(onion_site.port, "/log/one-request-per-page")
    assert status == 200 and headers["onion-location"] == f"http://{ONION}/log/one-request-per-page"
    status, headers, _body = get(onion_site.port, "/search?q=onion%20key")
    assert status == 200 and headers["onion-location"] == f"http://{ONION}/search?q=onion%20key"


def test_a_websocket_upgrade_is_an_ordinary_request_with_the_sites_headers(onion_site: Gunicorn) -> None:
    # The site speaks no WebSocket: gunicorn handed the upgrade to the app, which refused it with a bare 403.
    status, headers, _body = exchange(onion_site.port, (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
    assert status not in (101, 403), status
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and "server" not in headers


def test_http11_without_host_is_a_400(onion_site: Gunicorn) -> None:
    status, headers, body = exchange(onion_site.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status == 400, status  # RFC 9112 section 3.2
    assert "default-src 'none'" in headers["content-security-policy"] and b"<html" not in body
    status, _headers, _body = exchange(onion_site.port, b"GET /robots.txt HTTP/1.0\r\n\r\n")
    assert status == 200  # HTTP/1.0 has no Host to require


def mcp_call(port: int, host: str, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}' if method == "POST" else b""
    return exchange(port, (f"{method} /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                           f"Accept: application/json, text/event-stream\r\nContent-Length: {len(body)}\r\n"
                           "Connection: close\r\n\r\n").encode() + body)


def test_host_names_are_case_insensitive_on_mcp(onion_site: Gunicorn) -> None:
    onion_site.wait_for_mcp()
    for host in (f"LOCALHOST:{onion_site.port}", f"LocalHost:{onion_site.port}", "127.0.0.1", ONION.upper()):
        status, _headers, body = mcp_call(onion_site.port, host)
        assert status == 200 and b"search_blog" in body, (host, status, body[:200])
    assert mcp_call(onion_site.port, "EVIL.EXAMPLE")[0] == 421


def test_head_on_mcp_is_answered_without_a_warning(onion_site: Gunicorn) -> None:
    onion_site.wait_for_mcp()
    before = len(onion_site.log())
    for _ in range(5):
        status, headers, body = mcp_call(onion_site.port, "127.0.0.1", "HEAD")
        assert status == 405 and headers["allow"] == "POST" and body == b""
    time.sleep(0.3)
    new = onion_site.log()[before:]
    assert new.count('"HEAD /mcp" 405') == 5
    assert "WARNING" not in new, new
