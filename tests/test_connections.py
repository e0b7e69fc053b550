"""Held connections against the production gunicorn: a cap per worker, a deadline and a size for each head.

gunicorn's asyncio worker ignored `worker_connections`, gave a connection no deadline before its first
request head, and kept up to 400 kB of a head that never ended (blog/gunicorn_guard.py, issue 27).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from processes import ROOT, Gunicorn
from tests.test_hostile import connect, cpu_seconds, serve, timed_get

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_site(tmp_path: Path) -> Iterator[Gunicorn]:
    """A server of its own for each test: what the flood leaves behind is measured."""
    yield from serve(tmp_path)


def read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Read until the site closes the connection; return what it said and when (s from now)."""
    sock.settimeout(timeout)
    start, answer = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer, time.monotonic() - start


def test_a_first_head_has_a_deadline_and_a_size(fresh_site: Gunicorn) -> None:
    from blog.gunicorn_guard import HEAD_BUDGET, HEAD_DEADLINE

    site = fresh_site
    silent, partial = connect(site.port), connect(site.port)
    try:
        partial.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n")
        said, took = read_all(silent, HEAD_DEADLINE + 10)
        assert said == b"" and HEAD_DEADLINE - 1 < took < HEAD_DEADLINE + 3, took
        said, _took = read_all(partial, 5)
        assert said.startswith(b"HTTP/1.1 408") and b"default-src 'none'" in said, said[:200]
    finally:
        silent.close()
        partial.close()
    # A head of 20 kB is refused whether it comes in one read or in many; one of 15 kB is served.
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"f" * 4000) for i in range(5))
    with connect(site.port) as sock:
        sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields + b"\r\n")
        assert read_all(sock, 5)[0].startswith(b"HTTP/1.1 431")
    with connect(site.port) as sock:
        sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(5):
            sock.sendall(b"X-F%d: %s\r\n" % (i, b"f" * 4000))
            time.sleep(0.05)
        assert read_all(sock, 5)[0].startswith(b"HTTP/1.1 431")
    with connect(site.port) as sock:
        small = b"".join(b"X-F%d: %s\r\n" % (i, b"f" * 3000) for i in range(5))
        assert len(small) < HEAD_BUDGET
        sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + small + b"\r\n")
        assert read_all(sock, 5)[0].startswith(b"HTTP/1.1 200")


def test_long_header_lines_cost_a_worker_little_time(tmp_path: Path) -> None:
    """gunicorn checked each byte of a header value in Python: 0.7 to 1 ms of a worker's time per half-sent
    head of two 8 kB lines, most of what a flood cost while readers waited to be accepted."""
    from bench.flood import HALF_SENT
    from blog.gunicorn_guard import HEAD_BUDGET

    head = HALF_SENT[:HALF_SENT.index(b"X-Held-02")]  # the request line, Host and two lines of 8,000 bytes
    assert len(head) < HEAD_BUDGET  # parsed to the end and held: each of its lines is checked
    shutil.copytree(ROOT / "content", tmp_path / "content")
    with Gunicorn(tmp_path / "content", tmp_path / "data", workers=1) as site:
        assert timed_get(site.url + "/robots.txt")[0] == 200
        pid = site.worker_pids()[0]
        held, before = [], cpu_seconds(pid)
        try:
            for _ in range(400):
                held.append(connect(site.port))
                held[-1].sendall(head)
            time.sleep(1.0)  # the worker has read every head (it takes well under a second of its time)
            spent = cpu_seconds(pid) - before
            assert timed_get(site.url + "/robots.txt")[0] == 200
        finally:
            for sock in held:
                sock.close()
        # The same values are refused as by gunicorn's own check (RFC 9110 section 5.5), the same accepted.
        for value, status in ((b"a\x01b", b"400"), (b"a\x7fb", b"400"), (b"a\x1fb", b"400"), (b"a\tb", b"200"),
                              (b"caf\xe9 \x80\xff", b"200")):
            with connect(site.port) as sock:
                sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-V: " + value
                             + b"\r\n\r\n")
                assert read_all(sock, 5)[0][9:12] == status, value
    print(f"CPU per half-sent head: {spent * 1000 / 400:.2f} ms")
    # Measured at a load average of 5 to 7: 0.73-0.97 ms a head with the byte loop; 0.23-0.30 ms with the
    # check in C (accepting the connection, a transport, a parser, reading and checking 16 kB).
    assert spent / 400 < 0.5e-3, f"a worker spent {spent * 1000 / 400:.2f} ms of CPU per half-sent head"


