"""A WSGI fast path for cached pages: replay what Flask answered, without routing or hooks.

Flask's routing, request context and header hook cost more than half of a cached page view (see
docs/performance.md). Every cached page is a pure function of the build, the onion address and what the
request says (scheme, the base its Host resolves to, path, the query parameters the page reads, whether it
takes gzip), so the status line and headers of the first answer Flask gives for such a request are recorded
on the page's entry in the page cache (blog/web/cache.py) and replayed with the page's own bytes until the
build or the onion address changes. Anything the recorder has not seen — other methods, If-Modified-Since,
errors, search, /mcp, a path Flask has not answered yet — goes to Flask unchanged.

The page tells the recorder which query parameters it reads (context.cached() keeps them on the page, or
where the page would be when only variants are kept), so `/feed.atom?cb=1` and `?cb=2` are one answer and
`/?page=2` another. There is no second store: what the page cache forgets, the fast path forgets too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.http import parse_etags

from blog.serving.current import SiteState
from blog.serving.urls import base_for, host_of
from blog.web.cache import CachedPage, PageCache, Reply, request_key

MARK = "blog.cached"  # set in the WSGI environ by context.cached(): (the page's key, the CachedPage)

StartResponse = Callable[..., Any]
Variant = tuple[tuple[str, str], ...]


class FastPath:
    """Answer repeated GETs of cached pages from the page cache's recorded replies; pass the rest to the app."""

    def __init__(self, app: Callable[..., Iterable[bytes]], state: SiteState, cache: PageCache) -> None:
        self.app, self.state, self.cache = app, state, cache
        self.replayed = 0  # answers served without Flask, for tests and the bench

    @property
    def limit(self) -> int:
        return self.cache.limit

    @limit.setter
    def limit(self, value: int) -> None:
        self.cache.limit = value

    @property
    def _answers(self) -> dict[tuple, Any]:
        return self.cache.items

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or "HTTP_IF_MODIFIED_SINCE" in environ:
            return self.app(environ, start_response)
        snapshot, onion = self.state.snapshot, self.state.onion_address
        key = request_key(environ, base_for(host_of(environ), self.state.config.base_url, onion))
        found = self.cache.get(key)
        if found is not None and found.params:
            variant = query_variant(environ, found.params)
            if variant is None:
                return self.app(environ, start_response)
            if variant:
                found = self.cache.get((*key, variant))
        if isinstance(found, CachedPage) and found.snapshot is snapshot and found.onion == onion:  # .fresh(), inline
            if_none_match = environ.get("HTTP_IF_NONE_MATCH")
            unchanged = if_none_match is not None and parse_etags(if_none_match).contains_weak(found.etag)
            reply = found.replies.get(("gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""), unchanged))
            if reply is not None:
                return self._replay(reply, start_response)
        return self._record(environ, start_response, snapshot, onion)

    def _replay(self, reply: Reply, start_response: StartResponse) -> list[bytes]:
        self.replayed += 1
        status, headers, body = reply
        start_response(status, list(headers))
        return [body]

    def _record(self, environ: dict[str, Any], start_response: StartResponse, snapshot: object,
                onion: str) -> Iterable[bytes]:
        seen: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen[:] = [status, headers, exc_info]
            return start_response(status, headers, exc_info)

        body = self.app(environ, capture)
        mark = environ.get(MARK)
        if mark is None or not seen or seen[2] is not None:
            return body
        status: str = seen[0]
        code = status.split(" ", 1)[0]
        if code not in ("200", "304") or (code == "304") != ("HTTP_IF_NONE_MATCH" in environ):
            return body
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        key, page = mark
        # Recorded only when the bytes sent are the page's own, so that a replay is Flask's answer byte for
        # byte, and when the page is this build's: a reload during the request leaves nothing stale behind.
        own: bytes | None = None  # the page's own bytes object, replayed by reference
        if code == "304":
            own = b"" if data == b"" else None
        elif data == page.gzipped:
            own = page.gzipped
        elif data == page.body:
            own = page.body
        if own is not None and page.fresh(snapshot, onion) and self.state.snapshot is snapshot:
            takes_gzip = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
            page.replies[(takes_gzip, code == "304")] = (status, list(seen[1]), own)
            self.cache.remeasure(key, page)
        return [data]


def init_app(app: Flask) -> None:
    """Put the fast path in front of everything else on the app (call after the other rooms mount)."""
    fast = FastPath(app.wsgi_app, app.extensions["blog.state"], app.extensions["blog.cache"])
    app.extensions["blog.fastpath"] = fast
    app.wsgi_app = fast  # type: ignore[method-assign]


def query_variant(environ: dict[str, Any], params: tuple[str, ...]) -> Variant | None:
    """Return the (name, value) pairs of the query that a page reading `params` sees; None if undecodable.

    Parsed as werkzeug parses request.args, so that one variant is one answer.
    """
    query = environ.get("QUERY_STRING", "")
    if not params or not query:
        return ()
    if query.isascii() and "%" not in query and "+" not in query:  # nothing to decode: split as parse_qsl does
        pairs = [piece.partition("=")[::2] for piece in query.split("&") if piece]
    else:
        try:
            pairs = parse_qsl(query.encode("latin1").decode(), keep_blank_values=True, errors="werkzeug.url_quote")
        except UnicodeError:
            return None
    return tuple(pair for pair in pairs if pair[0] in params)
