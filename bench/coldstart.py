"""Cold start (process start to first 200), change-to-served after `blog reload`, and RSS per worker."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.servers import BenchError
from processes import ROOT, Gunicorn, rss_mib

log = logging.getLogger(__name__)

MARKER = "Reload marker"


def corpus(target: Path, entries: int) -> Path:
    """Return a content tree: the starter log plus `entries` generated entries (bench/corpus.py)."""
    shutil.copytree(ROOT / "content", target)
    if entries:
        from bench.corpus import write_corpus

        write_corpus(target, entries)
    return target


def blog(command: str, content_dir: Path, data_dir: Path) -> float:
    """Run a `blog` command against a content tree; return its wall time in s."""
    # Words only: the first build and the cold start are the lexical path a reader waits for; the vectors
    # are made afterwards, in the background, and bench.semantic measures them.
    env = dict(os.environ, BLOG_CONTENT_DIR=str(content_dir), BLOG_DATA_DIR=str(data_dir), BLOG_TOR_MODE="off",
               BLOG_SEMANTIC="0")
    env.pop("BLOG_CONFIG", None)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "blog.cli", command], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise BenchError(f"blog {command} failed for {content_dir}: {done.stderr[-2000:]}")
    return time.monotonic() - start


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def measure(work: Path, entries: int) -> dict[str, float]:
    """Measure one content size: first build, cold start on a built site, reload latency, worker RSS."""
    content = corpus(work / f"content-{entries}", entries)
    data = work / f"data-{entries}"
    figures = {"entries": float(len(list((content / "log").glob("*.md"))))}
    figures["first_build_s"] = blog("build", content, data)
    with Gunicorn(content, data, log_path=work / f"cold-{entries}.log").start(timeout=120) as server:
        figures["cold_start_s"] = server.first_answer_s  # process start to the first 200
        # Two reloads: an index that merges segments every other commit would hide in a single one.
        runs = [_change_to_served(server.url, content, data) for _ in range(2)]
        figures.update({key: max(run[key] for run in runs) for key in runs[0]})
        figures["reload_command_runs_s"] = [run["reload_command_s"] for run in runs]  # type: ignore[assignment]
        for path in ("/", "/tags", "/archive", "/search?q=tor"):
            _get(server.url + path)
        workers = [rss_mib(pid) for pid in server.worker_pids()]
        figures["rss_per_worker_mib"] = round(max(workers, default=0.0), 1)
        figures["rss_master_mib"] = round(rss_mib(server.process.pid), 1) if server.process else 0.0
    return figures


def _change_to_served(url: str, content: Path, data: Path) -> dict[str, float]:
    """Publish a new entry with `blog reload` and poll until it is served; return the three times in s."""
    # A new entry, not an edit: the honesty room refuses silent edits to published entries.
    stamp = time.time_ns()
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    path = content / "log" / f"{when:%Y-%m-%d}-reload-{stamp}.md"
    start = time.monotonic()
    path.write_text(f'---\ntitle: "{MARKER} {stamp}"\ndate: {when:%Y-%m-%dT%H:%M:%SZ}\ntags: [bench]\n'
                    f'summary: "A content change timed by the bench."\n---\n\n{MARKER} {stamp}.\n', encoding="utf-8")
    command = blog("reload", content, data)
    returned = time.monotonic()
    deadline = returned + 30
    while time.monotonic() < deadline:
        if str(stamp).encode() in _get_any(f"{url}/log/reload-{stamp}"):
            now = time.monotonic()
            # The target (<= 1 s) is the last figure: from `blog reload` returning to the change being served.
            return {"reload_s": round(now - start, 3), "reload_command_s": round(command, 3),
                    "served_after_reload_s": round(now - returned, 3)}
        time.sleep(0.02)
    raise BenchError(f"{path.name} was not served within 30 s of `blog reload`")


def _get_any(url: str) -> bytes:
    try:
        return _get(url)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return b""
        raise


def run(work: Path, sizes: tuple[int, ...] = (0, 1000)) -> dict[str, dict[str, float]]:
    """Measure the starter log (0 extra entries) and a generated log of each size."""
    results = {}
    for entries in sizes:
        name = "starter" if entries == 0 else f"{entries}_entries"
        results[name] = measure(work, entries)
        log.info("%s: %s", name, results[name])
    return results
