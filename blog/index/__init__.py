"""The paragraph index (Whoosh): one document per citable block; search() returns citations.

The names below are loaded on first use: the child process of a two-process build imports only the
writing side (blog/index/engine/full.py), not the search side and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blog.index.lookup import search, snippet
    from blog.index.query import MAX_QUERY
    from blog.index.results import Citation, IndexUnavailable, Results, SearchError
    from blog.index.store import is_usable, update_index

_WHERE = {
    "search": "lookup", "snippet": "lookup", "Citation": "results", "IndexUnavailable": "results",
    "Results": "results", "SearchError": "results", "MAX_QUERY": "query", "is_usable": "store",
    "update_index": "store",
}
__all__ = ["MAX_QUERY", "Citation", "IndexUnavailable", "Results", "SearchError", "is_usable", "search",
           "snippet", "update_index"]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'blog.index' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"blog.index.{where}"), name)
    globals()[name] = value
    return value
