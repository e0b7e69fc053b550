"""A guard on the asyncio worker's connections: a cap per worker, a deadline and a size for every request head.

gunicorn 27's asyncio worker stores `worker_connections` and never checks it, gives a connection no
deadline before its first request head is complete, and holds up to `limit_request_fields` x
`limit_request_field_size` (about 400 kB) of a head that never ends. 3,000 such heads and 9,000 silent
connections took each worker from 108 to 380 MiB, kept every one of them open for as long as the client
liked, and readers timed out (docs/reliability.md). Over Tor every client is the local tor, so no limit
can be per address; these are per connection and per worker:

- a worker holds at most `worker_connections`; a new one beyond that closes the connection that has
  waited longest for a request (a silent one, a half-sent head, an idle keep-alive), so the newest
  connection, a reader's, always gets in, and a worker never holds more;
- the first request head must be complete within `HEAD_DEADLINE` of the connection; later ones within
  gunicorn's `keepalive` of the answer before (gunicorn's own timer);
- a head that is still incomplete may hold `HEAD_BUDGET` bytes; a complete one over it is refused too;
- its field values are checked for control characters in C, not byte by byte in Python, so that a flood of
  long header lines does not keep the worker from accepting the readers queued behind it;
- each worker drains a listen queue of its own (blog/gunicorn_conf.py); a sibling's queue that stays
  waiting from one sweep to the next (its worker hung, dead and not yet replaced, or swamped) is drained
  here too, a batch at a time, so that a stuck worker does not strand the readers the kernel queued for it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
import socket
import struct
import time
from typing import Any

from gunicorn.asgi.parser import InvalidHeader, LimitRequestHeaders, PythonProtocol
from gunicorn.asgi.protocol import ASGIProtocol

log = logging.getLogger(__name__)

HEAD_DEADLINE = 10.0  # s from accepting a connection to the end of its first request head
HEAD_BUDGET = 16 * 1024  # bytes of a request head (request line and headers), Node.js's default as well
SWEEP_EVERY = 0.5  # s between two looks at the oldest waiting connections
FILES_BESIDE_CONNECTIONS = 256  # descriptors a worker needs besides its connections (index, logs, pipes)
RESCUE_BATCH = 64  # connections taken from a sibling's stuck queue per sweep
TRIM_AFTER = 256  # connections closed since the last peak that make giving memory back worth a call
# RFC 9110 section 5.5: a field value holds VCHAR, SP, HTAB and obs-text; no other control character, no DEL.
ALLOWED_IN_VALUE = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b != 0x7F)


class Guard:
    """One worker's connections: how many it holds, and those waiting for a request, oldest first."""

    def __init__(self, worker: Any, cap: int, head_deadline: float = HEAD_DEADLINE,
                 siblings: list[socket.socket] | None = None) -> None:
        self.worker, self.cap, self.head_deadline = worker, cap, head_deadline
        self.siblings = {sock: 0 for sock in siblings or []}  # the other workers' listeners: queued at last look
        self.protocol: Any = None  # what serves a connection taken from a sibling's queue (set by install)
        self.held = 0
        # Insertion-ordered, oldest first: connections waiting for their first head (with the time they
        # were accepted), and connections idle between requests (with the time they became idle).
        self.heads: dict[GuardedProtocol, float] = {}
        self.idle: dict[GuardedProtocol, float] = {}
        self.closed = {"cap": 0, "deadline": 0, "full": 0}
        self._peak = 0
        self._trim = _malloc_trim()

    def admit(self, conn: GuardedProtocol) -> bool:
        """Count a new connection in, closing the longest-waiting one when the worker is full."""
        if self.held >= self.cap:
            oldest = self._longest_waiting()
            if oldest is None:  # every connection has a request in the app: the newcomer waits its turn
                self.closed["full"] += 1
                return False
            self.closed["cap"] += 1
            oldest.drop()
        self.held += 1
        self._peak = max(self._peak, self.held)
        self.heads[conn] = time.monotonic()
        return True

    def _longest_waiting(self) -> GuardedProtocol | None:
        head = next(iter(self.heads.items()), None)
        idle = next(iter(self.idle.items()), None)
        if head is None or (idle is not None and idle[1] <= head[1]):
            return idle[0] if idle else None
        return head[0]

    def busy(self, conn: GuardedProtocol) -> None:
        """A request head is complete: the connection is the app's until its answer is sent."""
        self.heads.pop(conn, None)
        self.idle.pop(conn, None)

    def waiting(self, conn: GuardedProtocol) -> None:
        """The connection is idle between requests, the newest of the idle ones."""
        self.heads.pop(conn, None)
        self.idle.pop(conn, None)
        self.idle[conn] = time.monotonic()

    def gone(self, conn: GuardedProtocol) -> None:
        """The connection is closed (by either side) and no longer counts."""
        self.heads.pop(conn, None)
        self.idle.pop(conn, None)
        self.held -= 1

    def sweep(self) -> None:
        """Close first heads past their deadline (all waiting connections once the worker stops)."""
        loop = self.worker.loop
        if not self.worker.alive:  # shutting down: only requests in progress are worth waiting for
            for conn in [*self.heads, *self.idle]:
                conn.drop()
            return
        expired = time.monotonic() - self.head_deadline
        while self.heads:
            conn, since = next(iter(self.heads.items()))
            if since > expired:
                break
            self.closed["deadline"] += 1
            conn.drop()
            self.heads.pop(conn, None)  # drop() forgets it; never loop on one that stayed
        self._rescue()
        self._give_back_memory()
        loop.call_later(SWEEP_EVERY, self.sweep)

    def _rescue(self) -> None:
        """Accept from a sibling's listen queue that has had connections waiting since the last sweep."""
        for sock, before in self.siblings.items():
            waiting = accept_queue(sock)
            self.siblings[sock] = waiting
            if not (before and waiting):
                continue
            for _ in range(min(waiting, RESCUE_BATCH)):
                try:
                    conn, _address = sock.accept()
                except OSError:  # drained meanwhile by its own worker, or closed
                    break
                conn.setblocking(False)
                self.worker.loop.create_task(self.worker.loop.connect_accepted_socket(self.protocol, conn))

    def _give_back_memory(self) -> None:
        """Once many connections have closed, hand the allocator's free pages back to the system.

        glibc keeps what a burst of connections freed in its heaps (each read allocates the 256 KiB
        asyncio asks for, then shrinks it), and the resident set stays at the flood's height.
        """
        if self._peak - self.held < TRIM_AFTER:
            return
        self._peak = self.held
        if any(self.closed.values()):
            log.warning("closed %d connections at the cap of %d, %d at the %g s head deadline; refused %d "
                        "with every connection busy", self.closed["cap"], self.cap, self.closed["deadline"],
                        self.head_deadline, self.closed["full"])
            self.closed = dict.fromkeys(self.closed, 0)
        if self._trim is not None:
            self._trim(0)


