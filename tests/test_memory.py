"""The served stack's memory (issue: the whole stack on the smallest host): what is shared, what is released.

Generous bounds on real processes; the figures themselves are bench/memory.py's and bench/host512.py's.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from processes import Gunicorn, Server, descendants, free_port, pss_kib
from tests.conftest import ROOT, require_binary

ANNOUNCED = re.compile(r"onion service: http://([a-z2-7]{56})\.onion/")
HELD = re.compile(r"onion service http://([a-z2-7]{56})\.onion/ -> \S+, held by the builder \(pid (\d+)\)")


def _rollup(pid: int) -> dict[str, int]:
    """Return a process's smaps_rollup figures in KiB."""
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    return {line.split(":")[0]: int(line.split()[1]) for line in lines}


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


def test_workers_share_the_libraries_the_master_imported_before_forking(content_copy: Path, tmp_path: Path) -> None:
    with Gunicorn(content_copy, tmp_path / "data", workers=2) as server:
        for path in ("/", "/feed.atom", "/search?q=tor+restart", "/archive"):
            for _ in range(4):
                urllib.request.urlopen(server.url + path, timeout=10).read()
        server.wait_for_mcp()
        workers = server.worker_pids()
        shared = [_rollup(pid)["Shared_Dirty"] >> 10 for pid in workers]
        private = [_rollup(pid)["Private_Dirty"] >> 10 for pid in workers]
    # Flask, Whoosh, numpy, pydantic and the MCP SDK, imported once in the master: tens of MiB a worker
    # shares. Imported in each worker, its shared dirty pages were a few MiB (gunicorn's own).
    assert all(mib >= 20 for mib in shared), f"shared dirty MiB {shared}, private {private}"
    assert all(mib <= 60 for mib in private), f"private dirty MiB {private}, shared {shared}"


def _thread_arenas(pid: int) -> int:
    """Count glibc's thread arenas in a process: anonymous writable mappings aligned to 64 MiB (HEAP_MAX_SIZE)."""
    count = 0
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        start = int(fields[0].split("-")[0], 16)
        if len(fields) == 5 and fields[1] == "rw-p" and start % (64 << 20) == 0:
            count += 1
    return count


def test_a_worker_allocates_from_at_most_two_malloc_arenas(content_copy: Path, tmp_path: Path) -> None:
    with Gunicorn(content_copy, tmp_path / "data", workers=1) as server:
        server.wait_for_mcp()
        for _ in range(3):  # pages, searches and MCP calls on the app's threads at once
            threads = [threading.Thread(target=lambda p=path: urllib.request.urlopen(server.url + p, timeout=10).read())
                       for path in ("/", "/feed.atom", "/search?q=tor+restart", "/archive") * 4]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        (worker,) = server.worker_pids()
        arenas = _thread_arenas(worker)
    # Each app thread that allocated had an arena of its own: 13 in a worker, about 8 MiB of private pages.
    # The master caps them at two before forking (blog/gunicorn_conf.py); one more is a chance alignment.
    assert arenas <= 3, f"{arenas} malloc arenas in the worker"


def test_the_builder_and_the_semantic_process_share_what_the_master_imported(content_copy: Path,
                                                                          tmp_path: Path) -> None:
    env = {"BLOG_SEMANTIC": "1", "BLOG_MODEL_DIR": str(ROOT / "var" / "model")}
    with Gunicorn(content_copy, tmp_path / "data", workers=1, extra_env=env) as server:
        _wait(lambda: server.builder_pids() and server.semantic_pids(), 60, "the helpers' start")
        _wait(lambda: "semantic ranker ready" in server.log() and "builder ready" in server.log(), 120,
              "the helpers to be ready")
        helpers = [*server.builder_pids(), *server.semantic_pids()]
        shared = [_rollup(pid)["Shared_Dirty"] >> 10 for pid in helpers]
        titles = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() for pid in helpers]
    # Forked from the master after it imported the workers' libraries: 55-60 MiB of its pages shared with
    # it; each started as a new Python, none (all it held was its own). `ps` still names each by its module.
    assert all(mib >= 20 for mib in shared), f"shared dirty MiB {shared} ({titles})"
    assert "-m blog.builder --parent" in titles[0] and "-m blog.index.semantic.service --parent" in titles[1], titles


def test_the_semantic_process_keeps_one_session_once_the_build_is_embedded(content_copy: Path,
                                                                          tmp_path: Path) -> None:
    env = {"BLOG_SEMANTIC": "1", "BLOG_MODEL_DIR": str(ROOT / "var" / "model")}
    with Gunicorn(content_copy, tmp_path / "data", workers=1, extra_env=env) as server:
        _wait(lambda: "vectors for" in server.log(), 300, "embedding the starter log")
        time.sleep(2)  # the embedding session is released after the vectors are written
        (semantic,) = server.semantic_pids()
        mib = pss_kib(semantic) >> 10
        threads = int(Path(f"/proc/{semantic}/status").read_text().split("Threads:")[1].split()[0])
    # With the embedding session kept beside the question session it held 190-225 MiB (two copies of the
    # model's 58 MB of weights and their buffers); with one, 120-137 MiB; with the word table (47 MB) read
    # from its file instead of held by the session, 80-85 MiB.
    assert mib < 110, f"the semantic process holds {mib} MiB after embedding (threads: {threads})"


