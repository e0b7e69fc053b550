"""What re-implements Whoosh's hot paths, behind one face: scoring a plan, and writing a full index.

Whoosh's own matchers and writers were too slow for a log of thousands of entries (docs/search.md), so the
modules in here read and write Whoosh's W3 format with Whoosh's own encoders and BM25F, reaching into names
Whoosh does not document (every one is listed in whoosh_private.py and checked against the installed
Whoosh by tests/test_index_engine.py). It has two faces, and the rest of blog/ imports only them, never
another module of this package, and never touches a private name of Whoosh's (tests/test_layering.py pins
both):

- `rank`: `Plan` (what to score for a query) and `Scored` (every clause scored in one pass);
- `full`: `write_full` and the `WRITER` settings (a full index, in one process or two).

This package's own module imports nothing: the child Python of a two-process build imports only the writing
side, not the scoring side and numpy.
"""
