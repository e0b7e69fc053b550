"""A WSGI fast path for cached pages: replay what Flask answered, without routing or hooks.

Flask's routing, request context and header hook cost more than half of a cached page view (see
docs/performance.md). Every cached page is a pure function of the build, the onion address and what the
request says (host, scheme, path, query, whether it takes gzip), so the first answer Flask gives for such a
request is recorded byte for byte and replayed until the build or the onion address changes. Anything the
recorder has not seen — other methods, If-Modified-Since, errors, search, /mcp — goes to Flask unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import parse_etags

from blog.web.state import SiteState

log = logging.getLogger(__name__)

MARK = "blog.cached_etag"  # set in the WSGI environ by context.cached() when it answered from the cache
LIMIT = 4096  # recorded answers per worker, like the page cache

StartResponse = Callable[..., Any]
Recorded = tuple[str, list[tuple[str, str]], bytes]


class FastPath:
    """Answer repeated GETs of cached pages from recorded responses; pass everything else to the app."""

    def __init__(self, app: Callable[..., Iterable[bytes]], state: SiteState, limit: int = LIMIT) -> None:
        self.app, self.state, self.limit = app, state, limit
        self._answers: dict[tuple[str, ...], tuple[object, str, str, Recorded]] = {}
        self._writing = threading.Lock()
        self.replayed = 0  # answers served without Flask, for tests and the bench

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or "HTTP_IF_MODIFIED_SINCE" in environ:
            return self.app(environ, start_response)
        key = _key(environ)
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        found = self._answers.get(key)
        snapshot, onion = self.state.snapshot, self.state.onion_address
        if found is not None and found[0] is snapshot and found[1] == onion:
            etag = found[2]
            if if_none_match is None or not parse_etags(if_none_match).contains_weak(etag):
                return self._replay(found[3], start_response)
            not_modified = self._answers.get((*key, "304"))
            if not_modified is not None and not_modified[0] is snapshot and not_modified[1] == onion:
                return self._replay(not_modified[3], start_response)
        return self._record(key, environ, start_response, snapshot, onion)

    def _replay(self, answer: Recorded, start_response: StartResponse) -> list[bytes]:
        self.replayed += 1
        status, headers, body = answer
        start_response(status, list(headers))
        return [body]

    def _record(self, key: tuple[str, ...], environ: dict[str, Any], start_response: StartResponse,
                snapshot: object, onion: str) -> Iterable[bytes]:
        seen: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen[:] = [status, headers, exc_info]
            return start_response(status, headers, exc_info)

        body = self.app(environ, capture)
        etag = environ.get(MARK)
        if etag is None or not seen or seen[2] is not None:
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
        if self.state.snapshot is snapshot:  # a reload during the request would make the answer stale
            answer_key = key if code == "200" else (*key, "304")
            with self._writing:  # reads stay lock-free; only recording (rare) takes the lock
                if len(self._answers) >= self.limit:
                    self._answers.pop(next(iter(self._answers)))
                self._answers[answer_key] = (snapshot, onion, etag, (status, list(seen[1]), data))
        return [data]


def init_app(app: Flask) -> None:
    """Put the fast path in front of everything else on the app (call after the other rooms mount)."""
    fast = FastPath(app.wsgi_app, app.extensions["blog.state"])
    app.extensions["blog.fastpath"] = fast
    app.wsgi_app = fast  # type: ignore[method-assign]


def _key(environ: dict[str, Any]) -> tuple[str, ...]:
    """Return everything in a GET that a cached page's bytes and headers depend on."""
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    gzip = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
    return (environ.get("wsgi.url_scheme", "http"), host, environ.get("SCRIPT_NAME", ""),
            environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), "gzip" if gzip else "")
