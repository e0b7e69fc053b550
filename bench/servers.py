"""Servers the benches measure, on free 127.0.0.1 ports, started and stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BARE_TABLE = "BENCH_BARE_TABLE"  # env var: JSON file of {path: [status, headers, body-latin1]}


class BenchError(RuntimeError):
    """A server the bench needs could not be started or reached."""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float, log_path: Path) -> float:
    """Poll url until it answers 200; return the seconds since the call."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise BenchError(f"{process.args[0]} exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.02)
    raise BenchError(f"{url} did not answer 200 within {timeout:.0f} s; see {log_path}")


class Process:
    """A server process in its own session, stopped by its PID."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.args, self.log_path, self.env = args, log_path, env
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, probe: str = "/", timeout: float = 60.0) -> float:
        """Start the process and wait for a 200 on probe; return process start to first 200, in s."""
        handle = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        wait_for(self.url + probe, self.process, timeout, self.log_path)
        return time.monotonic() - self.started_at

    def children(self) -> list[int]:
        """Return the PIDs of the process's request workers (gunicorn's or nginx's; not gunicorn's builder)."""
        assert self.process is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True,
                             text=True, check=False).stdout
        return [int(p) for p in out.split() if not _is_builder(int(p))]

    def stop(self) -> None:
        """Stop the process (TERM, then KILL of its own group)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def app_server(content_dir: Path, data_dir: Path, log_path: Path, workers: int = 2) -> Process:
    """Return our app under the production gunicorn configuration (not started)."""
    env = dict(os.environ, BLOG_CONTENT_DIR=str(content_dir), BLOG_DATA_DIR=str(data_dir),
               BLOG_WORKERS=str(workers), BLOG_TOR_MODE="off")
    env.pop("BLOG_CONFIG", None)
    server = Process([], log_path, env)
    server.port = free_port()
    server.args = [sys.executable, "-m", "gunicorn", "-c", "python:blog.gunicorn_conf", "--bind",
                   f"127.0.0.1:{server.port}", "--no-control-socket", "blog.web:create_app()"]
    return server


def bare_server(table: Path, log_path: Path, workers: int = 2) -> Process:
    """Return a bare WSGI callable under the same gunicorn configuration, answering saved responses."""
    env = dict(os.environ, BLOG_WORKERS=str(workers), **{BARE_TABLE: str(table)})
    server = Process([], log_path, env)
    server.port = free_port()
    server.args = [sys.executable, "-m", "gunicorn", "-c", "python:blog.gunicorn_conf", "--bind",
                   f"127.0.0.1:{server.port}", "--no-control-socket", "bench.servers:bare_app"]
    return server


_table: dict[str, tuple[str, list[tuple[str, str]], bytes]] | None = None


def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer a saved response by path: the ceiling for any Python WSGI app on this gunicorn."""
    global _table
    if _table is None:
        raw = json.loads(Path(os.environ[BARE_TABLE]).read_text())
        _table = {k: (s, [tuple(h) for h in hs], b.encode("latin-1")) for k, (s, hs, b) in raw.items()}
    query = environ.get("QUERY_STRING", "")
    key = environ.get("PATH_INFO", "/") + (f"?{query}" if query else "")
    status, headers, body = _table.get(key) or ("404 Not Found", [("Content-Length", "0")], b"")
    start_response(status, headers)
    return [body]


def write_bare_table(path: Path, responses: dict[str, tuple[str, list[tuple[str, str]], bytes]]) -> None:
    """Save responses for bare_app."""
    path.write_text(json.dumps({k: [s, h, b.decode("latin-1")] for k, (s, h, b) in responses.items()}))


NGINX_CONF = """daemon off;
master_process on;
worker_processes {workers};
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    types {{ text/html html; application/atom+xml atom; }}
    default_type text/html;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 20;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        gzip_static on;
        etag on;
        add_header Cache-Control no-cache;
        add_header Vary Accept-Encoding;
    }}
}}
"""


def nginx_server(root: Path, prefix: Path, workers: int = 2) -> Process:
    """Return an nginx serving root (with .gz siblings) from a generated config (not started)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise BenchError("nginx is not installed: apt-get install nginx-light (make bench installs it as root)")
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, prefix=prefix, port=port, root=root))
    server = Process([binary, "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "error.log")],
                     prefix / "nginx.out")
    server.port = port
    return server


def rss_mib(pid: int) -> float:
    """Return a process's resident set size in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _is_builder(pid: int) -> bool:
    try:
        return b"blog.builder" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
