"""The search page: server-rendered results from the same search() the MCP tools call."""

from __future__ import annotations

from flask import Blueprint, request

from blog import index
from blog.web.context import build, page

bp = Blueprint("search", __name__)


@bp.get("/search")
def search():
    """Show the paragraphs that match the query, each linked to its anchor."""
    query = request.args.get("q", "").strip()
    results, error = None, None
    if query:
        try:
            results = index.search(build(), query)
        except index.SearchError as exc:
            error = str(exc)
    return page("search.html", query=query, results=results, error=error)
