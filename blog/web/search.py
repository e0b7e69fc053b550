"""The search page: server-rendered results from the same Search the MCP tools ask.

Not served through the page cache (every query is a new key); the app's Search keeps a small cache of
recent answers instead.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import quote_plus

from flask import Blueprint, abort, make_response, request
from flask.typing import ResponseReturnValue

from blog import builds
from blog.content import entry_path, page_path
from blog.index.results import Citation, IndexUnavailable, Results, SearchError
from blog.serving.urls import citation_url
from blog.web.cache import gzip_if_accepted
from blog.web.context import build, config, page, searcher

log = logging.getLogger(__name__)

bp = Blueprint("search", __name__)

ASK_EVERY = 5.0  # seconds between one worker's requests for a repair
_asked = [0.0]
_asking = threading.Lock()
MAX_PAGE = 50  # page_size * MAX_PAGE stays within blog.index.search.MAX_DEPTH


@bp.get("/search")
def search() -> ResponseReturnValue:
    """Show the entries and pages that answer the query, each with its best paragraphs linked to their anchors."""
    from blog.index.query import MAX_QUERY  # the search side loads at the first search (web/context.py: why)

    query = request.args.get("q", "").strip()
    if len(query) > MAX_QUERY:
        abort(400, description=f"The query is {len(query)} characters long; keep it under {MAX_QUERY}.")
    number = _page_number(request.args.get("page", "1"))
    # A page ranked by words alone (the ranking by meaning was not there yet) asks for its neighbours the
    # same way, so that they come from the same ranking and never repeat its entries.
    by_words = request.args.get("by") == "words"
    size = config().page_size
    results, status, error = None, 200, None
    if query:
        try:
            results = searcher().find(build(), query, limit=size, offset=(number - 1) * size, grouped=True,
                                      meaning=not by_words)
        except IndexUnavailable as exc:
            status, error = 503, str(exc)
            _ask_for_repair()
        except SearchError as exc:
            abort(400, description=f"{exc}.")
    pages = -(-(results.entries + results.pages) // size) if results else 0
    more = f"/search?q={quote_plus(query)}" + ("&by=words" if results and not results.semantic else "")
    body = page("search.html", query=query, results=results, error=error, number=number,
                pages=min(pages, MAX_PAGE), more=more, counted=counted(results) if results else "",
                citation_url=citation_url, page_url=page_url)
    response = make_response(body, status)
    response.cache_control.no_store = True
    if status == 503:
        response.headers["Retry-After"] = "30"
    return gzip_if_accepted(response, request)


def counted(results: Results) -> str:
    """Say how many paragraphs matched in how many entries and pages (a grouped answer's count line)."""
    places = [_plural(results.entries, "entry", "entries"), _plural(results.pages, "page", "pages")]
    where = " and ".join(p for p in places if p)
    paragraphs = _plural(results.paragraphs, "paragraph", "paragraphs")
    if results.deeper:  # the groups are formed from the best index.groups.DEPTH blocks
        return f"The best {paragraphs} of {results.total:,} are in {where}"
    return f"{paragraphs} in {where}"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}" if count else ""


def page_url(citation: Citation) -> str:
    """Return the path of the entry or page a citation is from."""
    return page_path(citation.slug) if citation.source == "page" else entry_path(citation.slug)


def _page_number(raw: str) -> int:
    try:
        number = int(raw)
    except ValueError:
        abort(400, description=f"page={raw[:20]!r} is not a page number; use page=1, page=2, …")
    if not 1 <= number <= MAX_PAGE:
        abort(400, description=f"Only pages 1 to {MAX_PAGE} exist; narrow the query to see further.")
    return number


def _ask_for_repair() -> None:
    """Ask the builder to rebuild the index (a worker never writes it); the rest of the site keeps answering."""
    with _asking:
        if time.monotonic() - _asked[0] < ASK_EVERY:
            return
        _asked[0] = time.monotonic()
    if not builds.ask_for_repair(config().data_dir):
        log.error("the search index is unusable and no builder is running: run `blog index`")
