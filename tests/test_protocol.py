"""The protocol's small print against the production gunicorn, on raw sockets: what a hostile client can send.

Each case was found in the second attack round (issue 27): a header built from a decoded path, a preview
that answered any Host, case in host names, a request without Host, a WebSocket upgrade, HEAD on /mcp.
"""

from __future__ import annotations

import shutil
import socket
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
    """Send one raw request (closing the connection after it); return status, headers (lower-case), body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
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
