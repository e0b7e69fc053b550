"""What Search.find() answers with: citations of single paragraphs, and the error a reader can act on."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


class SearchError(Exception):
    """A query that cannot be answered as written, with a plain message saying how to fix it."""


class IndexUnavailable(SearchError):
    """The index is missing or damaged; it is being rebuilt and search answers again shortly."""


@dataclass(frozen=True)
class Citation:
    """One citable block (paragraph, list item, code block, heading, table, summary, update note) that matched.

    It comes from an entry or from a standing page (`source`); a page has no date of its own, so `date` and
    `last_updated` are the build's.
    """

    slug: str  # the entry's or the page's slug
    title: str
    date: dt.datetime
    # the block's stable anchor; blog.serving.urls.citation_url(base, slug, anchor, source) links to it
    anchor: str
    heading_path: tuple[str, ...]
    kind: str  # p | li | code | table | h | summary | update
    text: str
    snippet: str  # escaped HTML, matched terms wrapped in <mark>
    score: float
    last_updated: dt.datetime
    updated: bool  # the entry carries dated corrections
    paragraph_changed: dt.datetime | None = None  # when this exact block was first shown (honesty room)
    source: str = "entry"  # "entry" | "page"


@dataclass(frozen=True)
class Group:
    """One entry or page of a grouped answer: its best blocks, best first, headings folded (blog/index/groups.py)."""

    citations: tuple[Citation, ...]
    found: int  # how many of its blocks the ranking holds, shown or not

    @property
    def first(self) -> Citation:
        return self.citations[0]


@dataclass(frozen=True)
class Results:
    """One page of citations for a query, best first; or of entries and pages, each with its best citations.

    A grouped answer (search(..., grouped=True), the search page) counts `limit` and `offset` in entries and
    pages: `groups` holds this page's, `citations` all their citations in order.
    """

    query: str
    citations: list[Citation] = field(default_factory=list)
    total: int = 0
    offset: int = 0
    limit: int = 10
    corrected: str | None = None  # a spelling suggestion when the query found little or nothing
    mode: str = "and"  # "and": every word matched; "or": ranked over the words that carry meaning
    semantic: bool = False  # the ranking by meaning joined the ranking by words (blog/index/fuse.py)
    without_meaning: str | None = None  # why meaning did not join, in plain words (None: it did, or it is off)
    groups: tuple[Group, ...] = ()
    entries: int = 0  # grouped: the entries the ranking's blocks are in (of its best groups.DEPTH blocks)
    pages: int = 0  # grouped: the standing pages they are in
    paragraphs: int = 0  # grouped: the ranking's blocks that are not headings
    deeper: bool = False  # grouped: more blocks matched than the groups are formed from (groups.DEPTH)
