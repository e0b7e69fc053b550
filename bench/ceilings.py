"""One load run on 127.0.0.1: nginx (static), a bare WSGI callable, and the app, under the same wrk."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.pages import GZIP, PageType, fetch, save_static
from bench.servers import BenchError, bare_server, nginx_server, write_bare_table
from processes import Server

log = logging.getLogger(__name__)

# wrk is C and needs a fraction of a core; a Python client on these 2 cores would measure itself.
THREADS = 1
CONNECTIONS = 16  # 2 workers x 8 threads in the production configuration


@dataclass
class Load:
    """What wrk saw for one URL."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, duration: float, headers: dict[str, str] | None = None,
        connections: int = CONNECTIONS) -> Load:
    """Run wrk against url with keep-alive connections; return requests/s and latency percentiles."""
    binary = shutil.which("wrk")
    if binary is None:
        raise BenchError("wrk is not installed: apt-get install wrk (make bench installs it as root)")
    args = [binary, f"-t{THREADS}", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=duration + 30, check=False).stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    except AttributeError as exc:
        raise BenchError(f"could not read wrk's output for {url}:\n{out}") from exc
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return Load(rps, p50, p99, total, errors)


def run(app: Server, types: list[PageType], work: Path, duration: float, rounds: int = 2) -> dict[str, object]:
    """Load each page type on nginx (a), bare WSGI (b) and the app (c), interleaved; return figures."""
    static = work / "static"
    bare_table = work / "bare.json"
    write_bare_table(bare_table, save_static(app.port, types, static))
    results: dict[str, dict[str, dict[str, float]]] = {"nginx": {}, "bare": {}, "app": {}}
    with nginx_server(static, work / "nginx").start(probe=f"/{types[0].file}") as nginx, \
            bare_server(bare_table, work / "bare.log").start(probe=types[0].path) as bare:
        urls = {"nginx": lambda p: f"{nginx.url}/{p.file}", "bare": lambda p: bare.url + p.path,
                "app": lambda p: app.url + p.path}
        for page in types:
            # Interleaved per page and repeated: a neighbour's burst on this shared machine only ever slows a
            # run down, so the best of the rounds is the least disturbed figure for each case.
            for _ in range(rounds):
                for case, url in urls.items():
                    load = wrk(url(page), duration, GZIP)
                    if load.rps > results[case].get(page.name, {}).get("rps", -1):
                        results[case][page.name] = asdict(load)
            log.info("%s: nginx %.0f, bare %.0f, app %.0f req/s", page.name, results["nginx"][page.name]["rps"],
                     results["bare"][page.name]["rps"], results["app"][page.name]["rps"])
    entry = next(p for p in types if p.name == "entry")
    etag = fetch(app.port, entry.path, GZIP).header("ETag")
    results["app_304"] = {"entry": asdict(wrk(app.url + entry.path, duration, {**GZIP, "If-None-Match": etag}))}
    ratios = {page.name: {"c_over_b": _ratio(results, "app", "bare", page.name),
                          "c_over_a": _ratio(results, "app", "nginx", page.name)} for page in types}
    return {"load_generator": f"wrk -t{THREADS} -c{CONNECTIONS} -d{duration:g}s, keep-alive, Accept-Encoding: gzip, "
                              f"best of {rounds} interleaved rounds",
            "cases": results, "ratios": ratios}


def _ratio(results: dict[str, dict[str, dict[str, float]]], top: str, bottom: str, page: str) -> float:
    below = results[bottom][page]["rps"]
    return round(results[top][page]["rps"] / below, 3) if below else 0.0


def in_process(content_dir: Path, data_dir: Path, types: list[PageType], bare_table: Path,
               blocks: int = 20, per_block: int = 100) -> dict[str, dict[str, float]]:
    """Time one request in-process (no sockets): bare callable, the app, and the app with its fast path off.

    Socket figures on a shared 2-core machine swing by tens of percent; the Python work per request does not.
    """
    import os
    import time

    from werkzeug.test import EnvironBuilder

    from bench import servers
    from blog.builder import prepare
    from blog.config import load_config
    from blog.web import create_app

    config = load_config(path=Path("/nonexistent"), env={}, content_dir=content_dir, data_dir=data_dir,
                         tor_mode="off")
    prepare(config)
    app = create_app(config)
    os.environ[servers.BARE_TABLE] = str(bare_table)
    servers._table = None
    callables = {"bare": servers.bare_app, "app": app.wsgi_app, "app_flask_only": app.extensions["blog.fastpath"].app}

    def best_us(call, path: str) -> float:
        environ = EnvironBuilder(path=path, headers=GZIP).get_environ()
        best = float("inf")
        for _ in range(blocks):
            start = time.perf_counter()
            for _ in range(per_block):
                body = call(dict(environ), lambda status, headers, exc_info=None: None)
                b"".join(body)
                getattr(body, "close", lambda: None)()
            best = min(best, (time.perf_counter() - start) / per_block)
        return round(best * 1e6, 1)

    results: dict[str, dict[str, float]] = {}
    for page in types:
        results[page.name] = {name: best_us(call, page.path) for name, call in callables.items()}
        # What the app adds to a request over the bare callable; the server's own cost comes on top of both.
        results[page.name]["added_us"] = round(results[page.name]["app"] - results[page.name]["bare"], 1)
    return results
