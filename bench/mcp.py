"""Print MCP tool-call latency through gunicorn, and page throughput with and without the /mcp mount.

    python -m bench.mcp                      # the bundled content/, gthread workers, 3 rounds
    python -m bench.mcp --worker-class sync --rounds 5 --seconds 5

Tool calls are stateless JSON-RPC POSTs to /mcp over one keep-alive connection (sequential), then
from 8 threads at once. Page throughput is wrk on / and an entry page against two gunicorns started
alike except for mcp_enabled, measured in alternating rounds so machine noise hits both the same.
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processes import Gunicorn  # noqa: E402 - the real-gunicorn helper the tests use too, by PID

QUERIES: list[str] = []  # filled from the content: distinct queries, so the search cache rarely answers
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "Mcp-Protocol-Version": "2025-06-18"}


def load_queries(content: Path) -> list[str]:
    """Return word pairs from every published entry's title and summary."""
    from blog.content import load_site

    queries = []
    for entry in load_site(content).published():
        words = re.findall(r"[a-z]{4,}", f"{entry.title} {entry.summary}".lower())
        queries += [f"{a} {b}" for a, b in itertools.pairwise(words)]
    return queries


def call(http: httpx2.Client, url: str, n: int) -> float:
    """Make one search_blog call and return its latency in milliseconds."""
    body = {"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": "search_blog", "arguments": {"query": QUERIES[n % len(QUERIES)], "limit": 5}}}
    start = time.perf_counter()
    answer = http.post(url, json=body, headers=HEADERS)
    elapsed = (time.perf_counter() - start) * 1000
    if answer.status_code != 200 or "error" in answer.json():
        raise SystemExit(f"tool call failed: {answer.status_code} {answer.text[:300]}")
    return elapsed


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {cuts[49]:.1f} ms  p99 {cuts[98]:.1f} ms  (n={len(samples)})"


def tool_latency(url: str, calls: int, threads: int) -> tuple[list[float], list[float]]:
    with httpx2.Client(timeout=30) as http:
        for n in range(20):
            call(http, url, n)  # warm every worker's loop thread and the searcher cache
        sequential = [call(http, url, n) for n in range(calls)]
    concurrent: list[float] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        with httpx2.Client(timeout=30) as http:
            got = [call(http, url, offset + n) for n in range(calls // threads)]
        with lock:
            concurrent.extend(got)

    pool = [threading.Thread(target=worker, args=(i * 1000,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sequential, concurrent


def wrk(url: str, seconds: int, connections: int) -> float:
    """Return wrk's requests per second for url."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url], capture_output=True,
                         text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors on {url} (is the page there?):\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def in_process(content: Path, root: Path, path: str, blocks: int = 40, per_block: int = 100) -> tuple[float, float]:
    """Return the best per-request time (microseconds) of a page through the app, with and without /mcp.

    No sockets and no other process: this isolates what the mount adds to a page (one path check in
    the WSGI wrapper) from the machine's load, which wrk on a shared two-core box cannot.
    """
    from werkzeug.test import EnvironBuilder

    from blog.builder import prepare
    from blog.config import load_config
    from blog.web import create_app

    apps = {}
    for enabled in (True, False):
        cfg = load_config(path=Path("/nonexistent"), env={}, content_dir=content, data_dir=root / "inproc",
                          tor_mode="off", mcp_enabled=enabled)
        prepare(cfg)
        apps[enabled] = create_app(cfg)
    best = {True: float("inf"), False: float("inf")}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        assert status.startswith("200"), status

    for _ in range(blocks):
        for enabled, app in apps.items():
            started = time.perf_counter()
            for _ in range(per_block):
                environ = EnvironBuilder(path=path, base_url="http://127.0.0.1:8000").get_environ()
                b"".join(app(environ, start_response))
            best[enabled] = min(best[enabled], (time.perf_counter() - started) / per_block * 1e6)
    return best[True], best[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, default=ROOT / "content")
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    QUERIES.extend(load_queries(args.content))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(args.content, root / "content")
        on = Gunicorn(root / "content", root / "data-on", worker_class=args.worker_class,
                      log_path=root / "on.log")
        off = Gunicorn(root / "content", root / "data-off", worker_class=args.worker_class,
                       extra_env={"BLOG_MCP_ENABLED": "false"}, log_path=root / "off.log")
        with on, off:
            entry = re.search(r'href="(/log/[a-z0-9-]+)"', httpx2.get(on.url + "/").text)
            pages = ["/", entry.group(1) if entry else "/archive"]
            print(f"gunicorn {args.worker_class}, 2 workers; content {args.content}; "
                  f"{len(QUERIES)} distinct queries")
            sequential, concurrent = tool_latency(on.url + "/mcp", args.calls, threads=8)
            print(f"search_blog, 1 client:  {percentiles(sequential)}")
            print(f"search_blog, 8 clients: {percentiles(concurrent)}")
            if httpx2.post(off.url + "/mcp", json={}, headers=HEADERS).status_code != 404:
                raise SystemExit("the server started with mcp_enabled=false still answers /mcp")
            for page in pages:
                with_us, without_us = in_process(root / "content", root, page)
                print(f"GET {page:<40} in-process: with /mcp {with_us:7.1f} us   without {without_us:7.1f} us   "
                      f"cost {100 * (with_us - without_us) / without_us:+.1f}%  (best of 40 x 100)")
                rates: dict[str, list[float]] = {"with /mcp": [], "without": []}
                for n in range(args.rounds):
                    order = [("with /mcp", on), ("without", off)]
                    for name, server in order if n % 2 == 0 else order[::-1]:
                        rates[name].append(wrk(server.url + page, args.seconds, args.connections))
                with_mcp, without = (statistics.median(rates[k]) for k in ("with /mcp", "without"))
                print(f"GET {page:<40} with /mcp {with_mcp:8.0f} req/s   without {without:8.0f} req/s   "
                      f"cost {100 * (without - with_mcp) / without:+.1f}%  (median of {args.rounds})")


if __name__ == "__main__":
    main()
