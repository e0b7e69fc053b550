"""AND and ranked OR from one pass over the postings: BM25F summed over every (field, term) clause.

Whoosh's union matchers score a document by walking a tree of Python objects per posting, several method
calls per posting per tree level; a question of five common words over three fields read tens of thousands
of postings that way (p99 1.7 s at 1,000 entries, 25x SQLite FTS5). Here each term's postings are read a
block at a time as arrays and the scores added, one vector step per term, into an array indexed by document
number (numpy: the adding was a third of a question's time in a Python loop): the same
BM25F formula, idf, average and per-document field lengths Whoosh uses, and the same coordination bonus
(Whoosh's CoordMatcher formula: more matched clauses rank higher, counting every clause of the plan).
Clauses that are not single terms (a phrase, an identifier the prose analyzer splits) go through their
Whoosh matcher. Scores are within 4 units in the last place of Whoosh's, not bit-identical, in the same
order (tests/test_index_scoring.py). See docs/search.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from whoosh import query as wq
from whoosh.reading import IndexReader
from whoosh.scoring import BM25F
from whoosh.searching import Searcher

from blog.index.engine import postings

log = logging.getLogger(__name__)

# Candidates checked for the proximity bonus: limit x 5, at least 100, at most 350 (what a page ranked with
# meaning checks: 70 deep). A grouped answer ranks 150 blocks deep; words close together are in blocks that
# match every word, which rank high anyway, and checking positions costs per candidate.
NEAR_POOL, NEAR_MIN, NEAR_MAX = 5, 100, 350


@dataclass
class Plan:
    """What a query asks for: each word's clauses, the quoted phrases, the proximity bonus, the exclusions."""

    words: list[list[wq.Query]]  # one list of clauses (text, ident, about) per word
    loose: int = 0  # the first `loose` words may be missing from a ranked OR result; the rest are quoted
    phrases: list[wq.Query] = field(default_factory=list)  # quoted: every result contains them
    near: wq.Query | None = None  # the words close together: a bonus in the ranked OR
    excluded: wq.Query | None = None  # not:word and not:"phrase"
    scale: float = 0.9  # the coordination bonus of the ranked OR, as in Whoosh's Or(scale=...)


@dataclass(frozen=True)
class Hit:
    """One ranked document: its number in the searcher, its score and its stored fields."""

    docnum: int
    score: float
    key: str
    kind: str


class Scored:
    """Every clause of a plan scored once; AND and ranked OR results are both read from these arrays."""

    def __init__(self, searcher: Searcher, plan: Plan, allowed: wq.Query | None = None,
                 mask: wq.Query | None = None) -> None:
        size = searcher.doc_count_all()
        self.searcher, self.plan, self.size = searcher, plan, size
        self.scores = np.zeros(size)
        self.counts = np.zeros(size, dtype=np.int32)  # clauses matched
        self.word_docs: list[np.ndarray] = []  # per word: the documents it matched in any field
        self.terms = 0
        for group in plan.words:
            docs = np.zeros(size, dtype=bool)
            for clause in group:
                self.terms += _add(searcher, clause, self.scores, self.counts, docs)
            self.word_docs.append(docs)
        self.phrase_scores: dict[int, float] = {}
        self.phrase_docs: np.ndarray | None = None
        for phrase in plan.phrases:
            found = _collect(searcher, phrase)
            matched = _mask(size, found)
            self.phrase_docs = matched if self.phrase_docs is None else self.phrase_docs & matched
            for d, score in found.items():
                self.phrase_scores[d] = self.phrase_scores.get(d, 0.0) + score
        if plan.near is not None:
            self.terms += 1
        self.keep = _mask(size, searcher.docs_for_query(allowed)) if allowed is not None else None
        self.drop = _mask(size, _docs(searcher, [plan.excluded, mask]) | _deleted(searcher.reader()))

    def _shown(self, docs: np.ndarray) -> np.ndarray:
        docs = docs & ~self.drop
        if self.keep is not None:
            docs &= self.keep
        if self.phrase_docs is not None:
            docs &= self.phrase_docs
        return np.flatnonzero(docs)  # ascending: equal scores keep document order, so pages never overlap

    def _phrases(self, docs: np.ndarray) -> np.ndarray:
        return np.array([self.phrase_scores.get(int(d), 0.0) for d in docs]) if self.phrase_scores else \
            np.zeros(len(docs))

    def strict(self, limit: int) -> tuple[list[Hit], int]:
        """Return the best documents that match every word and phrase, and how many match."""
        if self.word_docs:
            docs = self._shown(np.logical_and.reduce(self.word_docs))
        elif self.phrase_docs is not None:
            docs = self._shown(self.phrase_docs.copy())
        else:
            docs = np.zeros(0, dtype=np.int64)
        values = self.scores[docs]
        if self.phrase_scores:
            values = values + self._phrases(docs)
        return self._hits(docs, values, limit), len(docs)

    def ranked(self, limit: int) -> tuple[list[Hit], int]:
        """Return the best documents that match any word, more matched words ranking higher."""
        docs = self._shown(self._either())
        values = self._coordinated(docs, {})
        if self.plan.near is not None:
            # The words close together only occur in blocks that match every word, which rank near the top
            # anyway; checking positions in the best few hundred, not in every match, keeps questions cheap.
            pool = np.sort(docs[_top(values, min(max(limit * NEAR_POOL, NEAR_MIN), NEAR_MAX))])
            near = _collect_at(self.searcher, self.plan.near, pool.tolist())
            return self._hits(pool, self._coordinated(pool, near), limit), len(docs)
        return self._hits(docs, values, limit), len(docs)

    def covered(self, docnum: int) -> float:
        """Return the share of the query's loose words a document matches in any field (0 to 1)."""
        loose = self.word_docs[:self.plan.loose]
        return sum(bool(docs[docnum]) for docs in loose) / len(loose) if loose else 1.0

    def found(self) -> tuple[int, int]:
        """Return how many documents match every word and phrase, and how many a ranked OR would read."""
        every = self.strict(0)[1]
        return every, len(self._shown(self._either())) if self.plan.loose else every

    def _either(self) -> np.ndarray:
        quoted = self.word_docs[self.plan.loose:]  # quoted single words: every result contains them
        return np.logical_or.reduce(self.word_docs) if not quoted else np.logical_and.reduce(quoted)

    def _coordinated(self, docs: np.ndarray, near: dict[int, float]) -> np.ndarray:
        scores, counts = self.scores[docs], self.counts[docs]
        terms, scale = self.terms, self.plan.scale
        close = np.array([near.get(int(d), 0.0) for d in docs]) if near else np.zeros(len(docs))
        if terms < 2 or not scale:
            return scores + close + self._phrases(docs)
        # Whoosh's CoordMatcher ("SQR" of the V-Twin engine) over the summed clause scores
        factor, step = (terms - 1) / terms, 1 / (terms - scale) ** 2
        if not near and not self.phrase_scores:
            return (scores + (counts - 1) * step) * factor
        found = np.array([int(d) in near for d in docs], dtype=np.int32) if near else 0
        return (scores + close + (counts + found - 1) * step) * factor + self._phrases(docs)

    def narrowed(self) -> tuple[frozenset[str] | None, frozenset[str]]:
        """Return the keys every result must be among (None: any), and the keys no result may be.

        What a quoted phrase or word and `not:` ask of the blocks the ranking by meaning brings: a block
        must contain the quoted text and none of the excluded, as the lexical results do.
        """
        quoted = self.word_docs[self.plan.loose:]
        required = None
        if quoted or self.phrase_docs is not None:
            docs = np.logical_and.reduce(quoted) if quoted else np.ones(self.size, dtype=bool)
            required = self._keys(self._shown(docs))
        excluded = self._keys(np.flatnonzero(_mask(self.size, _docs(self.searcher, [self.plan.excluded]))))
        return required, excluded

    def _keys(self, docs: np.ndarray) -> frozenset[str]:
        return frozenset(self.searcher.stored_fields(int(d)).get("key", "") for d in docs)

    def _hits(self, docs: np.ndarray, values: np.ndarray, limit: int) -> list[Hit]:
        hits = []
        for i in _top(values, limit):
            stored = self.searcher.stored_fields(int(docs[i]))
            hits.append(Hit(int(docs[i]), float(values[i]), stored.get("key", ""), stored.get("kind", "")))
        return hits


