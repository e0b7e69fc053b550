"""Hostile clients beside normal readers for ten minutes: readers' p99 and errors, worker RSS over time.

`python -m bench.hostile --minutes 10` starts the production configuration on a free 127.0.0.1 port over a
copy of content/ and runs, all at once and all bounded by the same deadline:
- the reader and agent mix of bench.load (home, entries, search, feed, MCP tool calls), the figures that count;
- droppers: POST /mcp with a 100-byte Content-Length, 11 bytes sent, connection closed (5 a second);
- tricklers: 16 connections each sending an /mcp body one byte every 2 s until the site ends them;
- cache-busters: `/feed.atom?cb=N`, `/?cb=N`, `/llms-full.txt?cb=N` with random Host headers (keep-alive);
- log forgers: paths with encoded newlines, NUL and escape bytes.
It samples every worker's RSS every 5 s and prints everything as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import threading
import time
from pathlib import Path

from bench.load import HttpConnection, drive, production_server
from processes import rss_kib

MCP = "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"


async def _dropper(host: str, port: int, deadline: float, counts: dict[str, int]) -> None:
    while time.monotonic() < deadline:
        try:
            _reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n{MCP}Content-Length: 100\r\n\r\n"
                         '{"jsonrpc":'.encode())
            await writer.drain()
            writer.close()
            counts["dropped"] += 1
        except OSError:
            counts["dropper_errors"] += 1
        await asyncio.sleep(0.2)


async def _trickler(host: str, port: int, deadline: float, counts: dict[str, int]) -> None:
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n{MCP}Content-Length: 1000\r\n\r\n".encode())
            while time.monotonic() < deadline and not reader.at_eof():
                writer.write(b" ")
                await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.read(100), 2.0)
                except TimeoutError:
                    continue
                if answer:
                    counts["trickles_ended_" + answer[9:12].decode(errors="replace")] += 1
                break
            writer.close()
        except OSError:
            counts["trickle_resets"] += 1
            await asyncio.sleep(0.5)


async def _buster(host: str, port: int, deadline: float, counts: dict[str, int], seed: int) -> None:
    rng = random.Random(seed)
    conn: HttpConnection | None = None
    while time.monotonic() < deadline:
        path = rng.choice(["/feed.atom", "/", "/llms-full.txt", "/robots.txt"]) + f"?cb={rng.randrange(1 << 40)}"
        host_header = rng.choice([f"{host}:{port}", f"x{rng.randrange(1 << 30)}.example", f"localhost:{port}"])
        try:
            if conn is None or conn.closed:
                conn = await HttpConnection.open(host, port)
            conn.host = host_header
            await asyncio.wait_for(conn.request("GET", path), 30)
            counts["busted"] += 1
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            counts["buster_errors"] += 1
            if conn is not None:
                conn.close()
            conn = None
        await asyncio.sleep(0.01)


async def _forger(host: str, port: int, deadline: float, counts: dict[str, int]) -> None:
    while time.monotonic() < deadline:
        try:
            conn = await HttpConnection.open(host, port)
            await asyncio.wait_for(conn.request("GET", "/log/x%0aX-Injected:%201%00%1b[31m"), 30)
            conn.close()
            counts["forged"] += 1
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            counts["forger_errors"] += 1
        await asyncio.sleep(1.0)


async def attack(url: str, seconds: float, readers: int) -> tuple[dict[str, object], dict[str, int]]:
    host, port = url.split("//", 1)[1].split(":")
    deadline = time.monotonic() + seconds
    counts: dict[str, int] = {}

    class Counter(dict):  # a defaultdict(int) that stays a plain dict when printed
        def __missing__(self, key: str) -> int:
            return 0

    counts = Counter()
    hostile = [_dropper(host, int(port), deadline, counts), _forger(host, int(port), deadline, counts),
               *(_trickler(host, int(port), deadline, counts) for _ in range(16)),
               *(_buster(host, int(port), deadline, counts, i) for i in range(4))]
    result, *_ = await asyncio.gather(drive(url, seconds, readers), *hostile)
    return result.summary(), dict(counts)


def main() -> None:
    """Run readers and hostile clients together and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--readers", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, production_server(Path(tmp), workers=2) as server:
        samples: dict[int, list[tuple[float, int]]] = {}
        done = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not done.wait(5):
                for pid in server.worker_pids():
                    samples.setdefault(pid, []).append((round(time.monotonic() - start), rss_kib(pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        summary, counts = asyncio.run(attack(server.url, args.minutes * 60, args.readers))
        done.set()
        sampler.join()
        log = server.log_path.read_bytes()
    forged = sum(line.startswith(b"X-Injected") for line in log.split(b"\n")) + log.count(b"\x00")
    workers = {pid: {"start_kib": pts[0][1], "end_kib": pts[-1][1], "peak_kib": max(k for _t, k in pts),
                     "every_minute_kib": [k for t, k in pts if t % 60 < 5]} for pid, pts in samples.items()}
    print(json.dumps({"minutes": args.minutes, "readers": summary, "hostile": counts, "workers": workers,
                      "forged_log_lines": forged, "log_bytes": len(log)}, indent=1))
    if summary["errors"] or forged:
        raise SystemExit("readers saw errors, or a forged line reached the log")


if __name__ == "__main__":
    main()
