"""The production gunicorn configuration serving real pages over HTTP on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.conftest import DATA, ROOT
from tests.servers import Gunicorn

pytestmark = pytest.mark.slow


@pytest.fixture
def server(site_dir: Path, tmp_path: Path):
    with Gunicorn(site_dir, tmp_path / "data") as running:
        yield running


def test_pages_over_http_without_banner_or_client_addresses(server: Gunicorn) -> None:
    with httpx2.Client(base_url=server.url, timeout=10) as http:
        for path in ("/", "/log/verify-config", "/feed.atom", "/tags/tor", "/nope"):
            response = http.get(path)
            assert response.status_code == (404 if path == "/nope" else 200)
            assert "server" not in response.headers
            assert "content-security-policy" in response.headers
        assert http.get("/", headers={"Accept-Encoding": "gzip"}).headers["content-encoding"] == "gzip"
        # keep-alive: gthread workers keep the connection for the next request
        assert http.get("/").headers.get("connection", "keep-alive").lower() != "close"
    time.sleep(0.3)
    log = server.log()
    assert '"GET /log/verify-config"' in log
    assert "127.0.0.1" not in re.sub(r"Listening at: \S+|listening on \S+|bind.*", "", log)


def test_blog_reload_with_broken_content_keeps_serving(server: Gunicorn, site_dir: Path, tmp_path: Path) -> None:
    env = dict(server.env)
    shutil_copy = DATA / "broken" / "log" / "2026-10-06-mistyped.md"
    (site_dir / "log" / shutil_copy.name).write_bytes(shutil_copy.read_bytes())
    result = subprocess.run([sys.executable, "-m", "blog.cli", "reload"], env=env, cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0
    assert "2026-10-06-mistyped.md:4: tags must be a list" in result.stderr
    assert "keeps serving its last good build" in result.stderr
    assert httpx2.get(server.url + "/log/verify-config", timeout=5).status_code == 200
    (site_dir / "log" / shutil_copy.name).unlink()
    path = site_dir / "log" / "2026-10-02-verify-config.md"
    path.write_text(path.read_text().replace("What broke", "What went wrong"))
    result = subprocess.run([sys.executable, "-m", "blog.cli", "reload"], env=env, cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 5
    while "What went wrong" not in httpx2.get(server.url + "/log/verify-config", timeout=5).text:
        assert time.monotonic() < deadline, "the reloaded entry was not served within 5 s"
        time.sleep(0.05)
    time.sleep(1.1)  # every worker looks at the build pointer at least once a second
    bodies = [httpx2.get(server.url + "/log/verify-config", timeout=5).text for _ in range(12)]
    assert all("What went wrong" in body for body in bodies)


def test_refuses_a_public_bind_unless_told(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "blog.cli", "--content", str(DATA / "site"), "--data",
                             str(tmp_path / "d"), "serve", "--bind", "0.0.0.0:8999", "--no-tor"],
                            capture_output=True, text=True, cwd=ROOT, check=False, timeout=60)
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0:8999" in result.stderr
