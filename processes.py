"""Processes the tests and the benches start: servers on free loopback ports, waited for, stopped by PID.

One module for both, at the top of the repository (tests/, bench/ and `python -m tests.fresh` run from
here): free ports, the production gunicorn serving the app, waiting for a first 200, stopping a process
and its session, and a process's resident memory. Standard library only.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent
APP = "blog.web:create_app()"  # what gunicorn serves unless told otherwise


class ServerError(RuntimeError):
    """A server could not be started or did not answer in time."""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kib(path: str, field: str) -> int:
    """Return a `Field:   N kB` line's N from a /proc file (0 when the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid: int) -> int:
    """Return a process's resident set in KiB, from /proc (0 when it is gone)."""
    return _kib(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    """Return a process's proportional set in KiB (shared pages split between their users), 0 when gone."""
    return _kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def descendants(pid: int) -> list[int]:
    """Return the PIDs of a process's children, their children, and so on."""
    found, queue = [], [pid]
    while queue:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(queue.pop())], capture_output=True, text=True,
                             check=False).stdout
        children = [int(p) for p in out.split()]
        found += children
        queue += children
    return found


def rss_mib(pid: int) -> float:
    """Return a process's resident set in MiB (0 when it is gone)."""
    return rss_kib(pid) / 1024


def answers(url: str, timeout: float = 2.0) -> bool:
    """Tell whether url answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # URLError is an OSError
        return False


class Server:
    """A server process in its own session on 127.0.0.1:port, started, waited for and stopped by its PID."""

    def __init__(self, args: list[str], log_path: Path, *, port: int = 0, env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        self.args, self.log_path, self.env, self.port, self.cwd = args, log_path, env, port, cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.first_answer_s = 0.0  # from process start to the first 200, in s
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, probe: str = "/", timeout: float = 60.0) -> Self:
        """Start the process; return once probe answers 200 and the server is ready, else stop it and raise."""
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            started = time.monotonic()
            self.process = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = started + timeout
        answered = False
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise ServerError(f"{self.args[0]} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            if not answered and answers(self.url + probe):
                answered, self.first_answer_s = True, time.monotonic() - started
            if answered and self.ready():
                return self
            time.sleep(0.02 if not answered else 0.1)
        self.stop()
        raise ServerError(f"{self.url}{probe} was not ready within {timeout:.0f} s ({self.log_path}):\n"
                          f"{self.log()[-3000:]}")

    def ready(self) -> bool:
        """Tell whether the server, having answered once, is ready for the caller (always, unless told)."""
        return True

    def log(self, since_start: bool = False) -> str:
        """Return the log (stdout and stderr), or only what this start of the process wrote."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start if since_start else 0)
            return log.read().decode(errors="replace")

    def children(self) -> list[int]:
        """Return the PIDs of the process's direct children (nginx's workers; gunicorn's and its builder)."""
        assert self.process is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True,
                             text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        """Stop the process: TERM to it, then KILL to its own session if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> Self:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Gunicorn(Server):
    """The production gunicorn configuration (blog/gunicorn_conf.py) serving the app, on a free loopback port.

    Ready once every worker has loaded the app: the first 200 comes from whichever worker is up first, and
    on a busy machine the others may still be loading (and checking the build) seconds later. The asyncio
    worker says when it listens; other worker classes say nothing after loading, so the first 200 does.
    """

    def __init__(self, content_dir: Path | None = None, data_dir: Path | None = None, *, workers: int = 2,
                 worker_class: str | None = None, extra_env: dict[str, str] | None = None,
                 log_path: Path | None = None, app: str = APP) -> None:
        port = free_port()
        # The semantic ranker embeds every new data directory's build (seconds of CPU): off unless a test
        # asks for it (extra_env={"BLOG_SEMANTIC": "1"}), so the suite's many sites stay cheap.
        env = dict(os.environ, BLOG_WORKERS=str(workers), BLOG_TOR_MODE="off", BLOG_SEMANTIC="0")
        if content_dir is not None:
            env["BLOG_CONTENT_DIR"] = str(content_dir)
        if data_dir is not None:
            env["BLOG_DATA_DIR"] = str(data_dir)
        env.update(extra_env or {})
        env.pop("BLOG_CONFIG", None)
        args = [sys.executable, "-m", "gunicorn", "-c", "python:blog.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
                "--no-control-socket"]
        if worker_class:
            args += ["-k", worker_class]
        if log_path is None:
            assert data_dir is not None, "give a log_path or a data_dir to put the log beside"
            log_path = data_dir.parent / f"gunicorn-{port}.log"
        super().__init__([*args, app], log_path, port=port, env=env)
        self.workers = workers
        self.worker_class = worker_class or env.get("BLOG_WORKER_CLASS", "asgi")

    def ready(self) -> bool:
        return self.worker_class != "asgi" or self.log(since_start=True).count("ASGI server listening") >= self.workers

    def worker_pids(self) -> list[int]:
        """Return the master's request workers (not its builder process)."""
        return [pid for pid in self.children() if not _is_builder(pid) and not _is_semantic(pid)]

    def semantic_pids(self) -> list[int]:
        """Return the master's semantic ranker process (blog/index/semantic/service.py)."""
        return [pid for pid in self.children() if _is_semantic(pid)]

    def builder_pids(self) -> list[int]:
        """Return the master's builder process (blog/builder.py): one while the site runs."""
        return [pid for pid in self.children() if _is_builder(pid)]

    def wait_for_mcp(self, timeout: float = 120.0) -> None:
        """Ask for pages until every worker has started its MCP transport (imported after its first page).

        A figure measured before then includes a one-off import of the SDK: tens of MiB in one worker,
        and seconds of wait for the first tool call on a busy machine.
        """
        deadline = time.monotonic() + timeout
        while self.log().count("MCP transport started in worker") < self.workers:
            if time.monotonic() > deadline:
                raise ServerError(f"the workers did not start their MCP transport within {timeout} s:\n{self.log()}")
            answers(self.url + "/", timeout=10)
            time.sleep(0.2)


def _is_builder(pid: int) -> bool:
    return _runs(pid, b"blog.builder")


def _is_semantic(pid: int) -> bool:
    return _runs(pid, b"blog.index.semantic.service")


def _runs(pid: int, module: bytes) -> bool:
    try:
        return module in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
