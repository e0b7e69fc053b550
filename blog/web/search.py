"""The search page: server-rendered results from the same search() the MCP tools call.

Not served through the page cache (every query is a new key); search() keeps a small per-worker cache of
recent results instead.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Blueprint, abort, make_response, request
from flask.typing import ResponseReturnValue

from blog import build as builds
from blog import index
from blog.serving.urls import citation_url
from blog.web.cache import gzip_if_accepted
from blog.web.context import build, config, page

log = logging.getLogger(__name__)

bp = Blueprint("search", __name__)

ASK_EVERY = 5.0  # seconds between one worker's requests for a repair
_asked = [0.0]
_asking = threading.Lock()
MAX_PAGE = 50  # page_size * MAX_PAGE stays within index.lookup.MAX_DEPTH


@bp.get("/search")
def search() -> ResponseReturnValue:
    """Show the paragraphs that match the query, each linked to its anchor."""
    query = request.args.get("q", "").strip()
    if len(query) > index.MAX_QUERY:
        abort(400, description=f"The query is {len(query)} characters long; keep it under {index.MAX_QUERY}.")
    number = _page_number(request.args.get("page", "1"))
    size = config().page_size
    results, status, error = None, 200, None
    if query:
        try:
            results = index.search(build(), query, limit=size, offset=(number - 1) * size)
        except index.IndexUnavailable as exc:
            status, error = 503, str(exc)
            _ask_for_repair()
        except index.SearchError as exc:
            abort(400, description=f"{exc}.")
    pages = -(-results.total // size) if results else 0
    body = page("search.html", query=query, results=results, error=error, number=number,
                pages=min(pages, MAX_PAGE), citation_url=citation_url)
    response = make_response(body, status)
    response.cache_control.no_store = True
    if status == 503:
        response.headers["Retry-After"] = "30"
    return gzip_if_accepted(response, request)


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
