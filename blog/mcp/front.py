"""The asyncio worker's front: /mcp answered on the worker's own loop, everything else on the WSGI pool.

Before this front, /mcp went ASGI (gunicorn) → WSGI (a2wsgi's pool, Flask) → ASGI (a2wsgi again, the
SDK). The second bridge read the body from the first as a blocking stream: a client that dropped its
upload left the SDK receiving empty `more_body` chunks forever, a pool thread at 100 % CPU per upload,
and a client that trickled its body held a pool thread as long as it liked (docs/reliability.md). Here
the body is read on the event loop, with a deadline for the whole of it and a bound in bytes, and the
SDK sees a complete body or nothing: a half-sent upload costs a coroutine, never a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from blog.mcp.http import (
    HEADERS,
    MAX_BODY,
    NOT_POST,
    PATH,
    STARTUP_TIMEOUT,
    TOO_LARGE,
    McpBridge,
    McpMountError,
    secure,
)
from blog.serving.current import freeze_heap

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The whole body must arrive within this: a tool call is a few hundred bytes, and 64 KiB crosses even a
# slow Tor circuit in a few seconds. gunicorn bounds each wait for a chunk by its `timeout`, not the total.
BODY_DEADLINE = 10.0
# Importing the SDK takes 1-3 s on an idle machine, far longer on a busy one; a first call waits at most this.
IMPORT_DEADLINE = 60.0


class Refusal(Exception):
    """A request /mcp answers without the SDK: status and a plain text that never quotes the client."""

    def __init__(self, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(text)
        self.status, self.text, self.headers = status, text, headers


class Gone(Exception):
    """The client went away before its body was complete: there is no one to answer."""


class SiteFront:
    """The ASGI app the asyncio worker runs: /mcp natively, the rest through the WSGI thread pool."""

    def __init__(self, bridge: McpBridge, pool: ASGIApp) -> None:
        self.pool = pool  # the site's WSGI app on a thread pool, as an ASGI app
        self.bridge = bridge
        self.bridge.native = True  # the WSGI bridge starts nothing in this worker
        self._transport: StreamableHTTPASGIApp | None = None
        self._starting: asyncio.Task[StreamableHTTPASGIApp] | None = None
        self._held: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in (PATH, PATH + "/"):
            await self.mcp(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        await self.pool(scope, receive, send)
        if self._starting is None and scope["type"] == "http":
            self._begin()  # after the worker's first page: an agent's first call rarely waits for the import

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Answer gunicorn's lifespan; on shutdown, end the SDK's task group."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._held is not None:
                    self._held.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request to /mcp: check it, read its body whole, then hand it to the SDK."""
        try:
            headers = _headers(scope)
            if scope.get("method") != "POST":
                raise Refusal(405, NOT_POST, (("Allow", "POST"),))
            refused = self.bridge.policy.refusal(headers.get("host", ""), headers.get("origin"))
            if refused:
                log.warning("%s", refused[1])
                raise Refusal(refused[0], "this Host or Origin is not served here")
            body = await read_body(receive, headers, MAX_BODY, BODY_DEADLINE)
            transport = await self._ready()
        except Refusal as refusal:
            await _plain(send, refusal.status, refusal.text, refusal.headers, head=scope.get("method") == "HEAD")
            return
        except Gone:
            return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body, only a disconnect can come

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
                message = {**message, "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                                  for k, v in secure(raw)]}
            await send(message)

        await transport({**_lower_host(scope), "path": PATH, "raw_path": PATH.encode()}, replay, secured)

    def _begin(self) -> asyncio.Task[StreamableHTTPASGIApp]:
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self._start())
            self._starting.add_done_callback(_report)
        return self._starting

    async def _ready(self) -> StreamableHTTPASGIApp:
        if self._transport is not None:
            return self._transport
        try:
            return await asyncio.wait_for(asyncio.shield(self._begin()), IMPORT_DEADLINE + STARTUP_TIMEOUT)
        except (McpMountError, TimeoutError) as exc:
            log.error("%s", exc if isinstance(exc, McpMountError) else "the MCP transport is still starting")
            if self._starting is not None and self._starting.done():
                self._starting = None  # try again on the next call
            raise Refusal(503, "MCP is starting or broken; retry soon", (("Retry-After", "5"),)) from exc

    async def _start(self) -> StreamableHTTPASGIApp:
        """Import the SDK on a thread (it takes a while), then run its lifespan on this loop."""
        loop = asyncio.get_running_loop()
        server, transport = await loop.run_in_executor(None, self.bridge.service.create)
        ready = loop.create_future()

        async def hold() -> None:
            try:
                async with server.session_manager.run():
                    ready.set_result(None)
                    await asyncio.Event().wait()  # for the life of the worker; cancelled at shutdown
            except Exception as exc:
                if not ready.done():
                    ready.set_exception(McpMountError(f"the MCP transport did not start in worker "
                                                      f"{os.getpid()}: {exc}"))
                raise

        self._held = loop.create_task(hold())
        try:
            await asyncio.wait_for(asyncio.shield(ready), STARTUP_TIMEOUT)
        except TimeoutError:
            raise McpMountError(f"the MCP transport did not start in worker {os.getpid()} within "
                                f"{STARTUP_TIMEOUT:g} s") from None
        freeze_heap()  # the SDK's modules and models live as long as the worker, like the build
        log.info("MCP transport started in worker %d", os.getpid())
        self._transport = transport
        return transport


