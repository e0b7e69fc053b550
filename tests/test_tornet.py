"""Prove the private Tor network harness end to end, without the app."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.tornet import TorNet, TorNetError

# Idempotent when tests/conftest.py lists the plugin too; lets this file run on its own.
pytest_plugins = ["tests.tornet.fixtures"]

pytestmark = [pytest.mark.tornet, pytest.mark.slow, pytest.mark.timeout(300)]

FIGURES: dict[str, float] = {}
ARTIFACTS = Path(__file__).parent / "artifacts"


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def loopback_site() -> Iterator[tuple[str, bytes]]:
    """Serve a random body over HTTP on 127.0.0.1 and yield (url, body)."""
    body = secrets.token_hex(16).encode()
    handler = type("Handler", (_Handler,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", body
    server.shutdown()
    server.server_close()
    thread.join()


def test_onion_service_is_fetched_through_the_client(
    tornet: TorNet, loopback_site: tuple[str, bytes]
) -> None:
    url, body = loopback_site
    FIGURES["build_s"] = tornet.timings.get("build_s", 0.0)
    FIGURES["bootstrap_s"] = tornet.timings["bootstrap_s"]
    target = url.removeprefix("http://").rstrip("/")
    with tornet.service_controller() as controller:
        service = controller.create_ephemeral_hidden_service(
            {80: target}, key_type="NEW", key_content="ED25519-V3", await_publication=False
        )
        tornet.wait_for_descriptor(controller, timeout=120)
        FIGURES["descriptor_uploaded_s"] = tornet.since_start()
        response = tornet.fetch_via_socks(f"http://{service.service_id}.onion/", timeout=120)
        FIGURES["first_onion_fetch_s"] = tornet.since_start()
        assert response.status_code == 200
        assert response.content == body


def test_wait_for_descriptor_times_out_for_an_unknown_service(tornet: TorNet) -> None:
    with pytest.raises(TorNetError, match="no HS_DESC UPLOADED"):
        tornet.wait_for_descriptor("a" * 56 + ".onion", timeout=1)


def test_exit_reaches_a_loopback_server_by_address(tornet: TorNet, loopback_site: tuple[str, bytes]) -> None:
    url, body = loopback_site
    assert tornet.exit_reaches(url)
    assert tornet.fetch_via_socks(url).content == body


def test_exit_refuses_anything_but_loopback(tornet: TorNet) -> None:
    # 192.0.2.0/24 is TEST-NET-1: the exit policy must refuse it before any packet leaves.
    assert not tornet.exit_reaches("http://192.0.2.1/", timeout=5)


def test_fetch_fails_closed_when_the_client_tor_is_stopped(
    tornet: TorNet, loopback_site: tuple[str, bytes]
) -> None:
    url, _ = loopback_site
    tornet.stop_client()
    try:
        with pytest.raises(TorNetError, match="cannot fetch"):
            tornet.fetch_via_socks(url, timeout=3, attempt_timeout=2)
        with pytest.raises(httpx2.ConnectError), httpx2.Client(proxy=tornet.proxy_url, trust_env=False) as c:
            c.get(url)
    finally:
        tornet.start_client()
    assert tornet.fetch_via_socks(url).content == _


def test_report_figures(tornet: TorNet, capsys: pytest.CaptureFixture[str]) -> None:
    FIGURES["peak_rss_mib"] = round(tornet.peak_rss_mib, 1)
    assert FIGURES["peak_rss_mib"] > 0
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "tornet-figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
    with capsys.disabled():
        print("\ntornet figures:", ", ".join(f"{k}={v:.1f}" for k, v in FIGURES.items()))
