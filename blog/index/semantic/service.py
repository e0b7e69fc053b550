"""The semantic process: holds the model once, embeds each new build, answers workers over a Unix socket.

The gunicorn master starts and supervises it beside the builder (blog/gunicorn_conf.py). It follows
`current`: when a build has no vectors yet it embeds the build's blocks (reusing unchanged ones' rows,
blog/index/semantic/vectors.py) while it goes on answering questions about the builds it has vectors for.
Until then, and whenever it is down, the workers rank lexically. Without the model it says so once and
only answers that it has none: the site ranks lexically, and `blog status` and the search page say why.

The protocol is in blog/index/semantic/wire.py (a request is at most MAX_REQUEST bytes, sent within
READ_WITHIN). A question whose asker has given up (its deadline passed, or it hung up) while it waited for
one of the AT_ONCE slots is dropped, not computed; an asker that leaves before its answer costs no
traceback. SIGTERM, SIGINT and SIGHUP stop the process through its cleanup, which removes the socket;
SIGKILL cannot be caught, and the file it leaves is told from a live process by connecting to it
(wire.listening).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from blog.config import Config, load_config
from blog.index.semantic import NO_MODEL, embedding, wire
from blog.index.semantic.weights import ModelUnavailable, locate
from blog.index.semantic.wire import SOCKET, socket_path

log = logging.getLogger(__name__)

MAX_REQUEST = 8192  # bytes: a question is at most blog.index.query.MAX_QUERY characters
MAX_K = 200
READ_WITHIN = 2.0  # seconds a worker has to send its question
AT_ONCE = 4  # questions answered at the same time; more wait for the socket's backlog
TICK = 1.0
EMBED_NICE = 10  # how much lower than the readers a build's embedding runs: it takes what they leave
__all__ = ["SOCKET", "serve", "socket_path"]


class _Handler(socketserver.StreamRequestHandler):
    timeout = READ_WITHIN
    server: _Server

    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline(MAX_REQUEST))
            until = float(request.get("until") or time.monotonic() + READ_WITHIN)
            if request.get("status"):
                if time.monotonic() <= until:
                    self._answer(self.server.state.status())
                return
            k = max(1, min(int(request["k"]), MAX_K))
            build_id, question = str(request["build"]), str(request["q"])[:MAX_REQUEST]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return
        nearest = self.server.state.nearest
        if nearest is None:
            self._answer({"hits": None, "why": self.server.state.short_why()})
            return
        with self.server.state.slots:
            if self._abandoned(until):
                self.server.state.count("dropped")
                return  # the asker gave up while this question waited: computing it helps nobody
            hits = nearest.nearest(build_id, question, k)
            self.server.state.count("answered")
        if not self._abandoned(until):
            self._answer({"hits": hits})

    def _abandoned(self, until: float) -> bool:
        """Tell whether the asker stopped waiting: its deadline passed, or it closed the connection."""
        if time.monotonic() > until:
            return True
        # The asker sends nothing after its question: a hang-up is the only event its end can raise.
        watch = select.poll()
        watch.register(self.connection, select.POLLRDHUP)
        return bool(watch.poll(0))

    def _answer(self, payload: dict[str, object]) -> None:
        try:
            self.wfile.write(json.dumps(payload).encode() + b"\n")
        except OSError:
            pass  # the asker left (a broken pipe): there is nobody to tell


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 64  # a burst of askers waits in the backlog rather than being refused

    def __init__(self, name: str, state: _State) -> None:
        self.state = state
        super().__init__(name, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver prints a traceback to stderr for any error in a handler; one line says enough
        log.warning("a question failed: %s", sys.exc_info()[1])


class _State:
    """What the process holds and does, for its status answer (`blog status`)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.nearest: object | None = None  # blog.index.semantic.nearest.Nearest once the model is loaded
        self.model_id: str | None = None
        self.why: str | None = None  # why there is no model
        self.starting = True  # until the model is loaded, or known to be missing
        self.embedding: dict[str, object] | None = None  # {"build", "done", "total"} while embedding
        self.answered = 0  # questions computed
        self.dropped = 0  # questions whose asker had given up before their turn (not computed)
        self._counting = threading.Lock()
        self.slots = threading.BoundedSemaphore(AT_ONCE)  # questions computed at once

    def count(self, what: str) -> None:
        with self._counting:
            setattr(self, what, getattr(self, what) + 1)

    @contextlib.contextmanager
    def no_questions(self) -> Iterator[None]:
        """Hold every question slot: no question is being computed until the block ends."""
        for _ in range(AT_ONCE):
            self.slots.acquire()
        try:
            yield
        finally:
            for _ in range(AT_ONCE):
                self.slots.release()

    def show_embedding(self, progress: dict[str, object] | None) -> None:
        self.embedding = progress

    def short_why(self) -> str:
        """What a worker may tell a reader: no path, no detail (`blog status` shows self.why)."""
        if self.starting:
            return "the semantic process is still loading its model"
        return "the semantic ranker is off" if not self.config.semantic else NO_MODEL

    def status(self) -> dict[str, object]:
        current = embedding.current_id(self.config)
        found = self.nearest.vectors_for(current) if self.nearest is not None and current else None  # type: ignore[attr-defined]
        return {"pid": os.getpid(), "model": self.model_id, "why": self.why, "current": current,
                "vectors": len(found.keys) if found is not None else None, "embedding": self.embedding,
                "answered": self.answered, "dropped": self.dropped, "starting": self.starting}


