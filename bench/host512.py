"""The smallest host, simulated: the whole served stack and its tor in one 512 MB memory cgroup, under load.

    python -m bench.host512                     # 60 s of the load mix, a new entry embedded meanwhile
    python -m bench.host512 --seconds 90 --limit-mib 512 --connections 64

Uses the cgroup v1 memory controller (/sys/fs/cgroup/memory, root only): a cgroup of its own with
memory.limit_in_bytes and memory.memsw.limit_in_bytes both at the limit, so the stack can neither use more
memory nor swap past it. `blog serve` is started inside it as `make run` starts it (tor_mode auto: the
builder launches tor, which lives in the same cgroup), so gunicorn's master, workers, builder, semantic
process and tor, and the `blog reload` that publishes the new entry, all count against the one limit.
It drives the load test's reader and agent mix (bench/load.py: pages, search, feeds, MCP tool calls) and,
after a quarter of the time, publishes a new entry and waits for the semantic process to embed it: the
site's builder publishes it, nudged as the master nudges it, or with --reload `blog reload` run inside the
cgroup (the CLI then builds in a process of its own, which counts against the limit too). It
reports the requests and failures, the OOM kills (memory.oom_control's oom_kill), how often the limit was
hit (memory.failcnt), the cgroup's peak (memory.max_usage_in_bytes: page cache included) and each process's
PSS at the end; the cgroup is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import load
from bench.coldstart import corpus
from bench.memory import counted, serve, site, stack_pss
from blog.builds import BUILDER_PID
from blog.index.semantic import wire

CGROUPS = Path("/sys/fs/cgroup/memory")
ENTRY = """---
title: "A host of 512 MB"
date: {date}
tags: [operations]
summary: "The whole stack and its tor inside one memory limit."
---

