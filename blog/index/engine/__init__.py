"""What re-implements Whoosh's hot paths, behind one face: scoring a plan, and writing a full index.

Whoosh's own matchers and writers were too slow for a log of thousands of entries (docs/search.md), so the
modules in here read and write Whoosh's W3 format with Whoosh's own encoders and BM25F, reaching into names
Whoosh does not document (every one is listed in whoosh_private.py and checked against the installed
Whoosh by tests/test_index_engine.py). The rest of blog/ imports only the names below, never a module of
this package, and never touches a private name of Whoosh's; tests/test_layering.py pins both.

The names are loaded on first use: the child Python of a two-process build imports only the writing side,
not the scoring side and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blog.index.engine.full import WRITER, write_full
    from blog.index.engine.rank import Plan, Scored

_WHERE = {"Plan": "rank", "Scored": "rank", "WRITER": "full", "write_full": "full"}
__all__ = ["WRITER", "Plan", "Scored", "write_full"]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'blog.index.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"blog.index.engine.{where}"), name)
    globals()[name] = value
    return value
