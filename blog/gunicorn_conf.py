"""Production gunicorn settings (`gunicorn -c python:blog.gunicorn_conf`); `blog serve` uses them."""

import ctypes
import logging
import os
import signal
import socket
from collections import Counter

import gunicorn.asgi.protocol
import gunicorn.http.wsgi
import gunicorn.util

from blog import gunicorn_guard, worker_imports
from blog.serving.headers import NO_STORE, security_headers
from blog.supervisor import Supervisor

# Slow clients must not starve readers. gthread parses request headers on a pool thread with a blocking
# socket and no deadline, so 256 clients trickling one header line every 2 s held all 16 threads and
# readers timed out (docs/reliability.md). gunicorn's asyncio worker parses headers on its event loop, so
# a half-sent request costs no thread; blog/gunicorn_guard.py bounds what it costs instead (16 KiB, 10 s,
# a slot of worker_connections). The Flask app runs on a thread pool behind a2wsgi (see post_worker_init);
# connections are still kept alive for Tor readers.
worker_class = os.environ.get("BLOG_WORKER_CLASS", "asgi")
workers = int(os.environ.get("BLOG_WORKERS", "2"))
app_threads = int(os.environ.get("BLOG_THREADS", "8"))  # the app's thread pool per worker
# gunicorn's own `threads` setting means something only to gthread (the asyncio worker warns about it).
threads = app_threads if worker_class == "gthread" else 1
# The asyncio worker ignores gunicorn's own `worker_connections`; blog/gunicorn_guard.py enforces it, closing
# the connection that has waited longest for a request to let a new one in. The open-file limit is raised
# to hold them all (or the cap lowered to what it allows).
worker_connections = gunicorn_guard.room_for_connections(int(os.environ.get("BLOG_WORKER_CONNECTIONS", "1000")))
# The asyncio worker's event loop: "asyncio" (the standard library's) or "uvloop" (docs/reliability.md).
asgi_loop = os.environ.get("BLOG_ASGI_LOOP", "asyncio")
keepalive = 20
timeout = 30
graceful_timeout = 20
max_requests = 0

# Small limits: nothing this site serves needs long request lines or many headers.
limit_request_line = 4096
limit_request_fields = 50
limit_request_field_size = 8190

# Never log client addresses: the access log has time, method, path (no query), status, size, duration.
accesslog = os.environ.get("BLOG_ACCESS_LOG", "-")
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
logger_class = "blog.gunicorn_log.SafeLogger"  # escaped, bounded lines; no client text from the MCP SDK
loglevel = os.environ.get("BLOG_LOG_LEVEL", "info")
proc_name = "engineering-log"
forwarded_allow_ips = ""
control_socket_disable = True


# OpenBLAS (numpy's) starts a thread and a 32 MiB buffer per core; a worker multiplies one vector by a small
# matrix at most, and the semantic process one question's cosines: one thread each is all they use.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# glibc gives each thread that allocates an arena of its own, up to 8 a core: a worker's app threads
# (BLOG_THREADS) and the MCP front's made 13 arenas in each worker, about 8 MiB of its private pages, for
# threads that take turns at the interpreter lock anyway. Two, set here in the master before anything is
# forked (the setting is copied into the workers, the builder and the semantic process; MALLOC_ARENA_MAX in
# the environment still decides, read by the C library at start). docs/performance.md, memory.
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt() parameter number


def _cap_malloc_arenas(arenas: int) -> None:
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: its allocator has its own rules
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not mallopt(M_ARENA_MAX, arenas):
        logging.getLogger(__name__).warning("could not cap malloc's arenas at %d", arenas)


_cap_malloc_arenas(MALLOC_ARENAS)

# Workers only read `current`; the one builder is a process of the master's own (blog/builder.py), forked
# from it after it imported and froze the workers' libraries, so that it shares them as a worker does.
_listeners: list[int] = []  # the listening sockets' descriptors, which the forked builder must not hold
_builder = Supervisor("blog.builder", "the builder", held=(signal.SIGUSR1,),  # a nudge is never its end
                      fork=True, not_inherited=lambda: _listeners)
# The semantic ranker holds the model and the vectors once, for every worker (blog/index/semantic/); forked
# too, it shares numpy and the standard library with them.
_semantic = Supervisor("blog.index.semantic.service", "the semantic ranker", fork=True,
                       not_inherited=lambda: _listeners)


class NoBuild(RuntimeError):
    """There is no build to serve and none can be made (gunicorn prints a RuntimeError and exits)."""


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """Have a build to serve before the first worker starts: publish changed content or keep the last good."""
    # In a child, not the master itself: the master forks every worker and stays small and single-threaded.
    # Meanwhile another child names the libraries every worker imports (blog/worker_imports.py).
    server.worker_libraries = worker_imports.ask()
    if _builder.run_once() != 0:
        raise NoBuild("there is no build to serve (the builder's errors are above); fix the content "
                      "and run `blog build`, or start again")


