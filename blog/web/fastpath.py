"""A WSGI fast path for cached pages: replay what Flask answered, without routing or hooks.

Flask's routing, request context and header hook cost more than half of a cached page view (see
docs/performance.md). Every cached page is a pure function of the build, the onion address and what the
request says (scheme, the base its Host resolves to, path, the query parameters the page reads, whether it
takes gzip), so the first answer Flask gives for such a request is recorded byte for byte and replayed
until the build or the onion address changes. Anything the recorder has not seen — other methods,
If-Modified-Since, errors, search, /mcp, a path Flask has not answered yet — goes to Flask unchanged.

The page tells the recorder which query parameters it reads (context.cached() puts them in the environ
with the ETag); the recorder keeps them per path, so `/feed.atom?cb=1` and `?cb=2` are one answer and
`/?page=2` another. Recorded answers are bounded in bytes (BUDGET) and the least recently used go first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.http import parse_etags

from blog.serving.current import SiteState
from blog.serving.urls import host_of, resolve
from blog.web.cache import ByteLRU, size_of

log = logging.getLogger(__name__)

MARK = "blog.cached"  # set in the WSGI environ by context.cached(): (etag, the query parameters the page reads)
BUDGET = 16 * 2**20  # bytes of recorded answers per worker (bodies, headers, keys)
LARGEST = BUDGET // 8  # a bigger answer goes through Flask's page cache: 150 µs is nothing beside its bytes
LIMIT = 4096  # recorded answers per worker, like the page cache

StartResponse = Callable[..., Any]
Recorded = tuple[str, list[tuple[str, str]], bytes]
Variant = tuple[tuple[str, str], ...]


class Answer(NamedTuple):
    """A recorded answer, or (recorded None) only the query parameters its path reads."""

    snapshot: object
    onion: str
    etag: str
    params: tuple[str, ...]
    recorded: Recorded | None


class FastPath:
    """Answer repeated GETs of cached pages from recorded responses; pass everything else to the app."""

    def __init__(self, app: Callable[..., Iterable[bytes]], state: SiteState, limit: int = LIMIT,
                 budget: int = BUDGET, largest: int = LARGEST) -> None:
        self.app, self.state = app, state
        self._store: ByteLRU[tuple, Answer] = ByteLRU(_measure, budget, largest, limit)
        self.replayed = 0  # answers served without Flask, for tests and the bench

    @property
    def limit(self) -> int:
        return self._store.limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._store.limit = value

    @property
    def _answers(self) -> dict[tuple, Answer]:
        return self._store.items

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or "HTTP_IF_MODIFIED_SINCE" in environ:
            return self.app(environ, start_response)
        snapshot, onion = self.state.snapshot, self.state.onion_address
        key = _key(environ, self.state.config.base_url, onion)
        found = self._store.get(key)
        if found is not None and found.params:
            variant = query_variant(environ, found.params)
            if variant is None:
                return self.app(environ, start_response)
            if variant:
                key = (*key, variant)
                found = self._store.get(key)
        if found is not None and found.recorded is not None and found.snapshot is snapshot and found.onion == onion:
            if_none_match = environ.get("HTTP_IF_NONE_MATCH")
            if if_none_match is None or not parse_etags(if_none_match).contains_weak(found.etag):
                return self._replay(found.recorded, start_response)
            not_modified = self._store.get((*key, "304"))
            if (not_modified is not None and not_modified.recorded is not None
                    and not_modified.snapshot is snapshot and not_modified.onion == onion):
                return self._replay(not_modified.recorded, start_response)
        return self._record(environ, start_response, snapshot, onion)

    def _replay(self, answer: Recorded, start_response: StartResponse) -> list[bytes]:
        self.replayed += 1
        status, headers, body = answer
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
        etag, params = mark
        variant = query_variant(environ, params)
        if self.state.snapshot is snapshot and variant is not None:  # a reload during the request: stale
            key = _key(environ, self.state.config.base_url, onion)
            if variant and self._store.get(key) is None:  # remember what the path reads, for the next request
                self._store.put(key, Answer(snapshot, onion, etag, params, None))
            answer_key = (*key, variant) if variant else key
            self._store.put((*answer_key, "304") if code == "304" else answer_key,
                            Answer(snapshot, onion, etag, params, (status, list(seen[1]), data)))
        return [data]


def init_app(app: Flask) -> None:
    """Put the fast path in front of everything else on the app (call after the other rooms mount)."""
    fast = FastPath(app.wsgi_app, app.extensions["blog.state"])
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


def _key(environ: dict[str, Any], base_url: str, onion: str) -> tuple:
    """Return everything in a GET that a cached page's bytes and headers depend on, but its query."""
    gzip = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
    base = resolve(host_of(environ), base_url, onion)
    return (environ.get("wsgi.url_scheme", "http"), base.url, base.onion, environ.get("SCRIPT_NAME", ""),
            environ.get("PATH_INFO", ""), "gzip" if gzip else "")


def _measure(key: tuple, answer: Answer) -> int:
    return size_of(key, answer.etag, answer.params, answer.recorded or ())