def _top(values: np.ndarray, limit: int) -> np.ndarray:
    """Return the positions of the `limit` largest values, largest first, equal values in position order."""
    n = len(values)
    if n == 0 or limit <= 0:
        return np.zeros(0, dtype=np.int64)
    if n > limit:
        kth = np.partition(values, n - limit)[n - limit]
        candidates = np.flatnonzero(values >= kth)
    else:
        candidates = np.arange(n)
    return candidates[np.lexsort((candidates, -values[candidates]))][:limit]


def _mask(size: int, docs: Iterable[int]) -> np.ndarray:
    out = np.zeros(size, dtype=bool)
    found = np.fromiter(docs, dtype=np.int64)
    out[found] = True
    return out


def _collect_at(searcher: Searcher, clause: wq.Query, docs: Iterable[int]) -> dict[int, float]:
    """Score a clause on the given documents only, skipping its postings past the others."""
    matcher = clause.matcher(searcher, searcher.context())
    found: dict[int, float] = {}
    for d in sorted(docs):
        if not matcher.is_active():
            break
        if matcher.id() < d:
            matcher.skip_to(d)
        if matcher.is_active() and matcher.id() == d:
            found[d] = matcher.score()
    return found


def _collect(searcher: Searcher, clause: wq.Query) -> dict[int, float]:
    matcher = clause.matcher(searcher, searcher.context())
    found: dict[int, float] = {}
    while matcher.is_active():
        found[matcher.id()] = matcher.score()
        matcher.next()
    return found


def _docs(searcher: Searcher, queries: Iterable[wq.Query | None]) -> set[int]:
    out: set[int] = set()
    for q in queries:
        if q is not None:
            out |= set(searcher.docs_for_query(q))
    return out


def _deleted(reader: IndexReader) -> set[int]:
    out: set[int] = set()
    if not reader.has_deletions():
        return out
    for sub, offset in reader.leaf_readers():
        if sub.has_deletions():
            out.update(offset + d for d in sub.deleted_docs_set)
    return out


def _add(searcher: Searcher, clause: wq.Query, scores: np.ndarray, counts: np.ndarray, docs: np.ndarray) -> int:
    """Add one clause's scores into the arrays and its documents into the mask; count it as one clause."""
    if isinstance(clause, wq.Term) and isinstance(searcher.weighting, BM25F):
        _add_term(searcher, clause, scores, counts, docs)
        return 1
    found = _collect(searcher, clause)  # a clause the prose analyzer split in two
    for d, score in found.items():
        scores[d] += score
        counts[d] += 1
        docs[d] = True
    return 1


def _add_term(searcher: Searcher, clause: wq.Term, scores: np.ndarray, counts: np.ndarray,
              docs: np.ndarray) -> None:
    field, text = clause.fieldname, clause.text
    reader = searcher.reader()
    btext = searcher.schema[field].to_bytes(text)
    if (field, btext) not in reader:
        return
    ids, added = postings.contributions(searcher, field, btext, clause.boost)
    # A term's documents are distinct, so one vector step per array adds each once.
    docs[ids] = True
    scores[ids] += added
    counts[ids] += 1
