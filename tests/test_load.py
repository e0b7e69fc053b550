"""A short, bounded load run and a slowloris run against the production gunicorn (bench/ has the long ones)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from bench import load, slowloris
from processes import Gunicorn
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    with Gunicorn(ROOT / "content", root / "data", workers=2) as running:
        running.wait_for_mcp()  # measure the site, not the SDK's one-off import in each worker
        yield running


def test_mixed_load_has_no_errors_and_reports_p99_per_route(server: Gunicorn) -> None:
    result = asyncio.run(load.drive(server.url, seconds=6, connections=32))
    summary = result.summary()
    print("load:", summary)
    assert result.error_count == 0, summary["first_errors"]
    assert set(summary["routes"]) == {"home", "entry", "search", "feed", "mcp"}  # type: ignore[arg-type]
    for route, figures in summary["routes"].items():  # type: ignore[union-attr]
        assert figures["requests"] > 10, route
        assert figures["p99_ms"] < 5000, (route, figures)


def test_slow_header_senders_do_not_starve_readers(server: Gunicorn) -> None:
    result = asyncio.run(slowloris.run(server.url, clients=256, seconds=6, interval=1.0, readers=4, timeout=3))
    summary = result.summary()
    print("slowloris:", summary)
    assert result.slow_open >= 200, "the slow clients did not hold their connections: the test proves nothing"
    assert result.reader_failed == 0, summary
    assert result.reader_ok >= 40, summary
    assert summary["reader_p99_ms"] < 1500, summary


def test_no_client_address_in_the_log_after_load(server: Gunicorn) -> None:
    asyncio.run(load.drive(server.url, seconds=2, connections=8))
    time.sleep(0.3)
    log = server.log()
    assert re.search(r'"GET /search" 200', log), "the access log is missing: nothing was checked"
    served = re.sub(r"(Listening at:|listening on) \S+", "", log)
    client_ports = re.findall(r"127\.0\.0\.1:\d+", served)
    assert "127.0.0.1" not in served, client_ports[:5]


def test_access_log_format_names_no_address() -> None:
    from blog import gunicorn_conf

    for atom in ("%(h)s", "%({x-forwarded-for}i)s", "%({x-real-ip}i)s", "%(r)s", "%(q)s", "%({host}i)s"):
        assert atom not in gunicorn_conf.access_log_format
    assert gunicorn_conf.forwarded_allow_ips == ""
    assert Path(gunicorn_conf.__file__).read_text().count("accesslog") == 1
