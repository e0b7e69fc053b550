"""Thousands of held connections, the readers measured beside them, and what the workers' memory did.

`python -m bench.flood` starts the production configuration on a free 127.0.0.1 port over a copy of
content/ (or drives `--url`) and opens 9,000 connections that send nothing and 3,000 that send
`GET / HTTP/1.1`, a Host header and 48 header lines of 8,000 bytes and never finish (`--idle`,
`--half-sent`, `--rate` to pace them). It holds them until the site closes them (at most `--hold` s),
measures readers beside them (bench.slowloris's: a new connection per page, and kept-alive ones), samples
every worker's resident memory every 0.5 s and once more `--after` s later, counts the CPU the workers spent
meanwhile per 1,000 flood connections (the readers' pages included), and prints it all as JSON.
`--kill-at S` SIGKILLs a worker S seconds into the flood: what its death costs the readers and the flood.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.load import percentile
from bench.slowloris import SlowlorisResult, read_pages
from processes import rss_kib

# The held request of the flood: `GET / HTTP/1.1`, a Host header and 48 header lines of 8,000 bytes each
# (CRLF included), each under gunicorn's 8,190-byte field limit, and never the blank line that ends a head.
HALF_SENT = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
    b"X-Held-%02d: %s\r\n" % (i, b"h" * (8000 - 13)) for i in range(48))


@dataclass
class Held:
    """What became of the flood's connections (counted in the flood's own process)."""

    connected: int = 0  # flood connections that completed their handshake
    failed: int = 0  # flood connections that could not connect within 10 s
    still_open: int = 0  # open when the flood gave up holding them
    lifetimes: list[float] = field(default_factory=list)  # connect -> closed by the site, per connection, in s
    answers: dict[str, int] = field(default_factory=dict)  # what the site said before closing ("" for nothing)
    seconds: float = 0.0  # from the first connect until the last flood connection ended


@dataclass
class FloodResult:
    """How long the site kept the held connections, what readers saw meanwhile, and the workers' memory."""

    idle: int
    half_sent: int
    held: Held = field(default_factory=Held)
    readers: SlowlorisResult = field(default_factory=lambda: SlowlorisResult(0, 0, 0, 0))
    kept: SlowlorisResult = field(default_factory=lambda: SlowlorisResult(0, 0, 0, 0))  # keep-alive readers
    started: float = 0.0
    rss_kib: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # pid -> (s since start, KiB)
    baseline_kib: dict[int, int] = field(default_factory=dict)
    after_kib: dict[int, int] = field(default_factory=dict)  # a minute (after=) after the flood ended
    overflows: int = 0  # connections the kernel dropped meanwhile, its listen queue full (machine-wide)
    cpu_s: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds from the flood's start to its end

    def summary(self) -> dict[str, object]:
        """Return the figures as a dict for printing."""
        held, lives = self.held, sorted(self.held.lifetimes)
        workers = {str(pid): {"baseline_mib": round(self.baseline_kib.get(pid, 0) / 1024, 1),
                              "peak_mib": round(max((k for _t, k in pts), default=0) / 1024, 1),
                              "after_mib": round(self.after_kib.get(pid, 0) / 1024, 1)}
                   for pid, pts in self.rss_kib.items()}
        readers = self.readers.summary()
        return {"idle": self.idle, "half_sent": self.half_sent, "connected": held.connected, "failed": held.failed,
                "still_open_at_end": held.still_open, "flood_seconds": round(held.seconds, 1),
                "closed_by_site": len(lives), "answers": held.answers,
                "held_p50_s": round(percentile(lives, 50), 2), "held_max_s": round(max(lives, default=0), 2),
                "listen_queue_overflows": self.overflows,
                "worker_cpu_s_per_1000": round(sum(self.cpu_s.values()) * 1000 / max(held.connected, 1), 3),
                "readers": {k: v for k, v in readers.items() if k not in ("slow_clients", "slow_open_at_end")},
                "keepalive_readers": {k: v for k, v in self.kept.summary().items()
                                      if k not in ("slow_clients", "slow_open_at_end")},
                "slowest_readers": [f"{took * 1000:.0f} ms at {t - self.started:.1f} s {path}"
                                    for t, took, path in sorted(self.readers.slow, key=lambda x: -x[1])[:8]],
                "workers": workers}