def test_a_worker_holds_at_most_worker_connections(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "content", tmp_path / "content")
    with Gunicorn(tmp_path / "content", tmp_path / "data", workers=1,
                  extra_env={"BLOG_WORKER_CONNECTIONS": "40"}) as site:
        held = [connect(site.port) for _ in range(120)]
        try:
            time.sleep(1.0)
            status, seconds = timed_get(site.url + "/robots.txt")  # the newest connection always gets in
            assert status == 200 and seconds < 2.0
            open_ones = sum(1 for sock in held if _still_open(sock))
            assert open_ones <= 40, f"{open_ones} silent connections held beyond the cap of 40"
            assert open_ones >= 30, "the cap closed more than it needed to"
        finally:
            for sock in held:
                sock.close()


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def test_the_open_file_limit_is_raised_to_hold_the_connections() -> None:
    script = ("import resource\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n"
              "from blog.gunicorn_guard import room_for_connections\n"
              "print(room_for_connections(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n")
    hard = resource_hard_limit()
    out = subprocess.run([sys.executable, "-c", script.format(soft=1024, hard=hard)], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    assert out == ["1000", "1256"], out
    low = subprocess.run([sys.executable, "-c", script.format(soft=256, hard=600)], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert low.stdout.split() == ["344", "600"], low.stdout
    assert "raise it (LimitNOFILE=)" in low.stderr


def resource_hard_limit() -> int:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


def test_a_flood_of_held_connections_is_bounded(fresh_site: Gunicorn) -> None:
    """3,000 half-sent heads and 9,000 silent connections (issue 27): readers are served, memory comes back."""
    from bench import flood as held_open
    from blog.gunicorn_guard import HEAD_DEADLINE
    from processes import rss_kib

    site = fresh_site
    pids = site.worker_pids()
    result = held_open.flood(site.url, idle=9000, half_sent=3000, hold=60, readers=4, kept=2, after=0,
                             paths=["/", "/feed.atom", "/search?q=onion", "/archive"], pids=pids)
    flood = asyncio.run(result)
    summary = flood.summary()
    print("flood:", json.dumps(summary))
    held = flood.held
    assert held.connected >= 11_000, summary  # else the flood did not happen and this proves nothing
    assert held.still_open == 0, f"{held.still_open} held connections still open after 60 s"
    # The stated deadline, plus what a busy machine adds before a connection is even accepted.
    assert max(held.lifetimes) < HEAD_DEADLINE + 10, summary
    assert set(held.answers) <= {"", "431"}, held.answers
    # p99 <= 100 ms on a quiet machine (docs/reliability.md); this one is shared with other work, and a reader
    # opening a connection can wait behind the flood in a full listen queue (a SYN-ACK retransmitted after
    # 1 s, then 3 s): a few such may pass the 5 s timeout. A kept-alive reader waits for no queue.
    fresh, kept = flood.readers, flood.kept
    assert fresh.reader_ok >= 50 and fresh.reader_failed <= fresh.reader_ok // 100, summary
    assert held_open.percentile(fresh.latencies, 50) < 0.1, summary
    assert kept.reader_ok >= 50 and kept.reader_failed == 0, summary
    assert held_open.percentile(kept.latencies, 50) < 0.1 and held_open.percentile(kept.latencies, 99) < 2.0, summary
    for pid in pids:
        peak = max(kib for _t, kib in flood.rss_kib[pid])
        assert peak < 150 * 1024, f"worker {pid} grew to {peak / 1024:.0f} MiB during the flood"
    deadline = time.monotonic() + 60
    while any(rss_kib(pid) > 1.1 * flood.baseline_kib[pid] for pid in pids):
        assert time.monotonic() < deadline, (f"a worker's memory did not come back within a minute: "
                                             f"{ {pid: (flood.baseline_kib[pid], rss_kib(pid)) for pid in pids} }")
        time.sleep(2)


def test_held_connections_do_not_delay_a_stop(tmp_path: Path) -> None:
    # gunicorn waited its whole graceful timeout (20 s) for connections that had not sent a request.
    shutil.copytree(ROOT / "content", tmp_path / "content")
    site = Gunicorn(tmp_path / "content", tmp_path / "data", workers=2).start()
    held = []
    try:
        for _ in range(20):
            held.append(connect(site.port))
            held[-1].sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(connect(site.port))
        time.sleep(1.0)
        started = time.monotonic()
        site.stop()
        took = time.monotonic() - started
    finally:
        site.stop()
        for sock in held:
            sock.close()
    assert took < 12, f"the stop took {took:.1f} s: it waited for connections that had sent no request"


def listen_queues(port: int) -> list[int]:
    """Return the connections waiting in each socket listening on 127.0.0.1:port (kernel's /proc/net/tcp)."""
    queues = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # LISTEN
            queues.append(int(fields[4].split(":")[1], 16))  # rx_queue: accepted by the kernel, not by a worker
    return queues


def ask_all(port: int, count: int) -> list[socket.socket]:
    """Open count connections, each with a whole request on it, without waiting for any answer."""
    socks = []
    for _ in range(count):
        sock = connect(port)
        sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        socks.append(sock)
    return socks


def answered(socks: list[socket.socket], timeout: float) -> list[bytes]:
    """Return each connection's status code within timeout s in all (b"" for none: a reset, a close, no answer)."""
    statuses, deadline = [], time.monotonic() + timeout
    for sock in socks:
        try:
            said = read_all(sock, max(deadline - time.monotonic(), 0.01))[0]
        except OSError:
            said = b""
        finally:
            sock.close()
        statuses.append(said[9:12])
    return statuses


def test_each_worker_drains_a_listen_queue_of_its_own(tmp_path: Path) -> None:
    """One shared queue was drained by whichever worker woke first while the other idled (issue 27): a burst
    of new connections waited behind one worker. Each worker now has a listener of its own, and the kernel
    spreads connections over them."""
    import os
    import signal

    shutil.copytree(ROOT / "content", tmp_path / "content")
    with Gunicorn(tmp_path / "content", tmp_path / "data", workers=2) as site:
        assert timed_get(site.url + "/robots.txt")[0] == 200
        pids = site.worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            waiting = ask_all(site.port, 200)
            queues = listen_queues(site.port)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        assert len(queues) == 2 and sum(queues) == 200, queues
        assert min(queues) >= 60, f"the kernel did not spread the connections over the workers' queues: {queues}"
        assert answered(waiting, 10) == [b"200"] * 200


def test_connections_queued_for_a_worker_that_dies_are_served(tmp_path: Path) -> None:
    """A worker's listen queue outlives the worker: what waits in it when the worker is killed goes to the
    worker that replaces it, not reset (a socket that closes with its worker resets its whole queue)."""
    import os
    import signal

    shutil.copytree(ROOT / "content", tmp_path / "content")
    with Gunicorn(tmp_path / "content", tmp_path / "data", workers=2) as site:
        assert timed_get(site.url + "/robots.txt")[0] == 200
        doomed, other = site.worker_pids()
        for pid in (doomed, other):
            os.kill(pid, signal.SIGSTOP)
        try:
            waiting = ask_all(site.port, 100)
            assert min(listen_queues(site.port)) >= 20, listen_queues(site.port)  # both queues hold some
            os.kill(doomed, signal.SIGKILL)
        finally:
            os.kill(other, signal.SIGCONT)
        statuses = answered(waiting, 60)
        assert statuses == [b"200"] * 100, f"{100 - statuses.count(b'200')} queued connections lost"
        # The replacement serves the dead worker's listener, and no listener is left without a worker.
        assert doomed not in site.worker_pids() and len(site.worker_pids()) == 2
        assert listen_queues(site.port) == [0, 0]
        assert answered(ask_all(site.port, 100), 10) == [b"200"] * 100
        # A HUP replaces both workers: the new ones take the same listeners, and none is left unserved.
        before = set(site.worker_pids())
        os.kill(site.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while not (len(site.worker_pids()) == 2 and before.isdisjoint(site.worker_pids())
                   and site.log(since_start=True).count("ASGI server listening") >= 5):
            assert time.monotonic() < deadline, "the workers were not replaced after a HUP"
            time.sleep(0.2)
        assert len(listen_queues(site.port)) == 2
        assert answered(ask_all(site.port, 100), 10) == [b"200"] * 100


def test_a_hung_workers_queue_is_drained_by_its_sibling(tmp_path: Path) -> None:
    """With a queue per worker, a worker whose loop is stuck would strand the connections the kernel queued
    for it until gunicorn's timeout (30 s) replaced it; the other worker takes them within a sweep or two."""
    import os
    import signal

    from blog.gunicorn_guard import SWEEP_EVERY

    shutil.copytree(ROOT / "content", tmp_path / "content")
    with Gunicorn(tmp_path / "content", tmp_path / "data", workers=2) as site:
        assert timed_get(site.url + "/robots.txt")[0] == 200
        hung = site.worker_pids()[0]
        os.kill(hung, signal.SIGSTOP)
        try:
            statuses = answered(ask_all(site.port, 100), 4 * SWEEP_EVERY + 3)
        finally:
            os.kill(hung, signal.SIGCONT)
    assert statuses == [b"200"] * 100, f"{100 - statuses.count(b'200')} connections stranded by a hung worker"
