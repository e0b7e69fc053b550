"""/mcp on the site's own WSGI app: the SDK's stateless JSON transport behind an ASGI-to-WSGI bridge.

The SDK is imported when a worker first needs it, not when the app is created: importing it builds its
pydantic models, which took most of a worker's start (docs/performance.md, cold start). A worker starts it
in a thread after its first answered request, so an agent's first call rarely waits for the import.
Which hosts it answers lives in blog/mcp/hosts.py; the asyncio worker's own front in blog/mcp/front.py.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from a2wsgi import ASGIMiddleware

from blog.config import Config
from blog.mcp.hosts import HostPolicy
from blog.serving.current import SiteState, freeze_heap
from blog.serving.headers import NEVER, NO_STORE, security_headers

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcp.server.transport_security import TransportSecuritySettings

    from blog.index.search import Search

log = logging.getLogger(__name__)
# Stateless mode ends a "session" per request and the SDK logs each one at INFO; the access log has them.
logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)

PATH = "/mcp"
MAX_BODY = 64 * 1024  # the site's own request limit: a tool call is a few hundred bytes
STARTUP_TIMEOUT = 10.0
# The bridge's answers skip Flask's after_request, so they add the site's one list themselves.
HEADERS = [*security_headers(), NO_STORE]
_DROPPED = {name.lower() for name in NEVER} | {name.lower() for name, _ in HEADERS}  # ours replace the SDK's
STATUS = {403: "403 Forbidden", 421: "421 Misdirected Request"}
NOT_POST = ("POST JSON-RPC to /mcp: this endpoint is stateless and answers in JSON, so there is no event "
            "stream to GET")
TOO_LARGE = f"the request body is over {MAX_BODY} bytes; a tool call is a few hundred"

StartResponse = Callable[..., Any]


class McpMountError(Exception):
    """The MCP transport could not start in this worker."""


class McpService:
    """The SDK's server and stateless JSON transport for this worker, made when first needed.

    The transport's lifespan (its task group) must run on the event loop that serves its requests: the
    asyncio worker's own loop (blog.mcp.front), or a loop thread of its own under a WSGI server.
    """

    def __init__(self, state: SiteState, policy: HostPolicy, search: Callable[[], Search]) -> None:
        self.state, self.policy, self.search = state, policy, search

    def create(self) -> tuple[MCPServer, StreamableHTTPASGIApp]:
        """Import the SDK and build the server and its transport (no I/O, no loop needed)."""
        try:
            from blog.mcp.server import create_server
        except ImportError as exc:
            raise McpMountError(f"the MCP SDK cannot be imported: {exc}; reinstall with `make install`") from exc
        server = create_server(lambda: self.state.snapshot.build, self.search(),
                               base_url=lambda host: self.policy.bases(host)[0],
                               onion_base=lambda host: self.policy.bases(host)[1])
        return server, _transport(server, self.policy.settings)


class McpBridge:
    """Serve /mcp under a WSGI server (sync, gthread): read the body here, then run the SDK on a loop thread.

    The asyncio worker never sends /mcp here: blog.mcp.front answers it on the worker's own loop.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], state: SiteState, search: Callable[[], Search],
                 config: Config) -> None:
        """`search` returns the app's Search (blog/web/context.py makes it when first asked)."""
        self.wsgi_app, self.state = wsgi_app, state
        self.policy = HostPolicy(config, lambda: state.onion_address)
        self.service = McpService(state, self.policy, search)
        self.native = False  # set by the ASGI front: /mcp is answered there and nothing starts here
        self._lock = threading.Lock()
        self._pid = 0
        self._bridge: ASGIMiddleware | None = None
        self._warmed = 0  # the pid that has started its warm-up

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in (PATH, PATH + "/"):
            answer = self.wsgi_app(environ, start_response)
            if self._warmed != os.getpid() and not self.native:
                self._warm()
            return answer
        return self.serve(environ, start_response)

    def _warm(self) -> None:
        """Import the SDK and start the transport in a thread, once per worker, after its first page."""
        with self._lock:
            if self._warmed == os.getpid():
                return
            self._warmed = os.getpid()

        def work() -> None:
            try:
                self._started()
            except McpMountError as exc:
                log.error("%s", exc)  # the first /mcp request tries again and answers 503 if it fails too
            except Exception:
                log.exception("starting the MCP transport in worker %d failed", os.getpid())

        threading.Thread(target=work, name="mcp-warm", daemon=True).start()

    def serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request to /mcp."""
        method = environ.get("REQUEST_METHOD", "")
        if method != "POST":
            return _plain(start_response, "405 Method Not Allowed", NOT_POST, [("Allow", "POST")])
        refused = self.policy.refusal(environ.get("HTTP_HOST", ""), environ.get("HTTP_ORIGIN"))
        if refused:
            log.warning("%s", refused[1])
            return _plain(start_response, STATUS[refused[0]], "this Host or Origin is not served here")
        body = _read_body(environ)
        if isinstance(body, tuple):
            return _plain(start_response, *body)
        environ["PATH_INFO"] = PATH  # the SDK's transport ignores the path; the slash is only cosmetic
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        try:
            bridge = self._started()
        except McpMountError as exc:
            log.error("%s", exc)
            return _plain(start_response, "503 Service Unavailable", "MCP is starting or broken; retry soon",
                          [("Retry-After", "5")])

        def secured(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, secure(headers), exc_info)

        return bridge(environ, secured)

    def _started(self) -> ASGIMiddleware:
        # A thread made before gunicorn forks (--preload) does not exist in the worker: start per pid.
        pid = os.getpid()
        if self._bridge is not None and self._pid == pid:
            return self._bridge
        with self._lock:
            if self._bridge is None or self._pid != pid:
                self._bridge = self._start()
                self._pid = pid
                freeze_heap()  # the SDK's modules and models live as long as the worker, like the build
        return self._bridge

    def _start(self) -> ASGIMiddleware:
        server, asgi = self.service.create()
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(target=_run_lifespan, args=(loop, server, ready, failure),
                                  name="mcp-loop", daemon=True)
        thread.start()
        if not ready.wait(STARTUP_TIMEOUT) or failure:
            raise McpMountError(f"the MCP transport did not start in worker {os.getpid()}: "
                                f"{failure[0] if failure else 'timed out'} (see the log above)")
        log.info("MCP transport started in worker %d", os.getpid())
        return ASGIMiddleware(asgi, loop=loop)


def _transport(server: MCPServer, security: TransportSecuritySettings) -> StreamableHTTPASGIApp:
    """Build the SDK's stateless JSON transport; stateful sessions would not survive several workers."""
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

    server.streamable_http_app(json_response=True, stateless_http=True, transport_security=security,
                               max_request_body_size=MAX_BODY)
    # Call the session manager directly: Starlette's router would 307 /mcp/ and add nothing else here.
    return StreamableHTTPASGIApp(server.session_manager)