def when_ready(server) -> None:  # type: ignore[no-untyped-def]
    """Start the builder and the semantic process; look after them on every turn of the master's loop."""
    # Before the builder and the first worker are forked: what they all import is then shared
    # (blog/worker_imports.py).
    shared = worker_imports.share(server.worker_libraries)
    server.log.info("imported %d modules every worker uses, shared with them copy-on-write", shared)
    _open_listen_slots(server)
    _builder.start()
    _semantic.start()
    manage_workers, reap_workers = server.manage_workers, server.reap_workers

    def reap_helpers_first() -> None:
        # gunicorn's waitpid(-1) would take the helpers' exit statuses and drop them (supervisor.Supervisor.claim)
        _builder.claim()
        _semantic.claim()
        reap_workers()

    def manage_workers_and_builder() -> None:
        manage_workers()
        _builder.keep_alive()
        _semantic.keep_alive()

    def stop_listening_too(graceful: bool = True) -> None:
        # gunicorn closes its own listeners so that the kernel refuses new connections; the twins too.
        _close_twins(server)
        stop(graceful)

    stop = server.stop
    server.manage_workers = manage_workers_and_builder
    server.reap_workers = reap_helpers_first
    server.stop = stop_listening_too


# One listening socket per worker for each TCP address, all in one SO_REUSEPORT group, so that the kernel
# spreads new connections over the workers' queues and each worker drains its own: with one shared queue
# a burst was drained by whichever worker woke first while the other idled (docs/reliability.md). The
# master opens them and keeps them, so a queue outlives its worker: what waits in it when a worker dies or
# is replaced is accepted by the worker that takes its slot, never reset.
_slots: list[list] = []  # type: ignore[type-arg]  # per slot, the gunicorn listeners its worker serves


def _open_listen_slots(server) -> None:  # type: ignore[no-untyped-def]
    """Give each of the workers' slots a listener of its own per TCP address (a unix socket stays shared)."""
    _close_twins(server)
    count = max(server.num_workers, 1)
    _slots[:] = [[] for _ in range(count)]
    for listener in server.LISTENERS:
        try:
            twins = [_reuse_port_twin(server, listener) for _ in range(count - 1)] if listener.sock.family in (
                socket.AF_INET, socket.AF_INET6) else []
        except OSError as exc:
            server.log.warning("cannot open a listening socket per worker on %s (%s): the workers share one",
                               listener, exc)
            twins = []
        for k, slot in enumerate(_slots):
            slot.append(twins[k - 1] if 0 < k <= len(twins) else listener)
    _listeners[:] = sorted({sock.fileno() for slot in _slots for sock in slot})


def _close_twins(server) -> None:  # type: ignore[no-untyped-def]
    """Close the listeners the master opened beside gunicorn's own (which gunicorn closes itself)."""
    for slot in _slots:
        for sock in slot:
            if sock not in server.LISTENERS:
                sock.close()
    _slots.clear()


def _reuse_port_twin(server, listener):  # type: ignore[no-untyped-def]
    """Open another socket listening on listener's address, in its SO_REUSEPORT group."""
    raw = listener.sock
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # joins the group at the twin's listen()
    twin = socket.socket(raw.family, socket.SOCK_STREAM)
    try:
        twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        twin.bind(raw.getsockname())
        twin.listen(server.cfg.backlog)
    except OSError:
        twin.close()
        raise
    return type(listener)(listener.cfg_addr, server.cfg, server.log, fd=twin.detach())


def pre_fork(server, worker) -> None:  # type: ignore[no-untyped-def]
    """Give the new worker the listeners of the slot fewest live workers serve (the one a dead worker left)."""
    if not _slots:
        return
    serving = Counter(getattr(other, "listen_slot", None) for other in server.WORKERS.values())
    worker.listen_slot = min(range(len(_slots)), key=lambda k: serving[k])
    worker.sockets = _slots[worker.listen_slot]


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    """A replaced worker used to publish changed content at its start; now the builder does, once."""
    _builder.nudge()


def on_reload(server) -> None:  # type: ignore[no-untyped-def]
    """After a HUP: new listeners if the address or the number of workers changed; the builder publishes."""
    if _slots and (_slots[0] != list(server.LISTENERS) or len(_slots) != max(server.num_workers, 1)):
        _open_listen_slots(server)
    _builder.nudge()


