"""Slow clients that trickle request headers, and the normal readers measured beside them.

`python -m bench.slowloris --url http://127.0.0.1:8000 --clients 256 --seconds 30` holds 256 connections
that each send one header line every few seconds and never finish, while a handful of readers fetch
pages; it prints how many reader requests succeeded and their latency. bench/flood.py holds thousands of
connections at once and reuses these readers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.load import HttpConnection, percentile


@dataclass
class SlowlorisResult:
    """What the readers saw while the slow clients held their connections."""

    slow_clients: int
    slow_open: int  # slow connections still open at the end
    reader_ok: int
    reader_failed: int
    latencies: list[float] = field(default_factory=list)
    slow: list[tuple[float, float, str]] = field(default_factory=list)  # (started, took, path) over 100 ms

    def summary(self) -> dict[str, object]:
        """Return the figures as a dict for printing."""
        return {"slow_clients": self.slow_clients, "slow_open_at_end": self.slow_open,
                "reader_ok": self.reader_ok, "reader_failed": self.reader_failed,
                "reader_p50_ms": round(percentile(self.latencies, 50) * 1000, 1),
                "reader_p99_ms": round(percentile(self.latencies, 99) * 1000, 1),
                "reader_max_ms": round(max(self.latencies, default=0) * 1000, 1)}


async def _slow_client(host: str, port: int, interval: float, stop: asyncio.Event, open_count: list[int]) -> None:
    """Hold one connection open by sending a header line every interval seconds, reconnecting when dropped."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(interval)
            continue
        open_count[0] += 1
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            await writer.drain()
            n = 0
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except TimeoutError:
                    pass
                if reader.at_eof():
                    break
                n += 1
                writer.write(f"X-Slow-{n}: {n}\r\n".encode())
                await writer.drain()
        except OSError:
            pass
        finally:
            open_count[0] -= 1
            writer.close()


async def read_pages(host: str, port: int, paths: list[str], stop: asyncio.Event, result: SlowlorisResult,
                  timeout: float, keep: bool = False) -> None:
    """Fetch pages as a normal reader would: a new connection per page, as a new Tor stream would be.

    With keep, one connection serves page after page, as a browser's would; when the site has closed it
    meanwhile, the page is asked again on a new one (as browsers do), and the wait counts.
    """
    i, conn = 0, None
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        start = time.monotonic()
        try:
            status = await asyncio.wait_for(_fetch(host, port, path, conn, keep), timeout)
            conn = status[1]
            if status[0] == 200:
                result.reader_ok += 1
                result.latencies.append(time.monotonic() - start)
                if result.latencies[-1] > 0.1:
                    result.slow.append((start, result.latencies[-1], path))
            else:
                result.reader_failed += 1
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            result.reader_failed += 1
            conn = None
        await asyncio.sleep(0.05)
    if conn is not None:
        conn.close()


async def _fetch(host: str, port: int, path: str, conn: HttpConnection | None,
                 keep: bool) -> tuple[int, HttpConnection | None]:
    """GET path on conn, else on a new connection; return the status and the connection, if kept open."""
    if conn is not None and not conn.closed:
        try:
            return (await conn.request("GET", path))[0], conn
        except (OSError, asyncio.IncompleteReadError):
            conn.close()  # closed by the site while idle: ask again on a new connection
    conn = await HttpConnection.open(host, port)
    try:
        status = (await conn.request("GET", path))[0]
    except BaseException:
        conn.close()
        raise
    if not keep:
        conn.close()
    return status, conn if keep else None


async def run(url: str, clients: int = 256, seconds: float = 30.0, interval: float = 2.0, readers: int = 4,
              paths: list[str] | None = None, timeout: float = 5.0, ramp: float = 3.0) -> SlowlorisResult:
    """Open the slow clients, give them ramp seconds to take hold, then measure readers for seconds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stop, reading = asyncio.Event(), asyncio.Event()
    result = SlowlorisResult(slow_clients=clients, slow_open=0, reader_ok=0, reader_failed=0)
    open_count = [0]
    slow = [asyncio.create_task(_slow_client(host, port, interval, stop, open_count)) for _ in range(clients)]
    await asyncio.sleep(ramp)
    readers_tasks = [asyncio.create_task(read_pages(host, port, paths or ["/"], reading, result, timeout))
                     for _ in range(readers)]
    await asyncio.sleep(seconds)
    reading.set()
    await asyncio.gather(*readers_tasks)
    result.slow_open = open_count[0]
    stop.set()
    await asyncio.gather(*slow, return_exceptions=True)
    return result


def main() -> None:
    """Run the slow clients against a running site and print the readers' figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.clients, args.seconds, args.interval))
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()
