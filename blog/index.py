"""The paragraph index (Whoosh): one document per citable block; search() returns citations.

A first version: full rebuild into a fresh directory per build. The search room replaces it.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from whoosh import fields, index, qparser
from whoosh.analysis import StemmingAnalyzer

from blog.build import Build

log = logging.getLogger(__name__)


class SearchError(Exception):
    """A query that cannot be answered, with a message a reader can act on."""


@dataclass(frozen=True)
class Citation:
    slug: str
    title: str
    date: dt.datetime
    anchor: str
    url: str
    heading_path: tuple[str, ...]
    text: str
    snippet: str
    score: float


@dataclass(frozen=True)
class Results:
    query: str
    citations: list[Citation]
    total: int


SCHEMA = fields.Schema(
    key=fields.ID(stored=True, unique=True),
    slug=fields.ID(stored=True),
    anchor=fields.ID(stored=True),
    text=fields.TEXT(analyzer=StemmingAnalyzer(), stored=True),
)


def is_usable(index_dir: Path | None) -> bool:
    return bool(index_dir) and index.exists_in(str(index_dir))


def update_index(build: Build, index_root: Path, previous: Build | None = None) -> Path:
    target = index_root / build.id
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    ix = index.create_in(str(target), SCHEMA)
    with ix.writer() as writer:
        for entry in build.site.entries:
            for block in build.rendered[entry.slug].blocks:
                writer.add_document(key=f"{entry.slug}#{block.anchor}", slug=entry.slug, anchor=block.anchor,
                                    text=block.text)
    return target


def search(build: Build, query: str, limit: int = 10, offset: int = 0) -> Results:
    if not is_usable(build.index_dir):
        raise SearchError("search is rebuilding; try again in a minute")
    ix = index.open_dir(str(build.index_dir))
    with ix.searcher() as searcher:
        parsed = qparser.QueryParser("text", ix.schema).parse(query)
        hits = searcher.search(parsed, limit=offset + limit)
        entries = {e.slug: e for e in build.site.entries}
        out = []
        for hit in hits[offset:]:
            entry = entries[hit["slug"]]
            out.append(Citation(entry.slug, entry.title, entry.date, hit["anchor"],
                                f"{entry.url}#{hit['anchor']}", (), hit["text"], hit["text"][:200], hit.score))
        return Results(query, out, len(hits))