class _Stop:
    """SIGTERM, SIGINT and SIGHUP end the process through its cleanup, which removes the socket."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._set)

    def _set(self, signum: int, _frame: FrameType | None) -> None:
        self.event.set()


def serve(config: Config, parent: int) -> None:
    """Run until told to stop or the parent is gone: embed new builds, answer questions and status."""
    stop = _Stop()
    state = _State(config)
    try:
        if not config.semantic:
            raise ModelUnavailable("the semantic ranker is off in this site's settings (semantic = false)")
        files = locate(config.model_dir)
    except ModelUnavailable as exc:
        log.warning("search ranks by words only: %s", exc)
        state.why, state.starting, files = str(exc), False, None
    path = socket_path(config)
    try:
        server, inode = _listen(path, state)
    except (OSError, wire.Failed) as exc:
        log.error("search ranks by words only: cannot listen at %s: %s", path, exc)
        while not stop.event.is_set() and os.getppid() == parent:
            stop.event.wait(TICK)  # idle rather than die: the master would start it again, in a loop
        return
    try:
        threading.Thread(target=server.serve_forever, name="semantic-questions", daemon=True).start()
        if files is None:
            while not stop.event.is_set() and os.getppid() == parent:
                stop.event.wait(TICK)
            return
        _embed_and_answer(config, parent, files, state, stop.event)
    finally:
        server.shutdown()
        server.server_close()
        _remove(path, inode)


def _listen(path: Path, state: _State) -> tuple[_Server, int]:
    """Bind the socket under a temporary name (0600), then move it over the old one in one step."""
    part = path.with_name(f".{SOCKET}.{os.getpid()}")
    part.unlink(missing_ok=True)
    with wire.address(part) as name:
        server = _Server(name, state)
    os.chmod(part, 0o600)
    os.replace(part, path)
    return server, os.stat(path).st_ino


def _remove(path: Path, inode: int) -> None:
    """Remove the socket, unless another process has put its own there since."""
    try:
        if os.stat(path).st_ino == inode:
            path.unlink()
    except OSError:
        pass


def _embed_and_answer(config: Config, parent: int, files: object, state: _State, stop: threading.Event) -> None:
    from blog.index.semantic.encoder import Encoder
    from blog.index.semantic.nearest import Nearest

    # A question is one text: the tokenizer's thread pool would only be copied, half-held, into each
    # embedding child (the library then warns, and tokenizes there alone anyway).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    root = config.data_dir / "vectors"
    # Questions get a session of one thread at the readers' priority, held for the process's life; its
    # arena is off, so between questions it holds its weights and no buffers (docs/performance.md, memory).
    nearest = Nearest(Encoder(files, threads=1, arena=False), root)  # type: ignore[arg-type]
    _give_back_freed_memory()  # the parsed graph the session was made from
    state.nearest = nearest
    state.model_id = files.model_id  # type: ignore[attr-defined]
    state.starting = False
    _yield_to_readers()
    log.info("semantic ranker ready (pid %d, model %s)", os.getpid(), state.model_id)
    while not stop.is_set() and os.getppid() == parent:
        pointer = embedding.current_id(config)
        if pointer and nearest.vectors_for(pointer) is None:
            embedding.embed_in_child(config, pointer, files, root, state.show_embedding, stop, state.no_questions)
        stop.wait(TICK)


def _give_back_freed_memory() -> None:
    """Return the heap the released session freed to the system (glibc keeps freed pages otherwise)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the pages are reused by the next embedding instead
        pass


def _yield_to_readers() -> None:
    """Lower this thread's CPU priority (Linux: per thread; threads it starts inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), EMBED_NICE)
    except OSError as exc:  # not allowed here: embed at the readers' priority, and say so
        log.warning("embedding runs at the readers' priority: %s", exc)


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
