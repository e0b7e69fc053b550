"""The one outbound HTTP client: every request goes through Tor's SOCKS port, or not at all."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx2

from blog.tor.errors import EgressError

log = logging.getLogger(__name__)

# Tor circuits take seconds to build and onion hops add latency: clearnet-sized timeouts would call
# healthy requests dead. Connect covers the SOCKS handshake plus the circuit; read covers slow exits.
TIMEOUT = httpx2.Timeout(connect=30.0, read=60.0, write=30.0, pool=30.0)
USER_AGENT = "engineering-log link checker"
_RESERVED = {"proxy", "proxies", "transport", "mounts", "trust_env"}


def proxy_url(socks: str) -> str:
    """Return the socks5h URL for HOST:PORT; the `h` makes tor resolve names, so no DNS leaks here."""
    host, sep, port = socks.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise EgressError(f"tor_socks must be HOST:PORT (like 127.0.0.1:9050), got {socks!r}")
    return f"socks5h://{host}:{port}"


def _refused(socks: str, exc: Exception) -> EgressError:
    return EgressError(
        f"tor's SOCKS port {socks} is unreachable ({exc}): is tor running, and does tor_socks match its "
        "SocksPort? Nothing was sent: egress never falls back to a direct connection"
    )


def _proxy(socks: str, host: str) -> httpx2.Proxy:
    # Tor's IsolateSOCKSAuth (on by default) gives each distinct username/password its own circuit,
    # so one destination never learns which other sites this server talks to over the same exit.
    return httpx2.Proxy(proxy_url(socks), auth=(host or "-", host or "-"))


class _IsolatingTransport(httpx2.BaseTransport):
    """A SOCKS transport per destination host, each with its own SOCKS credentials."""

    def __init__(self, socks: str) -> None:
        proxy_url(socks)
        self._socks = socks
        self._by_host: dict[str, httpx2.HTTPTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host
        with self._lock:
            transport = self._by_host.get(host)
            if transport is None:
                transport = httpx2.HTTPTransport(proxy=_proxy(self._socks, host))
                self._by_host[host] = transport
        try:
            return transport.handle_request(request)
        except httpx2.ConnectError as exc:  # the SOCKS port itself; tor's refusals are ProxyError
            raise _refused(self._socks, exc) from exc

    def close(self) -> None:
        with self._lock:
            for transport in self._by_host.values():
                transport.close()
            self._by_host.clear()


class _AsyncIsolatingTransport(httpx2.AsyncBaseTransport):
    """The async twin of _IsolatingTransport."""

    def __init__(self, socks: str) -> None:
        proxy_url(socks)
        self._socks = socks
        self._by_host: dict[str, httpx2.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host
        transport = self._by_host.get(host)
        if transport is None:
            transport = httpx2.AsyncHTTPTransport(proxy=_proxy(self._socks, host))
            self._by_host[host] = transport
        try:
            return await transport.handle_async_request(request)
        except httpx2.ConnectError as exc:
            raise _refused(self._socks, exc) from exc

    async def aclose(self) -> None:
        for transport in list(self._by_host.values()):
            await transport.aclose()
        self._by_host.clear()


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    clash = _RESERVED & kwargs.keys()
    if clash:
        raise EgressError(f"egress clients choose their own {', '.join(sorted(clash))}: remove it")
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("headers", {"User-Agent": USER_AGENT})
    # trust_env=False: HTTP(S)_PROXY or NO_PROXY in the environment must never reroute (or un-route) us.
    return {**kwargs, "trust_env": False}


def client(socks: str, **kwargs: Any) -> httpx2.Client:
    """Return a sync client that sends everything through tor at socks (HOST:PORT)."""
    return httpx2.Client(transport=_IsolatingTransport(socks), **_options(kwargs))


def async_client(socks: str, **kwargs: Any) -> httpx2.AsyncClient:
    """Return an async client that sends everything through tor at socks (HOST:PORT)."""
    return httpx2.AsyncClient(transport=_AsyncIsolatingTransport(socks), **_options(kwargs))


def mcp_client_factory(socks: str) -> Any:
    """Return a factory with the MCP SDK's httpx client signature, building egress clients."""

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        return async_client(socks, headers=headers or {}, timeout=timeout or TIMEOUT, auth=auth,
                            follow_redirects=True)

    return factory