async def _held(host: str, port: int, payload: bytes, hold_until: float, connecting: asyncio.Semaphore,
                result: Held) -> None:
    """Open one connection, send payload (perhaps nothing), and keep it until the site closes it."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with connecting:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
    except (OSError, TimeoutError):
        result.failed += 1
        sock.close()
        return
    opened = time.monotonic()
    result.connected += 1
    answer = b""

    async def hold() -> None:
        nonlocal answer
        if payload:
            await loop.sock_sendall(sock, payload)
        while chunk := await loop.sock_recv(sock, 4096):
            answer = (answer + chunk)[:16]

    try:
        await asyncio.wait_for(hold(), max(0.0, hold_until - time.monotonic()))
    except TimeoutError:
        result.still_open += 1
        return
    except OSError:
        pass  # reset by the site: closed all the same
    finally:
        sock.close()
    result.lifetimes.append(time.monotonic() - opened)
    said = answer[9:12].decode("latin-1") if answer.startswith(b"HTTP/") else ""
    result.answers[said] = result.answers.get(said, 0) + 1


def _hold_all(host: str, port: int, idle: int, half_sent: int, hold: float, rate: float, out: Any) -> None:
    """Run the flood in a process of its own, so that its work does not delay the readers measured beside it.

    rate: connections opened per second (0: as fast as this process can, 256 handshakes at a time).
    """
    raise_fd_limit(idle + half_sent + 256)

    async def run() -> Held:
        result, started = Held(), time.monotonic()
        connecting = asyncio.Semaphore(256)
        payloads = [b""] * idle + [HALF_SENT] * half_sent
        random.Random(1).shuffle(payloads)
        tasks = []
        for i, payload in enumerate(payloads):
            if rate and (ahead := started + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            tasks.append(asyncio.create_task(_held(host, port, payload, started + hold, connecting, result)))
        await asyncio.gather(*tasks)
        result.seconds = time.monotonic() - started
        return result

    out.send(asyncio.run(run()))


def listen_overflows() -> int:
    """Return the machine's count of connections dropped because a listen queue was full (all sockets)."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0)) if len(lines) == 2 else 0


def _sample(pids: list[int], into: dict[int, list[tuple[float, int]]], started: float, stop: threading.Event,
            every: float = 0.5) -> None:
    while not stop.wait(every):
        for pid in pids:
            into.setdefault(pid, []).append((round(time.monotonic() - started, 1), rss_kib(pid)))


