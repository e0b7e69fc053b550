"""What the operator writes: entries, pages, their updates and the reading order."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blog.content.text import Text, Written

__all__ = ["PAGE_KEY", "Entry", "Page", "ReadingItem", "Site", "Update", "entry_path", "page_key", "page_path",
           "page_slug", "utcnow"]


def entry_path(slug: str) -> str:
    """Return the path an entry is served at."""
    return f"/log/{slug}"


def page_path(slug: str) -> str:
    """Return the path a standing page is served at."""
    return f"/pages/{slug}"


# A page's key wherever entries and pages share one namespace (a build's renderings, texts and file folders,
# the index's slugs): an entry's is its slug, a page's this prefix and its slug, so the two never collide.
PAGE_KEY = "page:"


def page_key(slug: str) -> str:
    """Return the key of the standing page called slug ("page:<slug>")."""
    return f"{PAGE_KEY}{slug}"


def page_slug(key: str) -> str | None:
    """Return the slug of the page a key names, or None when the key is an entry's."""
    return key[len(PAGE_KEY):] if key.startswith(PAGE_KEY) else None


@dataclass(frozen=True)
class Update:
    """A dated correction to a published entry."""

    date: dt.datetime
    reason: str
    note: str = ""
    line: int = field(default=0, compare=False)  # where the item is written in its file (0: not known)


@dataclass(frozen=True)
class Entry(Written):
    """One dated log entry, as written by the operator."""

    slug: str
    title: str
    date: dt.datetime
    tags: tuple[str, ...]
    summary: str
    text: Text  # the Markdown, in memory or in the saved build: see blog/content/text.py
    path: Path
    body_line: int
    draft: bool = False
    series: str = ""
    updates: tuple[Update, ...] = ()
    upstream: tuple[Any, ...] = ()

    @property
    def url(self) -> str:
        return entry_path(self.slug)

    @property
    def last_updated(self) -> dt.datetime:
        return max([self.date, *(u.date for u in self.updates)])

    @property
    def body_hash(self) -> str:
        return self.text.digest

    def is_published(self, now: dt.datetime) -> bool:
        return not self.draft and self.date <= now


@dataclass(frozen=True)
class Page(Written):
    """A standing page: start here, the thesis, the manifesto, the roadmap, about."""

    slug: str
    title: str
    summary: str
    text: Text
    path: Path
    body_line: int

    @property
    def url(self) -> str:
        return page_path(self.slug)

    @property
    def key(self) -> str:
        """The page's key beside the entries' slugs (page_key)."""
        return page_key(self.slug)


@dataclass(frozen=True)
class ReadingItem:
    """One step of the reading order shown on the home page."""

    kind: str  # "page" | "entry"
    slug: str
    note: str = ""


@dataclass(frozen=True)
class Site:
    """All entries (drafts and scheduled ones included), pages and the reading order."""

    entries: tuple[Entry, ...]
    pages: dict[str, Page]
    reading_order: tuple[ReadingItem, ...] = ()
    root: Path = field(default=Path())

    def published(self, now: dt.datetime | None = None) -> list[Entry]:
        """Return the entries a reader may see now, newest first."""
        now = now or utcnow()
        return [e for e in self.entries if e.is_published(now)]

    @functools.cached_property
    def by_slug(self) -> dict[str, Entry]:
        """Every entry (drafts and scheduled ones too) by slug."""
        return {e.slug: e for e in self.entries}

    def entry(self, slug: str, now: dt.datetime | None = None) -> Entry | None:
        """Return a published entry by slug."""
        found = self.by_slug.get(slug)
        return found if found is not None and found.is_published(now or utcnow()) else None

    def next_publication(self, now: dt.datetime) -> dt.datetime | None:
        """Return when the next scheduled (non-draft) entry goes live, if any."""
        future = [e.date for e in self.entries if not e.draft and e.date > now]
        return min(future) if future else None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
