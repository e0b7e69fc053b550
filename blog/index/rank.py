"""AND and ranked OR from one pass over the postings: BM25F summed over every (field, term) clause.

Whoosh's union matchers score a document by walking a tree of Python objects per posting, several method
calls per posting per tree level; a question of five common words over three fields read tens of thousands
of postings that way (p99 1.7 s at 1,000 entries, 25x SQLite FTS5). Here each term's postings are read a
block at a time as plain arrays and the scores added into a list indexed by document number: the same
BM25F formula, idf, average and per-document field lengths Whoosh uses, and the same coordination bonus
(Whoosh's CoordMatcher formula: more matched clauses rank higher). Clauses that are not single terms (a
phrase, an identifier the prose analyzer splits) go through their Whoosh matcher. See docs/search.md.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from whoosh import query as wq
from whoosh.reading import IndexReader
from whoosh.scoring import BM25F
from whoosh.searching import Searcher

from blog.index import postings

log = logging.getLogger(__name__)

NEAR_POOL, NEAR_MIN = 5, 100  # candidates checked for the proximity bonus: limit x 5, at least 100


@dataclass
class Plan:
    """What a query asks for: each word's clauses, the quoted phrases, the proximity bonus, the exclusions."""

    words: list[list[wq.Query]]  # one list of clauses (text, ident, about) per word
    loose: int = 0  # the first `loose` words may be missing from a ranked OR result; the rest are quoted
    phrases: list[wq.Query] = field(default_factory=list)  # quoted: every result contains them
    near: wq.Query | None = None  # the words close together: a bonus in the ranked OR
    excluded: wq.Query | None = None  # -word and -"phrase"
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
        self.searcher, self.plan = searcher, plan
        self.scores = [0.0] * size
        self.counts = bytearray(size)  # clauses matched
        self.word_docs: list[set[int]] = []  # per word: the documents it matched in any field
        self.terms = 0
        for group in plan.words:
            docs: set[int] = set()
            for clause in group:
                self.terms += _add(searcher, clause, self.scores, self.counts, docs)
            self.word_docs.append(docs)
        self.phrase_scores: dict[int, float] = {}
        self.phrase_docs: set[int] | None = None
        for phrase in plan.phrases:
            found = _collect(searcher, phrase)
            self.phrase_docs = set(found) if self.phrase_docs is None else self.phrase_docs & found.keys()
            for d, score in found.items():
                self.phrase_scores[d] = self.phrase_scores.get(d, 0.0) + score
        if plan.near is not None:
            self.terms += 1
        self.keep = set(searcher.docs_for_query(allowed)) if allowed is not None else None
        self.drop = _docs(searcher, [plan.excluded, mask]) | _deleted(searcher.reader())

    def _shown(self, docs: set[int]) -> list[int]:
        docs = docs - self.drop
        if self.keep is not None:
            docs &= self.keep
        if self.phrase_docs is not None:
            docs &= self.phrase_docs
        return sorted(docs)  # equal scores keep document order, so pages never overlap

    def strict(self, limit: int) -> tuple[list[Hit], int]:
        """Return the best documents that match every word and phrase, and how many match."""
        if self.word_docs:
            docs = self._shown(set.intersection(*self.word_docs))
        else:
            docs = self._shown(set(self.phrase_docs or ()))
        scores, phrases = self.scores, self.phrase_scores
        values = [scores[d] + phrases.get(d, 0.0) for d in docs] if phrases else [scores[d] for d in docs]
        return self._hits(docs, values, limit), len(docs)

    def ranked(self, limit: int) -> tuple[list[Hit], int]:
        """Return the best documents that match any word, more matched words ranking higher."""
        quoted = self.word_docs[self.plan.loose:]  # quoted single words: every result contains them
        docs = self._shown(set.union(*self.word_docs) if not quoted else set.intersection(*quoted))
        values = self._coordinated(docs, {})
        if self.plan.near is not None:
            # The words close together only occur in blocks that match every word, which rank near the top
            # anyway; checking positions in the best few hundred, not in every match, keeps questions cheap.
            best = heapq.nlargest(max(limit * NEAR_POOL, NEAR_MIN), range(len(docs)), key=values.__getitem__)
            pool = sorted(docs[i] for i in best)
            near = _collect_at(self.searcher, self.plan.near, pool)
            return self._hits(pool, self._coordinated(pool, near), limit), len(docs)
        return self._hits(docs, values, limit), len(docs)

    def _coordinated(self, docs: list[int], near: dict[int, float]) -> list[float]:
        scores, counts, phrases = self.scores, self.counts, self.phrase_scores
        terms, scale = self.terms, self.plan.scale
        if terms < 2 or not scale:
            return [scores[d] + near.get(d, 0.0) + phrases.get(d, 0.0) for d in docs]
        # Whoosh's CoordMatcher ("SQR" of the V-Twin engine) over the summed clause scores
        factor, step = (terms - 1) / terms, 1 / (terms - scale) ** 2
        if not near and not phrases:
            return [(scores[d] + (counts[d] - 1) * step) * factor for d in docs]
        return [(scores[d] + near.get(d, 0.0) + (counts[d] + (d in near) - 1) * step) * factor
                + phrases.get(d, 0.0) for d in docs]

    def _hits(self, docs: list[int], values: list[float], limit: int) -> list[Hit]:
        hits = []
        for i in heapq.nlargest(limit, range(len(docs)), key=values.__getitem__):
            stored = self.searcher.stored_fields(docs[i])
            hits.append(Hit(docs[i], values[i], stored.get("key", ""), stored.get("kind", "")))
        return hits


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


def _add(searcher: Searcher, clause: wq.Query, scores: list[float], counts: bytearray, docs: set[int]) -> int:
    """Add one clause's scores into the arrays and its documents into the set; count it as one clause."""
    if isinstance(clause, wq.Term) and isinstance(searcher.weighting, BM25F):
        _add_term(searcher, clause, scores, counts, docs)
        return 1
    found = _collect(searcher, clause)  # a clause the prose analyzer split in two
    for d, score in found.items():
        scores[d] += score
        counts[d] += 1
    docs.update(found)
    return 1


def _add_term(searcher: Searcher, clause: wq.Term, scores: list[float], counts: bytearray,
              docs: set[int]) -> None:
    field, text = clause.fieldname, clause.text
    reader = searcher.reader()
    btext = searcher.schema[field].to_bytes(text)
    if (field, btext) not in reader:
        return
    ids, added = postings.contributions(searcher, field, btext, clause.boost)
    docs.update(ids)
    for d, c in zip(ids, added, strict=True):
        scores[d] += c
        counts[d] += 1


