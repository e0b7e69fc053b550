"""Which Host and Origin headers /mcp answers, and the link bases its tools give for each."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from blog.config import Config
from blog.serving.urls import base_for

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings

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

    def __init__(self, config: Config, onion_address: Callable[[], str], also: tuple[str, ...] = ()) -> None:
        """also: more host names to answer (the loopback address a preview is bound to)."""
        self._onion_address = onion_address
        self._base = config.base_url.rstrip("/")
        clearnet = parse_host(urlsplit(config.base_url).netloc) if config.base_url else None
        extra = {parsed[0] for name in also if (parsed := parse_host(f"[{name}]" if ":" in name else name))}
        self._fixed = {"127.0.0.1", "localhost", "[::1]"} | ({clearnet[0]} if clearnet else set()) | extra
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

    def names(self) -> str:
        """Return the host names answered, for a message."""
        return ", ".join(sorted(self._names()))

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
        base = base_for(host, self._base, onion)  # the same rule as the pages' links (blog/serving/urls.py)
        if base.onion:
            return base.url, base.url
        return base.url, (f"http://{onion}" if onion else "")
