"""A realistic reader and agent mix against the production gunicorn, with p99 latency per route.

`python -m bench.load --seconds 60 --connections 64` starts the production configuration on a free
127.0.0.1 port over a copy of content/, drives home, entries, search, feed and /mcp tool calls over
keep-alive connections, and prints requests, errors and p50/p99 per route as JSON. `--url` drives a
site that is already running instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["tor", "gunicorn", "onion", "restart", "index", "memory", "key", "config", "verify", "worker",
         "tor restart", "search index", "nothing-matches-this-zzz", "banner", "\"onion service\""]
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def percentile(values: list[float], pct: float) -> float:
    """Return the pct-th percentile (nearest rank) of values, 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: small enough that the client is not what gets measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        """Connect to host:port."""
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Send one request and return (status, headers with lower-case names, body)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            self.closed = True
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line.split()[1])
        got: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            got[name.strip().lower()] = value.strip()
        if got.get("transfer-encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
            payload = bytes(data)
        elif "content-length" in got:
            payload = await self.reader.readexactly(int(got["content-length"]))
        elif method == "HEAD" or status in (204, 304):
            payload = b""
        else:
            payload = await self.reader.read()
            self.closed = True
        if got.get("connection", "").lower() == "close":
            self.closed = True
        return status, got, payload

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
        self.writer.close()


@dataclass
class LoadResult:
    """Per-route latencies and errors of one run."""

    seconds: float
    connections: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + self.error_count

    @property
    def error_count(self) -> int:
        return sum(len(v) for v in self.errors.values())

    def summary(self) -> dict[str, object]:
        """Return the figures as a dict for printing."""
        routes = {route: {"requests": len(lat), "errors": len(self.errors.get(route, [])),
                          "p50_ms": round(percentile(lat, 50) * 1000, 1),
                          "p99_ms": round(percentile(lat, 99) * 1000, 1),
                          "max_ms": round(max(lat, default=0) * 1000, 1)}
                  for route, lat in sorted(self.latencies.items())}
        return {"seconds": self.seconds, "connections": self.connections, "requests": self.requests,
                "errors": self.error_count, "rps": round(self.requests / self.seconds, 1), "routes": routes,
                "first_errors": {r: e[:3] for r, e in self.errors.items()}}


def _mcp_call(rng: random.Random, entries: list[str]) -> bytes:
    if rng.random() < 0.7 or not entries:
        call = {"name": "search_blog", "arguments": {"query": rng.choice(WORDS), "limit": 5}}
    else:
        call = {"name": "get_entry", "arguments": {"slug": rng.choice(entries).rsplit("/", 1)[-1]}}
    return json.dumps({"jsonrpc": "2.0", "id": rng.randrange(1 << 30), "method": "tools/call",
                       "params": call}).encode()


def pick(rng: random.Random, entries: list[str]) -> tuple[str, str, str, bytes]:
    """Return (route, method, path, body) for one request of the mix."""
    roll = rng.random()
    if roll < 0.25:
        return "home", "GET", "/", b""
    if roll < 0.60:
        return "entry", "GET", rng.choice(entries), b""
    if roll < 0.80:
        return "search", "GET", "/search?q=" + quote(rng.choice(WORDS)), b""
    if roll < 0.90:
        return "feed", "GET", "/feed.atom", b""
    return "mcp", "POST", "/mcp", _mcp_call(rng, entries)


def _check(route: str, status: int, body: bytes) -> str | None:
    """Return why a response counts as an error, or None."""
    if status != 200:
        return f"status {status}"
    if route == "mcp" and b'"isError":true' in body.replace(b" ", b""):
        return "tool error: " + body[:200].decode(errors="replace")
    return None


async def _connection(host: str, port: int, entries: list[str], deadline: float, result: LoadResult,
                      seed: int) -> None:
    rng = random.Random(seed)
    conn: HttpConnection | None = None
    while time.monotonic() < deadline:
        route, method, path, body = pick(rng, entries)
        start = time.monotonic()
        try:
            if conn is None or conn.closed:
                conn = await HttpConnection.open(host, port)
            status, _h, payload = await asyncio.wait_for(
                conn.request(method, path, body, MCP_HEADERS if route == "mcp" else None), 30)
            why = _check(route, status, payload)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            why = f"{type(exc).__name__}: {exc}"
            if conn is not None:
                conn.close()
            conn = None
        if why:
            result.errors[route].append(f"{method} {path}: {why}")
        else:
            result.latencies[route].append(time.monotonic() - start)
    if conn is not None:
        conn.close()


async def discover(host: str, port: int) -> list[str]:
    """Return the entry paths linked from the home page and the archive."""
    conn = await HttpConnection.open(host, port)
    try:
        found: set[str] = set()
        for path in ("/", "/archive"):
            status, _h, body = await conn.request("GET", path)
            if status == 200:
                found |= set(re.findall(r'href="(/log/[^"#?]+)"', body.decode(errors="replace")))
    finally:
        conn.close()
    if not found:
        raise RuntimeError("no entry links on / or /archive: is this the engineering log?")
    return sorted(found)


async def drive(url: str, seconds: float, connections: int, seed: int = 1) -> LoadResult:
    """Drive the mix over the given number of keep-alive connections for the given time."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    entries = await discover(host, port)
    result = LoadResult(seconds=seconds, connections=connections)
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_connection(host, port, entries, deadline, result, seed * 1000 + i)
                           for i in range(connections)))
    return result


def production_server(workdir: Path, content: Path | None = None, **kwargs: object):
    """Return the app under its production gunicorn configuration (127.0.0.1, free port) over a copy of content/."""
    from processes import Gunicorn

    shutil.copytree(content or ROOT / "content", workdir / "content")
    return Gunicorn(workdir / "content", workdir / "data", **kwargs)  # type: ignore[arg-type]


def main() -> None:
    """Run the load mix and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="drive a running site instead of starting one")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.url:
        result = asyncio.run(drive(args.url, args.seconds, args.connections))
        print(json.dumps(result.summary(), indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp, production_server(Path(tmp), workers=args.workers) as server:
        result = asyncio.run(drive(server.url, args.seconds, args.connections))
        print(json.dumps(result.summary(), indent=1))
        log = server.log()
    if result.error_count:
        raise SystemExit(f"{result.error_count} error(s); gunicorn log tail:\n{log[-3000:]}")


if __name__ == "__main__":
    main()
