"""A long soak: the load mix for ten minutes, sampling every worker's memory; flat means within ±10 %.

`python -m bench.soak --minutes 10` prints each worker's RSS after the warm-up minute and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path

from bench.load import drive, production_server
from processes import rss_kib

WARMUP = 60.0  # seconds: caches fill and the MCP transport starts before memory is compared


def main() -> None:
    """Run the soak and print per-worker memory and the load figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp, production_server(Path(tmp), workers=2) as server:
        samples: dict[int, list[tuple[float, int]]] = {}
        done = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not done.wait(5):
                for pid in server.worker_pids():
                    samples.setdefault(pid, []).append((time.monotonic() - start, rss_kib(pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = asyncio.run(drive(server.url, seconds, args.connections))
        done.set()
        sampler.join()
    workers = {}
    for pid, points in samples.items():
        settled = [kib for t, kib in points if t >= WARMUP] or [kib for _t, kib in points]
        first, last, peak = settled[0], settled[-1], max(settled)
        workers[pid] = {"after_warmup_kib": first, "end_kib": last, "peak_kib": peak,
                        "change_pct": round(100 * (last - first) / first, 1)}
    flat = all(abs(w["change_pct"]) <= 10 for w in workers.values())
    summary = result.summary()
    print(json.dumps({"minutes": args.minutes, "workers": workers, "flat_within_10pct": flat,
                      "requests": summary["requests"], "errors": summary["errors"], "rps": summary["rps"]}, indent=1))
    if not flat or result.error_count:
        raise SystemExit("memory grew by more than 10 % or requests failed")


if __name__ == "__main__":
    main()
