"""/mcp on the site's own WSGI app: the SDK's stateless JSON transport behind an ASGI-to-WSGI bridge.

The SDK is imported when a worker first needs it, not when the app is created: importing it builds its
pydantic models, which took most of a worker's start (docs/performance.md, cold start). A worker starts it
in a thread after its first answered request, so an agent's first call rarely waits for the import.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from a2wsgi import ASGIMiddleware
from flask import Flask

from blog.config import Config
from blog.web.state import SiteState, freeze_heap

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
# The bridge's answers skip Flask's after_request, so they carry their own (JSON-only) headers.
HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]
_DROPPED = {"server", "set-cookie", "x-content-type-options", "cache-control"}

StartResponse = Callable[..., Any]


class McpMountError(Exception):
    """The MCP transport could not start in this worker."""


def _host_only(host: str) -> str:
    return host.rsplit(":", 1)[0].lower() if not host.endswith("]") else host.lower()


class HostPolicy:
    """Which Host headers /mcp answers: the clearnet host, loopback, and the onion address when known."""

    def __init__(self, config: Config, onion_address: Callable[[], str]) -> None:
        self._onion_address = onion_address
        self._base = config.base_url.rstrip("/")
        clearnet = urlsplit(config.base_url).netloc.lower() if config.base_url else ""
        self._fixed = {"127.0.0.1", "localhost", "[::1]"} | ({clearnet, _host_only(clearnet)} - {""})
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

    def _sync(self) -> None:
        """Rebuild the allowed lists; the onion address may appear after the worker started."""
        onion = self._onion_address().lower()
        self._onion = onion
        hosts = sorted(self._fixed | ({onion} if onion else set()))
        # Tor clients send the bare onion name; `name:*` alone would not match it, so list both.
        self.allowed_hosts = hosts + [f"{h}:*" for h in hosts]
        self.allowed_origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")] + \
                               [f"{scheme}://{h}:*" for h in hosts for scheme in ("http", "https")]
        if self._settings is not None:
            self._settings.allowed_hosts = self.allowed_hosts
            self._settings.allowed_origins = self.allowed_origins

    def refusal(self, host: str) -> str | None:
        """Return why a Host header is refused, or None when it is allowed."""
        if self._onion_address().lower() != self._onion:
            self._sync()
        if not host:
            return "the request has no Host header"
        allowed = self._fixed | ({self._onion} if self._onion else set())
        if host.lower() in self.allowed_hosts or _host_only(host) in allowed:
            return None
        known = ", ".join(sorted(allowed))
        return (f"Host {host!r} is not this site's (allowed: {known}); set base_url to the public address, "
                "or wait for the onion address to be published")

    def bases(self, host: str) -> tuple[str, str]:
        """Return (base URL, onion base URL) for a request to host; onion requests get onion URLs only."""
        if _host_only(host).endswith(".onion"):
            return f"http://{host}", f"http://{host}"
        onion = self._onion_address()
        return self._base or f"http://{host}", (f"http://{onion}" if onion else "")


class McpBridge:
    """Serve /mcp through the SDK, starting its event loop and lifespan lazily once per worker process."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], state: SiteState, config: Config) -> None:
        self.wsgi_app, self.state = wsgi_app, state
        self.policy = HostPolicy(config, lambda: state.onion_address)
        self._lock = threading.Lock()
        self._pid = 0
        self._bridge: ASGIMiddleware | None = None
        self._warmed = 0  # the pid that has started its warm-up

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in (PATH, PATH + "/"):
            answer = self.wsgi_app(environ, start_response)
            if self._warmed != os.getpid():
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
            return _plain(start_response, "405 Method Not Allowed",
                          "POST JSON-RPC to /mcp: this endpoint is stateless and answers in JSON, "
                          "so there is no event stream to GET", [("Allow", "POST")])
        host = environ.get("HTTP_HOST", "")
        why = self.policy.refusal(host)
        if why:
            log.warning("refused an MCP request: %s", why)
            return _plain(start_response, "421 Misdirected Request", "this Host is not served here")
        environ["PATH_INFO"] = PATH  # the SDK's transport ignores the path; the slash is only cosmetic
        try:
            bridge = self._started()
        except McpMountError as exc:
            log.error("%s", exc)
            return _plain(start_response, "503 Service Unavailable", "MCP is starting or broken; retry soon",
                          [("Retry-After", "5")])

        def secured(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if k.lower() not in _DROPPED]
            return start_response(status, kept + HEADERS, exc_info)

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
        try:
            from blog.mcp_server import create_server
        except ImportError as exc:
            raise McpMountError(f"the MCP SDK cannot be imported: {exc}; reinstall with `make install`") from exc
        server = create_server(lambda: self.state.snapshot.build,
                               base_url=lambda host: self.policy.bases(host)[0],
                               onion_base=lambda host: self.policy.bases(host)[1])
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        asgi = _transport(server, self.policy.settings)
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
