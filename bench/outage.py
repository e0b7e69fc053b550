"""/search while the semantic process is stopped (SIGSTOP) and after it resumes (SIGCONT).

    python -m bench.outage                      # 16 readers: 5 s normal, 5 s stopped, 5 s resumed
    python -m bench.outage --readers 6 --stopped 10

Starts the production gunicorn with the semantic ranker over a copy of content/, waits for the build's
vectors, then runs readers that each ask /search one question after another over a keep-alive connection
(every question new, so none is answered from a worker's cache and each one asks the semantic process),
pausing about --pause seconds between questions. It stops the semantic process, resumes it, and prints p50,
p99 and the maximum per phase: before, while stopped, the first 2 s after SIGCONT, and after that; how
many answers were ranked by meaning in each; and how many tracebacks the site's log holds. The figures
are in docs/reliability.md; tests/test_semantic.py asserts the same behaviour with generous bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from bench.load import HttpConnection, percentile
from processes import Gunicorn

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["how do I keep the same onion address", "why does each worker use so much memory",
             "tor refuses the service key", "gunicorn -k sync --threads 4", "what does verify-config catch",
             "a 500 with nothing in the log", "how are paragraph anchors made", "slow clients hold threads"]
# A reader reads between searches. 16 readers asking back to back (no pause) keep both cores busy with the
# semantic ranker on and queue behind each other (p50 185 ms, p99 0.96 s, ranked by meaning, in one run):
# then the site is saturated, outage or not. Half a second on average keeps it at about 30 searches a second.
PAUSE = 0.5
WARM_UP = 3.0  # seconds of questions before the counted run
RECOVERED_AFTER = 2.0  # seconds after SIGCONT from which the last phase is counted


@dataclass
class Sample:
    started: float
    seconds: float
    meaning: bool


@dataclass
class Outage:
    """The samples of one run and when the process was stopped and resumed."""

    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped_at: float = 0.0
    resumed_at: float = 0.0
    # questions that reached the stopped process and were dropped when it resumed (its askers had left):
    # with one breaker per worker, at most one per reader
    abandoned: int = 0

    def phases(self) -> dict[str, list[Sample]]:
        recovered = self.resumed_at + RECOVERED_AFTER
        return {
            "before": [s for s in self.samples if s.started < self.stopped_at],
            "stopped": [s for s in self.samples if self.stopped_at <= s.started < self.resumed_at],
            "resumed_first_2s": [s for s in self.samples if self.resumed_at <= s.started < recovered],
            "resumed_after_2s": [s for s in self.samples if s.started >= recovered],
        }

    def figures(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, samples in self.phases().items():
            times = [s.seconds for s in samples]
            out[name] = {"requests": len(samples), "p50_ms": round(percentile(times, 50) * 1000, 1),
                         "p99_ms": round(percentile(times, 99) * 1000, 1),
                         "max_ms": round(max(times, default=0) * 1000, 1),
                         "by_meaning": sum(s.meaning for s in samples)}
        return out


async def _reader(port: int, number: int, until: float, pause: float, outage: Outage) -> None:
    conn = await HttpConnection.open("127.0.0.1", port)
    asked = 0
    try:
        while time.monotonic() < until:
            asked += 1
            question = f"{QUESTIONS[(number + asked) % len(QUESTIONS)]} {number}x{asked}"  # new each time
            started = time.monotonic()
            status, _, body = await conn.request("GET", f"/search?q={quote(question)}")
            took = time.monotonic() - started
            if status != 200:
                outage.errors.append(f"{status} for {question!r}")
            outage.samples.append(Sample(started, took, b"and by meaning" in body))
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))  # readers out of step, as people are
    finally:
        conn.close()


async def _drive(server: Gunicorn, pid: int, readers: int, pause: float, before: float, stopped: float,
                 after: float, outage: Outage) -> None:
    # A warm-up first, not counted: each worker opens the index and the semantic process loads the vectors.
    await asyncio.gather(*(_reader(server.port, i, time.monotonic() + WARM_UP, pause, Outage())
                           for i in range(readers)))
    start = time.monotonic()
    until = start + before + stopped + after
    tasks = [asyncio.create_task(_reader(server.port, i, until, pause, outage)) for i in range(readers)]
    await asyncio.sleep(before)
    dropped = _dropped(server)
    outage.stopped_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(stopped)
    finally:
        os.kill(pid, signal.SIGCONT)
    outage.resumed_at = time.monotonic()
    await asyncio.gather(*tasks)
    outage.abandoned = _dropped(server) - dropped


def _dropped(server: Gunicorn) -> int:
    """Return how many questions the semantic process has dropped unanswered (its status counts them)."""
    from blog.index.semantic import wire

    return int(wire.status(wire.socket_path_of(Path(server.env["BLOG_DATA_DIR"])), 10.0)["dropped"])  # type: ignore[arg-type]


def wait_for_vectors(server: Gunicorn, timeout: float = 300.0) -> int:
    """Wait until the semantic process has embedded the build (its log says so); return its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "blocks ready" in server.log() and server.semantic_pids():
            return server.semantic_pids()[0]
        time.sleep(0.5)
    raise TimeoutError(f"no vectors in {timeout:.0f} s:\n{server.log()[-2000:]}")


def run(work: Path, readers: int = 16, pause: float = PAUSE, before: float = 5.0, stopped: float = 5.0,
        after: float = 5.0) -> tuple[Outage, str]:
    """Serve a copy of content/ with the semantic ranker, and return the run's samples and the site's log."""
    shutil.copytree(ROOT / "content", work / "content")
    env = {"BLOG_SEMANTIC": "1", "BLOG_MODEL_DIR": str(ROOT / "var" / "model"), "BLOG_ACCESS_LOG": "-"}
    outage = Outage()
    with Gunicorn(work / "content", work / "data", extra_env=env) as server:
        pid = wait_for_vectors(server)
        asyncio.run(_drive(server, pid, readers, pause, before, stopped, after, outage))
    return outage, server.log()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--pause", type=float, default=PAUSE, help="seconds a reader waits between questions")
    parser.add_argument("--before", type=float, default=5.0)
    parser.add_argument("--stopped", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outage, log = run(Path(tmp), args.readers, args.pause, args.before, args.stopped, args.after)
    print(json.dumps({"readers": args.readers, "pause_s": args.pause, "errors": outage.errors[:5],
                      "questions_sent_to_the_stopped_process": outage.abandoned,
                      "tracebacks_in_log": log.count("Traceback"), "phases": outage.figures()}, indent=1))


if __name__ == "__main__":
    main()