async def flood(url: str, idle: int = 9000, half_sent: int = 3000, hold: float = 60.0, readers: int = 4,
                paths: list[str] | None = None, pids: list[int] | None = None, after: float = 60.0,
                warm: float = 3.0, timeout: float = 5.0, rate: float = 0.0, kept: int = 2,
                kill_at: float | None = None) -> FloodResult:
    """Hold idle + half_sent connections (for at most hold seconds) while readers fetch pages.

    The flood runs in a process of its own. Readers (a new connection per page) and kept readers (one
    keep-alive connection each) run from its start until its last connection has ended; the workers'
    memory is sampled every 0.5 s, and once more `after` seconds after the flood. kill_at: SIGKILL the first
    of pids that many seconds into the flood (a worker crashing under it; its replacement is not sampled).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    paths, pids = paths or ["/"], pids or []
    result = FloodResult(idle=idle, half_sent=half_sent)
    warming = asyncio.Event()
    warmers = [asyncio.create_task(read_pages(host, port, paths, warming, SlowlorisResult(0, 0, 0, 0), timeout))
               for _ in range(readers)]
    await asyncio.sleep(warm)
    warming.set()
    await asyncio.gather(*warmers)
    await asyncio.sleep(1.0)
    result.baseline_kib = {pid: rss_kib(pid) for pid in pids}
    stop_sampling = threading.Event()
    sampler = threading.Thread(target=_sample, args=(pids, result.rss_kib, time.monotonic(), stop_sampling),
                               daemon=True)
    sampler.start()
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    flooder = context.Process(target=_hold_all, args=(host, port, idle, half_sent, hold, rate, send), daemon=True)
    overflows = listen_overflows()
    cpu = {pid: cpu_seconds(pid) for pid in pids}
    try:
        flooder.start()
        result.started = time.monotonic()
        reading = asyncio.Event()
        reader_tasks = [asyncio.create_task(read_pages(host, port, paths, reading, result.readers, timeout))
                        for _ in range(readers)]
        reader_tasks += [asyncio.create_task(read_pages(host, port, paths, reading, result.kept, timeout, keep=True))
                         for _ in range(kept)]
        loop = asyncio.get_running_loop()
        if kill_at is not None and pids:
            loop.call_later(kill_at, os.kill, pids[0], signal.SIGKILL)
        if await loop.run_in_executor(None, receive.poll, hold + 120):
            result.held = receive.recv()
        result.overflows = listen_overflows() - overflows
        result.cpu_s = {pid: cpu_seconds(pid) - cpu[pid] for pid in pids}
        reading.set()
        await asyncio.gather(*reader_tasks)
        await asyncio.sleep(after)
        result.after_kib = {pid: rss_kib(pid) for pid in pids}
    finally:
        stop_sampling.set()
        sampler.join()
        if flooder.is_alive():
            flooder.kill()
        flooder.join(5)
    return result


def cpu_seconds(pid: int) -> float:
    """Return the CPU time a process has used (user and system), in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def raise_fd_limit(needed: int) -> None:
    """Raise this process's open-file limit to hold needed sockets, or say why it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"the open-file limit is {hard}, below the {needed} sockets asked for: raise it "
                         "(ulimit -Hn) or ask for fewer connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _flood_main(args: argparse.Namespace) -> None:
    raise_fd_limit(args.idle + args.half_sent + 256)
    if args.url:
        result = asyncio.run(flood(args.url, args.idle, args.half_sent, args.hold, after=args.after, rate=args.rate))
        print(json.dumps(result.summary(), indent=1))
        return
    from bench.load import discover, production_server

    with tempfile.TemporaryDirectory() as tmp, production_server(Path(tmp), workers=2) as server:
        server.wait_for_mcp()
        entries = asyncio.run(discover("127.0.0.1", server.port))
        paths = ["/", *entries[:3], "/feed.atom", "/search?q=onion"]
        result = asyncio.run(flood(server.url, args.idle, args.half_sent, args.hold, paths=paths,
                                   pids=server.worker_pids(), after=args.after, rate=args.rate,
                                   kill_at=args.kill_at))
        summary = result.summary()
        log = server.log()
        summary["log_bytes"] = len(log.encode())
        summary["log_warnings"] = [line[-300:] for line in log.splitlines()
                                   if ("WARNING]" in line or "ERROR]" in line) and "semantic" not in line][:20]
    print(json.dumps(summary, indent=1))


def main() -> None:
    """Run the flood and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="drive a running site instead of starting one (no memory figures)")
    parser.add_argument("--idle", type=int, default=9000, help="flood connections that send nothing")
    parser.add_argument("--half-sent", type=int, default=3000, help="flood connections with a head never ended")
    parser.add_argument("--hold", type=float, default=60.0, help="give up holding the flood after this long")
    parser.add_argument("--after", type=float, default=60.0, help="sample memory this long after the flood")
    parser.add_argument("--rate", type=float, default=0.0, help="flood connections a second (0: all at once)")
    parser.add_argument("--kill-at", type=float, help="SIGKILL a worker this many seconds into the flood")
    _flood_main(parser.parse_args())


if __name__ == "__main__":
    main()
