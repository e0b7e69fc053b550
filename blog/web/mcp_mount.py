"""/mcp on the site's own WSGI app: the SDK's stateless JSON transport behind an ASGI-to-WSGI bridge.

The SDK is imported when a worker first needs it, not when the app is created: importing it builds its
pydantic models, which took most of a worker's start (docs/performance.md, cold start). A worker starts it
in a thread after its first answered request, so an agent's first call rarely waits for the import.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from a2wsgi import ASGIMiddleware
from flask import Flask

from blog.config import Config
from blog.serving.current import SiteState, freeze_heap
from blog.serving.headers import NEVER, NO_STORE, security_headers
from blog.serving.urls import resolve

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcp.server.transport_security import TransportSecuritySettings

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


_HOST = re.compile(r"(?P<name>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[^/?#@]+)")


def parse_host(value: str) -> tuple[str, int | None] | None:
    """Split a Host header into (lower-case name, port), or None unless it is exactly `name[:port]`.

    Splitting on the last colon would take `127.0.0.1:8000@evil.example` or `127.0.0.1:80.evil.example`
    for a loopback host; the whole value must match, and the port must be a number in range.
    """
    match = _HOST.fullmatch(value.strip().lower()) if len(value) <= 300 else None
    if match is None:
        return None
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        return None
    return match["name"], int(port) if port is not None else None


def parse_origin(value: str) -> tuple[str, str, int | None] | None:
    """Split an Origin header into (scheme, host name, port), or None unless it is `scheme://name[:port]`."""
    match = _ORIGIN.fullmatch(value.strip().lower()) if len(value) <= 320 else None
    host = parse_host(match["host"]) if match else None
    return (match["scheme"], *host) if match and host else None


class HostPolicy:
    """Which Host (and Origin) headers /mcp answers: the clearnet host, loopback, and the onion address."""

    def __init__(self, config: Config, onion_address: Callable[[], str]) -> None:
        self._onion_address = onion_address
        self._base = config.base_url.rstrip("/")
        clearnet = parse_host(urlsplit(config.base_url).netloc) if config.base_url else None
        self._fixed = {"127.0.0.1", "localhost", "[::1]"} | ({clearnet[0]} if clearnet else set())
        self._onion = ""
        self.allowed_hosts: list[str] = []
        self.allowed_origins: list[str] = []
        self._settings: TransportSecuritySettings | None = None
        self._sync()

    @property
    def settings(self) -> TransportSecuritySettings:
        """The SDK's DNS-rebinding settings, made on first use (importing the SDK) and kept in step."""
        if self._settings is None:
            from mcp.server.transport_security import TransportSecuritySettings

            self._settings = TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                                       allowed_hosts=self.allowed_hosts,
                                                       allowed_origins=self.allowed_origins)
        return self._settings

    def _names(self) -> set[str]:
        onion = self._onion_address().lower()
        if onion != self._onion:
            self._sync()
        return self._fixed | ({self._onion} if self._onion else set())

    def _sync(self) -> None:
        """Rebuild the SDK's lists; the onion address may appear after the worker started."""
        onion = self._onion_address().lower()
        self._onion = onion
        hosts = sorted(self._fixed | ({onion} if onion else set()))
        # The SDK checks again after refusal() has (strictly); its `name:*` is a prefix match, so it only
        # ever sees hosts that passed here. Tor clients send the bare onion name: list both forms.
        self.allowed_hosts = hosts + [f"{h}:*" for h in hosts]
        self.allowed_origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")] + \
                               [f"{scheme}://{h}:*" for h in hosts for scheme in ("http", "https")]
        if self._settings is not None:
            self._settings.allowed_hosts = self.allowed_hosts
            self._settings.allowed_origins = self.allowed_origins

    def refusal(self, host: str, origin: str | None = None) -> tuple[int, str] | None:
        """Return (status, why) when the Host or Origin header is refused, or None when both are allowed.

        The reason names the allowed hosts but never repeats what the client sent.
        """
        allowed = self._names()
        parsed = parse_host(host) if host else None
        known = ", ".join(sorted(allowed))
        if parsed is None or parsed[0] not in allowed:
            what = "no Host header" if not host else "a Host header that is not this site's"
            return 421, (f"refused a request with {what} (allowed: {known}); set base_url to the public "
                         "address, or wait for the onion address to be published")
        if origin:
            seen = parse_origin(origin)
            if seen is None or seen[1] not in allowed:
                return 403, f"refused a request with an Origin that is not this site's (allowed: {known})"
        return None

    def bases(self, host: str) -> tuple[str, str]:
        """Return (base URL, onion base URL) for a request to host; onion requests get onion URLs only."""
        onion = self._onion_address()
        base = resolve(host, self._base, onion)  # the same rule as the pages' links (blog/serving/urls.py)
        if base.onion:
            return base.url, base.url
        return base.url, (f"http://{onion}" if onion else "")


class McpService:
    """The SDK's server and stateless JSON transport for this worker, made when first needed.

    The transport's lifespan (its task group) must run on the event loop that serves its requests: the
    asyncio worker's own loop (blog.web.mcp_asgi), or a loop thread of its own under a WSGI server.
    """

    def __init__(self, state: SiteState, policy: HostPolicy) -> None:
        self.state, self.policy = state, policy

    def create(self) -> tuple[MCPServer, StreamableHTTPASGIApp]:
        """Import the SDK and build the server and its transport (no I/O, no loop needed)."""
        try:
            from blog.mcp_server import create_server
        except ImportError as exc:
            raise McpMountError(f"the MCP SDK cannot be imported: {exc}; reinstall with `make install`") from exc
        server = create_server(lambda: self.state.snapshot.build,
                               base_url=lambda host: self.policy.bases(host)[0],
                               onion_base=lambda host: self.policy.bases(host)[1])
        return server, _transport(server, self.policy.settings)


class McpBridge:
    """Serve /mcp under a WSGI server (sync, gthread): read the body here, then run the SDK on a loop thread.

    The asyncio worker never sends /mcp here: blog.web.mcp_asgi answers it on the worker's own loop.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], state: SiteState, config: Config) -> None:
        self.wsgi_app, self.state = wsgi_app, state
        self.policy = HostPolicy(config, lambda: state.onion_address)
        self.service = McpService(state, self.policy)
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


def mount(app: Flask, config: Config) -> None:
    """Serve MCP at /mcp on this app (stateless, JSON responses), unless mcp_enabled is off."""
    if not config.mcp_enabled:
        return
    state: SiteState = app.extensions["blog.state"]
    bridge = McpBridge(app.wsgi_app, state, config)
    app.extensions["blog.mcp"] = bridge
    app.wsgi_app = bridge  # type: ignore[method-assign]
