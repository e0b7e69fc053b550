"""The whole served stack's memory: proportional set (PSS) by process, as `make run` serves a log.

    python -m bench.memory                    # the demo log, then the 1,000-entry log (bench/corpus.py)
    python -m bench.memory --entries 0        # the demo log only

The stack is `blog serve` on a free loopback port with tor as `make run` has it (tor_mode auto): the gunicorn
master, its workers, the builder (which holds tor's control connection) and the semantic process with the
model and the build's vectors. It is measured once the build's vectors are made and after `--seconds` of the
load test's reader and agent mix (pages, feeds, searches, MCP tool calls). Tor is listed but not counted: it
is tor's memory, not the site's. PSS splits a page shared by N processes into N parts, so the sum is what the
stack takes from the machine.

The 1,000-entry log's vectors take about 12 minutes to embed on two cores: its data directory is kept in
var/bench-memory/ and a later run reuses the vectors made before (the log is generated with a fixed seed, so
its build and its blocks are the same); the figures say whether this run embedded them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import load
from bench.coldstart import corpus
from blog.index.semantic import wire
from processes import ROOT, Server, descendants, free_port, pss_kib

KEEP = ROOT / "var" / "bench-memory"  # the 1,000-entry log's data directory, kept for its vectors
ROLES = ((b"gunicorn: master", "gunicorn master"), (b"gunicorn: worker", "gunicorn worker"),
         (b"blog.builder", "builder"), (b"blog.index.semantic.service", "semantic process"))


def role(pid: int) -> str:
    """Name a process of the stack by its command line ("tor" is tor's, not the site's)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    for marker, name in ROLES:
        if marker in cmdline:
            return name
    first = Path(cmdline.split(b"\0")[0].decode(errors="replace")).name
    return "tor" if first == "tor" else first


def stack_pss(master: int) -> list[dict[str, object]]:
    """Return every process of the stack under the master, with its role and PSS in MiB."""
    return [{"role": role(pid), "pid": pid, "pss_mib": round(pss_kib(pid) / 1024, 1)}
            for pid in [master, *descendants(master)]]


def counted(rows: list[dict[str, object]]) -> float:
    """Return the stack's PSS in MiB, tor aside."""
    return round(sum(float(r["pss_mib"]) for r in rows if r["role"] != "tor"), 1)  # type: ignore[arg-type]


def site(root: Path, content: Path, data: Path, tor: str = "auto") -> Path:
    """Write a site (blog.toml) serving content from data, with the checkout's model; return the file."""
    root.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    settings = root / "blog.toml"
    settings.write_text(f'title = "The engineering log"\ncontent_dir = "{content}"\ndata_dir = "{data}"\n'
                        f'model_dir = "{ROOT / "var" / "model"}"\ntor_mode = "{tor}"\n', encoding="utf-8")
    return settings


def serve(settings: Path, log_path: Path, wrapper: tuple[str, ...] = ()) -> Server:
    """Return `blog serve` (not started) for the site, on a free loopback port, as `make run` starts it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    args = [*wrapper, sys.executable, "-m", "blog.cli", "--site", str(settings.parent), "serve",
            "--bind", f"127.0.0.1:{port}"]
    return Server(args, log_path, port=port, env=env)


def wait_for_vectors(data: Path, timeout: float) -> float:
    """Wait until the semantic process has the current build's vectors; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if wire.status(data / wire.SOCKET).get("vectors") is not None:
                return time.monotonic() - started
        except wire.Failed:
            pass
        time.sleep(1)
    raise TimeoutError(f"no vectors within {timeout:.0f} s")


def stand_in_vectors(content: Path, data: Path, sample: int = 200) -> None:
    """Build the log and write its vectors: `sample` blocks embedded, the rest random unit rows.

    The rows' values do not change what they cost: the semantic process holds the same matrix (blocks x 384
    float32) either way. bench/semantic.py's way of skipping the 12 minutes a full embedding takes.
    """
    from bench.semantic import _config, _fake_rest
    from blog import pipeline
    from blog.index.semantic import weights
    from blog.index.semantic.encoder import Encoder

    config = _config(content, data)
    build = pipeline.publish(config)
    _fake_rest(build, data / "vectors", Encoder(weights.locate(config.model_dir)), sample)


def measure(work: Path, entries: int, seconds: float, data: Path | None = None,
            stand_in: bool = False) -> dict[str, object]:
    """Serve the demo log plus `entries` generated ones; return PSS by process after the mix and the load."""
    content = corpus(work / f"content-{entries}", entries)
    data = data or work / f"data-{entries}"
    if stand_in:
        stand_in_vectors(content, data)
    settings = site(work / f"site-{entries}", content, data)
    server = serve(settings, work / f"serve-{entries}.log")
    with server.start(timeout=300):
        embedded = wait_for_vectors(data, timeout=3600)
        mix = asyncio.run(load.drive(server.url, seconds, 16)).summary()
        rows = stack_pss(server.process.pid)  # type: ignore[union-attr]
    return {"entries": entries, "vectors_wait_s": round(embedded, 1), "requests": mix["requests"],
            "errors": mix["errors"], "processes": rows, "stack_pss_mib": counted(rows)}


def table(figures: dict[str, object]) -> str:
    """Render one measurement as lines: each process, then the total (tor not counted)."""
    lines = [f"log with {figures['entries']} generated entries beside the demo's: {figures['requests']} requests, "
             f"{figures['errors']} errors; vectors {figures.get('vectors', '')}, "
             f"ready after {figures['vectors_wait_s']} s"]
    for row in figures["processes"]:  # type: ignore[attr-defined]
        note = "  (not counted)" if row["role"] == "tor" else ""
        lines.append(f"  {row['pss_mib']:7.1f} MiB  {row['role']} (pid {row['pid']}){note}")
    lines.append(f"  {figures['stack_pss_mib']:7.1f} MiB  the whole stack")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[0, 1000], help="generated entries per log")
    parser.add_argument("--seconds", type=float, default=15.0, help="the load mix before measuring")
    parser.add_argument("--fresh", action="store_true", help="embed the large log again (no kept vectors)")
    parser.add_argument("--stand-in", action="store_true",
                        help="the large log's vectors: 200 blocks embedded, the rest random rows (same memory)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    results = []
    try:
        for entries in args.entries:
            data = None
            if entries >= 1000:  # kept between runs for its vectors; the build itself is made again
                data = KEEP / f"data-{entries}"
                if args.fresh:
                    shutil.rmtree(data, ignore_errors=True)
            stand_in = args.stand_in and entries >= 1000
            if stand_in:
                data = None  # a data directory of this run's own
            kept = data is not None and any((data / "vectors").glob("*.npy"))
            figures = measure(work, entries, args.seconds, data, stand_in)
            figures["vectors"] = ("stand-ins (random rows, 200 embedded)" if stand_in
                                  else "kept from an earlier run" if kept else "made in this run")
            results.append(figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))  # first: `make bench` keeps the end of what a bench prints, the tables
    for figures in results:
        print(table(figures))


if __name__ == "__main__":
    main()
