"""Per-request helpers shared by the blueprints: the build, the request's base URL, cached responses."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import Response, current_app, render_template, request

from blog.builds import Build
from blog.config import Config
from blog.serving.current import SiteState
from blog.serving.urls import Base, base_for, host_of, request_target
from blog.web.cache import CachedPage, PageCache, Reads, request_key
from blog.web.fastpath import MARK

if TYPE_CHECKING:
    from blog.index.search import Search
    from blog.index.semantic import Meaning

Producer = Callable[[], tuple[str, str, dt.datetime]]  # (text, mimetype, last modified)


def state() -> SiteState:
    return current_app.extensions["blog.state"]


class AppSearch:
    """The app's one Search (blog/index/search.py), shared by /search and /mcp: handed in, or made when first asked.

    Importing the index's search side (Whoosh's query modules and numpy, 0.2 s) when the app is created would
    add that to every worker's start, before its first page; pages do not need it.
    """

    def __init__(self, meaning: Meaning, search: Search | None = None) -> None:
        self._meaning, self._search = meaning, search
        self._making = threading.Lock()

    def get(self) -> Search:
        if self._search is None:
            with self._making:
                if self._search is None:
                    from blog.index.search import Search

                    self._search = Search(self._meaning)
        return self._search


def searcher() -> Search:
    """Return the app's Search: the one /search and /mcp ask."""
    return current_app.extensions["blog.search"].get()


def config() -> Config:
    return state().config


def build() -> Build:
    return state().snapshot.build


def base() -> Base:
    """Return where this request's absolute links point (blog.serving.urls.base_for: the rule and why)."""
    return base_for(host_of(request.environ), config().base_url, state().onion_address)


def is_onion_request() -> bool:
    """Tell whether the request came to an onion host (the only case with no clearnet URL allowed)."""
    return base().onion


def base_url() -> str:
    """Return the absolute base for links that must be absolute: the onion host, or the site's address."""
    return base().url


def onion_base() -> str:
    """Return the site's onion base URL when the address is known, else ''."""
    address = state().onion_address
    return f"http://{address}" if address else ""


def cached(produce: Producer, status: int = 200, params: tuple[str, ...] = ()) -> Response:
    """Serve a response from the page cache, producing it once per build on a miss.

    The key is the request's shape (cache.request_key: one path is one view). `params` names the query
    parameters the page reads: the page is kept once per their values, and any other query string gets
    the same answer (it cannot change the page).
    """
    variant = _variant(params)
    current, onion = state().snapshot, state().onion_address
    cache: PageCache = current_app.extensions["blog.cache"]
    path_key = request_key(request.environ, base())
    key = (*path_key, variant) if variant else path_key
    page = cache.get(key)
    if not isinstance(page, CachedPage) or not page.fresh(current, onion):
        text, mimetype, modified = produce()
        page = CachedPage.make(text, mimetype, modified, status, params, current, onion)
        cache.put(key, page)
    if variant and cache.get(path_key) is None:  # the fast path looks here for what the path reads
        cache.put(path_key, Reads(params))
    request.environ[MARK] = (key, page)  # the fast path may record Flask's answer on the page and replay it
    return page.respond(request)


def canonical_path() -> str:
    """Return the path and the part of the query the page reads (all of it for a page that is not cached).

    Percent-encoded from what the client sent (blog.serving.urls.request_target): it goes into a header.
    """
    mark = request.environ.get(MARK)
    if mark is None:
        return request_target(request.environ)
    return request_target(request.environ, urlencode(_variant(mark[1].params)))


def _variant(params: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # What fastpath.query_variant() computes from the raw query, from the request's own parse.
    return tuple((k, v) for k, v in request.args.items(multi=True) if k in params) if params else ()


def page(template: str, **context: object) -> str:
    """Render an HTML template with what every page needs."""
    return render_template(template, cfg=config(), onion=onion_base(), base=base_url(), **context)
