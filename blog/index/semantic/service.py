"""The semantic process: holds the model once, embeds each new build, answers workers over a Unix socket.

The gunicorn master starts and supervises it beside the builder (blog/gunicorn_conf.py). It follows
`current`: when a build has no vectors yet it embeds the build's blocks (reusing unchanged ones' rows,
blog/index/semantic/vectors.py) while it goes on answering questions about the builds it has vectors for.
Until then, and whenever it is down, the workers rank lexically. Without the model it says so once and
idles: the site ranks lexically.

    request:  {"build": ID, "q": QUESTION, "k": N}\n      (at most MAX_REQUEST bytes, within READ_WITHIN)
    answer:   {"hits": [[KEY, COSINE], ...]}\n, or {"hits": null} when that build has no vectors yet
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socketserver
import sys
import threading
import time
from pathlib import Path

from blog import build as builds
from blog.config import Config, load_config
from blog.index.semantic import vectors
from blog.index.semantic.files import ModelUnavailable, locate

log = logging.getLogger(__name__)

SOCKET = "semantic.sock"
MAX_REQUEST = 8192  # bytes: a question is at most blog.index.query.MAX_QUERY characters
MAX_K = 200
READ_WITHIN = 2.0  # seconds a worker has to send its question
AT_ONCE = 4  # questions answered at the same time; more wait for the socket's backlog
TICK = 1.0
EMBED_NICE = 10  # how much lower than the readers a build's embedding runs: it takes what they leave


def socket_path(config: Config) -> Path:
    return config.data_dir / SOCKET


class _Handler(socketserver.StreamRequestHandler):
    timeout = READ_WITHIN
    server: _Server

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST)
            request = json.loads(line)
            k = max(1, min(int(request["k"]), MAX_K))
            build_id, question = str(request["build"]), str(request["q"])[:MAX_REQUEST]
        except (OSError, ValueError, KeyError, TypeError):
            return
        with self.server.slots:
            hits = self.server.nearest.nearest(build_id, question, k)
        self.wfile.write(json.dumps({"hits": hits}).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, nearest: object) -> None:
        self.nearest = nearest
        self.slots = threading.BoundedSemaphore(AT_ONCE)
        super().__init__(str(path), _Handler)


def serve(config: Config, parent: int) -> None:
    """Run until the parent is gone: embed new builds, answer questions."""
    try:
        if not config.semantic:
            raise ModelUnavailable("the semantic ranker is off in this site's settings (semantic = false)")
        files = locate(config.model_dir)
    except ModelUnavailable as exc:
        log.warning("search ranks by words only: %s", exc)
        while os.getppid() == parent:
            time.sleep(TICK)
        return
    from blog.index.semantic.encoder import Encoder
    from blog.index.semantic.nearest import Nearest

    root = config.data_dir / "vectors"
    # Two sessions. Questions get one thread at the readers' priority; a build's embedding gets every core
    # at a lower one, so a long embedding takes what the readers leave and a question never waits for a
    # batch. The embedding session is made after this thread lowers itself: its threads inherit that.
    questions = Nearest(Encoder(files, threads=1), root)
    path = socket_path(config)
    part = path.with_name(f".{SOCKET}.{os.getpid()}")
    part.unlink(missing_ok=True)
    server = _Server(part, questions)
    os.chmod(part, 0o600)
    os.replace(part, path)
    threading.Thread(target=server.serve_forever, name="semantic-questions", daemon=True).start()
    _yield_to_readers()
    embedder = Encoder(files, threads=len(os.sched_getaffinity(0)))
    log.info("semantic ranker ready (pid %d, model %s)", os.getpid(), files.model_id)
    while os.getppid() == parent:
        pointer = _current_id(config)
        if pointer and vectors.load(root, pointer, files.model_id) is None:
            _embed(config, pointer, embedder, root)
        time.sleep(TICK)
    server.shutdown()


def _yield_to_readers() -> None:
    """Lower this thread's CPU priority (Linux: per thread; threads it starts inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), EMBED_NICE)
    except OSError as exc:  # not allowed here: embed at the readers' priority, and say so
        log.warning("embedding runs at the readers' priority: %s", exc)


def _current_id(config: Config) -> str | None:
    try:
        pointer = builds.current_pointer(config.builds_dir)
    except builds.BuildError:
        return None
    return pointer.get("build") if pointer else None


def _embed(config: Config, build_id: str, encoder: object, root: Path) -> None:
    try:
        build = builds.load(config.builds_dir, build_id)
    except (builds.BuildError, OSError) as exc:
        log.error("cannot read build %s to embed it: %s", build_id, exc)
        return
    started = time.monotonic()
    reported = [started]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - reported[0] >= 10 or done == total:
            reported[0] = time.monotonic()
            log.info("embedding build %s: %d of %d new blocks", build_id, done, total)

    made = vectors.embed_build(build, root, encoder, progress,  # type: ignore[arg-type]
                               stale=lambda: _current_id(config) != build_id)
    if made is not None:
        log.info("build %s: vectors for %d blocks ready in %.1f s", build_id, len(made.keys),
                 time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blog.index.semantic.service",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S +0000")
    logging.Formatter.converter = time.gmtime
    serve(load_config(), args.parent or os.getppid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
