"""The paragraph index (Whoosh): one document per citable block; search() returns citations."""

from blog.index.lookup import search, snippet
from blog.index.model import Citation, IndexUnavailable, Results, SearchError
from blog.index.query import MAX_QUERY
from blog.index.store import is_usable, update_index

__all__ = ["MAX_QUERY", "Citation", "IndexUnavailable", "Results", "SearchError", "is_usable", "search",
           "snippet", "update_index"]