def _run_lifespan(loop: asyncio.AbstractEventLoop, server: MCPServer, ready: threading.Event,
                  failure: list[BaseException]) -> None:
    asyncio.set_event_loop(loop)

    async def hold() -> None:
        try:
            async with server.session_manager.run():
                ready.set()
                await asyncio.Event().wait()  # for the life of the worker
        except Exception as exc:
            failure.append(exc)
            ready.set()
            raise

    loop.create_task(hold())
    loop.run_forever()


def secure(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop what the SDK sets that the site does not send, and add the site's JSON-only headers."""
    return [(k, v) for k, v in headers if k.lower() not in _DROPPED] + HEADERS


def _read_body(environ: dict[str, Any]) -> bytes | tuple[str, str]:
    """Read the whole request body, or return (status, text) when it is too big, short or unframed.

    Handing the SDK a stream that ends before its Content-Length made a2wsgi feed it empty chunks
    forever (a worker thread at 100 % CPU per dropped upload); the SDK now only ever sees a whole body.
    """
    length = environ.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    stream = environ["wsgi.input"]
    if chunked:
        body = stream.read(MAX_BODY + 1)  # the server decodes the chunks and ends the stream
    elif length.isdigit():
        if int(length) > MAX_BODY:
            return "413 Content Too Large", TOO_LARGE
        body = stream.read(int(length))
        if len(body) < int(length):
            return "400 Bad Request", "the request body ended before its Content-Length"
    elif length:
        return "400 Bad Request", "Content-Length is not a number"
    else:
        return "411 Length Required", "send the JSON-RPC body with a Content-Length (or chunked)"
    if len(body) > MAX_BODY:
        return "413 Content Too Large", TOO_LARGE
    return body


def _plain(start_response: StartResponse, status: str, text: str,
           extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *(extra or []), *HEADERS])
    return [body]