class GuardedProtocol(ASGIProtocol):
    """gunicorn's HTTP/1 protocol, counted against its worker's cap and held to the head's deadline and size."""

    guard: Guard  # set on the class made for each worker (see install)

    def connection_made(self, transport: Any) -> None:
        # gunicorn's own set-up (a parser, a task, events) waits for the first byte: a silent connection
        # costs a transport and this object, and closing it wakes nothing.
        self.transport, self._started, self._head_bytes = transport, False, 0
        self._counted = self.guard.admit(self)
        if not self._counted:
            self.drop()

    def data_received(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            super().connection_made(self.transport)
        if self._current_request is None:  # still reading a head: parse no more of it than the budget
            room = HEAD_BUDGET - self._head_bytes
            self._head_bytes += min(len(data), room + 1)
            if len(data) > room:
                super().data_received(data[:room])
                if self._closed:
                    return
                if self._current_request is None:
                    self._send_error_response(431, "Request Header Fields Too Large")
                    self.drop()
                    return
                data = data[room:]
        super().data_received(data)

    def _on_headers_complete(self) -> bool:
        # A head that arrived in one read is over the budget when its fields are (the read may hold a body).
        parser = self._callback_parser
        if sum(len(name) + len(value) + 4 for name, value in parser.headers) + len(parser.path or "") > HEAD_BUDGET:
            raise LimitRequestHeaders("Request header fields are too large")
        # RFC 9112 section 3.2: an HTTP/1.1 request without a Host header gets a 400.
        if parser.http_version == (1, 1) and not any(name == b"host" for name, _value in parser.headers):
            raise InvalidHeader("Missing Host header")
        self._head_bytes = 0
        self.guard.busy(self)
        return super()._on_headers_complete()

    def _is_websocket_upgrade(self, request: Any) -> bool:
        """Never: the site speaks no WebSocket, so an upgrade is an ordinary request, answered as one.

        gunicorn handed it to the app as a WebSocket, which refused it with a bare 403 and none of the
        site's headers; a server may ignore Upgrade (RFC 9110 section 7.8).
        """
        return False

    def _arm_keepalive_timer(self) -> None:
        super()._arm_keepalive_timer()
        if not self._closed:
            self.guard.waiting(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.guard.gone(self)
        if not self._started:  # gunicorn never knew it (nor counted it in nr_conns)
            self._closed = True
            return
        super().connection_lost(exc)
        # The parser's callbacks point back here: a cycle that only the garbage collector frees, seconds
        # or minutes later, with the head's bytes in it. Free them now.
        parser, self._callback_parser = self._callback_parser, None
        if parser is not None:
            parser.reset()
        if self._request_ready is not None:
            self._request_ready.set()  # the connection's task ends now, not after the grace period

    def drop(self) -> None:
        """Close the connection now; a partial head is answered 408 first."""
        if self._counted:
            self._counted = False
            self.guard.gone(self)
        if self._head_bytes and self._current_request is None and not self._closed:
            self._send_error_response(408, "Request Timeout")
        self._close_transport()
        if self._request_ready is not None:
            self._request_ready.set()  # the connection's task sees it closed and ends now


def has_invalid_header_chars(_parser: Any, value: bytes) -> bool:
    """gunicorn's check of a header value (the same bytes refused), in one pass in C (a table, 40 times faster on 8 kB).

    gunicorn's parser looped over each byte in Python: 8,000-byte header lines of half-sent heads took
    most of a worker's time during a flood, while readers waited to be accepted (docs/reliability.md).
    """
    return bool(value.translate(None, ALLOWED_IN_VALUE))  # what is left once every allowed byte is deleted


def install(worker: Any, siblings: list[socket.socket] | None = None) -> type[GuardedProtocol]:
    """Serve this asyncio worker's connections with GuardedProtocol, and start its sweeps.

    siblings: the other workers' listening sockets, whose stuck queues this worker drains too.
    """
    PythonProtocol._has_invalid_header_chars = has_invalid_header_chars
    guard = Guard(worker, worker.cfg.worker_connections, siblings=siblings)
    protocol = type("GuardedProtocol", (GuardedProtocol,), {"guard": guard})
    guard.protocol = lambda: protocol(worker)
    worker.loop.call_later(SWEEP_EVERY, guard.sweep)
    return protocol


def accept_queue(sock: socket.socket) -> int:
    """Return how many connections wait in a listening TCP socket's accept queue (0 if it cannot say).

    Linux reports a listener's queue length as tcp_info's tcpi_unacked (after 8 one-byte fields and 4 u32s).
    """
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    except OSError:
        return 0
    return struct.unpack_from("I", info, 24)[0] if len(info) >= 28 else 0


def room_for_connections(cap: int) -> int:
    """Raise this process's open-file limit to hold cap connections; return the cap that fits.

    A worker that runs out of descriptors cannot accept, and asyncio then stops accepting for a second.
    The soft limit is often 1,024 (systemd's default) while the hard one allows far more. The deployed unit
    sets it with LimitNOFILE, so a worker there finds room already.
    """
    needed = cap + FILES_BESIDE_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return cap
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):
        target = soft
    fits = max(target - FILES_BESIDE_CONNECTIONS, 1)
    if fits < cap:
        log.warning("the open-file limit (%d) holds %d connections per worker, not %d: raise it (LimitNOFILE=)",
                    target, fits, cap)
    return fits


def _malloc_trim() -> Any:
    """Return glibc's malloc_trim, or None on another C library."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim
