"""Workers only read: the one builder (blog/builder.py) publishes, repairs and is supervised by the master."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from tor_helpers import wait_for

from processes import ROOT, Gunicorn
from tests.conftest import DATA

pytestmark = pytest.mark.slow

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "search_blog", "arguments": {"query": "onion key", "limit": 2}}}

# Loaded into every Python process of the server (master, builder, workers: fork keeps audit hooks):
# it records each write-like event on a path under the data directory, with the writer's pid.
AUDIT = r'''
import os, sys

_DATA = os.path.realpath(os.environ["AUDIT_DATA_DIR"])
_LOG = os.open(os.environ["AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate",
           "os.chmod", "os.chown", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
           "tempfile.mkstemp", "tempfile.mkdtemp"}


def _under(path):
    if isinstance(path, int):
        return False
    try:
        path = os.fsdecode(path)
    except TypeError:
        return False
    full = os.path.realpath(path)
    return full == _DATA or full.startswith(_DATA + os.sep)


def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        writes = (mode is not None and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
        targets = [path] if writes else []
    elif event in _EVENTS:
        targets = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    else:
        return
    for target in targets:
        if _under(target):
            os.write(_LOG, f"{os.getpid()} {event} {os.fsdecode(target)}\n".encode())


os.write(_LOG, f"{os.getpid()} start {' '.join(sys.argv)[:200]}\n".encode())
sys.addaudithook(_hook)
'''


@pytest.fixture
def audited(site_dir: Path, tmp_path: Path) -> Iterator[tuple[Gunicorn, Path, Path]]:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT)
    data_dir, log = tmp_path / "data", tmp_path / "writes.log"
    env = {"PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)]), "AUDIT_DATA_DIR": str(data_dir),
           "AUDIT_LOG": str(log)}
    with Gunicorn(site_dir, data_dir, extra_env=env) as server:
        yield server, log, data_dir


def current_index(data_dir: Path) -> Path:
    return Path(json.loads((data_dir / "builds" / "current").read_text())["index"])


def writes_by(log: Path) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for line in log.read_text().splitlines():
        pid, what = line.split(" ", 1)
        if not what.startswith("start "):
            found.setdefault(int(pid), []).append(what)
    return found


def test_request_workers_never_write_under_the_data_directory(audited: tuple[Gunicorn, Path, Path],
                                                                site_dir: Path) -> None:
    server, log, data_dir = audited
    workers = server.worker_pids()
    assert len(workers) == 2
    # Every kind of request, a rebuild the workers must follow, and a damaged index they must survive.
    for path in ("/", "/log/verify-config", "/search?q=tor", "/feed.atom", "/sitemap.xml", "/llms-full.txt"):
        assert httpx2.get(server.url + path, timeout=10).status_code == 200, path
    assert httpx2.post(server.url + "/mcp", json=CALL, headers=JSON, timeout=30).status_code == 200
    entry = site_dir / "log" / "2026-10-02-verify-config.md"
    entry.write_text(entry.read_text().replace("What broke", "What went wrong"))
    subprocess.run([sys.executable, "-m", "blog.cli", "build"], env=server.env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    wait_for(lambda: "What went wrong" in httpx2.get(server.url + "/log/verify-config", timeout=10).text,
             what="the workers to follow the new build")
    shutil.rmtree(current_index(data_dir))
    statuses = []
    deadline = time.monotonic() + 60
    while not statuses or statuses[-1] != 200:
        statuses.append(httpx2.get(server.url + "/search?q=zzzz+tor", timeout=10).status_code)
        assert time.monotonic() < deadline, statuses[-5:]
        time.sleep(0.3)
    assert 503 in statuses, "the damage was never noticed"
    assert workers == server.worker_pids(), "a worker was replaced: its writes would be missed"

    writes = writes_by(log)
    for pid in workers:
        assert pid not in writes, f"worker {pid} wrote under the data directory: {writes[pid][:5]}"
    assert writes.get(server.builder_pids()[0]), "the builder wrote nothing: the audit hook did not work"


def test_the_master_starts_a_new_builder_when_one_dies(site_dir: Path, tmp_path: Path) -> None:
    with Gunicorn(site_dir, tmp_path / "data") as server:
        first = wait_for(lambda: server.builder_pids(), what="the builder")
        assert len(first) == 1
        os.kill(first[0], signal.SIGKILL)
        second = wait_for(lambda: [p for p in server.builder_pids() if p != first[0]], what="a new builder",
                          timeout=15)
        assert len(second) == 1
        # gunicorn's waitpid(-1) reaps every child; the builder's status is claimed first, not lost as "0"
        assert "the builder was killed by SIGKILL; starting it again" in server.log(), server.log()[-2000:]
        # The new builder does the work: an index deleted now comes back.
        shutil.rmtree(current_index(tmp_path / "data"))
        wait_for(lambda: httpx2.get(server.url + "/search?q=tor", timeout=10).status_code == 200
                 and "verify-config" in httpx2.get(server.url + "/search?q=tor", timeout=10).text,
                 what="search back after the repair", timeout=60)
        master = server.process.pid if server.process else 0
    # And it goes with the site: no builder outlives its master.
    wait_for(lambda: not _builders_of(master), what="the builder to stop with the master", timeout=15)


def test_no_build_and_broken_content_stops_gunicorn_with_the_problems(tmp_path: Path) -> None:
    shutil.copytree(DATA / "broken", tmp_path / "content")
    server = Gunicorn(tmp_path / "content", tmp_path / "data")
    with pytest.raises(RuntimeError) as failed:
        server.start(timeout=60)
    assert "no build to serve" in str(failed.value)
    assert "2026-10-06-mistyped.md" in str(failed.value)


def _builders_of(master: int) -> list[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=False).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "blog.builder" in line and str(master) in line]


@pytest.mark.parametrize("fork", [False, True], ids=["new-python", "forked"])
def test_a_nudge_sent_while_the_builder_starts_waits_for_it_instead_of_ending_it(tmp_path: Path, fork: bool,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGUSR1 ends a process that has no handler for it yet: the master starts the builder with it blocked.

    A worker replaced just after the master started the builder nudged it while it was still importing its
    modules; the builder died of it, the one started again never heard the nudge, and the changed content
    was not published (tests/test_faults.py waited 60 s for it, on a busy machine). Forked, the builder is
    forked from a process of one thread, as gunicorn's master is: never from this test's own process, whose
    other threads may hold a lock (logging's, the import lock) that the fork would keep locked for good.
    """
    shutil.copytree(DATA / "site", tmp_path / "content")
    monkeypatch.setenv("BLOG_CONFIG", "/dev/null")
    monkeypatch.setenv("BLOG_CONTENT_DIR", str(tmp_path / "content"))
    monkeypatch.setenv("BLOG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BLOG_TOR_MODE", "off")
    monkeypatch.setenv("BLOG_SEMANTIC", "0")
    if not fork:
        _nudge_while_starting(tmp_path, fork=False)
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    code = ("from pathlib import Path; from tests.test_builder import _nudge_while_starting as nudge; "
            f"nudge(Path({str(tmp_path)!r}), fork=True)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-4000:]


def _nudge_while_starting(tmp_path: Path, fork: bool) -> None:
    """Start the builder, nudge it at once, and check that it published the change and lives."""
    from blog.builds import load_current
    from blog.supervisor import Supervisor

    builder = Supervisor("blog.builder", "the builder", held=(signal.SIGUSR1,), fork=fork)
    assert builder.run_once() == 0
    first = load_current(tmp_path / "data" / "builds")
    assert first is not None
    entry = next((tmp_path / "content").rglob("*.md"))
    entry.write_text(entry.read_text() + "\nA paragraph written while the builder starts.\n")
    builder.start()
    try:
        builder.nudge()  # at once: the builder is still importing its modules
        wait_for(lambda: load_current(tmp_path / "data" / "builds").id != first.id, what="the nudge's build",
                 timeout=60)
        builder.claim()
        assert builder.process is not None and builder.process.returncode is None, "the nudge ended the builder"
    finally:
        builder.stop()
