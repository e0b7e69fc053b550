"""Search: the one way the search page and the MCP tools find paragraphs, one object per process.

Whoever wires a process makes one `Search` and hands it to what answers readers: the worker's app factory
(blog/web/__init__.py, which gives the same one to /mcp), the stdio MCP server (blog/mcp/stdio.py), the
benches. It holds what an answer depends on besides the build: the ranker by meaning it asks (a
`semantic.Meaning`: the semantic process, the model loaded here, or none) and this process's caches of
answers, spellings and each build's published entries. `find()` answers with slugs and anchors; each front
end shapes the links from its own base (blog.serving.urls.citation_url).

The open index (blog/index/store.py) and what ranking decodes from it (blog/index/engine/postings.py) are
kept per process, not per Search: they are the index's files, which every Search of a process reads.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from html import escape, unescape

from whoosh import highlight as wh
from whoosh import query as wq
from whoosh.searching import Searcher

from blog.builds import Build
from blog.content import Entry, page_slug, utcnow
from blog.index import fuse, groups, spelling
from blog.index import query as q
from blog.index.engine.rank import Plan, Scored
from blog.index.fuse import DEPTH
from blog.index.results import Citation, Group, IndexUnavailable, Results, SearchError
from blog.index.semantic import Meaning, WordsOnly
from blog.index.sources import find_block, part
from blog.index.store import _BROKEN, check_intact, forget, open_searcher
from blog.render import Block, update_anchors

log = logging.getLogger(__name__)

MAX_LIMIT = 50
MAX_DEPTH = 1000  # offset + limit: nobody reads page 500, and deep pages cost time
SNIPPET_CHARS = 300
QUESTION_WORDS = 4  # this many words and more: ranked OR straight away (AND over them rarely finds anything)
# A question is answered in prose: a code block that merely shares its words (a quoted query, a log line)
# ranks below a paragraph. Measured on tests/data/questions.yml; see docs/search.md.
CODE_WEIGHT = 0.6
RERANK = 10
# Recent answers per Search (agents repeat their questions), bounded in bytes: the key is the client's
# query, and one answer can carry 50 whole blocks. docs/reliability.md lists every cache and its bound.
CACHE_BYTES = 8 * 1024 * 1024
CITATION_OVERHEAD = 600  # bytes of one Citation beyond its texts: the object, its strings' headers, dates
_TAGS = re.compile(r"<[^>]+>")
_EDGES = re.compile(r"^\W+|\W+$")  # what a fragment leaves off around its first and last word
FAR = dt.datetime.max.replace(tzinfo=dt.UTC)

When = dt.date | dt.datetime | str | None
UNAVAILABLE = "search is unavailable while its index is rebuilt; try again in a minute"


class Search:
    """Find the paragraphs that answer a query in a build: ranked by words, and by meaning when it can be asked.

    One per process, made by whoever wires the process; its threads share it.
    """

    def __init__(self, meaning: Meaning | None = None) -> None:
        self.meaning: Meaning = meaning if meaning is not None else WordsOnly()
        self._answers: OrderedDict[tuple, tuple[Results, int]] = OrderedDict()  # key -> (answer, its bytes)
        self._answer_bytes = 0
        self._answers_lock = threading.Lock()
        self._spellings = spelling.Spellings()
        self._entries: dict[tuple[str, int], dict[str, Entry]] = {}  # the current build's entries by slug
        self._masks: dict[tuple[str, int], tuple[dt.datetime, dt.datetime, frozenset[str], wq.Query | None]] = {}

    def find(self, build: Build, query: str, *, limit: int = 10, offset: int = 0, tag: str | None = None,
             after: When = None, before: When = None, now: dt.datetime | None = None, grouped: bool = False,
             meaning: bool = True) -> Results:
        """Find the published paragraphs (of entries and pages) that answer a query, best first.

        Raise SearchError on a bad query. A tag or a date narrows the search to entries. `grouped`: one
        result per entry or page (limit and offset count those; blog/index/groups.py). `meaning=False` ranks
        by words alone, as a page ranked so asks for its next page.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0 or offset + limit > MAX_DEPTH:
            raise SearchError(f"only the first {MAX_DEPTH} results can be paged through; narrow the query")
        parsed = q.parse(query or "")
        if tag:
            parsed.tags.append(q.parse(f"tag:{tag}").tags[0])
        parsed.after = q.parse_date(after, "after") or parsed.after
        parsed.before = q.parse_date(before, "before") or parsed.before
        plan = q.compile_plan(parsed)
        if plan is None:
            raise SearchError("type at least one word to search for "
                              "(tag:, after: and before: only narrow a search)")
        now = now or utcnow()
        hidden, mask = self._mask(build, now)
        # Quoted phrases and not: narrow what may be shown; meaning still ranks the blocks that pass them.
        nearest = self.meaning if meaning and self.meaning.expects(build.id) else None
        key = (build.id, str(build.index_dir), query, limit, offset, tag, str(parsed.after), str(parsed.before),
               hidden, nearest is not None, grouped)
        check_intact(build.index_dir)
        with self._answers_lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key][0]
        # Asked before the searcher's lock is taken, never while it is held: a slow or hung semantic process
        # must cost each reader its own wait at most, not one wait per reader queued behind the lock.
        hits = nearest(build.id, parsed.said, DEPTH * 2) if nearest is not None else None
        handle = open_searcher(build.index_dir)
        try:
            with handle.lock:
                results = self._run(handle.searcher, build, parsed, query, plan, mask, limit, offset, hits,
                                    hidden, grouped)
        except _BROKEN as exc:
            forget(build.index_dir) if build.index_dir else None
            log.error("the search index %s failed mid-search: %s; it will be rebuilt", build.index_dir, exc)
            raise IndexUnavailable(UNAVAILABLE) from exc
        if hits is None and meaning:
            results = replace(results, without_meaning=self.meaning.why_not(build.id))
        if results.semantic or nearest is None:  # words only for now: the vectors join later, ask again then
            self._remember(key, results)
        return results

    def _remember(self, key: tuple, results: Results) -> None:
        size = _size(key, results)
        if size > CACHE_BYTES // 16:
            return  # an answer that big is cheaper to compute again than to keep
        with self._answers_lock:
            old = self._answers.pop(key, None)
            self._answer_bytes += size - (old[1] if old else 0)
            self._answers[key] = (results, size)
            while self._answer_bytes > CACHE_BYTES:
                _, (_, dropped) = self._answers.popitem(last=False)
                self._answer_bytes -= dropped

    def cached_bytes(self) -> int:
        """Return the bytes the answers cache holds now (for tests and docs)."""
        return self._answer_bytes

    def forget_answers(self) -> None:
        """Drop every cached answer (the benches time questions uncached)."""
        with self._answers_lock:
            self._answers.clear()
            self._answer_bytes = 0

    def _run(self, searcher: Searcher, build: Build, parsed: q.Parsed, text: str, plan: Plan,
             mask: wq.Query | None, limit: int, offset: int, hits: list[tuple[str, float]] | None = None,
             hidden: frozenset[str] = frozenset(), grouped: bool = False) -> Results:
        end = offset + limit  # past the last result this page shows
        depth = groups.DEPTH if grouped else end  # how far down the lexical ranking is read
        if hits is not None:
            depth = max(depth, DEPTH)  # the lexical ranking's depth that fusion reads
        scored = Scored(searcher, plan, allowed=q.filter_query(parsed), mask=mask)
        keys: list[tuple[str, float]] = []
        kinds: dict[str, str] = {}
        cover: dict[str, float] = {}  # the share of the query's words each block has
        total, mode = 0, "and"
        if not is_question(text, parsed) or not plan.loose:
            first, total = scored.strict(depth)
            keys = [(hit.key, hit.score) for hit in first]
            kinds.update((hit.key, hit.kind) for hit in first)
            cover.update((hit.key, 1.0) for hit in first)
        if total < depth and plan.loose:
            # AND found too little (a question, or a word the log does not use): rank the rest with BM25 over
            # the words that carry meaning, after everything AND found.
            more, matched = scored.ranked(depth + RERANK)
            seen = {k for k, _ in keys}
            extra = [(hit.key, hit.score * (CODE_WEIGHT if hit.kind == "code" else 1.0))
                     for hit in more if hit.key not in seen]
            keys += sorted(extra, key=lambda pair: -pair[1])[: depth - len(keys)]
            kinds.update((hit.key, hit.kind) for hit in more)
            cover.update((hit.key, scored.covered(hit.docnum)) for hit in more if hit.key not in cover)
            total, mode = max(matched, total), "or"
        entries = self._entry_map(build)
        if hits is not None:
            required, excluded = scored.narrowed()
            least = fuse.floor(bool(keys))
            far = not hits or hits[0][1] < least
            if far:
                # Nothing in the log is near the question: only a block with every word it asks is an answer.
                keys = [(k, s) for k, s in keys if cover.get(k, 0.0) >= 1.0]
            meant = [(k, c) for k, c in hits if _visible(k, entries, hidden, parsed)
                     and k not in excluded and (required is None or k in required)]
            lead = max((cover.get(k, 0.0) for k, _ in keys[:fuse.LEAD]), default=0.0)
            fused = fuse.combine(keys, meant, fuse.weight(parsed.said, lead), cover, least=least)
            # fusion reads the lexical ranking's first DEPTH; the rest of it follows, in its own order
            taken = {k for k, _ in fused}
            keys = fused + [(k, 0.0) for k, _ in keys[DEPTH:] if k not in taken]
            total = len(keys) if far else max(total, len(keys))
        terms = q.highlight_terms(parsed)
        # only unknown words are looked up
        corrected = spelling.correct(searcher, build, parsed, text, scored, mask, self._spellings)
        if grouped:
            return _grouped(build, entries, keys, kinds, terms, limit, offset,
                            Results(text, [], total, offset, limit, corrected, mode, semantic=hits is not None))
        citations = []
        for key, score in keys[offset:end]:
            slug, anchor = key.split("#", 1)
            block = find_block(build, slug, anchor)
            if block is None:
                continue  # the index and the build disagree only during a switch; skip rather than fail
            citations.append(_cite(build, entries, slug, block, snippet(block.text, terms), score))
        return Results(text, citations, total, offset, limit, corrected, mode, semantic=hits is not None)

    def _entry_map(self, build: Build) -> dict[str, Entry]:
        key = (build.id, id(build))
        found = self._entries.get(key)
        if found is None:
            found = {e.slug: e for e in build.site.entries}
            self._entries.clear()
            self._entries[key] = found
        return found

    def _mask(self, build: Build, now: dt.datetime) -> tuple[frozenset[str], wq.Query | None]:
        """Return the entries a reader may not see now (drafts, scheduled) and the query that hides them."""
        key = (build.id, id(build))
        cached = self._masks.get(key)
        if cached and cached[0] <= now < cached[1]:
            return cached[2], cached[3]
        hidden = frozenset(e.slug for e in build.site.entries if not e.is_published(now))
        shown = [e.date for e in build.site.entries if e.is_published(now)]
        since = max(shown, default=dt.datetime.min.replace(tzinfo=dt.UTC))
        until = build.site.next_publication(now) or FAR
        mask = wq.Or([wq.Term("slug", s) for s in sorted(hidden)]) if hidden else None
        self._masks.clear()
        self._masks[key] = (since, until, hidden, mask)
        return hidden, mask