def on_exit(server) -> None:  # type: ignore[no-untyped-def]
    _builder.stop()
    _semantic.stop()


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """Serve the app from the asyncio worker: pages on a2wsgi's thread pool, /mcp on the loop; accept fairly."""
    if worker.__class__.__name__ == "ASGIWorker":
        from a2wsgi import WSGIMiddleware

        app = worker.asgi
        pool = WSGIMiddleware(app, workers=app_threads)
        # The app's own ASGI front answers /mcp on this worker's loop (blog/mcp/front.py).
        make_front = getattr(app, "extensions", {}).get("blog.asgi_front")
        worker.asgi = make_front(pool) if make_front else pool
        _serve_guarded_with_backlog(worker)
        _accept_one_at_a_time(worker)


def _serve_guarded_with_backlog(worker) -> None:  # type: ignore[no-untyped-def]
    """Serve connections with the guarded protocol (blog/gunicorn_guard.py), and keep gunicorn's backlog.

    asyncio listens again on the shared socket with its own backlog of 100; gunicorn's (2048) is kept.
    """
    create_server = worker.loop.create_server
    own = {sock.sock for sock in worker.sockets}
    siblings = [sock.sock for slot in _slots for sock in slot if sock.sock is not None and sock.sock not in own
                and sock.sock.family in (socket.AF_INET, socket.AF_INET6)]
    protocol = gunicorn_guard.install(worker, list(dict.fromkeys(siblings)))

    async def with_backlog(protocol_factory, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("backlog", worker.cfg.backlog)
        return await create_server(lambda: protocol(worker), *args, **kwargs)

    worker.loop.create_server = with_backlog


def _accept_one_at_a_time(worker) -> None:  # type: ignore[no-untyped-def]
    """Make the worker take one connection per wake-up from its listeners.

    asyncio accepts up to 100 pending connections each time a listening socket is readable. On a socket all
    workers share (a unix socket; a TCP one before each worker had its own) the worker that woke first took
    a whole burst: 16 connections opened at once all landed on one of two workers, and the site ran on one
    core at half its throughput (docs/performance.md). On a worker's own listener one accept per wake-up
    still measured better under a flood than 100 (docs/reliability.md): the readers' pages are answered
    between two accepts, not after a hundred.
    """
    loop = worker.loop
    accept = getattr(loop, "_accept_connection", None)
    if accept is None:  # not asyncio's selector loop: uvloop has no such hook
        if any(sock.sock.family not in (socket.AF_INET, socket.AF_INET6) for sock in worker.sockets):
            worker.log.warning("cannot limit accepts per wake-up on %s; bursts on the shared unix socket may "
                               "land on one worker", loop)
        return

    def accept_one(protocol_factory, sock, sslcontext=None, server=None, backlog=100, *args, **kwargs):  # type: ignore[no-untyped-def]
        return accept(protocol_factory, sock, sslcontext, server, 1, *args, **kwargs)

    loop._accept_connection = accept_one


def _headers_without_banner(self):  # type: ignore[no-untyped-def]
    """Drop gunicorn's `Server:` line: the banner tells a scanner what to try."""
    return [h for h in _original_default_headers(self) if not h.startswith("Server:")]


_original_default_headers = gunicorn.http.wsgi.Response.default_headers
gunicorn.http.wsgi.Response.default_headers = _headers_without_banner
gunicorn.asgi.protocol._CACHED_SERVER_HEADER = b""  # the asyncio worker's banner, added unless the app sets one


# gunicorn answers malformed requests itself (400, 414, 431, 501) before the app sees them. Its answers
# quoted the bad token back and carried none of the site's headers; these carry a fixed text and the
# same headers as every other answer (blog/serving/headers.py).
ERROR_HEADERS = (*security_headers(), NO_STORE)


def _plain_error(self, status, message, extra_headers=()):  # type: ignore[no-untyped-def]
    reason = gunicorn.asgi.protocol._REASON_PHRASES.get(status, "Error")
    return _original_error(self, status, f"{status} {reason}\n", (*extra_headers, *ERROR_HEADERS))


def _write_plain_error(sock, status_int, reason, mesg):  # type: ignore[no-untyped-def]
    body = f"{status_int} {reason}\n"
    headers = "".join(f"{k}: {v}\r\n" for k, v in ERROR_HEADERS)
    sock.sendall((f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                  f"Content-Length: {len(body)}\r\n{headers}\r\n{body}").encode("latin-1"))


_original_error = gunicorn.asgi.protocol.ASGIProtocol._send_error_response
gunicorn.asgi.protocol.ASGIProtocol._send_error_response = _plain_error
gunicorn.util.write_error = _write_plain_error  # the sync and gthread workers' answer
