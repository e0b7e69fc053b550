"""The one cache of rendered answers: pages kept per build as bytes, precompressed once, 304s when unchanged.

Flask fills it through context.cached(); the fast path (blog/web/fastpath.py) replays from the same entries
without entering Flask, so a page is held once: its body, its gzip copy, and the status line and headers
Flask sent with them, recorded the first time for each encoding and for a 304.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from threading import Lock
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from flask import Request, Response

if TYPE_CHECKING:
    from blog.serving.urls import Base

PAGE_BUDGET = 32 * 2**20  # bytes of cached answers per worker (bodies, gzip copies, keys, recorded headers)
PAGE_LARGEST = PAGE_BUDGET * 3 // 4  # a bigger page is served but not kept: llms-full.txt of ~1,200 entries
PAGE_LIMIT = 4096  # entries, so that tiny pages cannot grow the map's own table without end
OVERHEAD = 512  # bytes an entry costs beyond its payload (objects, the key tuple, the map's slot), rounded up

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def size_of(*parts: Any) -> int:
    """Return the payload bytes of strings, bytes and (nested) tuples or lists of them, 8 for anything else."""
    total = 0
    for part in parts:
        if isinstance(part, str | bytes):
            total += len(part)
        elif isinstance(part, tuple | list):
            total += size_of(*part) + 8 * len(part)
        else:
            total += 8
    return total


class ByteLRU(Generic[K, V]):
    """A map bounded in bytes and in entries that forgets the least recently used entry first."""

    def __init__(self, measure: Callable[[K, V], int], budget: int, largest: int, limit: int) -> None:
        self.measure, self.budget, self.largest, self.limit = measure, budget, largest, limit
        self.items: OrderedDict[K, V] = OrderedDict()
        self._sizes: dict[K, int] = {}
        self.total = 0  # bytes held, as counted by put()
        self._lock = Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> bool:
        """Keep value under key, forgetting the least recently used; refuse one bigger than `largest`."""
        size = self.measure(key, value) + OVERHEAD
        with self._lock:
            self._forget(key)
            if size > self.largest:
                return False
            self.items[key] = value
            self._sizes[key] = size
            self.total += size
            while self.total > self.budget or len(self.items) > self.limit:
                self._forget(next(iter(self.items)))
            return True

    def remeasure(self, key: K, value: V) -> None:
        """Count value's bytes again after it grew in place, if it is still what key holds."""
        size = self.measure(key, value) + OVERHEAD
        with self._lock:
            if self.items.get(key) is not value:
                return
            self.total += size - self._sizes[key]
            self._sizes[key] = size
            while self.total > self.budget:
                self._forget(next(iter(self.items)))

    def clear(self) -> None:
        with self._lock:
            self.items.clear()
            self._sizes.clear()
            self.total = 0

    def __len__(self) -> int:
        return len(self.items)

    def _forget(self, key: K) -> None:
        if self.items.pop(key, None) is not None:
            self.total -= self._sizes.pop(key)


# Status line, headers, body: the page's own body or gzip copy (a reference, not a copy), or b"" for a 304.
Reply = tuple[str, list[tuple[str, str]], bytes]


@dataclass(frozen=True)
class CachedPage:
    """A finished response body with its validators, a gzip copy, and the answers Flask sent with them."""

    body: bytes
    gzipped: bytes
    etag: str
    mimetype: str
    last_modified: dt.datetime
    status: int = 200
    params: tuple[str, ...] = ()  # the query parameters the page reads
    snapshot: object = field(default=None, compare=False)  # the build it was made from (serving.current.Snapshot)
    onion: str = ""  # the onion address when it was made
    # What the fast path replays, by (takes gzip, is a 304): recorded once from Flask's own answer.
    replies: dict[tuple[bool, bool], Reply] = field(default_factory=dict, compare=False, repr=False)

    @property
    def size(self) -> int:
        """Return the bytes this page holds."""
        return len(self.body) + len(self.gzipped) + len(self.etag) + len(self.mimetype)

    @classmethod
    def make(cls, text: str, mimetype: str, last_modified: dt.datetime, status: int = 200,
             params: tuple[str, ...] = (), snapshot: object = None, onion: str = "") -> CachedPage:
        body = text.encode("utf-8")
        etag = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, gzip.compress(body, 9, mtime=0), etag, mimetype, last_modified, status, params,
                   snapshot, onion)

    def fresh(self, snapshot: object, onion: str) -> bool:
        """Tell whether the page was made from this build for this onion address."""
        return self.snapshot is snapshot and self.onion == onion

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


@dataclass(frozen=True)
class Reads:
    """What a path's page reads of the query, kept where the page itself would be when only variants are kept."""

    params: tuple[str, ...]


class PageCache(ByteLRU[tuple, CachedPage | Reads]):
    """Rendered pages by request_key() (and the query variant), within PAGE_BUDGET bytes."""

    def __init__(self, budget: int = PAGE_BUDGET, largest: int = PAGE_LARGEST, limit: int = PAGE_LIMIT) -> None:
        super().__init__(_measure, budget, largest, limit)

    @property
    def _pages(self) -> OrderedDict[tuple, CachedPage | Reads]:
        return self.items


def request_key(environ: dict[str, Any], base: Base) -> tuple:
    """Return everything in a GET that a cached page's bytes and headers depend on, but its query and encoding.

    The build and the onion address are checked on the entry (CachedPage.fresh), so a new build replaces
    a page in place instead of leaving the old one to age out.
    """
    return (environ.get("wsgi.url_scheme", "http"), base.url, base.onion, environ.get("SCRIPT_NAME", ""),
            environ.get("PATH_INFO", ""))


def _measure(key: tuple, entry: CachedPage | Reads) -> int:
    if isinstance(entry, Reads):
        return size_of(key, entry.params)
    return entry.size + size_of(key, entry.params, [reply[:2] for reply in entry.replies.values()])