def _report(task: asyncio.Task[Any]) -> None:
    """Log a failed start once, even when no /mcp call comes to see it (the next call tries again)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("starting the MCP transport in worker %d failed: %s", os.getpid(), task.exception())


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of repeated ones), decoded as latin-1."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def read_body(receive: Receive, headers: dict[str, str], limit: int, deadline: float) -> bytes:
    """Read a whole request body within deadline seconds and limit bytes; refuse or give up otherwise."""
    length = headers.get("content-length")
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if length is None and not chunked:
        raise Refusal(411, "send the JSON-RPC body with a Content-Length (or chunked)")
    if length is not None and not chunked:
        if not length.isdigit():
            raise Refusal(400, "Content-Length is not a number")
        if int(length) > limit:
            raise Refusal(413, TOO_LARGE)
    body = bytearray()
    try:
        async with asyncio.timeout(deadline):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise Gone
                body += message.get("body", b"")
                if len(body) > limit:
                    raise Refusal(413, TOO_LARGE)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise Refusal(408, f"the request body did not arrive within {deadline:g} s") from None
    if length is not None and not chunked and len(body) != int(length):
        raise Refusal(400, "the request body does not match its Content-Length")
    return bytes(body)


async def _plain(send: Send, status: int, text: str, extra: tuple[tuple[str, str], ...] = (),
                 head: bool = False) -> None:
    """Answer with a short text; to HEAD, its headers alone (gunicorn warned of every body it dropped)."""
    body = (text + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra,
               *HEADERS]
    if status in (400, 408, 411, 413):
        headers.append(("Connection", "close"))  # what is left of the body would be read as a request
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


def _lower_host(scope: Scope) -> Scope:
    """Return the scope with Host and Origin in lower case, as checked: the SDK compares them case-sensitively.

    Host names are case-insensitive (RFC 9110 section 4.2.3): `Host: LOCALHOST` passed refusal() and was
    then refused by the SDK with a 421.
    """
    headers = [(k, v.lower() if k.lower() in (b"host", b"origin") else v) for k, v in scope.get("headers", [])]
    return {**scope, "headers": headers}


def front(bridge: McpBridge | None, pool: ASGIApp) -> ASGIApp:
    """Return the worker's ASGI app: the front when the site serves MCP (a bridge), else the pool alone."""
    return SiteFront(bridge, pool) if bridge is not None else pool
