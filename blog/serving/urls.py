"""The absolute base a request's links get, and the one shape of a link that cites a paragraph.

base_for() is a pure function of the Host header, the configured `base_url` and the onion address, with no
Flask, so that the fast path can key recorded answers on it and the MCP room can give its tools the same
links. citation_url() turns a base and what a search returns (an entry's or a page's slug, a block's anchor,
and which of the two it came from) into the link the search page and the MCP tools both cite.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from blog.content import entry_path, page_path

FALLBACK = "http://127.0.0.1:8000"  # the default bind: links stay on loopback when nothing better is known

_PORT = r"(?::(?P<port>[0-9]{1,5}))?"
_ONION = re.compile(r"(?P<name>[a-z2-7]{56}\.onion)" + _PORT)
_IPV4 = re.compile(r"(?P<name>127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})" + _PORT)
_NAMED = re.compile(r"(?P<name>localhost|\[[0-9a-f:.]+\])" + _PORT)


@dataclass(frozen=True)
class Base:
    """Where a request's absolute links point, and whether it came to an onion host."""

    url: str  # scheme and authority, no trailing slash: http://<56>.onion, https://log.example.org
    onion: bool  # the request itself came over an onion service: no clearnet link, no Onion-Location


LONGEST = 80  # an onion name with a port is 68 characters, a loopback Host at most 47


def base_for(host: str, base_url: str, onion_address: str) -> Base:
    """Return the base for a request to `host` (the raw Host header) on a site with these addresses.

    In order: an onion Host (this site's onion address, or any valid v3 name: behind Onionbalance readers
    use the master's) gives its own base; else the configured `base_url`; else the Host itself, only when
    it is loopback (a developer's browser); else the onion address; else a fixed loopback base. A Host
    anyone can send never reaches an absolute link on a site with an address of its own.
    """
    # A longer Host is neither onion nor loopback, so it resolves as no Host does; the memo stays small.
    return _base_for(host if len(host) <= LONGEST else "", base_url, onion_address)


@lru_cache(maxsize=512)  # keyed on the raw Host: a flood of random Hosts costs a parse each, not memory
def _base_for(host: str, base_url: str, onion_address: str) -> Base:
    host, base_url, onion_address = host.lower(), base_url.rstrip("/"), onion_address.lower()
    onion = _ONION.fullmatch(host)
    if onion and _valid_port(onion["port"]) and (onion["name"] == onion_address or is_v3_onion(onion["name"])):
        return Base(f"http://{onion['name']}{_port(onion['port'])}", True)
    if base_url:
        return Base(base_url, False)
    loopback = loopback_authority(host)
    if loopback:
        return Base(f"http://{loopback}", False)
    if onion_address:
        return Base(f"http://{onion_address}", False)
    return Base(FALLBACK, False)


def citation_url(base: str, slug: str, anchor: str, source: str = "entry") -> str:
    """Return the link to one block: base ('' for a link within the site), the entry's or page's path, #anchor.

    `source` is a Citation's: "entry" (/log/<slug>) or "page" (a standing page, /pages/<slug>).
    """
    path = page_path(slug) if source == "page" else entry_path(slug)
    return f"{base.rstrip('/')}{path}#{anchor}"


def loopback_authority(host: str) -> str:
    """Return host[:port] when it names a loopback address, in canonical form, else ''.

    Strict on purpose: `127.0.0.1:8000@evil.example` and `127.0.0.1:80.evil.example` are not loopback.
    """
    host = host.lower()
    found = _IPV4.fullmatch(host) or _NAMED.fullmatch(host)
    if not found or not _valid_port(found["port"]):
        return ""
    name = found["name"]
    if name != "localhost":
        try:
            address = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return ""
        if not address.is_loopback or (address.version == 6) != name.startswith("["):
            return ""
        name = str(address) if address.version == 4 else f"[{address}]"
    return name + _port(found["port"])


def is_v3_onion(name: str) -> bool:
    """Tell whether name is a well-formed v3 onion address (key, checksum and version, rend-spec-v3)."""
    if not name.endswith(".onion") or len(name) != 62:
        return False
    try:
        raw = base64.b32decode(name[:56].upper())
    except ValueError:
        return False
    key, checksum, version = raw[:32], raw[32:34], raw[34:]
    return version == b"\x03" and hashlib.sha3_256(b".onion checksum" + key + version).digest()[:2] == checksum


def host_of(environ: dict[str, Any]) -> str:
    """Return the request's Host as the client sent it (or the server's name when it sent none)."""
    return environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"


# What a URL may carry as it is: RFC 3986's unreserved and reserved characters, and escapes already made.
_URL_SAFE = "/:@!$&'()*+,;=-._~%"


def request_target(environ: dict[str, Any], query: str | None = None) -> str:
    """Return the request's path as the client sent it, and the query (its own unless given), in ASCII.

    A header built from the decoded path broke on `/x%0aX` (a newline), `/x%00y` and `/x%C0%AE` (no text
    at all): each was a 500. Here every byte that is not plainly part of a URL is percent-encoded.
    """
    scope = environ.get("asgi.scope")
    raw = scope.get("raw_path") if isinstance(scope, dict) else None
    if not raw:  # a WSGI server: PATH_INFO holds the decoded bytes, one per character
        raw = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1", "replace")
    path = quote(raw, safe=_URL_SAFE)
    query = quote(environ.get("QUERY_STRING", "") if query is None else query, safe=_URL_SAFE + "?")
    return f"{path}?{query}" if query else path


def _valid_port(port: str | None) -> bool:
    return port is None or 0 < int(port) < 65536


def _port(port: str | None) -> str:
    return f":{int(port)}" if port else ""