def _size(key: tuple, results: Results) -> int:
    """Estimate what one cached answer holds, in bytes (texts, snippets, titles, and the key's query)."""
    texts = sum(len(c.text) + len(c.snippet) + len(c.title) + CITATION_OVERHEAD
                for c in results.citations)
    return texts + sum(len(part) for part in key if isinstance(part, str)) + CITATION_OVERHEAD


def _grouped(build: Build, entries: dict[str, Entry], keys: list[tuple[str, float]], kinds: dict[str, str],
             terms: frozenset[str], limit: int, offset: int, ranked: Results) -> Results:
    """Return one page of entries and pages, each with its best blocks (blog/index/groups.py)."""
    scores = dict(keys)
    order = groups.by_source([k for k, _ in keys])
    counts = groups.shown([k for k, _ in keys])
    shown = []
    for slug, anchors in order[offset:offset + limit]:
        folded = groups.fold(_blocks(build, slug), anchors)
        # a block a heading led to stands where the heading ranked, with its score
        cited = tuple(_cite(build, entries, slug, block, snippet(block.text, terms), scores[f"{slug}#{anchor}"])
                      for block, anchor in folded[:counts.get(slug, groups.LEAST)])
        if cited:
            shown.append(Group(cited, len(folded)))
    pages = sum(1 for slug, _ in order if page_slug(slug) is not None)
    return replace(ranked, citations=[c for g in shown for c in g.citations], groups=tuple(shown),
                   entries=len(order) - pages, pages=pages,
                   paragraphs=groups.paragraphs([k for k, _ in keys], kinds), deeper=ranked.total > len(keys))


