"""A build's vectors, embedded in a child the semantic process forks for it and waits for.

The child makes a session of every core at a lower priority (the thread that forks it lowered its own
already: the session's threads inherit it), embeds the build's new blocks and writes their vectors
(blog/index/semantic/vectors.py), then exits; what it read and allocated ends with it.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from blog import builds
from blog.config import Config
from blog.index.semantic import vectors

try:  # what `ps` shows of the child; without it, the semantic process's own title
    from setproctitle import setproctitle
except ImportError:  # pragma: no cover - a dependency; the child works without its title
    def setproctitle(title: str) -> None:
        """Leave the process's title as it is."""

log = logging.getLogger(__name__)
TICK = 1.0  # seconds between two looks at a stop while the child embeds


def embed_in_child(config: Config, build_id: str, files: object, root: Path,
                   show: Callable[[dict[str, object] | None], None], stop: threading.Event,
                   no_questions: Callable[[], AbstractContextManager[None]]) -> None:
    """Embed a build in a child forked for it, with a session of every core at a lower priority.

    A long embedding then takes what the readers leave, and a question never waits for a batch. The second
    session (its own copy of the int8 weights and its buffers, about 20 MB), the build's blocks and what
    onnxruntime's threads touched are the child's: they end with it, where a session released in this
    process left its heap about 8 MiB larger after each build (docs/performance.md, memory). (Lending both
    sessions one copy of the weights, SessionOptions.add_initializer, saved 22 MB while embedding but cost
    23 MB at all other times: not taken.) The child reports its progress on a pipe, for `blog status`.
    """
    readable, writable = os.pipe()
    try:
        with no_questions():  # none is inside onnxruntime or the tokenizer while the process is copied
            pid = os.fork()
    except OSError as exc:  # no memory or no process left for a child: questions go on, and it tries again
        os.close(readable)
        os.close(writable)
        log.error("cannot start embedding build %s: %s", build_id, exc)
        return
    if pid == 0:  # the child: this thread alone, copied with the questions' session it never uses
        # Nothing of the parent's but the pipe: a child that outlived a killed parent must not keep its
        # listening socket open, where askers would wait for an answer nobody gives.
        os.closerange(3, writable)
        os.closerange(writable + 1, os.sysconf("SC_OPEN_MAX"))
        setproctitle(f"{sys.executable} -m {__name__} {build_id}")
        os._exit(_embed_in_child(config, build_id, files, root, writable))
    os.close(writable)
    try:
        _follow_child(pid, readable, build_id, show, stop)
    finally:
        os.close(readable)
        show(None)


def _embed_in_child(config: Config, build_id: str, files: object, root: Path, report: int) -> int:
    from blog.index.semantic.encoder import Encoder

    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # stop between batches, lock released
        signal.signal(signum, lambda _signum, _frame: stopped.set())
    parent = os.getppid()

    def progress(done: int, total: int) -> None:
        try:
            os.write(report, f"{done} {total}\n".encode())
        except OSError:
            stopped.set()  # the process that asked for the vectors is gone

    try:
        embedder = Encoder(files, threads=len(os.sched_getaffinity(0)))  # type: ignore[arg-type]
        _embed(config, build_id, embedder, root, progress,
               stale=lambda: stopped.is_set() or os.getppid() != parent or current_id(config) != build_id)
    except Exception:  # the parent goes on answering questions, and embeds again at its next look
        log.exception("embedding build %s failed", build_id)
        return 1
    finally:
        logging.shutdown()
    return 0


def _follow_child(pid: int, readable: int, build_id: str, show: Callable[[dict[str, object] | None], None],
                  stop: threading.Event) -> None:
    """Wait for the embedding child, passing its progress to the status; on a stop, stop it first."""
    lines = b""
    asked_to_stop = False
    while True:
        if not asked_to_stop and stop.is_set():
            os.kill(pid, signal.SIGTERM)
            asked_to_stop = True
        ready, _, _ = select.select([readable], [], [], TICK)
        if not ready:
            continue
        chunk = os.read(readable, 4096)
        if not chunk:  # the child has closed its end: it has ended
            break
        lines += chunk
        *complete, lines = lines.split(b"\n")
        if complete:
            done, total = (int(n) for n in complete[-1].split())
            show({"build": build_id, "done": done, "total": total})
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        log.error("embedding build %s ended with status %d", build_id, os.waitstatus_to_exitcode(status))


def current_id(config: Config) -> str | None:
    try:
        pointer = builds.current_pointer(config.builds_dir)
    except builds.BuildError:
        return None
    return pointer.get("build") if pointer else None


def _embed(config: Config, build_id: str, encoder: object, root: Path, report: vectors.Progress,
           stale: Callable[[], bool]) -> None:
    try:
        build = builds.load(config.builds_dir, build_id)
    except (builds.BuildError, OSError) as exc:
        log.error("cannot read build %s to embed it: %s", build_id, exc)
        return
    started = time.monotonic()
    reported = [started]

    def progress(done: int, total: int) -> None:
        report(done, total)
        if time.monotonic() - reported[0] >= 10 or done == total:
            reported[0] = time.monotonic()
            log.info("embedding build %s: %d of %d new blocks", build_id, done, total)

    made = vectors.embed_build(build, root, encoder, progress, stale=stale)  # type: ignore[arg-type]
    if made is not None:
        log.info("build %s: vectors for %d blocks ready in %.1f s", build_id, len(made.keys),
                 time.monotonic() - started)
