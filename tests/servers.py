"""Real gunicorn processes on 127.0.0.1 for tests: started, waited for, stopped by PID."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(name: str, package: str) -> str:
    """Return the path of a binary; fail under CI=true when it is missing, skip otherwise."""
    import shutil

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: apt-get install {package} (make test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class Gunicorn:
    """The production gunicorn configuration serving the app, on a free loopback port."""

    def __init__(self, content_dir: Path, data_dir: Path, *, workers: int = 2, worker_class: str | None = None,
                 extra_env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or data_dir.parent / f"gunicorn-{self.port}.log"
        self.env = dict(os.environ, BLOG_CONTENT_DIR=str(content_dir), BLOG_DATA_DIR=str(data_dir),
                        BLOG_WORKERS=str(workers), BLOG_TOR_MODE="off", **(extra_env or {}))
        self.env.pop("BLOG_CONFIG", None)
        self.args = [sys.executable, "-m", "gunicorn", "-c", "python:blog.gunicorn_conf",
                     "--bind", f"127.0.0.1:{self.port}", "--no-control-socket"]
        if worker_class:
            self.args += ["-k", worker_class]
        self.args.append("blog.web:create_app()")
        self.workers = workers
        self.worker_class = worker_class or self.env.get("BLOG_WORKER_CLASS", "asgi")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Gunicorn:
        self._log = self.log_path.open("ab")
        self._log_start = self._log.tell()
        self.process = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx2.get(self.url + "/", timeout=2).status_code == 200 and self._all_workers_up():
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.log()}")

    def _all_workers_up(self) -> bool:
        """True once every worker has loaded the app, so no worker is still starting behind a test's back.

        The first 200 comes from whichever worker is up first; on a busy machine the others may still be
        loading the app (and checking the build) seconds later. The asyncio worker says when it listens;
        other worker classes say nothing after loading the app, so for them the first 200 has to do.
        """
        if self.worker_class != "asgi":
            return True
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().count(b"ASGI server listening") >= self.workers

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_mcp(self, timeout: float = 120.0) -> None:
        """Ask for pages until every worker has started its MCP transport (imported after its first page).

        A figure measured before then includes a one-off import of the SDK: tens of MiB in one worker,
        and seconds of wait for the first tool call on a busy machine.
        """
        deadline = time.monotonic() + timeout
        while self.log().count("MCP transport started in worker") < self.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not start their MCP transport within {timeout} s:\n{self.log()}")
            try:
                httpx2.get(self.url + "/", timeout=10)
            except httpx2.HTTPError:
                pass
            time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        """The master's request workers (not its builder process)."""
        return [pid for pid in self._children() if not _is_builder(pid)]

    def builder_pids(self) -> list[int]:
        """The master's builder process (blog/builder.py): one while the site runs."""
        return [pid for pid in self._children() if _is_builder(pid)]

    def _children(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True,
                             text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def holders(self) -> dict[int, int]:
        """Map the client port of each accepted connection to the pid of the worker holding it (from ss).

        A connection still in the accept queue has no process yet and is left out.
        """
        ss = require_binary("ss", "iproute2")
        out = subprocess.run([ss, "-Htnp", "state", "established", f"( sport = :{self.port} )"],
                             capture_output=True, text=True, check=True).stdout
        held = {}
        for line in out.splitlines():
            holder = re.search(r"pid=(\d+)", line)
            if holder:  # columns: Recv-Q Send-Q local peer process
                held[int(line.split()[3].rsplit(":", 1)[1])] = int(holder.group(1))
        return held

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_builder(pid: int) -> bool:
    try:
        return b"blog.builder" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