The gunicorn master, its workers, the builder, the semantic process and tor shared one cgroup of 512 MB.
Readers and agents kept asking while this entry was published and embedded; nothing was killed.
"""


class Cgroup:
    """A cgroup v1 memory cgroup of our own, with a hard limit on memory and on memory plus swap."""

    def __init__(self, name: str, limit: int) -> None:
        if not (CGROUPS / "memory.limit_in_bytes").exists():
            raise SystemExit(f"no cgroup v1 memory controller at {CGROUPS} (mount it, and run as root)")
        self.path = CGROUPS / name
        self.path.mkdir()
        (self.path / "memory.limit_in_bytes").write_text(str(limit))
        self.memsw = (self.path / "memory.memsw.limit_in_bytes").exists()
        if self.memsw:  # swap accounting on: memory plus swap capped at the same figure, so no swapping past it
            (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))
        else:
            (self.path / "memory.swappiness").write_text("0")

    def wrapper(self) -> tuple[str, ...]:
        """A command prefix that moves itself into the cgroup, then runs the command."""
        return ("sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh")

    def read(self, name: str) -> str:
        return (self.path / name).read_text()

    def figures(self) -> dict[str, object]:
        oom = dict(line.split() for line in self.read("memory.oom_control").splitlines())
        return {"limit_mib": int(self.read("memory.limit_in_bytes")) >> 20,
                "swap_capped_too": self.memsw,
                "peak_mib": round(int(self.read("memory.max_usage_in_bytes")) / 2**20, 1),
                "limit_hits": int(self.read("memory.failcnt")),
                "oom_kills": int(oom.get("oom_kill", "0")), "under_oom": int(oom.get("under_oom", "0"))}

    def remove(self) -> None:
        """Kill what is left inside (only what this bench started), then remove the cgroup."""
        for _ in range(50):
            pids = [int(p) for p in self.read("cgroup.procs").split()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        self.path.rmdir()


def vectors_of(data: Path) -> tuple[str | None, int | None]:
    """Return the build the semantic process follows and how many vectors it has for it (None: not yet)."""
    try:
        found = wire.status(data / wire.SOCKET)
    except wire.Failed:
        return None, None
    return found.get("current"), found.get("vectors")  # type: ignore[return-value]


def run(work: Path, seconds: float, connections: int, limit_mib: int, reload: bool) -> dict[str, object]:
    content = corpus(work / "content", 0)
    data = work / "data"
    settings = site(work / "site", content, data)
    group = Cgroup(f"blog-host512-{os.getpid()}", limit_mib << 20)
    try:
        server = serve(settings, work / "serve.log", group.wrapper())
        with server.start(timeout=300):
            started = time.monotonic()
            while vectors_of(data)[1] is None:
                if time.monotonic() - started > 600:
                    raise TimeoutError("the semantic process made no vectors in 10 minutes")
                time.sleep(1)
            mix: dict[str, object] = {}
            driver = threading.Thread(target=lambda: mix.update(
                asyncio.run(load.drive(server.url, seconds, connections)).summary()))
            driver.start()
            time.sleep(seconds / 4)
            published, embedded = _publish_new_entry(settings, content, data, group, seconds, reload)
            driver.join()
            rows = stack_pss(server.process.pid)  # type: ignore[union-attr]
            restarts = server.log().count("starting it again")
        figures = group.figures()
    finally:
        group.remove()
    return {**figures, "published_by": "blog reload" if reload else "the builder",
            "seconds": seconds, "connections": connections, "requests": mix.get("requests"),
            "failed": mix.get("errors"), "first_errors": mix.get("first_errors"), "helper_restarts": restarts,
            "new_build_published_s": published, "new_entry_embedded_s": embedded,
            "processes": rows, "stack_pss_mib": counted(rows)}


def _publish_new_entry(settings: Path, content: Path, data: Path, group: Cgroup, seconds: float,
                       reload: bool) -> tuple[float | None, float | None]:
    """Write a new entry and have it published; return the seconds until it is built and until it is embedded.

    `reload`: by `blog reload` inside the cgroup (the CLI's own process builds it), else by the served site's
    builder, nudged as the master nudges it (SIGUSR1).
    """
    before = vectors_of(data)[0]
    now = time.gmtime()
    (content / "log" / f"{time.strftime('%Y-%m-%d', now)}-a-host-of-512-mb.md").write_text(
        ENTRY.format(date=time.strftime("%Y-%m-%dT%H:%M:%SZ", now)), encoding="utf-8")
    started = time.monotonic()
    if reload:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
        subprocess.run([*group.wrapper(), sys.executable, "-m", "blog.cli", "--site", str(settings.parent),
                        "reload"], check=True, env=env, capture_output=True, timeout=120)
    else:
        os.kill(int((data / BUILDER_PID).read_text()), signal.SIGUSR1)
    published: float | None = None
    while time.monotonic() - started < seconds:
        current, count = vectors_of(data)
        if published is None and current != before:
            published = round(time.monotonic() - started, 1)
        if current and current != before and count is not None:
            return published, round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return published, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the load mix (at least 60 for the claim)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--limit-mib", type=int, default=512)
    parser.add_argument("--reload", action="store_true",
                        help="publish with `blog reload` inside the cgroup, not by nudging the site's builder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-host512-"))
    try:
        result = run(work, args.seconds, args.connections, args.limit_mib, args.reload)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))  # first: `make bench` keeps the end of what a bench prints
    print(f"{result['limit_mib']} MiB cgroup (memory+swap capped: {result['swap_capped_too']}), "
          f"{result['seconds']:.0f} s at {result['connections']} connections: {result['requests']} requests, "
          f"{result['failed']} failed; OOM kills {result['oom_kills']}, limit hits {result['limit_hits']}, "
          f"peak {result['peak_mib']} MiB; new entry published by {result['published_by']} in "
          f"{result['new_build_published_s']} s, embedded "
          f"after {result['new_entry_embedded_s']} s; helper restarts {result['helper_restarts']}")
    for row in result["processes"]:  # type: ignore[attr-defined]
        print(f"  {row['pss_mib']:7.1f} MiB  {row['role']} (pid {row['pid']})")
    print(f"  {result['stack_pss_mib']:7.1f} MiB  the whole stack, tor aside")


if __name__ == "__main__":
    main()
