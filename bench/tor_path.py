"""The real reader's path: pages fetched through a private Tor network's onion service, next to loopback."""

from __future__ import annotations

import logging
import statistics
import time

import httpx2

from bench.pages import PageType
from bench.servers import BenchError
from processes import Server

log = logging.getLogger(__name__)

SAMPLES = 7


def _timed(client: httpx2.Client, url: str) -> tuple[float, float]:
    """GET url; return (time to first byte, total time) in ms."""
    start = time.perf_counter()
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response:
        first = time.perf_counter()
        response.read()
        if response.status_code != 200:
            raise BenchError(f"{url} answered {response.status_code}")
    return (first - start) * 1000, (time.perf_counter() - start) * 1000


def _series(client: httpx2.Client, url: str) -> dict[str, float]:
    _timed(client, url)  # the first fetch warms the connection (and through Tor, the circuit)
    samples = [_timed(client, url) for _ in range(SAMPLES)]
    return {"ttfb_ms": round(statistics.median(s[0] for s in samples), 2),
            "total_ms": round(statistics.median(s[1] for s in samples), 2),
            "total_max_ms": round(max(s[1] for s in samples), 2)}


def run(app: Server, types: list[PageType]) -> dict[str, object]:
    """Publish the app as an onion on a private Tor network and time home and entry both ways."""
    from tests.tornet import TorNet

    logging.getLogger("stem").setLevel(logging.WARNING)  # stem sets its own logger to DEBUG on import
    wanted = [t for t in types if t.name in ("home", "entry")]
    results: dict[str, object] = {"samples": SAMPLES}
    with TorNet() as net:
        results["tornet_bootstrap_s"] = round(net.timings.get("bootstrap_s", 0.0), 1)
        with net.service_controller() as controller:
            service = controller.create_ephemeral_hidden_service(
                {80: f"127.0.0.1:{app.port}"}, key_type="NEW", key_content="ED25519-V3", await_publication=False)
            net.wait_for_descriptor(controller, timeout=180)
            onion = f"http://{service.service_id}.onion"
            start = time.monotonic()
            net.fetch_via_socks(onion + "/", timeout=180)  # retries until the rendezvous works
            results["first_onion_fetch_s"] = round(time.monotonic() - start, 2)
            with httpx2.Client(proxy=net.proxy_url, timeout=60, trust_env=False) as tor, \
                    httpx2.Client(timeout=30, trust_env=False) as direct:
                for page in wanted:
                    results[page.name] = {"tor": _series(tor, onion + page.path),
                                          "loopback": _series(direct, app.url + page.path)}
                    log.info("%s: %s", page.name, results[page.name])
    return results
