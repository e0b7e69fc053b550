"""The paragraph index (Whoosh): one document per citable block, and the search over it.

Start at `search.Search.find()`: it parses the query (`query`), ranks the blocks by words (`engine.rank`,
over the index `store` opens) and by meaning (`semantic`, fused by `fuse`), groups them for the search page
(`groups`), suggests spellings (`spelling`) and answers with `results.Results` of `Citation`s. Publishing
writes the index with `store.update_index()`. See docs/search.md.

This package's own module imports nothing: the child Python of a two-process build imports only the writing
side (blog/index/engine/full.py), not the search side and numpy.
"""
