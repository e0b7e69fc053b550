"""Faults with real processes: tor dies, the index vanishes, content breaks, a worker dies, the disk fills."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from tor_helpers import SystemTor, wait_for

from processes import Gunicorn, Server, free_port
from tests.conftest import DATA, ROOT, connection_holders

pytestmark = pytest.mark.slow


def tree_hash(root: Path) -> str:
    """Return one digest over every file's path, mode and bytes under root."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode() + oct(path.stat().st_mode).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def get(url: str) -> httpx2.Response:
    return httpx2.get(url, timeout=10)


@pytest.fixture
def server(site_dir: Path, tmp_path: Path):
    with Gunicorn(site_dir, tmp_path / "data") as running:
        yield running


def current_index(data_dir: Path) -> Path:
    import json

    return Path(json.loads((data_dir / "builds" / "current").read_text())["index"])


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_index_lost_while_serving_is_rebuilt_and_content_untouched(server: Gunicorn, site_dir: Path,
                                                                  tmp_path: Path, damage: str) -> None:
    before = tree_hash(site_dir)
    assert "verify-config" in get(server.url + "/search?q=tor").text
    index_dir = current_index(tmp_path / "data")
    if damage == "delete":
        shutil.rmtree(index_dir)
    else:
        for path in index_dir.iterdir():
            path.write_bytes(b"\x00garbage" * 64)
    statuses = []
    deadline = time.monotonic() + 60
    while True:
        assert get(server.url + "/").status_code == 200
        assert get(server.url + "/log/verify-config").status_code == 200
        response = get(server.url + "/search?q=tor")
        statuses.append(response.status_code)
        assert response.status_code in (200, 503), response.text[:300]
        assert "Traceback" not in response.text
        if response.status_code == 200 and "verify-config" in response.text and len(statuses) > 1:
            break
        assert time.monotonic() < deadline, f"search did not come back: {statuses[-5:]}"
        time.sleep(0.3)
    assert 503 in statuses, "the damage was never noticed: the test did not test the rebuild"
    assert "rebuilding it from" in server.log()
    assert tree_hash(site_dir) == before


def test_broken_content_keeps_the_last_good_build_and_check_names_every_problem(server: Gunicorn,
                                                                                site_dir: Path) -> None:
    broken = ["2026-10-06-mistyped.md", "2026-10-02-bad-date.md", "2026-10-01-missing-title.md"]
    for name in broken:
        shutil.copy(DATA / "broken" / "log" / name, site_dir / "log" / name)
    # A worker gunicorn starts now looks at the broken content: it must serve the last good build and say so.
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 2, what="a new worker")
    # The master nudges the builder, which checks the content again (it missed 20 s once in a whole-suite
    # run on 2 busy cores; alone it takes about a second).
    wait_for(lambda: "serving the last good build" in server.log(), what="the builder's log line", timeout=60)
    for _ in range(10):
        assert get(server.url + "/log/verify-config").status_code == 200
    result = subprocess.run([sys.executable, "-m", "blog.cli", "check"], env=server.env, cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode != 0
    for name in broken:
        assert name in result.stderr, result.stderr
    assert f"{len(broken)} problem(s)" in result.stderr or "problem(s)" in result.stderr


def test_worker_killed_mid_request_is_replaced_and_others_unaffected(server: Gunicorn) -> None:
    # A request caught half-way: headers and half of the body sent to one worker.
    victim_sock = socket.create_connection(("127.0.0.1", server.port))
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'
    # A keep-alive reader on the other worker, mid-conversation when the victim dies. The local port is read
    # from the reader's own socket: every earlier try is still open, so ss lists several of ours.
    readers: list[http.client.HTTPConnection] = []
    try:
        victim_sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n"
                            % len(body) + body[:10])
        victim = wait_for(lambda: connection_holders(server).get(victim_sock.getsockname()[1]),
                          what="a worker to take the request")
        # Both workers' event loops accept on the shared socket and an idle one may win many times in a
        # row on a busy machine: try until a connection lands on the other worker.
        holders = []
        for _ in range(300):
            reader = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            readers.append(reader)
            assert _fetch(reader, "/") == 200
            holder = wait_for(lambda: connection_holders(server).get(reader.sock.getsockname()[1]),
                              what="a worker to hold it")
            holders.append(holder)
            if holder != victim:
                break
            time.sleep(0.01)
        else:
            pytest.fail(f"every connection landed on the victim worker {victim}: {holders[-10:]}")
        os.kill(victim, signal.SIGKILL)
        victim_sock.settimeout(5)
        try:
            lost = victim_sock.recv(100)
        except ConnectionResetError:
            lost = b""
        assert lost == b"", "the half-sent request was answered by a dead worker?"
        local_port = reader.sock.getsockname()[1]
        for _ in range(20):
            assert _fetch(reader, "/log/verify-config") == 200
        assert reader.sock.getsockname()[1] == local_port, "the keep-alive connection was dropped"
    finally:
        victim_sock.close()
        for each in readers:
            each.close()
    wait_for(lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 2, what="a new worker")
    for _ in range(20):
        assert get(server.url + "/search?q=tor").status_code == 200
    assert server.process is not None and server.process.poll() is None


