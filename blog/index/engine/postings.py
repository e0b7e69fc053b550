"""What ranking reads from an open index, decoded once per worker: term score contributions, length norms.

Reading a posting block (unpickling its ids, weights and positions) costs more than scoring it, and an
index directory never changes once written: each worker keeps its most used terms' contributions within a
byte budget, and one array of BM25 length norms per field, both for one open index at a time (the reader
is held, so a newer reader never reuses its id). See docs/search.md.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher, W3PerDocReader, _lenfield
from whoosh.columns import NumericColumn
from whoosh.matching import FilterMatcher, ListMatcher, Matcher
from whoosh.reading import IndexReader
from whoosh.scoring import BM25FScorer
from whoosh.searching import Searcher

from blog.index.engine.codec import LENGTH_OF_BYTE
from blog.index.engine.whoosh_private import WhooshChanged

POSTING_CACHE_BYTES = 6 * 2**20  # decoded postings per worker: reading a block costs more than scoring it
Postings = tuple[np.ndarray, np.ndarray]  # documents (int32) and what the term adds to each one's score

_lengths: dict[str, np.ndarray] = {}  # field -> BM25 length norm per document of _norms_reader
_norms_reader: IndexReader | None = None
_norms_lock = threading.Lock()


def contributions(searcher: Searcher, field: str, btext: bytes, boost: float) -> Postings:
    """Return a term's documents and what it adds to each one's score, from the cache when it is there."""
    reader = searcher.reader()
    key = (field, btext, boost)
    found = _postings.get(reader, key)
    if found is None:
        found = _contributions(searcher, reader, field, btext, boost)
        _postings.put(reader, key, found)
    return found


def _contributions(searcher: Searcher, reader: IndexReader, field: str, btext: bytes,
                   boost: float) -> Postings:
    """Return a term's documents and what it adds to each one's score (fixed for an open index)."""
    scorer = searcher.weighting.scorer(searcher, field, btext)
    if not isinstance(scorer, BM25FScorer):
        raise TypeError(f"{field} is not scored by BM25F")
    # bm25(idf, w, fl, avgfl, B, K1) * boost = weight * w / (w + norm[fl]), constants folded out of the loop
    norms = _norms(reader, field, scorer.K1, scorer.B, scorer.avgfl)
    weight = boost * scorer.idf * (scorer.K1 + 1)
    ids: list[np.ndarray] = []
    added: list[np.ndarray] = []
    for sub, offset in reader.leaf_readers():
        if (field, btext) not in sub:
            continue
        matcher = sub.postings(field, btext)
        if isinstance(matcher, FilterMatcher):
            matcher = matcher.child  # deleted documents are dropped once, after scoring
        for block, weights in _blocks(matcher):
            docs = np.asarray(block, dtype=np.int32) + offset
            w = np.asarray(weights, dtype=np.float64)  # float64 before any arithmetic, as Python floats were
            ids.append(docs)
            added.append(weight * w / (w + norms[docs]))
    if not ids:
        return np.zeros(0, dtype=np.int32), np.zeros(0)
    return np.concatenate(ids), np.concatenate(added)


class _PostingCache:
    """The most recently used terms' contributions, within a byte budget, for one open index at a time."""

    def __init__(self, budget: int) -> None:
        self.budget, self.used = budget, 0
        self.reader: IndexReader | None = None  # held, so its id is never reused by a newer reader
        self.items: OrderedDict[tuple[str, bytes, float], Postings] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, reader: IndexReader, key: tuple[str, bytes, float]) -> Postings | None:
        with self.lock:
            found = self.items.get(key) if reader is self.reader else None
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, reader: IndexReader, key: tuple[str, bytes, float],
            value: Postings) -> None:
        size = value[0].nbytes + value[1].nbytes
        if size > self.budget // 4:
            return  # one very common term would evict everything else
        with self.lock:
            if reader is not self.reader:
                self.items.clear()
                self.reader, self.used = reader, 0
            self.items[key] = value
            self.used += size
            while self.used > self.budget:
                _, (old_ids, old_added) = self.items.popitem(last=False)
                self.used -= old_ids.nbytes + old_added.nbytes


def _blocks(matcher: Matcher) -> Iterable[tuple[Sequence[int], Sequence[float]]]:
    """Yield a posting list's (ids, weights) a block at a time, or its postings inlined in the term info."""
    if isinstance(matcher, W3LeafMatcher):
        while matcher.is_active():
            matcher._read_ids()
            matcher._read_weights()
            yield matcher._ids, matcher._weights
            matcher._next_block()
    elif isinstance(matcher, ListMatcher):  # a term with fewer postings than the codec's inline limit
        while matcher.is_active():
            yield [matcher.id()], [matcher.weight()]
            matcher.next()
    else:
        raise WhooshChanged(f"Whoosh read postings with a {type(matcher).__name__}; the index engine reads "
                            "W3LeafMatcher blocks and ListMatcher inlined postings only")


def _norms(reader: IndexReader, field: str, k1: float, b: float, avgfl: float) -> np.ndarray:
    """Return K1 * (1 - B + B * length / average length) for every document, computed once per reader."""
    global _norms_reader
    with _norms_lock:
        if reader is not _norms_reader:  # held, so its id is never reused by a newer reader
            _lengths.clear()
            _norms_reader = reader
        found = _lengths.get(field)
        if found is None:
            base, per = k1 * (1 - b), k1 * b / avgfl
            table = np.array([base + per * (length or 0) for length in LENGTH_OF_BYTE])
            # 8 bytes a document: at 10,000 entries a list of float objects would hold 28 MB per worker
            parts = [table[np.frombuffer(_length_bytes(sub, field), dtype=np.uint8)]
                     for sub, _ in reader.leaf_readers()]
            found = np.concatenate(parts) if parts else np.zeros(0)
            _lengths[field] = found
        return found


def _length_bytes(sub: IndexReader, field: str) -> bytes:
    """Return a segment's length byte per document for a field (0: none), its whole column at once."""
    per_doc = sub._perdoc  # type: ignore[attr-defined]
    if not isinstance(per_doc, W3PerDocReader):
        raise WhooshChanged(f"a segment's per-document reader is a {type(per_doc).__name__}, not the "
                            "W3PerDocReader whose length columns the index engine reads")
    count = sub.doc_count_all()
    column = per_doc._cached_reader(_lenfield(field), LENGTHS_COLUMN)
    if column is None:
        return bytes(count)
    if not isinstance(column, NumericColumn.Reader) or column._fixedlen != 1:
        raise WhooshChanged(f"a length column is a {type(column).__name__}, not one byte a document")
    raw = column._dbfile.get(column._basepos, column._count)
    return raw + bytes(max(0, count - len(raw)))  # documents past the column's end have no length


_postings = _PostingCache(POSTING_CACHE_BYTES)
