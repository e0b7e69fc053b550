"""What only the benches start: a bare WSGI callable and nginx, the ceilings the app is measured against.

Started, waited for and stopped by PID with the helpers the tests use too (processes.py).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from processes import Gunicorn, Server, free_port

BARE_TABLE = "BENCH_BARE_TABLE"  # env var: JSON file of {path: [status, headers, body-latin1]}


class BenchError(RuntimeError):
    """A server or tool the bench needs could not be started or reached."""


def bare_server(table: Path, log_path: Path, workers: int = 2) -> Gunicorn:
    """Return a bare WSGI callable under the app's gunicorn configuration, answering saved responses."""
    return Gunicorn(workers=workers, extra_env={BARE_TABLE: str(table)}, log_path=log_path,
                    app="bench.servers:bare_app")


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


def nginx_server(root: Path, prefix: Path, workers: int = 2) -> Server:
    """Return an nginx serving root (with .gz siblings) from a generated config (not started)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise BenchError("nginx is not installed: apt-get install nginx-light (make bench installs it as root)")
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, prefix=prefix, port=port, root=root))
    return Server([binary, "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "error.log")], prefix / "nginx.out",
                  port=port)