def _fetch(connection: http.client.HTTPConnection, path: str) -> int:
    """GET path on a kept-alive connection; return the status after reading the whole body."""
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """Mount a 2 MiB tmpfs (root only); unmount it afterwards."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the disk-full test mounts a tmpfs and needs root")
        pytest.skip("the disk-full test mounts a tmpfs and needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_while_writing_the_index_keeps_the_old_one(site_dir: Path, tmp_path: Path, tiny_tmpfs: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "index").symlink_to(tiny_tmpfs)  # only the index lives on the small disk
    with Gunicorn(site_dir, data) as server:
        old = current_index(data)
        assert "verify-config" in get(server.url + "/search?q=tor").text
        # A new entry far bigger than what is left on the index's disk.
        words = " ".join(f"word{i} tor" for i in range(40_000))
        paragraphs = "\n\n".join(f"Paragraph {n}: {words}" for n in range(4))
        (site_dir / "log" / "2026-10-20-huge.md").write_text(
            '---\ntitle: "Huge"\ndate: 2026-10-20T10:00:00Z\ntags: [tor]\nsummary: "Big."\n---\n\n' + paragraphs)
        result = subprocess.run([sys.executable, "-m", "blog.cli", "reload"], env=server.env, cwd=ROOT,
                                capture_output=True, text=True, check=False, timeout=120)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "disk" in result.stderr, result.stderr[-2000:]
        assert current_index(data) == old
        time.sleep(1.2)
        for _ in range(6):
            response = get(server.url + "/search?q=tor")
            assert response.status_code == 200 and "verify-config" in response.text
        assert get(server.url + "/log/huge").status_code == 404  # still the old build
        assert not [p for p in tiny_tmpfs.iterdir() if p.name.startswith(".tmp-")], "a partial index was left"


@pytest.mark.tor
def test_tor_killed_and_restarted_reprovisions_without_restarting_the_app(site_dir: Path, tmp_path: Path) -> None:
    tor = SystemTor(tmp_path / "system", control_socket=True).start()
    port = free_port()
    env = dict(os.environ, BLOG_CONTENT_DIR=str(site_dir), BLOG_DATA_DIR=str(tmp_path / "data"),
               BLOG_TOR_MODE="attach", BLOG_TOR_CONTROL=tor.control, BLOG_WORKERS="1")
    env.pop("BLOG_CONFIG", None)
    log_path = tmp_path / "serve.log"
    serve = Server([sys.executable, "-m", "blog.cli", "serve", "--bind", f"127.0.0.1:{port}"], log_path, port=port,
                   env=env)
    url = serve.url
    try:
        serve.start(timeout=60)
        # The builder's own line: "published" alone also matches the revision log's "published.chain does not
        # exist", written before the builder has reached tor, and tor was then killed before it was used.
        published = wait_for(lambda: re.search(r"onion service ([a-z2-7]{56})\.onion -> \S+ published",
                                               log_path.read_text()), what="the onion service")
        address = published.group(1)
        tor.kill()
        served = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # tor is down: readers on other paths are still answered
            assert get(url + "/").status_code == 200
            served += 1
            time.sleep(0.1)
        tor.start()
        wait_for(lambda: "re-provisioned" in log_path.read_text(), timeout=60, what="re-provisioning")
        assert f"re-provisioned {address}.onion" in log_path.read_text()
        assert serve.process is not None and serve.process.poll() is None, "the app restarted"
        assert get(url + "/log/verify-config").status_code == 200 and served > 10
    finally:
        serve.stop()
        tor.stop()