def _blocks(build: Build, slug: str) -> tuple[Block, ...]:
    """Return the blocks of an entry or page by its index slug, in page order (none when it is gone)."""
    try:
        return part(build.site, build.rendered, slug)[1]
    except KeyError:
        return ()  # the index and the build disagree only during a switch


def _visible(key: str, entries: dict[str, Entry], hidden: frozenset[str], parsed: q.Parsed) -> bool:
    """Tell whether a block found by meaning passes what the lexical side filters in the index."""
    slug = key.split("#", 1)[0]
    entry = entries.get(slug)
    if entry is None:
        return not (parsed.tags or parsed.after or parsed.before)  # not an entry's: only unfiltered
    if slug in hidden or any(tag not in {t.lower() for t in entry.tags} for tag in parsed.tags):
        return False
    return (parsed.after is None or entry.date >= parsed.after) and \
        (parsed.before is None or entry.date < parsed.before)


def _cite(build: Build, entries: dict[str, Entry], slug: str, block: Block, marked: str, score: float) -> Citation:
    common = {"anchor": block.anchor, "heading_path": block.heading_path, "kind": block.kind,
              "text": block.text, "snippet": marked, "score": round(score, 4)}
    if (page_name := page_slug(slug)) is not None:
        page = build.site.pages[page_name]
        return Citation(slug=page.slug, title=page.title, date=build.created, last_updated=build.created,
                        updated=False, source="page", **common)
    entry = entries[slug]
    if block.kind == "update":  # an update note was first shown on its own date
        notes = dict(zip(update_anchors(tuple(u.date for u in entry.updates)), entry.updates, strict=True))
        changed = notes[block.anchor].date
    else:
        changed = build.block_changed(slug, block.anchor) or entry.date
    return Citation(slug=slug, title=entry.title, date=entry.date, last_updated=entry.last_updated,
                    updated=bool(entry.updates), paragraph_changed=changed, **common)


def is_question(text: str, parsed: q.Parsed) -> bool:
    """Tell a question ("how do I ...?", or four words and more) from a keyword query."""
    return text.rstrip().endswith("?") or len(parsed.words) >= QUESTION_WORDS


def snippet(text: str, terms: frozenset[str]) -> str:
    """Return the block's text as escaped HTML, the query's terms marked, cut around the matches."""
    fragmenter = wh.WholeFragmenter() if len(text) <= SNIPPET_CHARS else wh.ContextFragmenter(
        maxchars=SNIPPET_CHARS, surround=100)
    formatter = wh.HtmlFormatter(tagname="mark", classname="hit", termclass="t", between=" … ")
    marked = wh.highlight(text, terms, q.fast_highlight, fragmenter, formatter, top=2) if terms else ""
    if marked:  # a cut is marked where it starts or ends mid-text, as between two fragments
        shown, whole = _EDGES.sub("", unescape(_TAGS.sub("", marked))), _EDGES.sub("", text)
        return ("" if whole.startswith(shown[:40]) else "… ") + marked + ("" if whole.endswith(shown[-40:]) else " …")
    cut = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"
    return escape(cut, quote=False)
