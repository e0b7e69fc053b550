"""Rendered responses kept per build as bytes, precompressed once, answered with 304s when unchanged."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

from flask import Request, Response


@dataclass(frozen=True)
class CachedPage:
    """A finished response body with its validators and a gzip copy."""

    body: bytes
    gzipped: bytes
    etag: str
    mimetype: str
    last_modified: dt.datetime
    status: int = 200

    @classmethod
    def make(cls, text: str, mimetype: str, last_modified: dt.datetime, status: int = 200) -> CachedPage:
        body = text.encode("utf-8")
        etag = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, gzip.compress(body, 9, mtime=0), etag, mimetype, last_modified, status)

    def respond(self, request: Request) -> Response:
        """Answer the request: 304 when the client has it, gzip when the client takes it."""
        wants_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        use_gzip = wants_gzip and len(self.gzipped) < len(self.body)
        response = Response(status=self.status, mimetype=self.mimetype)
        response.set_etag(self.etag)
        response.last_modified = self.last_modified.replace(microsecond=0)
        response.vary.add("Accept-Encoding")
        response.cache_control.no_cache = True  # revalidate every time: a reload may change any page
        if self.status == 200 and _not_modified(request, self.etag, response.last_modified):
            response.status_code = 304
            return response
        response.set_data(self.gzipped if use_gzip else self.body)
        if use_gzip:
            response.content_encoding = "gzip"
        return response


def gzip_if_accepted(response: Response, request: Request, level: int = 6) -> Response:
    """Compress a per-request response on the fly when the client takes gzip and it gets smaller."""
    response.vary.add("Accept-Encoding")
    if "gzip" not in request.headers.get("Accept-Encoding", "") or response.direct_passthrough:
        return response
    body = response.get_data()
    # Level 6: a search page is made for one request, so speed matters more than the last percent.
    # No secret shares a page with the reflected query (no cookies, no tokens), so BREACH has nothing to find.
    packed = gzip.compress(body, level, mtime=0)
    if len(packed) < len(body):
        response.set_data(packed)
        response.content_encoding = "gzip"
    return response


def _not_modified(request: Request, etag: str, last_modified: dt.datetime | None) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    if request.if_none_match:
        return request.if_none_match.contains_weak(etag)
    since = request.if_modified_since
    return bool(since and last_modified and last_modified <= since)


class PageCache:
    """A bounded map from (build, epoch, base, path) to a CachedPage."""

    def __init__(self, limit: int = 4096) -> None:
        self._pages: OrderedDict[tuple, CachedPage] = OrderedDict()
        self._limit = limit
        self._lock = Lock()

    def get(self, key: tuple) -> CachedPage | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: tuple, page: CachedPage) -> None:
        with self._lock:
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self._limit:
                self._pages.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