@pytest.mark.tor
def test_serve_becomes_gunicorn_and_its_builder_holds_tor_and_the_address(content_copy: Path,
                                                                         tmp_path: Path) -> None:
    require_binary("tor", "tor")
    data = tmp_path / "data"
    env = dict(os.environ, BLOG_CONTENT_DIR=str(content_copy), BLOG_DATA_DIR=str(data), BLOG_TOR_MODE="launch",
               BLOG_WORKERS="1", BLOG_SEMANTIC="0")
    env.pop("BLOG_CONFIG", None)
    port = free_port()
    serve = Server([sys.executable, "-m", "blog.cli", "serve", "--bind", f"127.0.0.1:{port}"],
                   tmp_path / "serve.log", port=port, env=env)
    with serve.start(timeout=120):
        master = serve.process.pid  # type: ignore[union-attr]
        # No process waits beside gunicorn: the process `blog serve` started as is the master now.
        assert b"gunicorn: master" in Path(f"/proc/{master}/cmdline").read_bytes()
        _wait(lambda: HELD.search(serve.log()), 60, "the builder publishing the onion")
        address, builder = HELD.search(serve.log()).groups()  # type: ignore[union-attr]
        assert ANNOUNCED.search(serve.log()).group(1) == address  # type: ignore[union-attr]
        tors = [pid for pid in descendants(int(builder)) if Path(f"/proc/{pid}/comm").read_text().strip() == "tor"]
        assert len(tors) == 1, f"the builder's children: {descendants(int(builder))}"

        os.kill(int(builder), signal.SIGKILL)  # a crash: its tor goes, the master starts it again
        _wait(lambda: len(HELD.findall(serve.log())) >= 2, 60, "the restarted builder publishing again")
        again, second = HELD.findall(serve.log())[-1]
        assert again == address and second != builder, "the onion address changed when the builder restarted"
        _wait(lambda: not Path(f"/proc/{tors[0]}").exists(), 30, "the first tor exiting with its controller")
        assert urllib.request.urlopen(f"{serve.url}/", timeout=10).status == 200

        status = subprocess.run([sys.executable, "-m", "blog.cli", "onion", "status"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0 and f"{address}.onion" in status.stdout, status.stdout + status.stderr
        assert "unreachable" not in status.stdout, status.stdout
    assert not [pid for pid in (int(builder), int(second)) if Path(f"/proc/{pid}").exists()]


def test_the_cli_imports_the_mcp_sdk_only_for_its_mcp_commands() -> None:
    # `blog reload` on a 512 MB host runs beside the served stack: the SDK took 45 MB of its 113 MB peak.
    probe = "import sys, blog.cli; print(sorted({m.split('.')[0] for m in sys.modules} & {'mcp', 'mcp_types'}))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout


def _logged_by(log: str, what: str) -> set[int]:
    """Return the pids of the processes whose log lines say `what`."""
    return {int(pid) for pid in re.findall(r"\] \[(\d+)\] \[INFO\] [^\n]*" + re.escape(what), log)}


def test_a_build_and_its_embedding_run_in_children_that_end(content_copy: Path, tmp_path: Path) -> None:
    env = {"BLOG_SEMANTIC": "1", "BLOG_MODEL_DIR": str(ROOT / "var" / "model")}
    with Gunicorn(content_copy, tmp_path / "data", workers=1, extra_env=env) as server:
        _wait(lambda: "vectors for" in server.log(), 300, "embedding the starter log")
        (builder,), (semantic,) = server.builder_pids(), server.semantic_pids()
        (content_copy / "log" / "2026-12-01-one-more.md").write_text(
            '---\ntitle: "One more entry"\ndate: 2026-12-01T10:00:00Z\ntags: [tor]\n'
            'summary: "A new entry to publish and embed."\n---\n\nA paragraph about tor and memory.\n',
            encoding="utf-8")
        os.kill(builder, signal.SIGUSR1)  # the nudge a replaced worker or a HUP sends
        _wait(lambda: server.log().count("vectors for") >= 2 and server.log().count(" is current: ") >= 2, 300,
              "the new build and its vectors")
        published, embedded = _logged_by(server.log(), " is current: "), _logged_by(server.log(), "vectors for")
        assert server.builder_pids() == [builder] and server.semantic_pids() == [semantic]
    # What a build reads and allocates is given back with the child that made it: neither the builder nor the
    # semantic process grows with each build (docs/performance.md, memory).
    assert builder not in published and semantic not in embedded, (builder, published, semantic, embedded)
    assert not any(Path(f"/proc/{pid}").exists() for pid in published | embedded), (published, embedded)
